"""YooMoney personal wallet: Quickpay form, HTTP notifications (sha1_hash), wallet API confirmation.

Everything open-ymds knows about YooMoney lives here. Notifications are form-encoded; the
`sha1_hash` covers nine values joined by '&' with the secret in eighth place. YooMoney announced
in 2026 that it may stop sending `sha1_hash`: an unsigned notification is trusted only after the
wallet API (`operation-details`) confirms the operation id, its amount and its label.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.errors import ProviderUnavailable
from billing.forms import RepeatedField, strict_form
from billing.money import Money
from billing.providers.base import (
    EventKind,
    HttpTransport,
    NotificationRejected,
    Outcome,
    PageForm,
    ProviderAnswer,
    ProviderHTTPError,
    RawNotification,
    RejectReason,
    VerifiedEvent,
)
from billing.signing import secrets_equal

log = logging.getLogger(__name__)

NAME = "yoomoney"
CURRENCY_CODE = "643"  # ISO 4217 numeric for RUB: the only currency a wallet receives
TEST_OPERATION_ID = "test-notification"
HASHED_BEFORE_SECRET = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro")
REQUIRED_FIELDS = (*HASHED_BEFORE_SECRET, "label")
NOTIFICATION_TYPES = frozenset({"p2p-incoming", "card-incoming"})
CARD_COMMISSION_PERCENT = 3  # 'AC' payments: the wallet is credited sum * (1 - 0.03)
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")


def sign(fields: Mapping[str, str], secret: str) -> str:
    """sha1_hash of a notification: the raw received strings, empty values kept, secret 8th, label last."""
    values = [fields[name] for name in HASHED_BEFORE_SECRET] + [secret, fields["label"]]
    return hashlib.sha1("&".join(values).encode("utf-8")).hexdigest()


def format_amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def parse_amount(text: str, field: str) -> Money:
    if not _AMOUNT.fullmatch(text):
        raise NotificationRejected(RejectReason.MALFORMED, f"{field} is not a decimal amount")
    return Money(int(Decimal(text) * 100), "RUB")



def card_net_amount(paid_minor: int) -> int:
    """What the wallet is credited for a card payment of `paid_minor` (commission rounded up)."""
    return paid_minor - -(-paid_minor * CARD_COMMISSION_PERCENT // 100)


def largest_card_payment_for(net_minor: int) -> int:
    """The most a card payer can have paid for the wallet to be credited `net_minor`.

    Used for unsigned notifications: the wallet API confirms only the credited amount, and the
    unhashed `withdraw_amount` may not claim more than that credit implies.
    """
    gross = net_minor * 100 // (100 - CARD_COMMISSION_PERCENT) + 2
    while gross > 0 and card_net_amount(gross) > net_minor:
        gross -= 1
    return gross


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a form-encoded body strictly: valid UTF-8, well-formed pairs, no repeated field."""
    try:
        return strict_form(body.decode("utf-8"))
    except RepeatedField as err:
        raise NotificationRejected(RejectReason.MALFORMED, str(err)) from err
    except ValueError as err:
        raise NotificationRejected(RejectReason.MALFORMED, "body is not a valid form") from err


def _flag(fields: Mapping[str, str], name: str) -> bool:
    value = fields.get(name, "false")
    if value not in ("true", "false"):
        raise NotificationRejected(RejectReason.MALFORMED, f"{name} must be 'true' or 'false'")
    return value == "true"


def build_notification(
    secret: str,
    *,
    operation_id: str,
    paid: Money,
    label: str,
    notification_type: str = "card-incoming",
    sender: str = "",
    occurred_at: datetime | None = None,
    codepro: bool = False,
    unaccepted: bool = False,
    test: bool = False,
    signed: bool = True,
) -> dict[str, str]:
    """A notification as YooMoney sends it, for the emulator, `ymds simulate` and tests."""
    net = card_net_amount(paid.minor) if notification_type == "card-incoming" else paid.minor
    when = (occurred_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {
        "notification_type": notification_type,
        "bill_id": "",
        "amount": format_amount(net),
        "datetime": when,
        "codepro": "true" if codepro else "false",
        "sender": sender,
        "operation_id": operation_id,
        "currency": CURRENCY_CODE,
        "label": label,
    }
    if test:
        fields["test_notification"] = "true"
    else:
        fields["withdraw_amount"] = format_amount(paid.minor)
        fields["unaccepted"] = "true" if unaccepted else "false"
    if signed:
        fields["sha1_hash"] = sign(fields, secret)
    return fields


@dataclass(frozen=True, slots=True)
class WalletClient:
    """The wallet API (operation-details), authorised by the owner's OAuth token."""

    transport: HttpTransport
    api_url: str
    token: str

    async def operation_details(self, operation_id: str) -> dict[str, Any] | None:
        """The operation as the wallet history has it, or None when the wallet does not know it."""
        url = f"{self.api_url.rstrip('/')}/api/operation-details"
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            status, body = await self.transport.post_form(url, {"operation_id": operation_id}, headers)
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"yoomoney operation-details: {err}") from err
        if status >= 500 or status in (401, 403):
            raise ProviderUnavailable(f"yoomoney operation-details answered HTTP {status}")
        if status != 200 or not isinstance(body, dict) or "error" in body:
            return None
        return body


class YooMoney:
    """The YooMoney provider, built from explicit credentials."""

    name = NAME

    def __init__(
        self,
        *,
        wallet: str,
        notification_secret: str,
        quickpay_url: str,
        wallet_client: WalletClient | None = None,
    ) -> None:
        self._wallet = wallet
        self._secret = notification_secret
        self._quickpay_url = quickpay_url
        self._client = wallet_client

    async def verify(self, raw: RawNotification) -> VerifiedEvent:
        """Prove the notification authentic, then read it. Raises NotificationRejected."""
        fields = parse_form(raw.body)
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise NotificationRejected(RejectReason.MALFORMED, f"missing fields: {', '.join(missing)}")
        given_hash = fields.get("sha1_hash")
        if given_hash is not None:
            if not secrets_equal(sign(fields, self._secret), given_hash):
                raise NotificationRejected(RejectReason.BAD_SIGNATURE, "sha1_hash does not match")
            event = self._read(fields)
        else:
            event = self._read(fields)
            if event.kind is not EventKind.TEST:
                await self._confirm_unsigned(event)
                credited = (event.net_amount or event.amount).minor
                ceiling = Money(min(event.amount.minor, largest_card_payment_for(credited)), event.amount.currency)
                event = replace(event, amount=ceiling)
        return event

    def _read(self, fields: Mapping[str, str]) -> VerifiedEvent:
        if fields["notification_type"] not in NOTIFICATION_TYPES:
            raise NotificationRejected(RejectReason.MALFORMED, "unknown notification_type")
        net = parse_amount(fields["amount"], "amount")
        paid = parse_amount(fields["withdraw_amount"], "withdraw_amount") if fields.get("withdraw_amount") else net
        test = _flag(fields, "test_notification") or fields["operation_id"] == TEST_OPERATION_ID
        codepro, unaccepted = _flag(fields, "codepro"), _flag(fields, "unaccepted")
        held = codepro or unaccepted
        try:
            occurred = datetime.fromisoformat(fields["datetime"])
        except ValueError as err:
            raise NotificationRejected(RejectReason.MALFORMED, "datetime is not RFC 3339") from err
        if occurred.tzinfo is None:
            raise NotificationRejected(RejectReason.MALFORMED, "datetime has no UTC offset")
        if not fields["operation_id"]:
            raise NotificationRejected(RejectReason.MALFORMED, "empty operation_id")
        kind = EventKind.TEST if test else EventKind.HELD if held else EventKind.PAYMENT
        currency = "RUB" if fields["currency"] == CURRENCY_CODE else fields["currency"] or "unknown"
        return VerifiedEvent(
            provider=NAME,
            operation_id=fields["operation_id"],
            label=fields["label"],
            amount=Money(paid.minor, currency),
            kind=kind,
            occurred_at=occurred.astimezone(UTC),
            net_amount=Money(net.minor, currency),
        )

    async def _confirm_unsigned(self, event: VerifiedEvent) -> None:
        if self._client is None:
            raise NotificationRejected(
                RejectReason.MISSING_SIGNATURE, "no sha1_hash, and no YOOMONEY_API_TOKEN to confirm the operation"
            )
        operation = await self._client.operation_details(event.operation_id)
        net = event.net_amount or event.amount
        confirmed = (
            operation is not None
            and operation.get("direction") == "in"
            and operation.get("status") == "success"
            and operation.get("label") == event.label
            and _api_amount(operation.get("amount")) == net.minor
        )
        if not confirmed:
            raise NotificationRejected(RejectReason.NOT_CONFIRMED, "the wallet API does not confirm this operation")

    def answer(self, outcome: Outcome) -> ProviderAnswer:
        """YooMoney reads only the status: 200 acknowledges; a 4xx marks what no retry can fix."""
        if outcome in (Outcome.UNKNOWN_LABEL,):
            return ProviderAnswer(404, "unknown label")
        if outcome in (Outcome.WRONG_AMOUNT, Outcome.WRONG_CURRENCY):
            return ProviderAnswer(400, outcome.value.replace("_", " "))
        return ProviderAnswer(200, "OK")

    def reject(self, err: NotificationRejected) -> ProviderAnswer:
        return ProviderAnswer(400, err.reason.value.replace("_", " "))

    def retry_later(self) -> ProviderAnswer:
        """Our own failure: a 5xx makes YooMoney deliver again (+10 min, +1 h)."""
        return ProviderAnswer(500, "temporary failure, retry")

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> PageForm | None:
        """The Quickpay form for an invoice with a RUB price; None when it has none."""
        rub = amounts.get("RUB")
        if rub is None:
            return None
        return PageForm(
            provider=NAME,
            action=self._quickpay_url,
            method="post",
            fields={
                "receiver": self._wallet,
                "quickpay-form": "button",
                "paymentType": "AC",
                "sum": format_amount(rub),
                "label": label,
                "targets": title[:150],
                "successURL": success_url,
            },
        )


def _api_amount(value: Any) -> int | None:
    """The wallet API gives amounts as JSON numbers or strings; read them exactly, never via float."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value) if not isinstance(value, float) else repr(value)
    if not _AMOUNT.fullmatch(text):
        return None
    return int(Decimal(text) * 100)
