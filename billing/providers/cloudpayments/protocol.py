"""CloudPayments' wire formats: notification signatures, bodies, fields, answers, and the widget's options.

Pure functions over bytes and strings (no database, no network), used by the provider's notification
handlers, its API client and its renewals. The emulator writes CloudPayments' side with its own code
(webhook_server/emulators/cloudpayments_wire.py), so that it cannot agree with a mistake made here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

from billing import bounded_json
from billing.forms import RepeatedField, strict_form
from billing.money import Money, minor_units, unsettled
from billing.providers.base import EventKind, ProviderAnswer, VerifiedEvent
from billing.signing import secrets_equal

NAME = "cloudpayments"
CURRENCY = "RUB"
# The shop's currencies: what our widget is opened with (only RUB, see CloudPayments.widget_page) and what the
# shop settles in. Money in any other currency is never matched against an invoice's price in it.
SETTLES_IN = frozenset({CURRENCY})
WIDGET_URL = "https://widget.cloudpayments.ru/bundles/cloudpayments.js"
HMAC_HEADER = "Content-HMAC"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_TRANSACTION_ID = re.compile(r"[0-9]{1,19}")  # int64 as ASCII digits
_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_TEXT = 500  # longest Reason / Status we keep
MAX_JSON_NESTING = 8  # a notification is one object; its Data the widget's `data` (data.CloudPayments.recurrent)
WIDGET_LANGUAGES = {"ru": "ru-RU", "en": "en-US", "uz": "uz"}


class Kind(StrEnum):
    """The seven notification types, one URL each: /notify/cloudpayments/{kind}."""

    CHECK = "check"
    PAY = "pay"
    FAIL = "fail"
    CONFIRM = "confirm"
    REFUND = "refund"
    RECURRENT = "recurrent"
    CANCEL = "cancel"


class Code(IntEnum):
    """Our answer codes (cloudpayments.md 3.4); any non-zero code declines a Check."""

    OK = 0
    UNKNOWN_INVOICE = 10
    WRONG_ACCOUNT = 11
    WRONG_AMOUNT = 12
    REFUSED = 13
    EXPIRED = 20


class Status(StrEnum):
    COMPLETED = "Completed"  # one-stage: the money is taken
    AUTHORIZED = "Authorized"  # two-stage: the money is held until /payments/confirm
    DECLINED = "Declined"
    CANCELLED = "Cancelled"
    AWAITING_AUTHENTICATION = "AwaitingAuthentication"  # the bank asked for 3-D Secure


class Malformed(ValueError):
    """An authentic notification we cannot read: missing or malformed fields."""


# ---- signatures ---------------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """Content-HMAC: base64 of HMAC-SHA256 over the raw body bytes, keyed by the API secret (UTF-8)."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def authentic(headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Only Content-HMAC over the bytes as received counts (never a re-encoded or decoded body).

    A header with bytes that are not ASCII (aiohttp hands invalid UTF-8 over as lone surrogates, which
    cannot be encoded for the comparison) is no base64 signature: not authentic, like any other wrong one.
    X-Content-HMAC is never read (what it signs is unconfirmed), so nothing in it can matter."""
    given = header(headers, HMAC_HEADER)
    return given is not None and given.isascii() and secrets_equal(sign(body, secret), given.strip())


def basic_auth(public_id: str, api_secret: str) -> str:
    """The API's Authorization header: Basic base64("<Public ID>:<API secret>")."""
    return "Basic " + base64.b64encode(f"{public_id}:{api_secret}".encode()).decode("ascii")


# ---- bodies -------------------------------------------------------------------------------------


def parse_body(body: bytes, content_type: str | None) -> dict[str, str]:
    """A strict form (UTF-8, no repeated field), or a JSON object when the content type says JSON.

    JSON numbers keep their literal digits (amounts stay exact) and nested objects become JSON text,
    so every value is read the same way whichever format the cabinet is set to.
    """
    try:
        text = body.decode("utf-8")
        if "json" in (content_type or "").lower() or text.lstrip().startswith("{"):  # no form starts with '{'
            return _json_fields(text)
        return strict_form(text)
    except RepeatedField as err:
        raise Malformed(str(err)) from err
    except (ValueError, RecursionError) as err:
        raise Malformed("body is neither a valid form nor a JSON object") from err


def _json_fields(text: str) -> dict[str, str]:
    """A JSON body through the shared bounded reader: nesting past MAX_JSON_NESTING and numbers past its
    digit and exponent bounds never reach a conversion (JsonRefused is a ValueError, so Malformed)."""
    body = bounded_json.loads(text, max_depth=MAX_JSON_NESTING)
    if not isinstance(body, dict):
        raise Malformed("JSON body must be an object")
    return text_fields(body)


def text_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    """A JSON object's values as the text a form would carry ("1"/"0" for booleans, "" for null)."""
    return {name: _json_text(value) for name, value in obj.items()}


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bounded_json.OutOfBounds):
        return str(value)  # no field reader takes it for a number: the field is answered as malformed
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (str, int, Decimal)):
        return str(value)  # a Decimal keeps its literal digits: 299.00 stays "299.00"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# ---- fields -------------------------------------------------------------------------------------


def format_amount(minor: int) -> str:
    """Kopecks as CloudPayments' decimal: 29900 → "299.00"."""
    sign_ = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 100)
    return f"{sign_}{whole}.{frac:02d}"


def parse_amount(text: str, field: str = "Amount") -> int:
    """CloudPayments' decimal as integer kopecks, exactly: "299.00", "299.5", "299" → 29900, 29950, 29900."""
    if not _AMOUNT.fullmatch(text):
        raise Malformed(f"{field} is not a decimal amount")
    return int(Decimal(text) * 100)


def required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        raise Malformed(f"missing {name}")
    return value


def transaction_id(fields: Mapping[str, str], name: str = "TransactionId") -> str:
    value = required(fields, name)
    if not _TRANSACTION_ID.fullmatch(value):
        raise Malformed(f"{name} is not a transaction number")
    return str(int(value))


def money(fields: Mapping[str, str]) -> Money:
    """Amount and Currency in that currency's own minor unit, for a currency the shop settles in.

    The widget's currency and amount are set in the payer's browser, so a signed notification may name any
    currency: one the shop does not settle in is kept under an `unsettled:` code (in CloudPayments' hundredths),
    which no invoice is priced in, so it never pays an invoice's price in that currency (35000.00 UZS, or
    2.50 XTR read as 250 Stars)."""
    currency = fields.get("Currency") or CURRENCY
    if not _CURRENCY.fullmatch(currency):
        raise Malformed("Currency is not an ISO code")
    text_ = required(fields, "Amount")
    hundredths = parse_amount(text_)
    if currency not in SETTLES_IN:
        return Money(hundredths, unsettled(currency))
    minor = minor_units(Decimal(text_), currency)
    if minor is None:
        raise Malformed(f"Amount is finer than a {currency} minor unit")
    return Money(minor, currency)


def is_test_mode(fields: Mapping[str, str]) -> bool:
    """TestMode: "1"/"0" in forms, true/false or 1/0 in JSON; absent means live."""
    value = fields.get("TestMode", "0").strip().lower()
    if value not in ("0", "1", "true", "false", ""):
        raise Malformed("TestMode is not a bit")
    return value in ("1", "true")


def occurred_at(fields: Mapping[str, str]) -> datetime | None:
    """DateTime, documented as UTC ("YYYY-MM-DD HH:MM:SS"); None when absent or unreadable (it decides nothing)."""
    try:
        moment = datetime.fromisoformat(fields.get("DateTime", ""))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def card_mask(fields: Mapping[str, str]) -> str | None:
    """The card as a person reads it, e.g. "Visa •••• 4242"; None without the last four digits."""
    last_four = fields.get("CardLastFour", "")
    if not re.fullmatch(r"[0-9]{4}", last_four):
        return None
    brand = re.sub(r"[^A-Za-z0-9 ]", "", fields.get("CardType", ""))[:20].strip() or "Card"
    return f"{brand} •••• {last_four}"


def text(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    return value[:MAX_TEXT] if value else None


def reason_code(fields: Mapping[str, str]) -> int | None:
    value = fields.get("ReasonCode", "")
    return int(value) if re.fullmatch(r"-?[0-9]{1,9}", value) else None


@dataclass(frozen=True, slots=True)
class Transaction:
    """What Check, Pay, Fail, Confirm and Cancel say about one transaction (Token kept apart, never logged)."""

    transaction_id: str
    amount: Money
    label: str
    account_id: str
    subscription_id: str
    status: str
    test: bool
    occurred_at: datetime | None
    card: str | None
    token: str | None


def read_transaction(fields: Mapping[str, str]) -> Transaction:
    return Transaction(
        transaction_id=transaction_id(fields),
        amount=money(fields),
        label=fields.get("InvoiceId", ""),
        account_id=fields.get("AccountId", ""),
        subscription_id=fields.get("SubscriptionId", ""),
        status=fields.get("Status", ""),
        test=is_test_mode(fields),
        occurred_at=occurred_at(fields),
        card=card_mask(fields),
        token=fields.get("Token") or None,
    )


def transaction_event(tx: Transaction, label: str, kind: EventKind) -> VerifiedEvent:
    """A transaction as the ledger records it: the same from a Pay notification and from an API answer, so
    the two meet on one (cloudpayments, TransactionId) row.

    A payment of a subscription CloudPayments runs itself (SubscriptionId set) keeps no token: CloudPayments
    charges that card on its own schedule, and our renewals must never charge it a second time."""
    token = None if tx.subscription_id else tx.token
    return VerifiedEvent(provider=NAME, operation_id=tx.transaction_id, label=label, amount=tx.amount, kind=kind,
                         occurred_at=tx.occurred_at, payment_method=tx.card, payment_token=token)


# ---- answers ------------------------------------------------------------------------------------


def answer(code: Code, status: int = 200) -> ProviderAnswer:
    """Always {"code": N} as JSON; HTTP 200 unless we want CloudPayments to see a failure."""
    return ProviderAnswer(status, json.dumps({"code": int(code)}), "application/json")


# ---- the widget ---------------------------------------------------------------------------------


def recurrence(period_days: int) -> dict[str, Any]:
    """The widget's recurrent schedule for a plan: every `period_days` days, exactly the period we grant."""
    return {"interval": "Day", "period": period_days}


def widget_options(
    *, public_id: str, label: str, account_id: str, amount: Money, description: str,
    recurrent_days: int | None = None, receipt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The options of `cp.CloudPayments().pay(scheme, options, callbacks)`.

    `data.CloudPayments.recurrent` makes CloudPayments create a subscription that charges the same
    amount every period; its id comes back as SubscriptionId in Pay. `receipt` (CLOUDPAYMENTS_RECEIPTS, see
    receipts.py) is `data.CloudPayments.CustomerReceipt`, and the subscription's `customerReceipt`.
    """
    data: dict[str, Any] = {"label": label}
    cloudpayments: dict[str, Any] = {}
    if receipt is not None:
        cloudpayments["CustomerReceipt"] = receipt
    if recurrent_days is not None:
        cloudpayments["recurrent"] = recurrence(recurrent_days)
        if receipt is not None:
            cloudpayments["recurrent"]["customerReceipt"] = receipt
    if cloudpayments:
        data["CloudPayments"] = cloudpayments
    return {
        "publicId": public_id,
        "description": description[:200],
        "amount": Decimal(format_amount(amount.minor)),
        "currency": amount.currency,
        "invoiceId": label,
        "accountId": account_id,
        "data": data,
    }


def widget_language(language: str) -> str:
    return WIDGET_LANGUAGES.get(language, "ru-RU")


def script_json(value: Any) -> str:
    """JSON for a <script type="application/json"> element: Decimals as exact number literals, and
    '<', '>', '&' escaped so no text can close the element."""
    body = json.dumps(_literal_decimals(value), ensure_ascii=False, separators=(",", ":"))
    body = re.sub(r'"\\u0000decimal:([0-9.]+)"', r"\1", body)
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _literal_decimals(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"\u0000decimal:{value}"
    if isinstance(value, dict):
        return {key: _literal_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal_decimals(item) for item in value]
    if isinstance(value, str):
        return value.replace("\u0000", "")  # only our marker may hold NUL
    return value
