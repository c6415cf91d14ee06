"""A konsol.pro Payments API emulator, written from shared/providers/konsol.md and only what it names:
`POST /api/v1/payments`, `GET /api/v1/payments/{id}`, `GET /api/v1/references/fps_bank_members`,
`GET /api/v1/company_accounts`, with konsol.pro's Bearer auth, and webhooks to the shop. There is no
payments list and no cancel: the reference confirms neither, so open-ymds may not rely on them.

It signs, formats amounts and checks cards with its own code (never open-ymds's konsol module, which it
stands in for). Time is its own: `clock` says what time it is at konsol.pro, and nothing happens by
itself. `run_due()` carries out what is due by that clock: a payout that settles hours or days after it
was created (`settle_after`, or `schedule()`), and webhook deliveries, each made up to five times a
second apart until one is answered 2xx [DOC]. Tests move the clock and call `run_due()`; the demo gives it
a real clock and a timer (`tick_every`).

Failure modes on demand: a refusal before anything is made (`fail_next`), a payout made and then answered
with an error or never answered (`fail_after_create`, `drop_next_create`, `hang_next`), a failing lookup.
Card numbers ending in 0004 fail, an emulator convention (konsol.pro publishes no sandbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web

from settings import ConfigError, Settings

log = logging.getLogger(__name__)

PAYMENTS = "/api/v1/payments"
CONTROL_PATH = "/_emulator/payments/{payment_id}/status"  # the emulator's own, for `ymds simulate konsol`
SIGNATURE_HEADER = "X-Konsol-Signature"
FAILING_CARD_SUFFIX = "0004"
DELIVERY_ATTEMPTS = 5  # konsol.pro's webhook schedule [DOC]: five attempts, one second apart
DELIVERY_INTERVAL = timedelta(seconds=1)
EVENT_FOR_STATUS = {"created": "payment.created", "executed": "payment.completed", "failed": "payment.failed",
                    "cancelled": "payment.cancelled"}
_PHONE = re.compile(r"\+7[0-9]{10}")
_AMOUNT = re.compile(r"[0-9]{1,12}\.[0-9]{2}")
BANKS = (("100000000111", "Сбербанк"), ("100000000004", "Т-Банк"), ("100000000005", "ВТБ"),
         ("100000000008", "Альфа-Банк"), ("100000000007", "Райффайзенбанк"), ("100000000001", "Газпромбанк"),
         ("100000000012", "Росбанк"), ("100000000013", "Совкомбанк"), ("100000000010", "ПСБ"),
         ("100000000020", "Россельхозбанк"), ("100000000015", "Открытие"))


def utc_now() -> datetime:
    return datetime.now(UTC)


def rubles(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def kopecks(text: Any) -> int:
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text):
        raise ValueError(f"amount must be a string like 1000.00, not {text!r}")
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation as err:
        raise ValueError("amount is not a number") from err


def luhn(number: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def signature(body: bytes, secret: str) -> str:
    """The reference's webhook HMAC (§3.3, vectors in §10): hex HMAC-SHA256 of the exact body bytes."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class Injected:
    kind: str  # "status": refused, nothing made; "after": made, then `status`; "drop": made, connection
    status: int = 500  # dropped; "hang": made, never answered until `release` is set
    message: str = ""


@dataclass(order=True, slots=True)
class Due:
    at: datetime
    order: int
    action: str = field(compare=False)  # "status" or "deliver"
    payment_id: str = field(compare=False)
    status: str = field(compare=False, default="")
    error_message: str = field(compare=False, default="")
    attempt: int = field(compare=False, default=0)
    body: bytes = field(compare=False, default=b"")


@dataclass(slots=True)
class KonsolEmulator:
    token: str
    webhook_secret: str | None
    notify_url: str
    clock: Callable[[], datetime] = utc_now
    settle_after: timedelta | None = None  # a created payout settles by itself this long after, on `clock`
    tick_every: float | None = None  # the demo: run_due() on a real timer every this many seconds
    balance: int = 100_000_000  # kopecks on the company account
    banks: list[dict[str, str]] = field(default_factory=lambda: [{"id": i, "name": n, "bic": ""} for i, n in BANKS])
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[int] = field(default_factory=list)  # every webhook attempt's HTTP status (0: no answer)
    calls: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _injected: dict[str, list[Injected]] = field(default_factory=dict)
    _due: list[Due] = field(default_factory=list)
    _order: int = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.post(PAYMENTS, self.create),
            web.get(PAYMENTS + "/{payment_id}", self.get),
            web.get("/api/v1/references/fps_bank_members", self.bank_directory),
            web.get("/api/v1/company_accounts", self.accounts),
            web.post(CONTROL_PATH, self.control),
        ])
        app.cleanup_ctx.append(self._ticking)
        return app

    # ---- for tests ------------------------------------------------------------------------------

    def fail_next(self, route: str, status: int, message: str = "", *, times: int = 1) -> None:
        """The next `times` calls of `route` ("create", "get", "banks", "balance") answer `status`, and
        create nothing."""
        self._injected.setdefault(route, []).extend(Injected("status", status, message) for _ in range(times))

    def fail_after_create(self, status: int = 502, message: str = "") -> None:
        """The next creation makes the payout, then answers `status` (a proxy's 502/504: made, answer lost)."""
        self._injected.setdefault("create", []).append(Injected("after", status, message))

    def drop_next_create(self) -> None:
        """The next creation makes the payout, then closes the connection unanswered."""
        self._injected.setdefault("create", []).append(Injected("drop"))

    def hang_next(self, route: str) -> None:
        """The next call of `route` (a creation: after making the payout) is answered only once `release`
        is set, or never: the caller's timeout fires."""
        self._injected.setdefault(route, []).append(Injected("hang"))

    def created(self) -> list[dict[str, Any]]:
        return list(self.payments.values())

    def schedule(self, payment_id: str, status: str, after: timedelta, error_message: str = "") -> None:
        """konsol.pro moves the payment to `status` `after` from now on its clock (then tells the shop)."""
        self._push(Due(self.clock() + after, self._next(), "status", payment_id, status, error_message))

    async def settle(self, payment_id: str, status: str = "executed", error_message: str = "") -> list[int]:
        """konsol.pro moves the payment on now and tells the shop: the statuses of the deliveries made now
        (the first attempt; the others follow a second apart, on `run_due()`)."""
        self.schedule(payment_id, status, timedelta(0), error_message)
        return await self.run_due()

    async def run_due(self) -> list[int]:
        """Carry out everything due by the clock, in order: status changes and webhook attempts."""
        statuses: list[int] = []
        while self._due and self._due[0].at <= self.clock():
            due = self._due.pop(0)
            if due.action == "status":
                self._move(due.payment_id, due.status, due.error_message)
                self._push(Due(due.at, self._next(), "deliver", due.payment_id, body=self._webhook(due.payment_id)))
            else:
                status = await self._post(due.body)
                statuses.append(status)
                if not 200 <= status < 300 and due.attempt + 1 < DELIVERY_ATTEMPTS:
                    self._push(Due(due.at + DELIVERY_INTERVAL, self._next(), "deliver", due.payment_id,
                                   attempt=due.attempt + 1, body=due.body))
        self.deliveries.extend(statuses)
        return statuses

    def pending_deliveries(self) -> int:
        return sum(1 for due in self._due if due.action == "deliver")

    async def deliver(self, payment_id: str, *, body: bytes | None = None, signed: bool = True) -> int:
        """One webhook about `payment_id` now, outside the schedule (tests of the shop's route)."""
        status = await self._post(body or self._webhook(payment_id), signed=signed)
        self.deliveries.append(status)
        return status

    # ---- the API --------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if request.path.startswith("/api/") and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error_message": "Access denied"}, status=401)
        return await handler(request)

    async def create(self, request: web.Request) -> web.StreamResponse:
        injected = self._take("create")
        if injected is not None and injected.kind == "status":
            return self._refusal(injected)
        try:
            payment = self._new_payment(json.loads(await request.read()))
        except (ValueError, KeyError, TypeError) as err:
            return web.json_response({"message": f"validation failed: {err}"}, status=422)
        if injected is None:
            return web.json_response(self._public(payment), status=201)
        if injected.kind == "after":
            return self._refusal(injected)
        if injected.kind == "hang":
            await self.release.wait()
            return web.json_response(self._public(payment), status=201)
        assert request.transport is not None
        request.transport.close()  # made, never answered
        raise asyncio.CancelledError

    async def get(self, request: web.Request) -> web.StreamResponse:
        injected = self._take("get")
        if injected is not None:
            if injected.kind == "hang":
                await self.release.wait()
            return self._refusal(injected)
        self._catch_up()
        payment = self.payments.get(request.match_info["payment_id"])
        if payment is None:
            return web.json_response({"message": "Payment not found"}, status=404)
        return web.json_response(self._public(payment))

    async def bank_directory(self, request: web.Request) -> web.Response:
        injected = self._take("banks")
        return self._refusal(injected) if injected else web.json_response(self.banks)

    async def accounts(self, request: web.Request) -> web.Response:
        injected = self._take("balance")
        if injected:
            return self._refusal(injected)
        return web.json_response([{"id": "nominal-1", "balance": rubles(self.balance), "currency": "RUB"}])

    async def control(self, request: web.Request) -> web.Response:
        """Not konsol.pro's: lets `ymds simulate konsol` move a payment on, as konsol.pro would."""
        payment_id = request.match_info["payment_id"]
        if payment_id not in self.payments:
            return web.json_response({"message": "Payment not found"}, status=404)
        body = await request.json()
        self._move(payment_id, str(body["status"]), "")
        return web.json_response(self._public(self.payments[payment_id]))

    # ---- inside -----------------------------------------------------------------------------------

    def _new_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        amount = kopecks(body["amount"])
        services = body["services_list"]
        if amount <= 0 or sum(kopecks(item["amount"]) for item in services) != amount:
            raise ValueError("services_list does not add up to amount")
        if amount > self.balance:
            raise ValueError("insufficient funds on the company account")
        kind, details = body["bank_details_kind"], body["bank_details"]
        if kind == "card":
            number = str(details["card_number"])
            if not (number.isdigit() and 16 <= len(number) <= 19 and luhn(number)):
                raise ValueError("card_number is invalid")
        elif kind == "fps":
            if not _PHONE.fullmatch(str(details["fps_mobile_phone"])):
                raise ValueError("fps_mobile_phone must be +7XXXXXXXXXX")
            if str(details["fps_bank_member_id"]) not in {bank["id"] for bank in self.banks}:
                raise ValueError("unknown fps_bank_member_id")
        else:
            raise ValueError("bank_details_kind must be card or fps")
        payment_id, now = str(uuid.uuid4()), self._stamp()
        payment = {"id": payment_id, "contractor_id": str(uuid.uuid4()), "amount": rubles(amount),
                   "status": "created", "purpose": str(body.get("purpose", ""))[:512], "services_list": services,
                   "bank_details_kind": kind, "bank_details": details, "created_at": now, "updated_at": now,
                   "paid_at": None}
        self.payments[payment_id] = payment
        if self.settle_after is not None:
            failing = str(details.get("card_number", "")).endswith(FAILING_CARD_SUFFIX)
            self.schedule(payment_id, "failed" if failing else "executed", self.settle_after,
                          "card declined by the issuer" if failing else "")
        return payment

    def _move(self, payment_id: str, status: str, error_message: str) -> None:
        payment = self.payments[payment_id]
        if status == "executed" and payment["status"] != "executed":
            self.balance -= kopecks(payment["amount"])
        payment.update(status=status, updated_at=self._stamp(), paid_at=self._stamp() if status == "executed" else None)
        if error_message:
            payment["error_message"] = error_message

    def _catch_up(self) -> None:
        """The status changes due by the clock, so that a lookup sees what konsol.pro would show now."""
        for due in [due for due in self._due if due.action == "status" and due.at <= self.clock()]:
            self._due.remove(due)
            self._move(due.payment_id, due.status, due.error_message)
            self._push(Due(due.at, self._next(), "deliver", due.payment_id, body=self._webhook(due.payment_id)))

    def _webhook(self, payment_id: str) -> bytes:
        """The body the reference describes (§3.2) [SEED]."""
        payment = self.payments[payment_id]
        body = {"event": EVENT_FOR_STATUS.get(payment["status"], "payment.updated"),
                "data": {"id": payment_id, "amount": payment["amount"], "status": payment["status"]},
                "timestamp": self._stamp()}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    async def _post(self, body: bytes, *, signed: bool = True) -> int:
        headers = {"Content-Type": "application/json"}
        if signed and self.webhook_secret:
            headers[SIGNATURE_HEADER] = signature(body, self.webhook_secret)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                async with session.post(self.notify_url, data=body, headers=headers) as response:
                    await response.read()
                    return response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("konsol emulator: webhook not delivered (%s)", type(err).__name__)
            return 0

    def _take(self, route: str) -> Injected | None:
        queue = self._injected.get(route)
        return queue.pop(0) if queue else None

    @staticmethod
    def _refusal(injected: Injected) -> web.Response:
        return web.json_response({"message": injected.message or f"emulated HTTP {injected.status}"},
                                 status=injected.status)

    def _public(self, payment: dict[str, Any]) -> dict[str, Any]:
        shown = dict(payment)
        details = dict(payment["bank_details"])
        if "card_number" in details:  # konsol.pro answers with a masked card, as card processors do
            number = str(details["card_number"])
            details["card_number"] = f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"
        shown["bank_details"] = details
        return shown

    def _push(self, due: Due) -> None:
        self._due.append(due)
        self._due.sort()

    def _next(self) -> int:
        self._order += 1
        return self._order

    def _stamp(self) -> str:
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _ticking(self, app: web.Application) -> AsyncIterator[None]:
        """The demo's driver: run what is due on a real timer. Tests leave `tick_every` unset."""
        task = asyncio.create_task(self._tick()) if self.tick_every else None
        yield
        self.release.set()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_every or 1)
            await self.run_due()


# ---- ymds simulate and ymds demo ------------------------------------------------------------------

EVENTS = ("completed", "failed", "cancelled", "manualpay", "nalog_unbound", "created")
STATUS_FOR_EVENT = {"completed": "executed", "failed": "failed", "cancelled": "cancelled", "manualpay": "manualpay",
                    "nalog_unbound": "nalog_unbound", "created": "created"}


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate konsol EVENT --invoice CLAIM_LABEL`: konsol.pro moves the claim's payment on (at the
    emulator KONSOL_BASE_URL points to, when it is one) and sends the signed webhook."""
    if settings.konsol_api_token is None:
        raise ConfigError("KONSOL_API_TOKEN: payouts are off")
    admin = settings.admin_api_token.get_secret_value() if settings.admin_api_token else ""
    async with session.get(f"{url}/api/payouts/{label}", headers={"Authorization": f"Bearer {admin}"}) as response:
        if response.status != 200:
            raise ConfigError(f"cannot read payout claim {label} from {url} (HTTP {response.status})")
        claim = await response.json()
    payment_id = claim.get("konsol_id")
    if not payment_id:
        raise ConfigError(f"claim {label} has no konsol.pro payment yet (status {claim.get('status')})")
    status = STATUS_FOR_EVENT[event]
    control = settings.konsol_base_url.rstrip("/") + CONTROL_PATH.format(payment_id=payment_id)
    headers = {"Authorization": f"Bearer {settings.konsol_api_token.get_secret_value()}"}
    try:
        async with session.post(control, json={"status": status}, headers=headers) as moved:
            await moved.read()
    except aiohttp.ClientError:
        log.info("KONSOL_BASE_URL is no emulator; the webhook alone is sent")
    total = rubles(int(Decimal(amount) * 100)) if amount else rubles(int(claim["amount"]))
    body = json.dumps({"event": EVENT_FOR_STATUS.get(status, "payment.updated"),
                       "data": {"id": payment_id, "amount": total, "status": status},
                       "timestamp": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")},
                      separators=(",", ":"), ensure_ascii=False).encode()
    signed = ({SIGNATURE_HEADER: signature(body, settings.konsol_webhook_secret.get_secret_value())}
              if settings.konsol_webhook_secret else {})
    async with session.post(f"{url}/notify/konsol", data=body,
                            headers={"Content-Type": "application/json", **signed}) as response:
        await response.read()
        return response.status


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "konsol_api_token": "demo-konsol-token",
        "konsol_base_url": emulator_url,
        "konsol_webhook_secret": "demo-konsol-webhook-secret",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    """The demo's konsol.pro: a payout settles two seconds after it is made, on the real clock."""
    if settings.konsol_api_token is None:
        return None
    return KonsolEmulator(
        token=settings.konsol_api_token.get_secret_value(),
        webhook_secret=settings.konsol_webhook_secret.get_secret_value() if settings.konsol_webhook_secret else None,
        notify_url=local_base + "/notify/konsol",
        settle_after=timedelta(seconds=2),
        tick_every=0.5,
    ).app()
