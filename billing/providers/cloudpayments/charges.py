"""Merchant-initiated charges of a saved card token (renewals), reference §4 and §5: the request to
/payments/tokens/charge, and what an answer of it (or of /payments/get and /payments/find, which wrap
the same transaction model) means for the renewal.

- Success true, Status Completed: a payment. Its event is built by the same code as a Pay
  notification's (`read_transaction`, `transaction_event`), so the Pay CloudPayments also sends for
  the TransactionId is a duplicate of the same ledger row, whichever comes first.
- Success false with a model: declined (Model.ReasonCode, Model.Reason), or, with Model.AcsUrl, the bank
  asks for 3-D Secure, which a charge without the payer cannot pass.
- Success false without a model: the request itself was refused (Message): token payments are not
  enabled for the site, the token is unknown, a field is wrong. No retry of the same charge can pass, so
  it is a hard decline with CloudPayments' Message (issue 17.1); a 5xx, 429 or timeout raises
  ProviderUnavailable in the API client and follows RETRY_INTERVALS.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from billing.errors import ProviderUnavailable
from billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    EventKind,
    ProviderRejected,
    VerifiedEvent,
)
from billing.providers.cloudpayments.api import message
from billing.providers.cloudpayments.protocol import (
    CURRENCY,
    Malformed,
    Status,
    format_amount,
    read_transaction,
    text_fields,
    transaction_event,
)

REQUEST_ID_PREFIX = "open-ymds:cloudpayments:charge"
DESCRIPTION_LIMIT = 200
SECURE_3D_REQUIRED = "3-D Secure required"
# ReasonCodes (5000 + the ISO 8583 answer) after which charging the same token again cannot succeed: the
# card is lost, stolen, expired, barred or unknown to its issuer, not allowed for such payments, or the
# issuer suspects fraud (CloudPayments tells the payer to use another card). The rest (5051 insufficient
# funds, 5005 do not honor, 5065 limits, 5091/5092/5096 issuer or network down, ...) may pass on a retry.
HARD_DECLINE_CODES = frozenset({
    5004,  # pick up card
    5007,  # pick up card, special conditions
    5012,  # invalid transaction: the card is not for such payments
    5014,  # invalid card number
    5015,  # no such issuer
    5033,  # expired card, pick up
    5034,  # suspected fraud
    5036,  # restricted card, pick up
    5041,  # lost card
    5043,  # stolen card
    5054,  # expired card
    5057,  # transaction not permitted to the cardholder
    5062,  # restricted card
    5206,  # 3-D Secure authentication failed: only the payer can pass it
})


def charge_request_id(idempotency_key: str) -> str:
    """The X-Request-ID of one renewal attempt: the same on every run of it. CloudPayments answers a repeat
    from its store for one hour only; after that `charge` relies on /payments/find."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{REQUEST_ID_PREFIX}:{idempotency_key}"))


def charge_fields(request: ChargeRequest) -> dict[str, str]:
    """/payments/tokens/charge for a scheduled charge the merchant starts (TrInitiatorCode 0, PaymentScheduled 1)."""
    if request.amount.currency != CURRENCY:
        raise ProviderRejected(f"cloudpayments charges card tokens in {CURRENCY}, not {request.amount.currency}")
    return {
        "Amount": format_amount(request.amount.minor),
        "Currency": request.amount.currency,
        "AccountId": str(request.user_id),
        "Token": request.token,
        "TrInitiatorCode": "0",
        "PaymentScheduled": "1",
        "InvoiceId": request.label,
        "Description": request.description[:DESCRIPTION_LIMIT],
    }


def transaction_model(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    model = body.get("Model")
    return model if isinstance(model, dict) else None


def named_transaction(body: Mapping[str, Any]) -> str | None:
    """The TransactionId an answer names, if any (a 3-D Secure demand names one too)."""
    model = transaction_model(body)
    value = model.get("TransactionId") if model is not None else None
    return str(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def holds_money(body: Mapping[str, Any]) -> bool:
    """Whether a lookup found a transaction that took (or holds) the money: charging again would double it."""
    model = transaction_model(body)
    return bool(body["Success"]) and model is not None and model.get("Status") in (Status.COMPLETED,
                                                                                   Status.AUTHORIZED)


def charge_result(body: Mapping[str, Any], token: str, *, accept_test: bool) -> ChargeResult:
    """What a charge's (or a lookup's) answer means for the renewal; see the module's docstring."""
    model = transaction_model(body)
    if model is None:
        if body["Success"]:
            raise ProviderUnavailable("cloudpayments answered success without a transaction")
        return ChargeResult(ChargeStatus.DECLINED, reason=message(dict(body)), hard=True)
    operation_id = named_transaction(body)
    status = model.get("Status")
    if model.get("AcsUrl") or status == Status.AWAITING_AUTHENTICATION:
        return ChargeResult(ChargeStatus.DECLINED, operation_id, reason=SECURE_3D_REQUIRED, hard=True)
    if body["Success"] and status == Status.COMPLETED:
        return ChargeResult(ChargeStatus.SUCCEEDED, operation_id, event=_event(model, token, accept_test))
    if body["Success"] and status == Status.AUTHORIZED:
        return ChargeResult(ChargeStatus.PENDING, operation_id)
    code = model.get("ReasonCode")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return ChargeResult(ChargeStatus.DECLINED, operation_id, reason=_reason(model, code),
                        hard=code in HARD_DECLINE_CODES)


def model_fields(model: Mapping[str, Any]) -> dict[str, str]:
    """A transaction model of the API as the fields of a Pay notification (read by the same code): the
    values as form text, and the API's CreatedDateIso standing in for DateTime."""
    fields = text_fields(model)
    if not fields.get("DateTime"):
        fields["DateTime"] = fields.get("CreatedDateIso", "")
    return fields


def _event(model: Mapping[str, Any], token: str, accept_test: bool) -> VerifiedEvent:
    """The ledger's event, read from the model as from a Pay notification; the token charged stands in when
    the model leaves Token out."""
    fields = model_fields(model)
    if not fields.get("Token"):
        fields["Token"] = token
    try:
        tx = read_transaction(fields)
    except Malformed as err:
        raise ProviderUnavailable(f"cloudpayments answered an unreadable transaction: {err}") from err
    if tx.test and not accept_test:  # a Pay notification of it would be refused too
        raise ProviderRejected(f"cloudpayments transaction {tx.transaction_id} is a test payment; "
                               "CLOUDPAYMENTS_TEST_MODE is off")
    return transaction_event(tx, tx.label, EventKind.PAYMENT)


def _reason(model: Mapping[str, Any], code: int | None) -> str:
    """Short and safe to show: "InsufficientFunds (5051)"; a transaction cancelled after the fact by its status."""
    reason, status = model.get("Reason"), model.get("Status")
    if isinstance(status, str) and status not in ("", Status.DECLINED):
        return status[:40]
    text = reason.strip()[:100] if isinstance(reason, str) and reason.strip() else Status.DECLINED.value
    return f"{text} ({code})" if code else text
