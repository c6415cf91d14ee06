"""Signed outbound events to the owner's own systems, as Stripe sends webhooks.

With EVENTS_URL and EVENTS_SECRET set, every state change is recorded as an `OutboundEvent` (db/events.py) by the
job step that made it (`emit`), under an id derived from its cause, so a job run again after a crash records it
once. A delivery job on its own queue POSTs it as JSON with the `Ymds-Signature` header (`signing`); a 2xx marks
it delivered, anything else is recorded as an attempt and tried again after the next of EVENTS_RETRY_INTERVALS
(the scheduler's tick enqueues what is due, on the injectable clock), and after the last the admin chat is told
once (`delivery`). `ymds events replay` sends events again under the same id, for the receiver to dedupe.
"""

from enum import StrEnum


class EventType(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"  # a plan, an order (with its order_id and metadata) or a donation paid
    PAYMENT_REFUNDED = "payment.refunded"  # money given back, in full or in part (`amount`, `full`)
    SUBSCRIPTION_ACTIVATED = "subscription.activated"  # a payment (not a renewal charge) extended a subscription
    SUBSCRIPTION_RENEWED = "subscription.renewed"  # a renewal charge of the saved method extended it
    SUBSCRIPTION_PAST_DUE = "subscription.past_due"  # a renewal charge was declined; it is tried again
    SUBSCRIPTION_EXPIRED = "subscription.expired"  # the period ended with nothing renewing it
    SUBSCRIPTION_CANCELED = "subscription.canceled"  # auto-renewal turned off: the subscription runs to its end
    PAYOUT_PAID = "payout.paid"
    PAYOUT_FAILED = "payout.failed"
