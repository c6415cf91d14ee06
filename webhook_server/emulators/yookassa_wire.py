"""The YooKassa emulator's own reading and writing of API v3, written from the reference
(../shared/providers/yookassa.md) and never imported from billing/providers/yookassa: an emulator that
shared our formatting would agree with our bugs.

Amounts are `{"value": "149.00", "currency": "RUB"}` with exactly two decimals (TV2); Basic auth is
base64 of "shopId:secretKey" (TV1); times are ISO-8601 UTC with milliseconds and a `Z`. The payments
list (`GET /payments`) filters on `created_at.{gte,gt,lte,lt}` and `status`, returns at most `limit`
(1..100, default 10) items, newest first, and a `next_cursor` while more remain.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_CANCELED = "payment.canceled"
PAYMENT_WAITING = "payment.waiting_for_capture"
REFUND_SUCCEEDED = "refund.succeeded"
LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT = 10, 100
CREATED_FILTERS: dict[str, Callable[[datetime, datetime], bool]] = {
    "created_at.gte": lambda created, bound: created >= bound,
    "created_at.gt": lambda created, bound: created > bound,
    "created_at.lte": lambda created, bound: created <= bound,
    "created_at.lt": lambda created, bound: created < bound,
}
PAYMENT_STATUSES = frozenset({"pending", "waiting_for_capture", "succeeded", "canceled"})
_VALUE = re.compile(r"(0|[1-9][0-9]{0,11})\.([0-9]{2})")


def basic_auth(shop_id: str, secret_key: str) -> str:
    """`Authorization` as YooKassa expects it (TV1)."""
    return "Basic " + base64.b64encode(f"{shop_id}:{secret_key}".encode()).decode("ascii")


def value_of(minor: int) -> str:
    """Kopecks → `amount.value` (TV2): 14900 → "149.00", 5 → "0.05"."""
    if minor < 0:
        raise ValueError("YooKassa amounts are never negative")
    return f"{minor // 100}.{minor % 100:02d}"


def amount(minor: int, currency: str) -> dict[str, str]:
    return {"value": value_of(minor), "currency": currency}


def minor_of(value: Any) -> int | None:
    """`amount.value` → kopecks (TV2); None unless it is a decimal string with exactly two decimals."""
    match = _VALUE.fullmatch(value) if isinstance(value, str) else None
    return int(match[1]) * 100 + int(match[2]) if match else None


def amount_minor(obj: Any) -> tuple[int, str] | None:
    """An `amount` object → (kopecks, currency); None when it is not one."""
    if not isinstance(obj, dict) or not isinstance(obj.get("currency"), str):
        return None
    minor = minor_of(obj.get("value"))
    return None if minor is None else (minor, obj["currency"])


def iso(moment: datetime) -> str:
    """2026-03-01T10:15:42.120Z, as YooKassa writes created_at and captured_at."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def notification(event: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The body YooKassa POSTs to the shop's notification URL (reference §3)."""
    return {"type": "notification", "event": event, "object": dict(obj)}


class ListRefused(ValueError):
    """A list query YooKassa would answer with 400 invalid_request; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    bounds: tuple[tuple[Callable[[datetime, datetime], bool], datetime], ...]
    status: str | None
    limit: int
    after: tuple[str, str] | None  # (created_at, id) of the last item already listed

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ListQuery:
        bounds = []
        for name, keep in CREATED_FILTERS.items():
            if name in query:
                bound = parse_iso(query[name])
                if bound is None:
                    raise ListRefused(name)
                bounds.append((keep, bound))
        status = query.get("status")
        if status is not None and status not in PAYMENT_STATUSES:
            raise ListRefused("status")
        limit_text = query.get("limit", str(LIST_DEFAULT_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= LIST_MAX_LIMIT:
            raise ListRefused("limit")
        return cls(tuple(bounds), status, int(limit_text), _read_cursor(query["cursor"]) if "cursor" in query else None)

    def keeps(self, obj: Mapping[str, Any]) -> bool:
        created = parse_iso(str(obj.get("created_at", "")))
        return created is not None and all(keep(created, bound) for keep, bound in self.bounds) and (
            self.status is None or obj.get("status") == self.status)


def list_page(objects: Iterable[Mapping[str, Any]], query: ListQuery) -> dict[str, Any]:
    """One page of the list, newest first; `next_cursor` only while more items remain."""
    ordered = sorted((obj for obj in objects if query.keeps(obj)), key=_position, reverse=True)
    if query.after is not None:
        ordered = [obj for obj in ordered if _position(obj) < query.after]
    page = ordered[:query.limit]
    answer: dict[str, Any] = {"type": "list", "items": [dict(obj) for obj in page]}
    if len(ordered) > query.limit:
        answer["next_cursor"] = _write_cursor(_position(page[-1]))
    return answer


def _position(obj: Mapping[str, Any]) -> tuple[str, str]:
    created = parse_iso(str(obj.get("created_at", "")))
    return (iso(created) if created else "", str(obj.get("id", "")))


def _write_cursor(position: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode("|".join(position).encode()).decode("ascii").rstrip("=")


def _read_cursor(cursor: str) -> tuple[str, str]:
    try:
        created, _, object_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("|")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ListRefused("cursor") from err
    if not object_id or parse_iso(created) is None:
        raise ListRefused("cursor")
    return created, object_id
