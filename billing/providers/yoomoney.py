"""YooMoney personal wallet: Quickpay form, HTTP notifications, wallet API confirmation and reconciliation.

Everything open-ymds knows about YooMoney lives here. Notifications are form-encoded. Since 18 May 2026
YooMoney sends them without `sha1_hash` (../shared/providers/yoomoney.md): an unsigned notification is
kept as `unverified` and pays only once the wallet API (`operation-details`) confirms the operation; the
amounts that pay are then the API's. A signed one (the legacy hash: nine values joined by '&', the secret
in eighth place) is still verified; its `withdraw_amount` is not covered by the hash, so it is bounded by
the hashed `amount` and the documented commission. Nor is its `unaccepted`: a signed notification's word
that the money is available never releases a hold, and is checked with `operation-details` whenever the wallet
API can be asked (the wallet's in_progress keeps it held). `reconcile` finds in `operation-history` what the
notifications missed and settles what is still unverified or held. The wallet takes roubles only: a `currency`
other than 643 is kept for review (wrong_currency), never matched against an invoice's price in another currency.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pymongo.errors import PyMongoError

from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.forms import RepeatedField, strict_form
from billing.invoices import find_invoice
from billing.ledger import Ledger
from billing.money import Money, unsettled
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
from billing.sweep import ReconcileReport
from db import Operation, OperationStatus

log = logging.getLogger(__name__)

NAME = "yoomoney"
CURRENCY = "RUB"
CURRENCY_CODE = "643"  # ISO 4217 numeric for RUB: the only currency a wallet receives
TEST_OPERATION_ID = "test-notification"
HASHED_BEFORE_SECRET = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro")
REQUIRED_FIELDS = (*HASHED_BEFORE_SECRET, "label")
NOTIFICATION_TYPES = frozenset({"p2p-incoming", "card-incoming"})
# The commission YooMoney takes from the recipient (reference section 2; these have changed over the years):
CARD_COMMISSION_PERCENT = 3  # 'AC': credited sum * (1 - a), a = 0.03
WALLET_COMMISSION_PERCENT = 1  # 'PC': credited sum - sum * a / (1 + a), a = 0.01
UNKNOWN_OPERATION = "illegal_param_operation_id"  # operation-details' answer for an id the wallet does not have
HISTORY_PAGE_RECORDS = 100  # operation-history's maximum page
MAX_HISTORY_PAGES = 1000  # a guard against a cursor that never ends
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
    return Money(int(Decimal(text) * 100), CURRENCY)


def card_net_amount(paid_minor: int) -> int:
    """What the wallet is credited for a card payment of `paid_minor` (commission rounded up)."""
    return paid_minor - -(-paid_minor * CARD_COMMISSION_PERCENT // 100)


def wallet_net_amount(paid_minor: int) -> int:
    """What the wallet is credited for a wallet payment: sum - sum·a/(1+a), the commission rounded up
    (the reference's example 1000.00 → 990.09 implies it)."""
    return paid_minor - -(-paid_minor * WALLET_COMMISSION_PERCENT // (100 + WALLET_COMMISSION_PERCENT))


def largest_payment_for(net_minor: int) -> int:
    """The most a payer can have paid, by card or from a wallet, for the wallet to be credited `net_minor`.

    The credited `amount` is what the hash (or the wallet API) vouches for; the payer's `withdraw_amount`
    is vouched for by nobody, so it may not claim more than this. Rounding the commission up gives the
    largest payment any rounding could explain: a payer who paid the price is never judged short.
    """
    return max(_largest_paid(net_minor, card_net_amount, 100 - CARD_COMMISSION_PERCENT, 100),
               _largest_paid(net_minor, wallet_net_amount, 100, 100 + WALLET_COMMISSION_PERCENT))


def _largest_paid(net_minor: int, credit: Callable[[int], int], numerator: int, denominator: int) -> int:
    """The largest `paid` with credit(paid) <= net_minor; credit is non-decreasing, about paid·num/den."""
    paid = net_minor * denominator // numerator
    while credit(paid + 1) <= net_minor:
        paid += 1
    while paid > 0 and credit(paid) > net_minor:
        paid -= 1
    return paid


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
    """A notification as YooMoney sends it, for `ymds simulate`, the bench and tests (signed by default)."""
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
    """The wallet API (operation-details, operation-history), authorised by the owner's OAuth token."""

    transport: HttpTransport
    api_url: str
    token: str

    async def operation_details(self, operation_id: str) -> dict[str, Any] | None:
        """The operation as the wallet history has it, or None when the wallet says it has no such operation.

        Only that answer (`illegal_param_operation_id`) dismisses a notification; any other refusal (a wrong
        YOOMONEY_API_URL answering 404, an error code we do not know) is ProviderUnavailable, so that a real
        payment is kept, not dismissed."""
        status, body = await self._call("operation-details", {"operation_id": operation_id})
        error = body.get("error") if isinstance(body, dict) else "not a JSON object"
        if status == 200 and error == UNKNOWN_OPERATION:
            return None
        if status != 200 or error is not None or not isinstance(body, dict):
            raise ProviderUnavailable(f"yoomoney operation-details answered HTTP {status} {error or ''}".rstrip())
        return body

    async def incoming_pages(self, start: datetime, end: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """The incoming operations in [start, end), a page at a time (newest first, as the API gives them)."""
        form = {"type": "deposition", "from": _rfc3339(start), "till": _rfc3339(end),
                "records": str(HISTORY_PAGE_RECORDS)}
        for _ in range(MAX_HISTORY_PAGES):
            status, body = await self._call("operation-history", form)
            if status != 200 or not isinstance(body, dict) or "error" in body:
                error = body.get("error", "") if isinstance(body, dict) else ""
                raise ProviderUnavailable(f"yoomoney operation-history refused: HTTP {status} {error}".rstrip())
            operations = body.get("operations")
            if not isinstance(operations, list):
                raise ProviderUnavailable("yoomoney operation-history: no list of operations")
            yield [op for op in operations if isinstance(op, dict) and op.get("direction") == "in"]
            cursor = body.get("next_record")
            if cursor is None:
                return
            if str(cursor) == form.get("start_record"):
                raise ProviderUnavailable("yoomoney operation-history repeats its next_record")
            form = {**form, "start_record": str(cursor)}
        raise ProviderUnavailable(f"yoomoney operation-history: more than {MAX_HISTORY_PAGES} pages")

    async def _call(self, method: str, form: Mapping[str, str]) -> tuple[int, Any]:
        url = f"{self.api_url.rstrip('/')}/api/{method}"
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            status, body = await self.transport.post_form(url, form, headers)
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"yoomoney {method}: {err}") from err
        if status >= 500 or status in (401, 403):  # 401/403: the token is revoked or lacks a scope
            raise ProviderUnavailable(f"yoomoney {method} answered HTTP {status}")
        return status, body


@dataclass(frozen=True, slots=True)
class WalletCheck:
    """What the wallet API says about one operation.

    `event` is built from the API's own record (its label, its credited amount), never from the
    notification: PAYMENT when credited, HELD while in_progress. Without an event, `refused` tells a
    transfer the wallet sent back from one the wallet does not know (or that is not an incoming payment).
    """

    event: VerifiedEvent | None
    refused: bool = False
    reason: str = ""


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
        """Read a notification; prove it authentic when it carries a sha1_hash. Raises NotificationRejected.

        Unsigned (no sha1_hash, or an empty one): an UNVERIFIED event with the notified amounts, to be kept
        and confirmed through the wallet API (confirm_operation). Signed: a PAYMENT or HELD event whose
        payer amount is bounded by what the hashed credit can come from.
        """
        fields = parse_form(raw.body)
        missing = [name for name in REQUIRED_FIELDS if name not in fields]
        if missing:
            raise NotificationRejected(RejectReason.MALFORMED, f"missing fields: {', '.join(missing)}")
        given_hash = fields.get("sha1_hash", "")
        if not given_hash:
            event = self._read(fields)
            return event if event.kind is EventKind.TEST else replace(event, kind=EventKind.UNVERIFIED)
        if not secrets_equal(sign(fields, self._secret), given_hash):
            raise NotificationRejected(RejectReason.BAD_SIGNATURE, "sha1_hash does not match")
        event = self._read(fields)
        event = _bounded(event, event.amount.minor)
        if event.kind is not EventKind.PAYMENT or event.amount.currency != CURRENCY:
            return event  # held, a test, or (the hash vouches for `currency`) roubles it is not: kept for review
        return await self._available(event)

    async def _available(self, event: VerifiedEvent) -> VerifiedEvent:
        """A signed PAYMENT rests on `unaccepted=false`, which the hash does not cover: anyone holding a signed
        `unaccepted=true` notification can resend it saying false. So the wallet API decides when it can be
        asked: its `success` record pays, `in_progress` (or `refused`, reversed by the sweep) stays held, and
        when it cannot be asked the money is held until the sweep asks. Without a wallet API (no token), or for
        an operation it does not know, the notification's word pays a fresh operation but never releases one
        held here: a release comes only from the wallet API (here or in `reconcile`)."""
        held = replace(event, kind=EventKind.HELD)
        if self._client is None:
            return held if await _held_here(event.operation_id) else event
        try:
            check = await self.confirm_operation(event)
        except ProviderUnavailable as err:
            log.warning("%s:%s held until the wallet API confirms it is credited: %s", NAME, event.operation_id, err)
            return held
        if check.event is not None:
            return check.event
        if check.refused or await _held_here(event.operation_id):
            return held
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
        currency = CURRENCY if fields["currency"] == CURRENCY_CODE else unsettled(fields["currency"])
        return VerifiedEvent(
            provider=NAME,
            operation_id=fields["operation_id"],
            label=fields["label"],
            amount=Money(paid.minor, currency),
            kind=kind,
            occurred_at=occurred.astimezone(UTC),
            net_amount=Money(net.minor, currency),
        )

    async def confirm_operation(self, event: VerifiedEvent) -> WalletCheck:
        """Ask the wallet API about an unverified (or held) operation. Raises ProviderUnavailable when it cannot
        be asked: no YOOMONEY_API_TOKEN, the API down, the token refused."""
        operation = await self._wallet_api().operation_details(event.operation_id)
        return judge(event.operation_id, operation, ceiling=event.amount.minor)

    @property
    def reconcilable(self) -> bool:
        """Whether the sweep can ask the wallet API (billing/sweep.py skips the provider otherwise)."""
        return self._client is not None

    async def reconcile(self, start: datetime, end: datetime, *, ledger: Ledger, now: datetime) -> ReconcileReport:
        """Record every payment of our invoices that operation-history shows in [start, end), then settle
        what the ledger still holds as unverified or held through operation-details.

        A payment found here is recorded under the wallet's own operation_id, the one its notification
        carries, so a notification that arrives later is a duplicate.
        """
        client = self._wallet_api()
        report = ReconcileReport(provider=NAME)
        seen: set[str] = set()
        async for page in client.incoming_pages(start, end):
            report.asked += 1
            for operation in page:
                operation_id, label = str(operation.get("operation_id", "")), operation.get("label")
                if not operation_id or not isinstance(label, str) or not label or await find_invoice(label) is None:
                    continue  # a transfer without one of our labels is never matched by amount (reference 8.5)
                seen.add(operation_id)
                await self._settle(report, ledger, operation_id, operation, ceiling=None)
        for row in [*await ledger.unverified(NAME), *await ledger.held(NAME)]:
            if row.operation_id in seen:
                continue
            report.asked += 1
            details = await client.operation_details(row.operation_id)
            await self._settle(report, ledger, row.operation_id, details, ceiling=row.amount, row=row)
        return report

    async def _settle(self, report: ReconcileReport, ledger: Ledger, operation_id: str,
                      record: Mapping[str, Any] | None, *, ceiling: int | None, row: Operation | None = None) -> None:
        """Act on what the wallet says about one operation: record it, reverse a refused hold, or dismiss an
        unverified notification the wallet does not confirm."""
        try:
            check = judge(operation_id, record, ceiling=ceiling)
        except ProviderUnavailable as err:  # one record we cannot read: keep it as it is, go on with the rest
            report.lines.append(f"{NAME}:{operation_id} left as it is: {err}")
            return
        row = row or await _row(operation_id)
        if check.event is not None:
            if row is not None and row.status is OperationStatus.HELD and check.event.kind is EventKind.HELD:
                report.lines.append(f"{NAME}:{operation_id} still in progress in the wallet")
                return
            outcome = await ledger.record(check.event)
            report.add(outcome, f"{NAME}:{operation_id} {check.event.label} {check.event.amount}")
        elif row is not None and row.status is OperationStatus.HELD and check.refused:
            await ledger.reverse(NAME, operation_id, "YooMoney: the transfer was refused and returned to the payer")
            report.lines.append(f"{NAME}:{operation_id} refused by the wallet: reversal queued")
        elif row is not None and row.status is OperationStatus.UNVERIFIED:
            await ledger.dismiss(NAME, operation_id, check.reason)
            report.lines.append(f"{NAME}:{operation_id} dismissed: {check.reason}")
        elif row is not None and row.status in (OperationStatus.RECORDED, OperationStatus.APPLIED):
            log.warning("%s:%s is %s here but the wallet API says: %s; check it in the wallet", NAME, operation_id,
                        row.status.value, check.reason)

    def _wallet_api(self) -> WalletClient:
        if self._client is None:
            raise ProviderUnavailable("YOOMONEY_API_TOKEN is unset: the wallet API cannot be asked")
        return self._client

    def answer(self, outcome: Outcome) -> ProviderAnswer:
        """YooMoney reads only the status: whatever we recorded (kept for review included) gets 200, so that it
        stops delivering; a redelivery could not change our verdict."""
        return ProviderAnswer(200, "OK")

    def reject(self, err: NotificationRejected) -> ProviderAnswer:
        """A bad sha1_hash or a malformed body: recorded nowhere, and no redelivery can fix it."""
        return ProviderAnswer(400, err.reason.value.replace("_", " "))

    def retry_later(self) -> ProviderAnswer:
        """Our own failure: a 5xx makes YooMoney deliver again (+10 min, +1 h)."""
        return ProviderAnswer(500, "temporary failure, retry")

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> PageForm | None:
        """The Quickpay form for an invoice with a RUB price; None when it has none."""
        rub = amounts.get(CURRENCY)
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


def judge(operation_id: str, operation: Mapping[str, Any] | None, *, ceiling: int | None) -> WalletCheck:
    """The wallet API's record of `operation_id` as an event. The payer amount that pays is the largest the
    API's credited amount can come from, never more than `ceiling` (the notified withdraw_amount).
    Raises ProviderUnavailable for a record we cannot read (kept as it is, for a later look)."""
    if operation is None or str(operation.get("operation_id")) != operation_id:
        return WalletCheck(None, reason="the wallet has no such operation")
    if operation.get("direction") != "in":
        return WalletCheck(None, reason="not an incoming operation")
    status = operation.get("status")
    if status == "refused":
        return WalletCheck(None, refused=True, reason="refused by the wallet")
    net = _api_amount(operation.get("amount"))
    if status not in ("success", "in_progress") or net is None:
        raise ProviderUnavailable(f"yoomoney operation {operation_id}: unreadable status or amount")
    label = operation.get("label")
    event = VerifiedEvent(
        provider=NAME,
        operation_id=operation_id,
        label=label if isinstance(label, str) else "",
        amount=Money(net, CURRENCY),
        kind=EventKind.PAYMENT if status == "success" else EventKind.HELD,
        net_amount=Money(net, CURRENCY),
    )
    return WalletCheck(_bounded(event, ceiling))


def _bounded(event: VerifiedEvent, ceiling: int | None) -> VerifiedEvent:
    """The payer amount no larger than what the credited amount can come from (nor than `ceiling`)."""
    if event.kind is EventKind.TEST or event.net_amount is None:
        return event
    largest = largest_payment_for(event.net_amount.minor)
    paid = largest if ceiling is None else min(ceiling, largest)
    return replace(event, amount=Money(paid, event.amount.currency))


async def _row(operation_id: str) -> Operation | None:
    return await Operation.find_one({"provider": NAME, "operation_id": operation_id})


async def _held_here(operation_id: str) -> bool:
    """Whether the ledger holds this operation (money not yet available). Raises LedgerUnavailable."""
    try:
        row = await _row(operation_id)
    except PyMongoError as err:
        raise LedgerUnavailable(f"database: {type(err).__name__}") from err
    return row is not None and row.status is OperationStatus.HELD


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _api_amount(value: Any) -> int | None:
    """The wallet API gives amounts as JSON numbers (or strings); read them exactly, never by float arithmetic:
    the shortest repr of a float parsed from a 2-decimal amount is that amount's own text (970.0, 290.03)."""
    if isinstance(value, bool) or value is None:
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    if not _AMOUNT.fullmatch(text):
        return None
    return int(Decimal(text) * 100)
