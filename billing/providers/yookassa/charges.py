"""Merchant-initiated charges of a saved payment method (renewals), reference §5: POST /payments with
`payment_method_id`, `capture: true` and no confirmation, under an Idempotence-Key fixed by the renewal
attempt (§4.2), and what the Payment YooKassa answers means for the renewal.

A charge is read exactly as a notification's fetched Payment is: a succeeded one becomes the same
VerifiedEvent (`payment_event`), so whichever of the two reaches the ledger first records it and the
other is a duplicate of the same (yookassa, payment id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.providers.base import ChargeRequest, ChargeResult, ChargeStatus, ProviderRejected
from billing.providers.yookassa.protocol import (
    CURRENCY,
    DESCRIPTION_LIMIT,
    amount_json,
    cancellation,
    idempotence_key,
    payment_event,
    payment_status,
)
from db.yookassa import YooKassaStatus

# cancellation_details.reason values after which charging the same method again cannot succeed: the
# payer revoked the autopayment, the method is dead or barred, or the bank wants the payer present.
# YooKassa's own advice for fraud_suspected is to pay with another method, so it counts as hard too.
# Everything else (insufficient_funds, general_decline, call_issuer, issuer_unavailable, timeouts,
# limits, identification_required, unknown reasons) is worth the next retry of the schedule.
HARD_DECLINES = frozenset({
    "permission_revoked",
    "card_expired",
    "payment_method_restricted",
    "fraud_suspected",
    "invalid_card_number",
    "country_forbidden",
    "3d_secure_failed",
    "unsupported_mobile_operator",
})
UNKNOWN_REASON = "unknown"


def charge_key(idempotency_key: str) -> str:
    """The Idempotence-Key of one renewal attempt: the same on every run of it (≤ 64 characters)."""
    return idempotence_key("charge", idempotency_key)


def charge_body(request: ChargeRequest) -> dict[str, Any]:
    """POST /payments for a charge without the payer: the saved method instead of a confirmation."""
    if request.amount.currency != CURRENCY:
        raise ProviderRejected(f"yookassa charges saved methods in {CURRENCY}, not {request.amount.currency}")
    return {
        "amount": amount_json(request.amount),
        "capture": True,
        "payment_method_id": request.token,
        "description": request.description[:DESCRIPTION_LIMIT],
        "metadata": {"label": request.label},
    }


def charge_result(payment: Mapping[str, Any], *, test_mode: bool) -> ChargeResult:
    """What a charge's Payment means: succeeded → the ledger's event; canceled → a decline, hard when
    retrying cannot help; pending or waiting_for_capture → not decided yet."""
    status = payment_status(payment)
    payment_id = str(payment["id"])
    if status is YooKassaStatus.SUCCEEDED:
        if payment.get("test") is not test_mode:  # the notification path would refuse to credit it too
            raise ProviderRejected(f"yookassa payment {payment_id} has test={payment.get('test')!r} but "
                                   f"YOOKASSA_TEST_MODE is {test_mode}")
        return ChargeResult(ChargeStatus.SUCCEEDED, payment_id, event=payment_event(payment))
    if status is YooKassaStatus.CANCELED:
        reason = cancellation(payment)["reason"] or UNKNOWN_REASON
        return ChargeResult(ChargeStatus.DECLINED, payment_id, reason=reason, hard=reason in HARD_DECLINES)
    return ChargeResult(ChargeStatus.PENDING, payment_id)
