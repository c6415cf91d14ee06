"""CloudPayments' wire format as its emulator writes and reads it, taken from the protocol reference
(../shared/providers/cloudpayments.md) alone and checked against its worked vectors (§9), never from
billing/providers/cloudpayments: an emulator that shares our code would agree with our bugs.

- Notifications: `application/x-www-form-urlencoded` (spaces as '+', §9.2) or JSON text with numbers for
  the numeric fields (§9.4), signed in `Content-HMAC` = base64(HMAC-SHA256(API secret, body bytes)), and
  in `X-Content-HMAC` the same over the URL-decoded text (the reference's unconfirmed reading, §3.3).
- The API: HTTP Basic (Public ID : API secret), bodies as form or JSON, answers {"Success", "Message", "Model"}.
- Field sets of Check/Pay/Fail/Confirm, Refund, Cancel and Recurrent in the order of §9.2 and §3.2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

from billing.money import Money

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
COMPLETED, AUTHORIZED, DECLINED, CANCELLED = "Completed", "Authorized", "Declined", "Cancelled"
AWAITING_AUTHENTICATION = "AwaitingAuthentication"
TEST_CARD = ("424242", "4242", "Visa", "12/27")  # first six, last four, type, expiry
INSUFFICIENT_FUNDS = (5051, "InsufficientFunds")
_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
# Fields CloudPayments writes as JSON numbers in the JSON format (§9.4 shows TransactionId and Amount).
_JSON_NUMBERS = frozenset({"TransactionId", "PaymentTransactionId", "Amount", "PaymentAmount", "TotalFee",
                           "ReasonCode", "Period", "SuccessfulTransactionsNumber", "FailedTransactionsNumber"})
_JSON_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class Kind(StrEnum):
    """The seven notifications, each sent to its own URL: {notify_base}/{kind}."""

    CHECK = "check"
    PAY = "pay"
    FAIL = "fail"
    CONFIRM = "confirm"
    REFUND = "refund"
    RECURRENT = "recurrent"
    CANCEL = "cancel"


# ---- signatures and auth --------------------------------------------------------------------------


def content_hmac(body: bytes, secret: str) -> str:
    """§3.3: base64 of the raw HMAC-SHA256 digest (not hex) of the body bytes as sent, keyed by the API secret."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def decoded_hmac(body: bytes, secret: str) -> str:
    """X-Content-HMAC as the reference reads it (unconfirmed): the same HMAC over the URL-decoded text
    (bytes that are not UTF-8, which only a test sends, are decoded with replacement characters)."""
    return content_hmac(unquote_plus(body.decode("utf-8", "replace")).encode("utf-8"), secret)


def notification_headers(body: bytes, secret: str, content_type: str = FORM) -> dict[str, str]:
    """What CloudPayments sends with a notification: its format, Content-HMAC and X-Content-HMAC."""
    decoded = decoded_hmac(body, secret) if content_type == FORM else content_hmac(body, secret)
    return {"Content-Type": f"{content_type}; charset=utf-8", "Content-HMAC": content_hmac(body, secret),
            "X-Content-HMAC": decoded}


def basic_auth(public_id: str, api_secret: str) -> str:
    """§4 and §9.1: the API's Authorization header."""
    return "Basic " + base64.b64encode(f"{public_id}:{api_secret}".encode()).decode("ascii")


# ---- amounts --------------------------------------------------------------------------------------


def decimal_text(minor: int) -> str:
    """Kopecks as CloudPayments writes an amount: 29900 → "299.00" (major units, dot, two decimals)."""
    whole, cents = divmod(minor, 100)
    return f"{whole}.{cents:02d}"


def minor_units(text: str) -> int | None:
    """An amount CloudPayments accepts ("299", "299.5", "299.00") in kopecks; None for anything else."""
    return int(Decimal(text) * 100) if _DECIMAL.fullmatch(text) else None


# ---- bodies ---------------------------------------------------------------------------------------


def form_body(fields: Mapping[str, str]) -> bytes:
    """The form CloudPayments posts: fields in order, '+' for spaces, everything else percent-escaped."""
    return urlencode(list(fields.items())).encode("ascii")


def json_body(fields: Mapping[str, str]) -> bytes:
    """The JSON format (§9.4): no spaces, numeric fields as number literals exactly as their text."""
    parts = []
    for name, value in fields.items():
        literal = value if name in _JSON_NUMBERS and _JSON_NUMBER.fullmatch(value) else json.dumps(
            value, ensure_ascii=False)
        parts.append(f"{json.dumps(name)}:{literal}")
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def notification_body(fields: Mapping[str, str], content_type: str = FORM) -> bytes:
    return json_body(fields) if content_type == JSON else form_body(fields)


def read_request(body: bytes, content_type: str | None) -> dict[str, str] | None:
    """An API request's fields, from a form or a JSON object; None when it is neither."""
    try:
        text = body.decode("utf-8")
        if "json" in (content_type or "").lower():
            parsed = json.loads(text, parse_float=Decimal)
            if not isinstance(parsed, dict):
                return None
            return {str(name): "" if value is None else str(value) for name, value in parsed.items()}
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
    except ValueError:
        return None


# ---- notification fields --------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    """DateTime as CloudPayments writes it: UTC, "YYYY-MM-DD HH:MM:SS"."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def transaction_fields(
    *, transaction_id: int | str, amount: Money, label: str, account_id: str,
    status: str = COMPLETED, test: bool = True, subscription_id: str = "", token: str | None = None,
    description: str = "", occurred_at: datetime | None = None, data: Mapping[str, Any] | None = None,
    pay: bool = True,
) -> dict[str, str]:
    """Check, Pay or Confirm of one transaction, in the order of §9.2; `pay` adds Pay's
    own fields (GatewayName, AuthCode, Token, TotalFee)."""
    first_six, last_four, card_type, expiry = TEST_CARD
    fields = {
        "TransactionId": str(transaction_id), "Amount": decimal_text(amount.minor), "Currency": amount.currency,
        "PaymentAmount": decimal_text(amount.minor), "PaymentCurrency": amount.currency,
        "DateTime": _when(occurred_at),
        "CardFirstSix": first_six, "CardLastFour": last_four, "CardType": card_type, "CardExpDate": expiry,
        "TestMode": "1" if test else "0", "Status": status, "OperationType": "Payment",
    }
    if pay:
        fields["GatewayName"] = "Test" if test else "Tinkoff"
    fields.update({"InvoiceId": label, "AccountId": account_id, "SubscriptionId": subscription_id,
                   "Name": "CARD HOLDER", "Email": "", "IpAddress": "203.0.113.7", "Description": description})
    if pay:
        fields["AuthCode"] = "A1B2C3"
        if token:
            fields["Token"] = token
    fields["Data"] = json.dumps(dict(data) if data is not None else {"label": label}, separators=(",", ":"),
                                default=str)
    if pay:
        fields["TotalFee"] = "0.00"
    return fields


def fail_fields(*, transaction_id: int | str, amount: Money, label: str, account_id: str,
                test: bool = True, reason: tuple[int, str] = INSUFFICIENT_FUNDS,
                subscription_id: str = "") -> dict[str, str]:
    """Fail: the transaction's fields with Status Declined, Reason and ReasonCode."""
    fields = transaction_fields(transaction_id=transaction_id, amount=amount, label=label,
                                account_id=account_id, status=DECLINED, test=test, subscription_id=subscription_id,
                                pay=False)
    fields.update({"Reason": reason[1], "ReasonCode": str(reason[0])})
    return fields


def refund_fields(*, refund_id: int | str, payment_id: int | str, amount: Money, label: str, account_id: str,
                  occurred_at: datetime | None = None) -> dict[str, str]:
    """Refund: its own TransactionId, the payment's PaymentTransactionId, the amount refunded now."""
    return {"TransactionId": str(refund_id), "PaymentTransactionId": str(payment_id),
            "Amount": decimal_text(amount.minor), "DateTime": _when(occurred_at), "OperationType": "Refund",
            "InvoiceId": label, "AccountId": account_id, "Email": "", "Data": json.dumps({"label": label})}


def cancel_fields(*, transaction_id: int | str, amount: Money, label: str, account_id: str,
                  occurred_at: datetime | None = None) -> dict[str, str]:
    return {"TransactionId": str(transaction_id), "Amount": decimal_text(amount.minor), "DateTime": _when(occurred_at),
            "InvoiceId": label, "AccountId": account_id, "Email": "", "Data": json.dumps({"label": label})}


def recurrent_fields(*, subscription_id: str, account_id: str, amount: Money, status: str,
                     interval: str, period: int, successes: int = 1, failures: int = 0, description: str = "",
                     start: datetime | None = None) -> dict[str, str]:
    return {"Id": subscription_id, "AccountId": account_id, "Description": description, "Email": "",
            "Amount": decimal_text(amount.minor), "Currency": amount.currency, "RequireConfirmation": "0",
            "StartDate": _when(start), "Interval": interval, "Period": str(period), "Status": status,
            "SuccessfulTransactionsNumber": str(successes), "FailedTransactionsNumber": str(failures)}
