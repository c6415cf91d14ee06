"""YooKassa's protocol: amounts, Idempotence-Keys, the sender allowlist, notification and Payment
parsing, and the REST client for API v3 (Basic auth with the shop id and secret key).

The API is spoken as plain REST through the shared HttpTransport, on the event loop, instead of the
official `yookassa` SDK: the SDK is synchronous (requests), configured through process-global class
attributes, has no socket timeout, and turns a connection error into AttributeError.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from billing import bounded_json
from billing.errors import ProviderUnavailable
from billing.money import Money, unsettled
from billing.networks import Network, address_in
from billing.providers.base import (
    EventKind,
    HttpTransport,
    NotificationRejected,
    ProviderHTTPError,
    ProviderRejected,
    RejectReason,
    VerifiedEvent,
)
from db.yookassa import YooKassaStatus

NAME = "yookassa"
CURRENCY = "RUB"
KEY_PREFIX = "open-ymds:yookassa"
DESCRIPTION_LIMIT = 128
PAYMENT_SUCCEEDED, PAYMENT_CANCELED = "payment.succeeded", "payment.canceled"
PAYMENT_WAITING, REFUND_SUCCEEDED = "payment.waiting_for_capture", "refund.succeeded"
HANDLED_EVENTS = frozenset({PAYMENT_SUCCEEDED, PAYMENT_CANCELED, PAYMENT_WAITING, REFUND_SUCCEEDED})
OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # object ids go into URL paths: nothing else may pass
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
LIST_LIMIT = 100  # the most one page of a list holds (docs: "Работа со списками объектов")

def authorization(shop_id: str, secret_key: str) -> str:
    """HTTP Basic with the shop id and the API secret key (TV1)."""
    return "Basic " + base64.b64encode(f"{shop_id}:{secret_key}".encode()).decode("ascii")


def idempotence_key(*parts: str) -> str:
    """A UUID5 of our ids: the same operation always gets the same key (≤ 64 characters, TV5)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join((KEY_PREFIX, *parts))))


def create_key(label: str, attempt: int) -> str:
    return idempotence_key("create", label) if attempt == 0 else idempotence_key("create", label, str(attempt))


def format_amount(minor: int) -> str:
    if minor < 0:
        raise ValueError("amounts are never negative")
    return f"{minor // 100}.{minor % 100:02d}"


def amount_json(money: Money) -> dict[str, str]:
    return {"value": format_amount(money.minor), "currency": money.currency}


def read_amount(value: Any) -> Money | None:
    """`{"value": "149.00", "currency": "RUB"}` → Money, exactly; None for anything else."""
    if not isinstance(value, dict):
        return None
    text, currency = value.get("value"), value.get("currency")
    if not (isinstance(text, str) and _AMOUNT.fullmatch(text) and isinstance(currency, str)
            and _CURRENCY.fullmatch(currency)):
        return None
    return Money(int(Decimal(text) * 100), currency)


def sender_allowed(remote: str, networks: Iterable[Network]) -> bool:
    """Whether the sender's address is in the list; IPv4-mapped IPv6 addresses count as their IPv4."""
    return address_in(remote, networks)


def payment_request(*, amount: Money, return_url: str, description: str, label: str,
                    save_method: bool) -> dict[str, Any]:
    """The body of POST /payments for a redirect payment captured at once (TV4)."""
    return {
        "amount": amount_json(amount),
        "capture": True,
        "confirmation": {"type": "redirect", "return_url": return_url},
        "description": description[:DESCRIPTION_LIMIT],
        "metadata": {"label": label},
        "save_payment_method": save_method,
    }


def build_notification(event: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "notification", "event": event, "object": dict(obj)}


def method_display(method: Any) -> str | None:
    """A saved method as a person reads it: "MasterCard •••• 4444"; never the full title of a wallet."""
    if not isinstance(method, dict):
        return None
    card = method.get("card")
    if isinstance(card, dict) and isinstance(card.get("last4"), str):
        return f"{card.get('card_type') or 'Card'} •••• {card['last4']}"
    kind = method.get("type")
    return kind.replace("_", " ") if isinstance(kind, str) else None


@dataclass(frozen=True, slots=True)
class Notice:
    """What a notification claims; only a hint until the API confirms it."""

    event: str
    object_id: str
    status: str | None
    amount: Money | None


def parse_notification(body: bytes) -> Notice:
    try:
        data = bounded_json.loads(body)
    except ValueError as err:  # bounded_json: malformed, invalid UTF-8, nested too deep, numbers out of bounds
        raise NotificationRejected(RejectReason.MALFORMED, "body is not JSON") from err
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("type") != "notification" or not isinstance(obj, dict):
        raise NotificationRejected(RejectReason.MALFORMED, "not a notification object")
    event, object_id = data.get("event"), obj.get("id")
    if not isinstance(event, str) or not isinstance(object_id, str) or not OBJECT_ID.fullmatch(object_id):
        raise NotificationRejected(RejectReason.MALFORMED, "event or object.id missing or malformed")
    status = obj.get("status")
    return Notice(event, object_id, status if isinstance(status, str) else None, read_amount(obj.get("amount")))


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def label_of(payment: Mapping[str, Any]) -> str:
    metadata = payment.get("metadata")
    label = metadata.get("label") if isinstance(metadata, dict) else None
    return label if isinstance(label, str) else ""


def payment_event(payment: Mapping[str, Any]) -> VerifiedEvent:
    """A fetched, succeeded Payment as the ledger records it; its saved method's id is the renewal token.
    A payment in another currency than RUB (one the shop made elsewhere) never pays an invoice's price in it."""
    amount = read_amount(payment.get("amount"))
    if amount is None:
        raise ProviderUnavailable("yookassa answered a payment without a readable amount")
    if amount.currency != CURRENCY:  # we create payments in roubles only: another currency is kept for review
        amount = Money(amount.minor, unsettled(amount.currency))
    method = payment.get("payment_method")
    saved = isinstance(method, dict) and method.get("saved") is True and isinstance(method.get("id"), str)
    return VerifiedEvent(
        provider=NAME,
        operation_id=str(payment["id"]),
        label=label_of(payment),
        amount=amount,
        kind=EventKind.PAYMENT,
        occurred_at=_moment(payment.get("captured_at")) or _moment(payment.get("created_at")),
        net_amount=read_amount(payment.get("income_amount")),
        payment_method=method_display(method) if saved else None,
        payment_token=str(method["id"]) if saved and isinstance(method, dict) else None,
    )


@dataclass(frozen=True, slots=True)
class ApiClient:
    """POST/GET against YOOKASSA_API_URL (base including /v3). 5xx, 202, 429 and network failures raise
    ProviderUnavailable (outcome unknown: retry with the same key); other 4xx raise ProviderRejected."""

    transport: HttpTransport
    api_url: str
    shop_id: str
    secret_key: str

    async def create_payment(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        return await self._post("/payments", body, key)

    async def get_payment(self, payment_id: str) -> dict[str, Any] | None:
        return await self._find(f"/payments/{quote(payment_id, safe='')}")

    async def get_refund(self, refund_id: str) -> dict[str, Any] | None:
        return await self._find(f"/refunds/{quote(refund_id, safe='')}")

    async def list_payments(self, *, created_from: datetime, created_before: datetime, status: str,
                            cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of GET /payments created in [created_from, created_before) with this status: its items
        and the cursor of the next page (None on the last)."""
        query = {"created_at.gte": api_time(created_from), "created_at.lt": api_time(created_before),
                 "status": status, "limit": str(LIST_LIMIT), **({"cursor": cursor} if cursor else {})}
        status_code, answer = await self._send("GET", "/payments?" + urlencode(query), None, None)
        return _page(status_code, answer)

    async def create_refund(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        return await self._post("/refunds", body, key)

    async def capture(self, payment_id: str, amount: Money) -> dict[str, Any]:
        path = f"/payments/{quote(payment_id, safe='')}/capture"
        return await self._post(path, {"amount": amount_json(amount)}, idempotence_key("capture", payment_id))

    async def cancel(self, payment_id: str) -> dict[str, Any]:
        path = f"/payments/{quote(payment_id, safe='')}/cancel"
        return await self._post(path, {}, idempotence_key("cancel", payment_id))

    async def _find(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when YooKassa says this shop has no such object (404)."""
        status, answer = await self._send("GET", path, None, None)
        return None if status == 404 else _object(f"GET {path.split('/')[1]}", status, answer)

    async def _post(self, path: str, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        return _object(f"POST {path.split('/')[1]}", *await self._send("POST", path, body, key))

    async def _send(self, method: str, path: str, body: Mapping[str, Any] | None,
                    key: str | None) -> tuple[int, Any]:
        headers = {"Authorization": authorization(self.shop_id, self.secret_key)}
        if key is not None:
            headers["Idempotence-Key"] = key
        try:
            return await self.transport.request(
                method, self.api_url.rstrip("/") + path, json=dict(body) if body is not None else None,
                headers=headers,
            )
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"yookassa {method} {path.partition('?')[0].split('/')[1]}: {err}") from err


def _object(what: str, status: int, answer: Any) -> dict[str, Any]:
    """The API object of a 200 answer; an error answer raised as what the caller should do about it."""
    if status == 200 and isinstance(answer, dict) and isinstance(answer.get("id"), str):
        return answer
    raise _failure(what, status, answer)


def _failure(what: str, status: int, answer: Any) -> Exception:
    if status >= 500 or status in (200, 202, 429):
        return ProviderUnavailable(f"yookassa {what} answered HTTP {status}; outcome unknown")
    error = answer if isinstance(answer, dict) else {}
    detail = " ".join(str(error[name])[:200] for name in ("code", "description", "parameter") if error.get(name))
    code = error.get("code")
    return ProviderRejected(f"HTTP {status} from yookassa {what}: {detail or 'no details'}", status=status,
                            code=code[:64] if isinstance(code, str) else "")


def _page(status: int, answer: Any) -> tuple[list[dict[str, Any]], str | None]:
    """A list answer's items and next cursor; any other answer raised as `_object` raises it."""
    if status == 200 and isinstance(answer, dict) and isinstance(answer.get("items"), list):
        cursor = answer.get("next_cursor")
        items = [item for item in answer["items"] if isinstance(item, dict) and isinstance(item.get("id"), str)]
        return items, cursor if isinstance(cursor, str) and cursor else None
    raise _failure("GET payments", status, answer)


def api_time(moment: datetime) -> str:
    """A time as the API writes it: ISO 8601 in UTC with milliseconds, 2026-03-01T10:14:03.551Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payment_status(payment: Mapping[str, Any]) -> YooKassaStatus:
    status = payment.get("status")
    if status not in ("pending", "waiting_for_capture", "succeeded", "canceled"):
        raise ProviderUnavailable(f"yookassa answered a payment in status {status!r}")
    return YooKassaStatus(status)


def confirmation_url(payment: Mapping[str, Any]) -> str | None:
    confirmation = payment.get("confirmation")
    url = confirmation.get("confirmation_url") if isinstance(confirmation, dict) else None
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def cancellation(obj: Mapping[str, Any]) -> dict[str, str | None]:
    details = obj.get("cancellation_details")
    details = details if isinstance(details, dict) else {}
    party, reason = details.get("party"), details.get("reason")
    return {"party": party if isinstance(party, str) else None, "reason": reason if isinstance(reason, str) else None}
