"""RQ jobs: small module-level functions taking ids and strings; the worker imports them by path."""

from __future__ import annotations

import logging
from datetime import timedelta

from billing.chat_access import grant_access, remove_access
from billing.events import outlet as events_outlet
from billing.events.delivery import deliver
from billing.extras import settle_extra
from billing.fulfilment import successful_payment_callback
from billing.notices import remove_after_reversal, send_hold_notice, send_payment_notice, send_reversal_notice
from billing.payouts import PayoutServices
from billing.payouts.claims import expire
from billing.payouts.notices import send_payout_notice
from billing.payouts.settle import poll
from billing.payouts.submit import submit_payout
from billing.ports import JobFailureNotice
from billing.receipt_links import ReceiptsAfterPayment, send_receipt_notice, submitting_receipts
from billing.refunds import check_refund
from billing.renewals import RenewalServices
from billing.renewals.attempt import run_renewal
from billing.renewals.cancel import forget_saved_method
from billing.renewals.notices import send_renewal_notice
from billing.reversal import reverse_payment
from billing.runtime import JobRuntime, current

log = logging.getLogger(__name__)


def fulfil_payment(provider: str, operation_id: str, label: str) -> str:
    runtime = current()
    outcome = runtime.run(
        successful_payment_callback(
            provider, operation_id, label,
            notices=runtime.notices, clock=runtime.clock, checkpoint=runtime.checkpoint,
            receipts_after_payment=submitting_receipts(runtime.providers),
        )
    )
    return str(outcome)


def notify_payment(provider: str, operation_id: str) -> bool:
    runtime = current()
    return bool(
        runtime.run(
            send_payment_notice(
                provider, operation_id, notifier=runtime.notifier, plans=runtime.plans, clock=runtime.clock,
                notices=runtime.notices,
            )
        )
    )


def notify_receipt(provider: str, operation_id: str) -> bool:
    """The follow-up notice with the fiscal receipt's link (billing/receipt_links.py)."""
    runtime = current()
    return bool(runtime.run(send_receipt_notice(provider, operation_id, notifier=runtime.notifier,
                                                clock=runtime.clock)))


def submit_fiscal_receipt(provider: str, operation_id: str) -> str:
    """Submit an applied payment's fiscal receipt through its provider (Click's ofd_data), once."""
    runtime = current()
    submitter = runtime.providers.get(provider)
    if not isinstance(submitter, ReceiptsAfterPayment) or not submitter.submits_receipts:
        return "receipts off"
    return str(runtime.run(submitter.submit_receipt(
        operation_id, plans=runtime.plans, notices=runtime.notices, notifier=runtime.notifier, clock=runtime.clock,
        checkpoint=runtime.checkpoint)))


def reverse(provider: str, operation_id: str, reason: str) -> bool:
    runtime = current()
    return bool(
        runtime.run(
            reverse_payment(
                provider, operation_id, reason=reason,
                notices=runtime.notices, clock=runtime.clock, checkpoint=runtime.checkpoint,
            )
        )
    )


def check_pending_refund(provider: str, refund_id: str, check: int) -> str:
    """One look-up of a pending refund (billing/refunds.py); `check` only tells look-ups apart in the job id."""
    runtime = current()
    return str(runtime.run(check_refund(provider, refund_id, providers=runtime.providers, notices=runtime.notices,
                                        notifier=runtime.notifier, clock=runtime.clock)))


def settle_extra_payment(provider: str, operation_id: str) -> str:
    """Refund an extra payment through its provider, or list it for a manual refund."""
    runtime = current()
    refund = runtime.run(settle_extra(provider, operation_id, providers=runtime.providers,
                                      notifier=runtime.notifier, clock=runtime.clock))
    return str(refund)


def notify_hold(provider: str, operation_id: str) -> bool:
    runtime = current()
    return bool(runtime.run(send_hold_notice(provider, operation_id, notifier=runtime.notifier)))


def notify_reversal(provider: str, operation_id: str) -> bool:
    """The notice of a reversed payment; the refunded user's chats are queued for removal first."""
    runtime = current()
    runtime.run(remove_after_reversal(provider, operation_id, runtime.notices))
    return bool(runtime.run(send_reversal_notice(provider, operation_id, notifier=runtime.notifier,
                                                 clock=runtime.clock)))


def grant_chat_access(user_id: int, period: int) -> int:
    """Links to the private chats of the user's plan for one paid period (billing/chat_access.py)."""
    runtime = current()
    if runtime.chats is None:
        log.warning("user %s: no links to the plan's chats, BOT_TOKEN is unset in this worker", user_id)
        return 0
    return int(runtime.run(grant_access(user_id, period, chats=runtime.chats, plans=runtime.plans,
                                        now=runtime.clock())))


def remove_from_chat(user_id: int, chat_id: int, reason: str) -> bool:
    """Take a user without access out of one of the plans' chats (billing/chat_access.py)."""
    runtime = current()
    if runtime.chats is None:
        raise RuntimeError("removing a member from a chat needs BOT_TOKEN in this worker")
    return bool(runtime.run(remove_access(user_id, chat_id, reason, chats=runtime.chats, plans=runtime.plans,
                                          now=runtime.clock(), grace=timedelta(days=runtime.grace_days))))


def create_payout(label: str) -> str:
    runtime = current()
    return str(runtime.run(submit_payout(label, services=_payouts(runtime), clock=runtime.clock,
                                         checkpoint=runtime.checkpoint)))


def poll_payout(label: str, step: int) -> str:
    runtime = current()
    services = _payouts(runtime)
    return str(runtime.run(poll(label, step, konsol=services.konsol, queue=services.queue, clock=runtime.clock)))


def notify_payout(label: str, event: str, detail: str = "") -> bool:
    runtime = current()
    return bool(runtime.run(send_payout_notice(label, event, detail, notifier=runtime.notifier)))


def expire_payout_claim(label: str) -> str:
    runtime = current()
    return str(runtime.run(expire(label, runtime.clock(), _payouts(runtime).queue)))


def renew(user_id: int, period: int, run: str) -> str:
    """One scheduled run of a period's renewal; `run` only tells runs apart in the job id."""
    runtime = current()
    return str(runtime.run(run_renewal(user_id, period, services=_renewals(runtime), plans=runtime.plans,
                                       clock=runtime.clock, checkpoint=runtime.checkpoint)))


def notify_renewal(user_id: int, period: int, notice: str) -> bool:
    runtime = current()
    return bool(runtime.run(send_renewal_notice(user_id, period, notice, notifier=runtime.notifier,
                                                plans=runtime.plans, links=_renewals(runtime).links,
                                                clock=runtime.clock, chargers=_renewals(runtime).chargers)))


def forget_method(user_id: int) -> bool:
    runtime = current()
    return bool(runtime.run(forget_saved_method(user_id, chargers=_renewals(runtime).chargers,
                                                notifier=runtime.notifier, plans=runtime.plans)))


def _renewals(runtime: JobRuntime) -> RenewalServices:
    if runtime.renewals is None:
        raise RuntimeError("renewals are not set up in this worker")
    return runtime.renewals


def _payouts(runtime: JobRuntime) -> PayoutServices:
    if runtime.payouts is None:
        raise RuntimeError("payouts are not configured in this worker (KONSOL_API_TOKEN is unset)")
    return runtime.payouts


def deliver_event(event_id: str, number: int) -> str:
    """One delivery attempt of an outbound event to EVENTS_URL (billing/events/delivery.py)."""
    runtime = current()
    outlet = events_outlet.installed()
    if outlet is None:
        return "events off"  # EVENTS_URL unset in this worker: the event waits, and a replay sends it
    return str(runtime.run(deliver(event_id, number, outlet=outlet, notifier=runtime.notifier, clock=runtime.clock)))


def alert_job_failure(job_id: str, description: str, error: str) -> None:
    runtime = current()
    runtime.run(runtime.notifier.job_failed(JobFailureNotice(job_id=job_id, description=description, error=error)))
