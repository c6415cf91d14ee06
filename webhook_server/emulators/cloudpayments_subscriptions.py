"""The CloudPayments emulator's subscriptions: /subscriptions/create|get|find|update|cancel as the API
documents them (reference §4; the SDK generated from CloudPayments' API, Hexlet/cloudpayments-ruby), and
the scheduled charges CloudPayments makes on its own clock (reference §5).

- A subscription charges its card token every Interval × Period (Day, Week, Month) from StartDate: Check
  first (unless the terminal has none), then Pay with its SubscriptionId (no InvoiceId), or Fail.
- A declined charge (or a Check the shop refused) makes it PastDue and is tried again a day later; three
  in a row make it Rejected. MaxPeriods successful charges make it Expired. Each change of status sends
  Recurrent. `/subscriptions/update` of an ended one makes it Active again (the SDK's documentation).
- Pay and Recurrent that the shop does not answer with {"code": 0} are sent again on CloudPayments' retry
  schedule, NOTIFICATION_RETRY_SECONDS (unconfirmed: the reference does not give it), then given up.
- `/subscriptions/cancel` of one that is no longer Active is refused (the emulator's reading).

`run_schedule()` does what is due by the emulator's clock; tests call it after moving their clock, the
demo runs it every SCHEDULE_EVERY_SECONDS.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from billing.money import Money
from webhook_server.emulators.cloudpayments_wire import (
    COMPLETED,
    Kind,
    decimal_text,
    fail_fields,
    minor_units,
    recurrent_fields,
    transaction_fields,
)

if TYPE_CHECKING:
    from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator, Reply

log = logging.getLogger(__name__)

ACTIVE, PAST_DUE, CANCELLED, REJECTED, EXPIRED = "Active", "PastDue", "Cancelled", "Rejected", "Expired"
CHARGING = (ACTIVE, PAST_DUE)
FAILURES_BEFORE_REJECTED = 3
RETRY_AFTER_DECLINE = timedelta(days=1)
NOTIFICATION_RETRY_SECONDS = (3600,) * 24  # unconfirmed: hourly for a day
SCHEDULE_EVERY_SECONDS = 1.0
CREATE_REQUIRED = ("Token", "AccountId", "Description", "Amount", "Currency", "RequireConfirmation", "StartDate",
                   "Interval", "Period")
INTERVALS = ("Day", "Week", "Month")
SHOP_DECLINED = (5012, "Declined by the shop's Check")  # the emulator's reading of a refused Check


@dataclass(slots=True)
class EmulatedSubscription:
    id: str
    account_id: str
    amount: Money
    token: str
    interval: str
    period: int
    next_at: datetime
    start: datetime
    label: str = ""  # the InvoiceId of the widget payment that created it
    description: str = ""
    email: str = ""
    max_periods: int | None = None
    status: str = ACTIVE
    successes: int = 0
    failures: int = 0
    failures_in_a_row: int = 0
    last_at: datetime | None = None


@dataclass(slots=True)
class Retry:
    kind: Kind
    fields: dict[str, str]
    due: datetime
    attempt: int = 0


def after(moment: datetime, interval: str, period: int) -> datetime:
    """`period` intervals after `moment`; a month keeps its day where the month has it (31 Jan → 28/29 Feb)."""
    if interval == "Day":
        return moment + timedelta(days=period)
    if interval == "Week":
        return moment + timedelta(weeks=period)
    month = moment.month - 1 + period
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if moment is not None else None


def _when(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(slots=True)
class SubscriptionDesk:
    """The subscriptions of one emulated site, and the notifications they still owe the shop."""

    emulator: CloudPaymentsEmulator
    retries: list[Retry] = field(default_factory=list)
    given_up: list[tuple[Kind, dict[str, str]]] = field(default_factory=list)

    @property
    def book(self) -> dict[str, EmulatedSubscription]:
        return self.emulator.subscriptions

    def open(self, *, account_id: str, amount: Money, token: str, interval: str, period: int, label: str = "",
             start: datetime | None = None, description: str = "", max_periods: int | None = None
             ) -> EmulatedSubscription:
        now = self.emulator.clock()
        sub = EmulatedSubscription(id="sc_" + secrets.token_hex(12), account_id=account_id, amount=amount,
                                   token=token, interval=interval, period=period, label=label,
                                   description=description, max_periods=max_periods, start=start or now,
                                   next_at=start or after(now, interval, period))
        self.book[sub.id] = sub
        return sub

    def model(self, sub: EmulatedSubscription) -> dict[str, Any]:
        """The subscription model of the API (§4)."""
        return {
            "Id": sub.id, "AccountId": sub.account_id, "Description": sub.description, "Email": sub.email or None,
            "Amount": float(decimal_text(sub.amount.minor)), "Currency": sub.amount.currency,
            "RequireConfirmation": False, "StartDateIso": iso(sub.start), "Interval": sub.interval,
            "Period": sub.period, "MaxPeriods": sub.max_periods, "Status": sub.status,
            "SuccessfulTransactionsNumber": sub.successes, "FailedTransactionsNumber": sub.failures,
            "LastTransactionDateIso": iso(sub.last_at),
            "NextTransactionDateIso": iso(sub.next_at) if sub.status in CHARGING else None,
        }

    def recurrent(self, sub: EmulatedSubscription) -> dict[str, str]:
        fields = recurrent_fields(subscription_id=sub.id, account_id=sub.account_id, amount=sub.amount,
                                  status=sub.status, interval=sub.interval, period=sub.period,
                                  successes=sub.successes, failures=sub.failures, description=sub.description,
                                  start=sub.start)
        if sub.last_at is not None:
            fields["LastTransactionDate"] = sub.last_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        if sub.status in CHARGING:
            fields["NextTransactionDate"] = sub.next_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        return fields

    # ---- notifications that are sent again --------------------------------------------------------

    async def send(self, kind: Kind, fields: Mapping[str, str]) -> Reply:
        """Send a notification; one the shop does not accept is sent again on the retry schedule."""
        reply = await self.emulator.notify(kind, fields)
        if not reply.ok:
            self._again(Retry(kind, dict(fields), self.emulator.clock()))
        return reply

    def _again(self, retry: Retry) -> None:
        if retry.attempt >= len(NOTIFICATION_RETRY_SECONDS):
            self.given_up.append((retry.kind, retry.fields))
            return
        retry.due += timedelta(seconds=NOTIFICATION_RETRY_SECONDS[retry.attempt])
        retry.attempt += 1
        self.retries.append(retry)

    async def _redeliver_due(self, now: datetime) -> int:
        due, self.retries = [r for r in self.retries if r.due <= now], [r for r in self.retries if r.due > now]
        for retry in due:
            if not (await self.emulator.notify(retry.kind, retry.fields)).ok:
                self._again(retry)
        return len(due)

    # ---- the schedule -----------------------------------------------------------------------------

    async def run_schedule(self) -> list[int]:
        """Charge every Active or PastDue subscription that is due by the emulator's clock, once per due date,
        and send again the notifications due for it; the TransactionIds of the charges that went through."""
        now = self.emulator.clock()
        await self._redeliver_due(now)
        paid = []
        for sub in list(self.book.values()):
            if sub.status in CHARGING and sub.next_at <= now:
                transaction = await self.charge(sub, now)
                if transaction is not None:
                    paid.append(transaction)
        return paid

    async def charge(self, sub: EmulatedSubscription, now: datetime) -> int | None:
        from webhook_server.emulators.cloudpayments import Payment, new_transaction_id

        emulator = self.emulator
        tx = Payment(new_transaction_id(), "", sub.account_id, sub.amount, COMPLETED, sub.token, sub.id,
                     description=sub.description, created_at=now)
        common: dict[str, Any] = {"transaction_id": tx.id, "amount": sub.amount, "label": "",
                                  "account_id": sub.account_id, "test": emulator.test_mode, "subscription_id": sub.id}
        refused = None
        if not emulator.skip_check:
            check = await emulator.notify(Kind.CHECK, transaction_fields(**common, pay=False))
            refused = None if check.ok else SHOP_DECLINED
        decline = emulator.token_declines.take(sub.token) if refused is None else None
        reason = refused or ((decline.code, decline.reason) if decline is not None else None)
        emulator.transactions[tx.id] = tx
        if reason is not None:
            tx.status, tx.reason = "Declined", reason
            if refused is None:
                await emulator.notify(Kind.FAIL, fail_fields(**common, reason=reason))
            await self._declined(sub, now)
            return None
        await self.send(Kind.PAY, transaction_fields(**common, token=sub.token, description=sub.description,
                                                     occurred_at=now))
        was = sub.status
        sub.successes, sub.failures_in_a_row, sub.last_at = sub.successes + 1, 0, now
        sub.next_at = after(sub.next_at, sub.interval, sub.period)
        sub.status = EXPIRED if sub.max_periods is not None and sub.successes >= sub.max_periods else ACTIVE
        if sub.status != was:
            await self.send(Kind.RECURRENT, self.recurrent(sub))
        return tx.id

    async def _declined(self, sub: EmulatedSubscription, now: datetime) -> None:
        sub.failures, sub.failures_in_a_row = sub.failures + 1, sub.failures_in_a_row + 1
        was = sub.status
        sub.status = REJECTED if sub.failures_in_a_row >= FAILURES_BEFORE_REJECTED else PAST_DUE
        sub.next_at = now + RETRY_AFTER_DECLINE
        if sub.status != was:
            await self.send(Kind.RECURRENT, self.recurrent(sub))

    # ---- the API ----------------------------------------------------------------------------------

    def methods(self) -> dict[str, Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]]:
        return {"/subscriptions/create": self._create, "/subscriptions/get": self._get,
                "/subscriptions/find": self._find, "/subscriptions/update": self._update,
                "/subscriptions/cancel": self._cancel}

    async def _create(self, fields: Mapping[str, str]) -> dict[str, Any]:
        missing = next((name for name in CREATE_REQUIRED if not fields.get(name)), None)
        if missing is not None:
            return _refused(f"{missing} is required")
        amount, start = minor_units(fields["Amount"]), _when(fields["StartDate"])
        period = fields["Period"]
        if amount is None or amount <= 0 or start is None or fields["Interval"] not in INTERVALS \
                or not period.isdigit() or int(period) < 1:
            return _refused("Amount, StartDate, Interval or Period is not valid")
        if fields["Token"] not in self.emulator.tokens:
            return _refused("Token not found")
        max_periods = fields.get("MaxPeriods", "")
        sub = self.open(account_id=fields["AccountId"], amount=Money(amount, fields["Currency"]),
                        token=fields["Token"], interval=fields["Interval"], period=int(period), start=start,
                        description=fields["Description"], max_periods=int(max_periods) if max_periods.isdigit()
                        else None)
        sub.email = fields.get("Email", "")
        return _ok(self.model(sub))

    async def _get(self, fields: Mapping[str, str]) -> dict[str, Any]:
        sub = self.book.get(fields.get("Id", ""))
        return _refused("Subscription not found") if sub is None else _ok(self.model(sub))

    async def _find(self, fields: Mapping[str, str]) -> dict[str, Any]:
        account = fields.get("AccountId", "")
        if not account:
            return _refused("AccountId is required")
        return _ok([self.model(sub) for sub in self.book.values() if sub.account_id == account])

    async def _update(self, fields: Mapping[str, str]) -> dict[str, Any]:
        sub = self.book.get(fields.get("Id", ""))
        if sub is None:
            return _refused("Subscription not found")
        amount = minor_units(fields["Amount"]) if fields.get("Amount") else None
        start = _when(fields["StartDate"]) if fields.get("StartDate") else None
        if (fields.get("Amount") and not amount) or (fields.get("StartDate") and start is None) or \
                fields.get("Interval", "Day") not in INTERVALS or not fields.get("Period", "1").isdigit():
            return _refused("a field is not valid")
        if amount:
            sub.amount = Money(amount, fields.get("Currency") or sub.amount.currency)
        sub.interval, sub.period = fields.get("Interval", sub.interval), int(fields.get("Period", sub.period))
        sub.description = fields.get("Description", sub.description)
        if fields.get("MaxPeriods", "").isdigit():
            sub.max_periods = int(fields["MaxPeriods"])
        if start is not None:
            sub.next_at = start
        if sub.status not in CHARGING:  # any change makes an ended subscription active again
            sub.status, sub.failures_in_a_row = ACTIVE, 0
            sub.next_at = start or after(self.emulator.clock(), sub.interval, sub.period)
            await self.send(Kind.RECURRENT, self.recurrent(sub))
        return _ok(self.model(sub))

    async def _cancel(self, fields: Mapping[str, str]) -> dict[str, Any]:
        sub = self.book.get(fields.get("Id", ""))
        if sub is None:
            return _refused("Subscription not found")
        if sub.status not in CHARGING:
            return _refused(f"Subscription is {sub.status}")
        sub.status = CANCELLED
        log.info("cloudpayments emulator: /subscriptions/cancel of %s (account %s) after %d charge(s): no more "
                 "charges", sub.id, sub.account_id, sub.successes)
        await self.send(Kind.RECURRENT, self.recurrent(sub))
        return _ok(None)

    async def clock_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """The demo's CloudPayments clock: the schedule runs every SCHEDULE_EVERY_SECONDS of wall time."""
        task = asyncio.create_task(self._ticking())
        yield
        task.cancel()

    async def _ticking(self) -> None:
        while True:
            await asyncio.sleep(SCHEDULE_EVERY_SECONDS)
            try:
                await self.run_schedule()
            except aiohttp.ClientError as err:  # the shop is down: its notifications are sent again later
                log.warning("cloudpayments emulator: the schedule could not reach the shop: %s", err)


def widget_schedule(data: Mapping[str, Any]) -> tuple[str, int] | None:
    """The widget's `data.CloudPayments.recurrent` (either spelling of the key): interval and period."""
    section = data.get("CloudPayments") or data.get("cloudPayments")
    schedule = section.get("recurrent") if isinstance(section, dict) else None
    if not isinstance(schedule, dict):
        return None
    interval, period = str(schedule.get("interval", "Month")), schedule.get("period", 1)
    if interval not in INTERVALS or not isinstance(period, int) or isinstance(period, bool) or period < 1:
        return None
    return interval, period


def _ok(model: Any) -> dict[str, Any]:
    return {"Success": True, "Message": None, "Model": model}


def _refused(message: str) -> dict[str, Any]:
    return {"Success": False, "Message": message, "Model": None}


def describe_subscriptions(emulator: CloudPaymentsEmulator, account_id: str) -> str:
    """For the demo: the payer's CloudPayments subscriptions as CloudPayments holds them, e.g. after the bot's
    "Turn it off": "sc_… Cancelled (1 charge(s), 0 failed)". The demo app keeps its emulator at EMULATOR."""
    subs = [sub for sub in emulator.subscriptions.values() if sub.account_id == account_id]
    return "; ".join(f"{sub.id} {sub.status} ({sub.successes} charge(s), {sub.failures} failed)" for sub in subs) \
        or "no CloudPayments subscription"
