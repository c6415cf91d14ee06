"""YooKassa refunds that take time (reference §6), on the emulator's own clock.

A refund made while the shop's `refund_status` is "pending" stays `pending` for `settles_after`, then
ends as the timeline says: `succeeded` (the payment's `refunded_amount` grows only now, and
refund.succeeded is notified) or `canceled` with `cancellation_details` and no notification at all, as
YooKassa sends none for a canceled refund. Whoever reads the refund after its time (GET /v3/refunds/{id})
or runs the emulator's schedule (`redeliver_due`) sees it ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from webhook_server.emulators.yookassa_wire import amount, amount_minor

ENDS = ("succeeded", "canceled")


@dataclass(slots=True)
class RefundTimeline:
    """How the next pending refunds end: after how long, and how (reasons from YooKassa's list)."""

    settles_after: timedelta = timedelta(hours=1)
    ends: str = "succeeded"
    party: str = "yoo_money"
    reason: str = "rejected_by_payee"


def begin(refund: dict[str, Any], now: datetime, timeline: RefundTimeline) -> None:
    """A refund created pending: remember when and how it ends (kept out of the API's view by `_`)."""
    if timeline.ends not in ENDS:
        raise ValueError(f"a refund ends as one of {ENDS}, not {timeline.ends!r}")
    refund.update({"_ends_at": now + timeline.settles_after, "_ends_as": timeline.ends,
                   "_party": timeline.party, "_reason": timeline.reason})


def add_refunded(payment: dict[str, Any], refund: Mapping[str, Any]) -> None:
    """A refund succeeded: the payment's refunded_amount grows by it."""
    paid = amount_minor(payment.get("amount"))
    before = amount_minor(payment.get("refunded_amount"))
    asked = amount_minor(refund.get("amount"))
    assert paid is not None and asked is not None, "the emulator keeps amounts readable"
    refunded = (before[0] if before else 0) + asked[0]
    payment["refunded_amount"] = amount(refunded, asked[1])
    payment["refundable"] = refunded < paid[0]


def end_due(payments: dict[str, dict[str, Any]], refunds: dict[str, dict[str, Any]], now: datetime) -> list[str]:
    """End every pending refund whose time has come; returns the ids that succeeded (to notify)."""
    succeeded = []
    for refund in refunds.values():
        if refund["status"] != "pending" or "_ends_at" not in refund or refund["_ends_at"] > now:
            continue
        if refund["_ends_as"] == "succeeded":
            refund["status"] = "succeeded"
            add_refunded(payments[refund["payment_id"]], refund)
            succeeded.append(refund["id"])
        else:
            refund.update(status="canceled", cancellation_details={"party": refund["_party"],
                                                                   "reason": refund["_reason"]})
    return succeeded
