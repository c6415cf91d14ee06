"""Merchant-initiated charges of a saved payment method (renewals), reference §5: POST /payments with
`payment_method_id`, `capture: true` and no confirmation, under an Idempotence-Key fixed by the renewal
attempt (§4.2), and what the Payment YooKassa answers means for the renewal.

A charge is read exactly as a notification's fetched Payment is: a succeeded one becomes the same
VerifiedEvent (`payment_event`), so whichever of the two reaches the ledger first records it and the
other is a duplicate of the same (yookassa, payment id).

Refusals (reference §4.5). A 4xx answer to the charge is permanent: YooKassa made no payment and the same
request cannot succeed (403 `forbidden`: autopayments are not enabled for the shop; 400 `invalid_request`:
a receipt the shop's fiscalization requires, an unknown payment_method_id, ...). It is a hard decline with
YooKassa's own message. A 401 (`invalid_credentials`: the key was changed, or test and live keys mixed)
is our configuration, not the payer's method: the attempt ends the same way but the method stays saved,
so the next period charges it once the key is put right. 5xx, 202, 429 and network failures leave the
outcome unknown and raise ProviderUnavailable (ApiClient): the renewal repeats the same request, under
the same Idempotence-Key, later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.providers.base import ChargeRequest, ChargeResult, ChargeStatus, ProviderRejected, Remember
from billing.providers.yookassa.protocol import (
    CURRENCY,
    DESCRIPTION_LIMIT,
    ApiClient,
    amount_json,
    cancellation,
    idempotence_key,
    label_of,
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
OUR_CREDENTIALS = 401  # the shop's key, not the payer's method: the method stays saved
REASON_LIMIT = 300


async def charge_saved_method(api: ApiClient, request: ChargeRequest, remember: Remember, *,
                              test_mode: bool, receipt: Mapping[str, Any] | None = None) -> ChargeResult:
    """Charge `request.token` once per idempotency key, or look up the payment an earlier run of this attempt
    made. A payment YooKassa names is remembered before it is judged; a 4xx refusal is a hard decline.
    `receipt` (YOOKASSA_RECEIPTS) is the charge's 54-FZ receipt (billing/providers/yookassa/receipts.py)."""
    body = charge_body(request, receipt)
    try:
        if request.known_operation_id is None:
            payment = await api.create_payment(body, charge_key(request.idempotency_key))
            await remember(str(payment["id"]))
        else:
            payment = await _known_payment(api, request.known_operation_id)
    except ProviderRejected as err:
        if err.status is None:
            raise
        return refused(err)
    if label_of(payment) != request.label:
        raise ProviderRejected(f"yookassa payment {payment['id']} pays {label_of(payment)!r}, not {request.label!r}")
    return charge_result(payment, test_mode=test_mode)


async def _known_payment(api: ApiClient, payment_id: str) -> dict[str, Any]:
    found = await api.get_payment(payment_id)
    if found is None:  # it named this payment itself: another shop's credentials now, or our bug
        raise ProviderRejected(f"yookassa has no payment {payment_id} for this shop")
    return found


def refused(err: ProviderRejected) -> ChargeResult:
    """YooKassa's 4xx answer to a charge as the decline it is: no payment made, none can be with this request."""
    return ChargeResult(ChargeStatus.DECLINED, reason=str(err)[:REASON_LIMIT], hard=True,
                        keep_method=err.status == OUR_CREDENTIALS)


def charge_key(idempotency_key: str) -> str:
    """The Idempotence-Key of one renewal attempt: the same on every run of it (≤ 64 characters)."""
    return idempotence_key("charge", idempotency_key)


def charge_body(request: ChargeRequest, receipt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """POST /payments for a charge without the payer: the saved method instead of a confirmation."""
    if request.amount.currency != CURRENCY:
        raise ProviderRejected(f"yookassa charges saved methods in {CURRENCY}, not {request.amount.currency}")
    body: dict[str, Any] = {
        "amount": amount_json(request.amount),
        "capture": True,
        "payment_method_id": request.token,
        "description": request.description[:DESCRIPTION_LIMIT],
        "metadata": {"label": request.label},
    }
    if receipt is not None:
        body["receipt"] = dict(receipt)
    return body


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
