"""konsol.pro's formats: amounts, statuses, webhook authenticity and answers, API objects, and masking.

konsol.pro signs nothing [DOC]: a webhook only says "look at payment X". open-ymds accepts one when it
carries our own HMAC (header `X-Konsol-Signature` over the raw body, or the `token` query parameter over
`notify/konsol`, both keyed by KONSOL_WEBHOOK_SECRET), and even then trusts no field of it: the state
comes from the payment re-fetched with our API token. Body fields are hints for the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from billing import bounded_json
from billing.providers.base import NotificationRejected, ProviderAnswer, RawNotification, RejectReason
from billing.signing import secrets_equal

NAME = "konsol"
CURRENCY = "RUB"
WEBHOOK_IP = "84.201.153.160"  # where konsol.pro's webhooks come from [DOC]
MAX_WEBHOOK_BYTES = 64 * 1024
SIGNATURE_HEADER = "X-Konsol-Signature"
TOKEN_PARAMETER = "token"
TOKEN_MESSAGE = b"notify/konsol"
WEBHOOK_PATH = "/notify/konsol"
PURPOSE_TEMPLATE = "Выплата по заявке {label}"  # carries our label into konsol.pro, for lookups and by hand
ID_FIELDS = (("data", "id"), ("payment", "id"), ("object", "id"), ("payment_id",), ("id",))
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\+?[0-9](?:[ ()-]?[0-9]){9,22}(?![0-9A-Za-z])")
HINT_LIMIT = 128


class PayoutState(StrEnum):
    """What a konsol.pro payment status means for a payout (statuses observed, meanings inferred)."""

    PENDING = "pending"  # created: accepted, not yet paid
    MANUAL = "manual"  # manualpay: waits for a confirmation in the cabinet
    NEEDS_ACTION = "needs_action"  # nalog_unbound: the payee has not bound konsol.pro in «Мой налог»
    PAID = "paid"  # executed
    FAILED = "failed"
    CANCELLED = "cancelled"  # not observed; open-ymds's reading of a cancelled payout
    UNRECOGNISED = "unrecognised"


FINAL_STATES = frozenset({PayoutState.PAID, PayoutState.FAILED, PayoutState.CANCELLED})
_STATES = {
    "created": PayoutState.PENDING,
    "manualpay": PayoutState.MANUAL,
    "nalog_unbound": PayoutState.NEEDS_ACTION,
    "executed": PayoutState.PAID,
    "failed": PayoutState.FAILED,
    "cancelled": PayoutState.CANCELLED,
    "canceled": PayoutState.CANCELLED,
}
EVENT_FOR_STATUS = {"created": "payment.created", "executed": "payment.completed", "failed": "payment.failed",
                    "cancelled": "payment.cancelled"}


def payout_state(status: str) -> PayoutState:
    return _STATES.get(status.strip().lower(), PayoutState.UNRECOGNISED)


# ---- amounts: decimal strings in rubles, never floats -------------------------------------------

def format_amount(kopecks: int) -> str:
    """100000 → "1000.00"; 5 → "0.05"."""
    if kopecks < 0:
        raise ValueError("a payout amount is never negative")
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def parse_amount(value: Any) -> int:
    """"1000.00" (or 1000, or "1000.5") → 100000 kopecks; ValueError for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError("no amount")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"not a decimal amount: {text[:32]!r}")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation as err:
        raise ValueError("not a decimal amount") from err


# ---- masking: card numbers and phones never leave in full ---------------------------------------

def mask_card(number: str) -> str:
    """4111111111111111 → 411111******1111 (first six and last four, as stored)."""
    return f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"


def mask_phone(phone: str) -> str:
    """+79001234567 → +7******4567."""
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) < 6:
        return "***"
    return f"+{digits[0]}{'*' * (len(digits) - 5)}{digits[-4:]}"


def scrub(text: str, limit: int = 500) -> str:
    """Provider text fit for logs, errors and admins: runs of 12+ digits (cards) and phone-like runs
    masked, at most `limit` characters."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"[^0-9]", "", match.group(0))
        if len(digits) >= 12:
            return mask_card(digits)
        return mask_phone(digits)

    return _DIGIT_RUN.sub(mask, text)[:limit]


# ---- webhooks -----------------------------------------------------------------------------------

def sign_webhook(body: bytes, secret: str) -> str:
    """X-Konsol-Signature: lowercase hex HMAC-SHA256 of the raw body bytes, exactly as sent."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def url_token(secret: str) -> str:
    """The `token` query parameter of the webhook URL given to konsol.pro support."""
    return hmac.new(secret.encode(), TOKEN_MESSAGE, hashlib.sha256).hexdigest()


def webhook_url(public_base_url: str, secret: str | None) -> str:
    base = public_base_url.rstrip("/") + WEBHOOK_PATH
    return f"{base}?{TOKEN_PARAMETER}={url_token(secret)}" if secret else base


class WebhookTooLarge(NotificationRejected):
    """Over MAX_WEBHOOK_BYTES: answered 413."""


@dataclass(frozen=True, slots=True)
class WebhookHint:
    """What a webhook claims. Only `payment_id` is used, to re-fetch the payment; the rest is logged."""

    payment_id: str
    event: str
    status: str
    amount: str
    authenticated_by: str  # "signature", "token", or "none" when no KONSOL_WEBHOOK_SECRET is set


def authenticate(raw: RawNotification, secret: str | None, query_token: str | None) -> str:
    """Layers 1–2 over the raw bytes, before any parsing: size, then our HMAC (header or URL token).
    Returns how the request was authenticated; raises NotificationRejected."""
    if len(raw.body) > MAX_WEBHOOK_BYTES:
        raise WebhookTooLarge(RejectReason.MALFORMED, f"body over {MAX_WEBHOOK_BYTES} bytes")
    if not secret:
        return "none"
    given = _header(raw, SIGNATURE_HEADER)
    if given and given.isascii() and secrets_equal(sign_webhook(raw.body, secret), given.strip().lower()):
        return "signature"  # a hex digest is ASCII; other bytes (even invalid UTF-8) are a bad signature
    if query_token and query_token.isascii() and secrets_equal(url_token(secret), query_token.strip().lower()):
        return "token"
    reason = RejectReason.BAD_SIGNATURE if given or query_token else RejectReason.MISSING_SIGNATURE
    raise NotificationRejected(reason, "no valid X-Konsol-Signature or token")


def read_webhook(raw: RawNotification, *, secret: str | None, query_token: str | None) -> WebhookHint:
    """Authenticate, then read the hint. The payment id is the first of data.id, payment.id, object.id,
    payment_id, id (the schema is not public, so the reader is tolerant)."""
    authenticated_by = authenticate(raw, secret, query_token)
    content_type = _header(raw, "Content-Type").split(";", 1)[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise NotificationRejected(RejectReason.MALFORMED, "not a JSON body")
    try:
        body = bounded_json.loads(raw.body)
    except ValueError as err:  # not UTF-8, not JSON, or nested too deep
        raise NotificationRejected(RejectReason.MALFORMED, "body is not JSON") from err
    if not isinstance(body, dict):
        raise NotificationRejected(RejectReason.MALFORMED, "body is not a JSON object")
    payment_id = _first_id(body)
    if not payment_id:
        raise NotificationRejected(RejectReason.MALFORMED, "no payment id")
    data = body.get("data")
    if not isinstance(data, dict):
        data = {}
    return WebhookHint(
        payment_id=payment_id,
        event=_hint(body.get("event")),
        status=_hint(data.get("status", body.get("status"))),
        amount=_hint(data.get("amount", body.get("amount"))),
        authenticated_by=authenticated_by,
    )


def _first_id(body: dict[str, Any]) -> str | None:
    for path in ID_FIELDS:
        node: Any = body
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, bool) or node is None:
            continue
        if isinstance(node, (str, int)) and str(node).strip() and len(str(node)) <= HINT_LIMIT:
            return str(node).strip()
    return None


def _hint(value: Any) -> str:
    return scrub(str(value), HINT_LIMIT) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def _header(raw: RawNotification, name: str) -> str:
    lowered = name.lower()
    return next((value for key, value in raw.headers.items() if key.lower() == lowered), "")


def webhook_body(payment_id: str, amount_kopecks: int, status: str, timestamp: str) -> bytes:
    """The body konsol.pro's webhooks are described with [SEED]; the emulator and `ymds simulate` send it."""
    body = {"event": EVENT_FOR_STATUS.get(status, "payment.updated"),
            "data": {"id": payment_id, "amount": format_amount(amount_kopecks), "status": status},
            "timestamp": timestamp}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookAnswer(StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    UNKNOWN_PAYMENT = "unknown_payment"
    AMOUNT_MISMATCH = "amount_mismatch"
    RETRY = "retry"
    DISABLED = "disabled"


_ANSWERS: dict[WebhookAnswer, tuple[int, dict[str, Any]]] = {
    WebhookAnswer.OK: (200, {"ok": True}),
    WebhookAnswer.DUPLICATE: (200, {"ok": True, "duplicate": True}),
    WebhookAnswer.UNAUTHORIZED: (401, {"ok": False, "error": "unauthorized"}),
    WebhookAnswer.BAD_REQUEST: (400, {"ok": False, "error": "bad_request"}),
    WebhookAnswer.TOO_LARGE: (413, {"ok": False, "error": "bad_request"}),
    WebhookAnswer.UNKNOWN_PAYMENT: (404, {"ok": False, "error": "unknown_payment"}),
    WebhookAnswer.AMOUNT_MISMATCH: (409, {"ok": False, "error": "amount_mismatch"}),
    WebhookAnswer.RETRY: (503, {"ok": False, "error": "retry"}),
    WebhookAnswer.DISABLED: (404, {"ok": False, "error": "disabled"}),
}


def webhook_answer(answer: WebhookAnswer) -> ProviderAnswer:
    """konsol.pro reads only 2xx or not [DOC]; the body is for people and logs."""
    status, body = _ANSWERS[answer]
    return ProviderAnswer(status, json.dumps(body), "application/json")


def answer_for(err: NotificationRejected) -> WebhookAnswer:
    if isinstance(err, WebhookTooLarge):
        return WebhookAnswer.TOO_LARGE
    if err.reason in (RejectReason.BAD_SIGNATURE, RejectReason.MISSING_SIGNATURE):
        return WebhookAnswer.UNAUTHORIZED
    return WebhookAnswer.BAD_REQUEST


# ---- API objects --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KonsolPayment:
    id: str
    status: str
    amount: int | None  # kopecks; None when the answer had no readable amount
    purpose: str = ""
    titles: tuple[str, ...] = ()  # services_list titles
    error_message: str = ""  # scrubbed

    @property
    def state(self) -> PayoutState:
        return payout_state(self.status)

    def mentions(self, label: str) -> bool:
        return label in self.purpose or any(label in title for title in self.titles)


_PURPOSE = re.compile(re.escape(PURPOSE_TEMPLATE).replace(re.escape("{label}"), r"([A-Za-z0-9_-]{1,64})"))


def claim_label(payment: KonsolPayment) -> str | None:
    """The claim label our purpose text (or service title) carries, as konsol.pro returned the payment."""
    for text in (payment.purpose, *payment.titles):
        found = _PURPOSE.search(text)
        if found:
            return found.group(1)
    return None


def parse_payment(body: Any) -> KonsolPayment | None:
    """A payment object as the API returns it; None when it has no id or status."""
    if not isinstance(body, dict):
        return None
    payment_id, status = body.get("id"), body.get("status")
    if isinstance(payment_id, bool) or not isinstance(payment_id, (str, int)) or not isinstance(status, str):
        return None
    try:
        amount: int | None = parse_amount(body.get("amount"))
    except ValueError:
        amount = None
    services = body.get("services_list")
    if not isinstance(services, list):
        services = []
    titles = tuple(str(item.get("title")) for item in services if isinstance(item, dict) and item.get("title"))
    return KonsolPayment(id=str(payment_id), status=status, amount=amount, purpose=str(body.get("purpose") or ""),
                         titles=titles, error_message=scrub(str(body.get("error_message") or "")))


@dataclass(frozen=True, slots=True)
class Bank:
    """An SBP participant: `id` is its 12-digit SBP member id (fps_bank_member_id)."""

    id: str
    name: str


BANK_ID = re.compile(r"[0-9]{10,15}")
# Well-known SBP member ids, as public konsol.pro integrations fall back to them when the directory is
# unavailable (unconfirmed against an official list).
FALLBACK_BANKS = (
    Bank("100000000111", "Сбербанк"), Bank("100000000004", "Т-Банк"), Bank("100000000005", "ВТБ"),
    Bank("100000000008", "Альфа-Банк"), Bank("100000000007", "Райффайзенбанк"), Bank("100000000001", "Газпромбанк"),
    Bank("100000000012", "Росбанк"), Bank("100000000013", "Совкомбанк"), Bank("100000000010", "ПСБ"),
    Bank("100000000020", "Россельхозбанк"), Bank("100000000015", "Открытие"),
)


def parse_banks(body: Any) -> list[Bank]:
    """The SBP directory: a list of {id, name, bic} [OBS]; other key names seen in the wild are read too."""
    items = body if isinstance(body, list) else _list_in(body, ("fps_bank_members", "fps_banks", "banks", "data",
                                                                 "items", "results"))
    banks: dict[str, Bank] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        bank_id = next((str(item[key]).strip() for key in ("id", "fps_bank_member_id", "member_id", "bank_member_id")
                        if isinstance(item.get(key), (str, int)) and BANK_ID.fullmatch(str(item[key]).strip())), None)
        name = next((str(item[key]).strip() for key in ("name", "title", "bank_name", "bankName")
                     if isinstance(item.get(key), str) and item[key].strip()), None)
        if bank_id and bank_id not in banks:
            banks[bank_id] = Bank(bank_id, (name or bank_id)[:64])
    return list(banks.values())


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    balance: int  # kopecks
    currency: str


def parse_balance(body: Any) -> list[Account]:
    """`GET company_accounts`: its shape is not documented; a list of accounts, or an object holding one
    or a list, each with a balance under one of the usual names."""
    items = body if isinstance(body, list) else _list_in(body, ("accounts", "company_accounts", "items", "data",
                                                                 "results")) or ([body] if isinstance(body, dict)
                                                                                 else [])
    accounts = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for key in ("balance", "available_balance", "available", "amount"):
            try:
                balance = parse_amount(item.get(key))
            except ValueError:
                continue
            currency = item.get("currency")
            if not isinstance(currency, str):
                currency = CURRENCY
            accounts.append(Account(str(item.get("id", index)), balance, currency))
            break
    return accounts


def _list_in(body: Any, keys: tuple[str, ...]) -> list[Any]:
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


def payment_request(*, label: str, amount: int, first_name: str, last_name: str, card_number: str | None = None,
                    phone: str | None = None, bank_id: str | None = None) -> dict[str, Any]:
    """`POST /api/v1/payments` for a card or an SBP payout [OBS]. The payee goes inline as `contractor`
    (names as the payee gave them), the purpose and the service title carry our label."""
    text = PURPOSE_TEMPLATE.format(label=label)
    body: dict[str, Any] = {
        "amount": format_amount(amount),
        "purpose": text,
        "services_list": [{"title": text, "amount": format_amount(amount)}],
        "contractor": {"first_name": first_name[:64] or "-", "last_name": last_name[:64] or "-"},
    }
    if card_number is not None:
        body["bank_details_kind"] = "card"
        body["bank_details"] = {"card_number": card_number}
    elif phone is not None and bank_id is not None:
        body["bank_details_kind"] = "fps"
        body["bank_details"] = {"fps_mobile_phone": phone, "fps_bank_member_id": bank_id}
    else:
        raise ValueError("a payout needs a card number, or a phone and a bank")
    return body
