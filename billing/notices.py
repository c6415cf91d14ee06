"""Telling people about applied payments, once the state change is committed."""

from __future__ import annotations

import logging

from billing.chat_access import remove_after_refund
from billing.chat_ports import ChatQueue
from billing.clock import Clock
from billing.invoices import get_invoice
from billing.ledger import find_operation
from billing.money import Money
from billing.orders import item_title
from billing.plans import Catalogue
from billing.ports import HoldNotice, NoticeQueue, Notifier, PaymentNotice, ReversalNotice
from billing.renewals.periods import period_ms
from billing.subscriptions import get_subscription
from db import Operation, OperationStatus

log = logging.getLogger(__name__)


async def send_payment_notice(
    provider: str, operation_id: str, *, notifier: Notifier, plans: Catalogue, clock: Clock,
    notices: NoticeQueue | None = None,
) -> bool:
    """Send the notice of an applied operation unless it was sent; True when sent now. It carries the fiscal
    receipt's link when the provider returned one by now; a link that arrived while it was being sent goes in a
    follow-up notice (billing/receipt_links.py), enqueued on `notices`."""
    operation = await find_operation(provider, operation_id)
    if operation is None or operation.status is not OperationStatus.APPLIED or operation.notified_at is not None:
        return False
    invoice = await get_invoice(operation.label)
    subscription = await get_subscription(invoice.user_id) if invoice.plan is not None else None
    if invoice.plan is not None and subscription is None:
        raise RuntimeError(f"{operation.key}: applied but user {invoice.user_id} has no subscription")
    await notifier.payment_accepted(
        PaymentNotice(
            user_id=invoice.user_id,
            label=invoice.label,
            plan=invoice.plan or "",
            plan_title=item_title(invoice, plans),
            provider=provider,
            amount=str(Money(operation.amount, operation.currency)),
            period_end=subscription.current_period_end if subscription is not None else None,
            paid=Money(operation.amount, operation.currency),
            kind=invoice.kind.value,
            order_id=invoice.order_id,
            message=invoice.donor_message,
            receipt_url=operation.receipt_url,
        )
    )
    if notices is not None and subscription is not None and plans.chats(invoice.plan):
        notices.enqueue_chat_access(invoice.user_id, period_ms(subscription.current_period_end))
    now = clock()
    sent: dict[str, object] = {"notified_at": now}
    if operation.receipt_url is not None:
        sent["receipt_notified_at"] = now
    await Operation.get_motor_collection().update_one({"_id": operation.id, "notified_at": None}, {"$set": sent})
    if operation.receipt_url is None and notices is not None:
        fresh = await find_operation(provider, operation_id)
        if fresh is not None and fresh.receipt_url is not None:
            notices.enqueue_receipt_notice_from_job(provider, operation_id)
    return True


async def send_reversal_notice(provider: str, operation_id: str, *, notifier: Notifier, clock: Clock) -> bool:
    """Send the notice of a reversed payment that had been applied, unless it was sent; True when sent now."""
    operation = await find_operation(provider, operation_id)
    if operation is None or operation.status is not OperationStatus.REVERSED or operation.reversal_notified_at:
        return False
    invoice = await get_invoice(operation.label)
    if invoice.paid_by != operation.key and operation.reversed_from is not OperationStatus.HELD:
        return False
    subscription = await get_subscription(invoice.user_id)
    await notifier.payment_reversed(
        ReversalNotice(
            user_id=invoice.user_id,
            label=invoice.label,
            provider=provider,
            amount=str(Money(operation.amount, operation.currency)),
            reason=operation.reversal_reason or "",
            period_end=subscription.current_period_end if subscription else None,
            paid=Money(operation.amount, operation.currency),
            one_off=invoice.plan is None,
        )
    )
    await Operation.get_motor_collection().update_one(
        {"_id": operation.id, "reversal_notified_at": None}, {"$set": {"reversal_notified_at": clock()}}
    )
    return True


async def remove_after_reversal(provider: str, operation_id: str, queue: ChatQueue) -> int:
    """A reversed payment that had paid a plan's period: the user's chats are queued for removal, which leaves
    them in when another paid period still runs (billing/chat_access.py)."""
    operation = await find_operation(provider, operation_id)
    if operation is None or operation.status is not OperationStatus.REVERSED:
        return 0
    invoice = await get_invoice(operation.label)
    if invoice.plan is None or invoice.paid_by != operation.key:
        return 0
    return await remove_after_refund(invoice.user_id, queue)


async def send_hold_notice(provider: str, operation_id: str, *, notifier: Notifier) -> bool:
    """Tell the admins a payment waits for their confirm, while it still does; True when told now."""
    operation = await find_operation(provider, operation_id)
    if operation is None or operation.status is not OperationStatus.HELD:
        return False
    invoice = await get_invoice(operation.label)
    await notifier.payment_held(HoldNotice(user_id=invoice.user_id, label=invoice.label, provider=provider,
                                           amount=str(Money(operation.amount, operation.currency))))
    return True
