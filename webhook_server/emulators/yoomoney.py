"""A YooMoney emulator written from ../shared/providers/yoomoney.md: the Quickpay form target and the
payer's "Pay" step, HTTP notifications as the wallet sends them since May 2026, and the wallet API
(`operation-details`, `operation-history`).

It behaves as the real service does, not as our server would like:
- notifications are UNSIGNED by default (no `sha1_hash`); `sign_notifications` brings back the legacy hash,
  computed here from the reference's formula (checked against its vectors V1–V5), never by our provider module;
- a notification our server does not answer with 200 is delivered again at +10 min and +1 h after the first
  attempt, on the emulator's own clock (`advance()` moves it and delivers what is due), then given up;
- `drop_notifications` loses every notification (an outage, a wrong firewall): only the history knows the payment;
- the wallet API answers amounts as JSON numbers, filters the history by type, label, from (inclusive) and
  till (exclusive), newest first, paged by `next_record`; `api_available = False` makes it answer 503;
- an unaccepted or protected (codepro) transfer stays `in_progress` until `accept()` or `refuse()`; the wallet
  sends no second notification when that happens (only the history shows it).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web

from settings import ConfigError, Settings
from webhook_server.emulators.common import invoice_amount

log = logging.getLogger(__name__)

MOUNT = "/emulator/yoomoney"  # where `ymds demo` mounts it (webhook_server/demo.py EMULATOR_ROOT + name)
HASHED_BEFORE_SECRET = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro")
REDELIVERY_AFTER = (timedelta(0), timedelta(minutes=10), timedelta(hours=1))  # reference 3.3: then lost
CARD_COMMISSION_PERCENT = 3  # 'AC': credited sum * (1 - 0.03)
WALLET_COMMISSION_PERCENT = 1  # 'PC': credited sum - sum * a / (1 + a), a = 0.01
TEST_SENDER = "41001000040"  # the settings-page "Test" button's fixed sender (reference 3.4)
PAYER_WALLET = "4100175017397"
MAX_RECORDS, DEFAULT_RECORDS = 100, 30
DEMO_TICK_SECONDS = 5.0
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def sha1_hash(fields: Mapping[str, str], secret: str) -> str:
    """Reference 3.2: nine raw values joined by '&', empty ones kept, the secret 8th and the label last."""
    values = [fields[name] for name in HASHED_BEFORE_SECRET] + [secret, fields["label"]]
    return hashlib.sha1("&".join(values).encode("utf-8")).hexdigest()


def rubles(minor: int) -> str:
    """Kopecks as YooMoney writes an amount in a form or a notification: '1000.00'."""
    return f"{minor // 100}.{minor % 100:02d}"


def kopecks(text: str) -> int | None:
    """'299.00' → 29900; None for anything that is not a plain decimal amount with at most 2 places."""
    if not _AMOUNT.fullmatch(text):
        return None
    return int(Decimal(text) * 100)


def credited(paid_minor: int, payment_type: str) -> int:
    """What the wallet is credited for a payer's `sum` (reference section 2), the commission rounded up to a
    kopeck, as the wallet example 1000 → 990.09 implies."""
    if payment_type == "PC":
        return paid_minor - -(-paid_minor * WALLET_COMMISSION_PERCENT // (100 + WALLET_COMMISSION_PERCENT))
    return paid_minor - -(-paid_minor * CARD_COMMISSION_PERCENT // 100)


def new_operation_id() -> str:
    """18 digits, as the wallet's operation ids look (e.g. 653707199659002312)."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def timestamp(moment: datetime) -> str:
    """A notification's `datetime` as real notifications write it: UTC, seconds, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class WalletOperation:
    """One incoming operation in the wallet's history."""

    operation_id: str
    label: str
    paid: int  # kopecks debited from the payer (the form's sum)
    net: int  # kopecks credited to the wallet
    payment_type: str  # 'AC' card, 'PC' wallet
    at: datetime
    status: str = "success"  # success | in_progress | refused
    codepro: bool = False
    unaccepted: bool = False
    sender: str = ""

    @property
    def api_type(self) -> str:
        if self.codepro:
            return "incoming-transfer-protected"
        return "incoming-transfer" if self.payment_type == "PC" else "deposition"

    def record(self) -> dict[str, Any]:
        """The history/details object; `amount` is a Decimal so that it is written as a JSON number."""
        record: dict[str, Any] = {
            "operation_id": self.operation_id, "status": self.status, "datetime": timestamp(self.at),
            "title": f"Пополнение: {self.label}" if self.label else "Пополнение", "direction": "in",
            "amount": Decimal(rubles(self.net)), "label": self.label, "type": self.api_type,
        }
        if self.sender:
            record["sender"] = self.sender
        if self.codepro:
            record["codepro"] = True
        return record

    def notification(self) -> dict[str, str]:
        """The HTTP notification, unsigned, every field as reference 3.1 lists it."""
        return {
            "notification_type": "p2p-incoming" if self.payment_type == "PC" else "card-incoming",
            "bill_id": "", "amount": rubles(self.net), "datetime": timestamp(self.at),
            "codepro": "true" if self.codepro else "false", "sender": self.sender,
            "withdraw_amount": rubles(self.paid), "unaccepted": "true" if self.unaccepted else "false",
            "operation_label": str(uuid.uuid4()), "operation_id": self.operation_id, "currency": "643",
            "label": self.label,
        }


@dataclass(slots=True)
class Delivery:
    """One notification and its delivery attempts: at first_at + each of REDELIVERY_AFTER while not answered 200."""

    fields: dict[str, str]
    first_at: datetime
    statuses: list[int] = field(default_factory=list)  # our server's answers (0: could not connect)
    done: bool = False
    sending: bool = False  # an attempt is on its way (the demo's ticker and a payment may look at once)

    def due(self, now: datetime) -> bool:
        attempt = len(self.statuses)
        return (not self.done and not self.sending and attempt < len(REDELIVERY_AFTER)
                and now >= self.first_at + REDELIVERY_AFTER[attempt])

    @property
    def given_up(self) -> bool:
        return not self.done and len(self.statuses) >= len(REDELIVERY_AFTER)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """JSON with the Decimal amounts as JSON numbers, as the wallet API writes them (290.03, not "290.03")."""
    def number(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)  # a float's shortest repr of a 2-decimal amount reads back as that amount
        raise TypeError(type(value).__name__)

    return web.Response(text=json.dumps(payload, default=number, ensure_ascii=False), status=status,
                        content_type="application/json", headers=headers)


def _error(code: str) -> web.Response:
    return json_response({"error": code})


@dataclass(slots=True)
class YooMoneyEmulator:
    secret: str
    notify_url: str
    api_token: str
    wallet: str
    clock: Clock = field(default=lambda: _utc_now())
    sign_notifications: bool = False  # the legacy sha1_hash; YooMoney stopped sending it in May 2026
    drop_notifications: bool = False  # every notification lost on the way
    api_available: bool = True  # False: the wallet API answers 503
    operations: dict[str, WalletOperation] = field(default_factory=dict)
    outbox: dict[str, Delivery] = field(default_factory=dict)  # by operation_id
    deliveries: list[int] = field(default_factory=list)  # every attempt's status, in order
    api_calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        return (self.clock() + self._offset).astimezone(UTC).replace(microsecond=0)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/quickpay/confirm", self.confirm_page),
            web.post("/quickpay/pay", self.pay_page),
            web.post("/api/operation-details", self.operation_details),
            web.post("/api/operation-history", self.operation_history),
            web.post("/control/operations/{operation_id}/{action}", self.control_operation),
            web.post("/control/notifications", self.control_notifications),
        ])
        return app

    # ---- the wallet's side of a payment

    def record_payment(self, label: str, paid: int, *, payment_type: str = "AC", codepro: bool = False,
                       unaccepted: bool = False) -> WalletOperation:
        """A payment as the wallet history records it: credited at once, or in_progress while protected or
        unaccepted. No notification yet (see pay())."""
        if codepro and payment_type != "PC":
            raise ValueError("only a transfer from a wallet ('PC') can be protected by a code")
        operation = WalletOperation(
            operation_id=new_operation_id(), label=label, paid=paid, net=credited(paid, payment_type),
            payment_type=payment_type, at=self.now(), status="in_progress" if codepro or unaccepted else "success",
            codepro=codepro, unaccepted=unaccepted, sender=PAYER_WALLET if payment_type == "PC" else "",
        )
        self.operations[operation.operation_id] = operation
        return operation

    async def pay(self, label: str, paid: int, **options: Any) -> WalletOperation:
        """Record a payment and make the first delivery attempt of its notification (unless dropped)."""
        operation = self.record_payment(label, paid, **options)
        if not self.drop_notifications:
            delivery = Delivery(self.notification_of(operation), operation.at)
            self.outbox[operation.operation_id] = delivery
            await self._attempt(delivery)
        return operation

    def notification_of(self, operation: WalletOperation) -> dict[str, str]:
        fields = operation.notification()
        if self.sign_notifications:
            fields["sha1_hash"] = sha1_hash(fields, self.secret)
        return fields

    def accept(self, operation_id: str) -> WalletOperation:
        """The owner accepts an unaccepted or protected transfer: the money is credited."""
        return self._settle(operation_id, "success")

    def refuse(self, operation_id: str) -> WalletOperation:
        """The transfer goes back to the payer (protection code never entered, limit never freed)."""
        return self._settle(operation_id, "refused")

    def _settle(self, operation_id: str, status: str) -> WalletOperation:
        operation = self.operations[operation_id]
        if operation.status != "in_progress":
            raise ValueError(f"operation {operation_id} is {operation.status}, not in_progress")
        operation.status = status
        return operation

    # ---- notifications on the emulator's clock

    async def advance(self, delta: timedelta) -> list[int]:
        """Move the emulator's clock on and deliver what has come due; the statuses of those attempts."""
        self._offset += delta
        return await self.deliver_due()

    async def deliver_due(self) -> list[int]:
        now = self.now()
        statuses = []
        for delivery in [d for d in self.outbox.values() if d.due(now)]:
            statuses.append(await self._attempt(delivery))
        return statuses

    async def deliver_late(self, operation_id: str) -> int:
        """Send an operation's notification now, outside the schedule (a delivery that arrives late)."""
        operation = self.operations[operation_id]
        async with aiohttp.ClientSession() as session:
            return await send_notification(session, self.notify_url, self.notification_of(operation))

    def given_up(self) -> list[str]:
        return [operation_id for operation_id, delivery in self.outbox.items() if delivery.given_up]

    async def _attempt(self, delivery: Delivery) -> int:
        delivery.sending = True
        try:
            async with aiohttp.ClientSession() as session:
                status = await send_notification(session, self.notify_url, delivery.fields)
        except aiohttp.ClientError as err:
            log.info("yoomoney emulator: notification not delivered (%s)", type(err).__name__)
            status = 0
        finally:
            delivery.sending = False
        delivery.statuses.append(status)
        self.deliveries.append(status)
        delivery.done = status == 200  # reference 3.3: only the status counts; exactly 200 acknowledges
        return status

    # ---- the payer's pages

    async def confirm_page(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("receiver") != self.wallet:
            return web.Response(status=400, text="unknown receiver")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(str(value))}">'
            for name, value in form.items() if name in ("receiver", "sum", "label", "successURL", "paymentType")
        )
        body = (
            "<!doctype html><meta charset='utf-8'><title>YooMoney emulator</title>"
            f"<h1>YooMoney emulator</h1><p>Pay {html.escape(str(form.get('sum')))} RUB to wallet "
            f"{html.escape(self.wallet)}</p><form method='post' action='pay'>{hidden}"
            "<button type='submit' id='emulator-pay'>Pay</button></form>"
        )
        return web.Response(text=body, content_type="text/html")

    async def pay_page(self, request: web.Request) -> web.Response:
        """The payer pays; they go back to successURL whatever our server answered the notification."""
        form = await request.post()
        paid = kopecks(str(form.get("sum", "")))
        if paid is None or form.get("receiver", self.wallet) != self.wallet:
            return web.Response(status=400, text="bad sum or receiver")
        payment_type = "PC" if form.get("paymentType") == "PC" else "AC"
        await self.pay(str(form.get("label", "")), paid, payment_type=payment_type)
        raise web.HTTPSeeOther(str(form.get("successURL") or "/"))

    # ---- the wallet API

    async def _authorised(self, request: web.Request) -> tuple[web.Response | None, dict[str, str]]:
        if not self.api_available:
            return web.Response(status=503, text="service unavailable"), {}
        if not secrets.compare_digest(request.headers.get("Authorization", "").encode(),
                                      f"Bearer {self.api_token}".encode()):
            return json_response({"error": "invalid_token"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}), {}
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.api_calls.append((request.path.rsplit("/", 1)[1], form))
        return None, form

    async def operation_details(self, request: web.Request) -> web.Response:
        refusal, form = await self._authorised(request)
        if refusal is not None:
            return refusal
        operation = self.operations.get(form.get("operation_id", ""))
        if operation is None:
            return _error("illegal_param_operation_id")
        return json_response(operation.record())

    async def operation_history(self, request: web.Request) -> web.Response:
        refusal, form = await self._authorised(request)
        if refusal is not None:
            return refusal
        try:
            selected = self._select(form)
            start, count = _paging(form)
        except HistoryError as err:
            return _error(err.code)
        page = selected[start:start + count]
        body: dict[str, Any] = {"operations": [operation.record() for operation in page]}
        if start + count < len(selected):
            body["next_record"] = str(start + count)
        return json_response(body)

    def _select(self, form: Mapping[str, str]) -> list[WalletOperation]:
        types = set(form["type"].split()) if "type" in form else {"deposition", "payment"}
        if not types <= {"deposition", "payment", "incoming-transfers-unaccepted"}:
            raise HistoryError("illegal_param_type")
        start, till = _moment(form, "from"), _moment(form, "till")
        chosen = [
            operation for operation in self.operations.values()
            if ("deposition" in types or ("incoming-transfers-unaccepted" in types
                                          and operation.status == "in_progress"))
            and ("label" not in form or operation.label == form["label"])
            and (start is None or operation.at >= start) and (till is None or operation.at < till)
        ]
        return sorted(chosen, key=lambda operation: operation.at, reverse=True)

    # ---- controls (for `ymds demo` and a person trying things by hand)

    async def control_operation(self, request: web.Request) -> web.Response:
        """POST /control/operations/{id}/accept | refuse."""
        action = request.match_info["action"]
        operation_id = request.match_info["operation_id"]
        if action not in ("accept", "refuse") or operation_id not in self.operations:
            return json_response({"error": "unknown operation or action"}, status=404)
        try:
            operation = self.accept(operation_id) if action == "accept" else self.refuse(operation_id)
        except ValueError as err:
            return json_response({"error": str(err)}, status=409)
        return json_response(operation.record())

    async def control_notifications(self, request: web.Request) -> web.Response:
        """POST /control/notifications with any of drop, sign (true/false): how notifications go out."""
        form = await request.post()
        for name, attribute in (("drop", "drop_notifications"), ("sign", "sign_notifications")):
            if name in form:
                setattr(self, attribute, form[name] == "true")
        return json_response({"drop": self.drop_notifications, "sign": self.sign_notifications})


class HistoryError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _moment(form: Mapping[str, str], name: str) -> datetime | None:
    if name not in form:
        return None
    try:
        moment = datetime.fromisoformat(form[name])
    except ValueError:
        raise HistoryError(f"illegal_param_{name}") from None
    if moment.tzinfo is None:
        raise HistoryError(f"illegal_param_{name}")
    return moment


def _paging(form: Mapping[str, str]) -> tuple[int, int]:
    start_text, records_text = form.get("start_record", "0"), form.get("records", str(DEFAULT_RECORDS))
    if not (start_text.isascii() and start_text.isdigit()):
        raise HistoryError("illegal_param_start_record")
    if not (records_text.isascii() and records_text.isdigit()) or not 1 <= int(records_text) <= MAX_RECORDS:
        raise HistoryError("illegal_param_records")
    return int(start_text), int(records_text)


async def send_notification(session: aiohttp.ClientSession, url: str, fields: Mapping[str, str]) -> int:
    """POST a notification form as YooMoney does; returns the HTTP status our server answered."""
    async with session.post(url, data=dict(fields)) as response:
        await response.read()
        return response.status


EVENTS = ("payment", "held", "test")


def settings_page_test(secret: str, now: datetime) -> dict[str, str]:
    """What the settings page's "Test" button sends (reference 3.4): signed, random amount, empty label."""
    fields = {
        "notification_type": "p2p-incoming", "bill_id": "", "amount": rubles(secrets.randbelow(100000) + 100),
        "datetime": timestamp(now), "codepro": "false", "sender": TEST_SENDER, "test_notification": "true",
        "operation_label": "", "operation_id": "test-notification", "currency": "643", "label": "",
    }
    return {**fields, "sha1_hash": sha1_hash(fields, secret)}


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate yoomoney EVENT`: one notification signed with the legacy sha1_hash, as YooMoney sent them
    before May 2026 (an unsigned one would need the wallet API to know the operation)."""
    assert settings.yoomoney_notification_secret is not None
    secret = settings.yoomoney_notification_secret.get_secret_value()
    if event == "test":
        return await send_notification(session, f"{url}/notify/yoomoney", settings_page_test(secret, datetime.now(UTC)))
    paid = kopecks(amount) if amount else await invoice_amount(session, settings, url, label, "RUB")
    if paid is None:
        raise ConfigError(f"--amount {amount!r} is not an amount such as 299.00")
    operation = WalletOperation(
        operation_id=new_operation_id(), label=label, paid=paid, net=credited(paid, "AC"),
        payment_type="AC", at=datetime.now(UTC), unaccepted=event == "held",
    )
    fields = operation.notification()
    signed = {**fields, "sha1_hash": sha1_hash(fields, secret)}
    return await send_notification(session, f"{url}/notify/yoomoney", signed)


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "yoomoney_wallet": "4100118000000000",
        "yoomoney_notification_secret": "demo-yoomoney-secret",
        "yoomoney_api_token": "demo-yoomoney-api-token",
        "yoomoney_api_url": emulator_url,
        "yoomoney_quickpay_url": emulator_url + "/quickpay/confirm",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    """The emulator, unless YooMoney is disabled or YOOMONEY_API_URL points elsewhere (the real wallet API).

    Its notifications are unsigned, confirmed by our server through this emulator's wallet API; a ticker
    makes the redeliveries that fall due on the real clock.
    """
    if not (settings.yoomoney_wallet and settings.yoomoney_notification_secret and settings.yoomoney_api_token):
        return None
    if not settings.yoomoney_api_url.rstrip("/").endswith(MOUNT):
        return None
    emulator = YooMoneyEmulator(
        secret=settings.yoomoney_notification_secret.get_secret_value(),
        notify_url=local_base + "/notify/yoomoney",
        api_token=settings.yoomoney_api_token.get_secret_value(),
        wallet=settings.yoomoney_wallet,
    )
    app = emulator.app()

    async def redeliveries(_: web.Application) -> AsyncIterator[None]:
        async def tick() -> None:
            while True:
                await asyncio.sleep(DEMO_TICK_SECONDS)
                await emulator.deliver_due()

        task = asyncio.create_task(tick())
        yield
        task.cancel()

    app.cleanup_ctx.append(redeliveries)
    return app
