"""A konsol.pro Payments API emulator: payouts by card or SBP (create, get, list, cancel), the SBP bank
directory, the company balance, and webhooks to the shop, with konsol.pro's Bearer auth.

Conventions of the emulator (konsol.pro publishes no sandbox): a created payment is `created`; `settle()`
(or, in the demo, a timer) moves it on and POSTs the webhook body with X-Konsol-Signature; card numbers
ending in 0004 fail. Tests inject failures: an HTTP status, a dropped connection after the payment was
made, or a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web

from billing.payouts.cards import luhn_valid
from billing.providers.konsol import (
    FALLBACK_BANKS,
    SIGNATURE_HEADER,
    format_amount,
    parse_amount,
    sign_webhook,
    webhook_body,
)
from settings import ConfigError, Settings

log = logging.getLogger(__name__)

CONTROL_PATH = "/_emulator/payments/{payment_id}/status"
FAILING_CARD_SUFFIX = "0004"
FINAL = ("executed", "failed", "cancelled")
_PHONE = re.compile(r"\+7[0-9]{10}")


@dataclass(slots=True)
class Injected:
    kind: str  # "status", "drop" (make the payment, then drop the connection), "hang"
    status: int = 500
    message: str = ""


@dataclass(slots=True)
class KonsolEmulator:
    token: str
    webhook_secret: str | None
    notify_url: str
    auto_settle_after: float | None = None  # the demo: seconds until a created payment settles by itself
    delivery_attempts: int = 1  # konsol.pro makes 5, a second apart [DOC]; tests keep 1
    delivery_interval: float = 1.0
    balance: int = 100_000_000  # kopecks on the company account
    banks: list[dict[str, str]] = field(default_factory=lambda: [{"id": bank.id, "name": bank.name, "bic": ""}
                                                                 for bank in FALLBACK_BANKS])
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[int] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    _injected: dict[str, list[Injected]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.post("/api/v1/payments", self.create),
            web.get("/api/v1/payments", self.list_payments),
            web.get("/api/v1/payments/{payment_id}", self.get),
            web.post("/api/v1/payments/{payment_id}/cancel", self.cancel),
            web.get("/api/v1/references/fps_bank_members", self.bank_directory),
            web.get("/api/v1/company_accounts", self.accounts),
            web.post(CONTROL_PATH, self.control),
        ])
        app.on_shutdown.append(self._stop)
        return app

    # ---- for tests ------------------------------------------------------------------------------

    def fail_next(self, route: str, status: int, message: str = "", *, times: int = 1) -> None:
        """The next `times` calls of `route` ("create", "get", "list", ...) answer `status`."""
        self._injected.setdefault(route, []).extend(Injected("status", status, message) for _ in range(times))

    def drop_next_create(self, *, times: int = 1) -> None:
        """Make the payment, then close the connection unanswered: the caller cannot know it exists."""
        self._injected.setdefault("create", []).extend(Injected("drop") for _ in range(times))

    def hang_next(self, route: str) -> None:
        """Answer only once `release` is set (or after 30 s): the caller's timeout fires first."""
        self._injected.setdefault(route, []).append(Injected("hang"))

    def created(self) -> list[dict[str, Any]]:
        return list(self.payments.values())

    async def settle(self, payment_id: str, status: str = "executed", error_message: str = "") -> list[int]:
        """konsol.pro moves the payment on and tells the shop (each delivery's HTTP status, in order)."""
        payment = self.payments[payment_id]
        if status == "executed" and payment["status"] != "executed":
            self.balance -= parse_amount(payment["amount"])
        payment.update(status=status, updated_at=_now(), paid_at=_now() if status == "executed" else None)
        if error_message:
            payment["error_message"] = error_message
        return await self.deliver(payment_id)

    async def deliver(self, payment_id: str, *, body: bytes | None = None, signed: bool = True) -> list[int]:
        payment = self.payments[payment_id]
        raw = body or webhook_body(payment_id, parse_amount(payment["amount"]), payment["status"], _now())
        headers = {"Content-Type": "application/json"}
        if signed and self.webhook_secret:
            headers[SIGNATURE_HEADER] = sign_webhook(raw, self.webhook_secret)
        statuses: list[int] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for attempt in range(self.delivery_attempts):
                try:
                    async with session.post(self.notify_url, data=raw, headers=headers) as response:
                        await response.read()
                        statuses.append(response.status)
                except aiohttp.ClientError as err:
                    log.warning("konsol emulator: webhook not delivered (%s)", type(err).__name__)
                    statuses.append(0)
                if 200 <= statuses[-1] < 300:
                    break
                if attempt + 1 < self.delivery_attempts:
                    await asyncio.sleep(self.delivery_interval)
        self.deliveries.extend(statuses)
        return statuses

    # ---- the API --------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error_message": "Access denied"}, status=401)
        return await handler(request)

    async def _inject(self, route: str, request: web.Request) -> Injected | web.Response | None:
        queue = self._injected.get(route)
        if not queue:
            return None
        injected = queue.pop(0)
        if injected.kind == "status":
            return web.json_response({"message": injected.message or f"emulated HTTP {injected.status}"},
                                     status=injected.status)
        if injected.kind == "hang":
            try:
                await asyncio.wait_for(self.release.wait(), 30)
            except TimeoutError:
                pass
            return web.json_response({"message": "too late"}, status=504)
        return injected

    async def create(self, request: web.Request) -> web.StreamResponse:
        injected = await self._inject("create", request)
        if isinstance(injected, web.Response):
            return injected
        try:
            body = json.loads(await request.read())
            payment = self._new_payment(body)
        except (ValueError, KeyError, TypeError) as err:
            return web.json_response({"message": f"validation failed: {err}"}, status=422)
        if isinstance(injected, Injected) and injected.kind == "drop":
            assert request.transport is not None
            request.transport.close()  # made, never answered
            raise asyncio.CancelledError
        return web.json_response(self._public(payment), status=201)

    def _new_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        amount = parse_amount(body["amount"])
        services = body["services_list"]
        if sum(parse_amount(item["amount"]) for item in services) != amount or amount <= 0:
            raise ValueError("services_list does not add up to amount")
        if amount > self.balance:
            raise ValueError("insufficient funds on the company account")
        kind, details = body["bank_details_kind"], body["bank_details"]
        if kind == "card":
            number = str(details["card_number"])
            if not (number.isdigit() and 16 <= len(number) <= 19 and luhn_valid(number)):
                raise ValueError("card_number is invalid")
        elif kind == "fps":
            if not _PHONE.fullmatch(str(details["fps_mobile_phone"])):
                raise ValueError("fps_mobile_phone must be +7XXXXXXXXXX")
            if str(details["fps_bank_member_id"]) not in {bank["id"] for bank in self.banks}:
                raise ValueError("unknown fps_bank_member_id")
        else:
            raise ValueError("bank_details_kind must be card or fps")
        payment_id = str(uuid.uuid4())
        payment = {"id": payment_id, "contractor_id": str(uuid.uuid4()), "amount": format_amount(amount),
                   "status": "created", "purpose": str(body.get("purpose", ""))[:512], "services_list": services,
                   "bank_details_kind": kind, "bank_details": details, "created_at": _now(), "updated_at": _now(),
                   "paid_at": None}
        self.payments = {payment_id: payment, **self.payments}  # newest first, as lists are read
        if self.auto_settle_after is not None:
            outcome = "failed" if str(details.get("card_number", "")).endswith(FAILING_CARD_SUFFIX) else "executed"
            task = asyncio.get_running_loop().create_task(self._settle_later(payment_id, outcome))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return payment

    async def _settle_later(self, payment_id: str, outcome: str) -> None:
        await asyncio.sleep(self.auto_settle_after or 0)
        await self.settle(payment_id, outcome, "card declined by the issuer" if outcome == "failed" else "")

    async def get(self, request: web.Request) -> web.Response:
        injected = await self._inject("get", request)
        if isinstance(injected, web.Response):
            return injected
        payment = self.payments.get(request.match_info["payment_id"])
        if payment is None:
            return web.json_response({"message": "Payment not found"}, status=404)
        return web.json_response(self._public(payment))

    async def list_payments(self, request: web.Request) -> web.Response:
        injected = await self._inject("list", request)
        if isinstance(injected, web.Response):
            return injected
        page = max(int(request.query.get("page", "1")), 1)
        per_page = min(max(int(request.query.get("per_page", "50")), 1), 100)
        status = request.query.get("status")
        rows = [self._public(p) for p in self.payments.values() if status in (None, p["status"])]
        chunk = rows[(page - 1) * per_page: page * per_page]
        has_next = "true" if len(rows) > page * per_page else "false"
        return web.json_response(chunk, headers={"X-Has-Next-Page": has_next})

    async def cancel(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["payment_id"])
        if payment is None:
            return web.json_response({"message": "Payment not found"}, status=404)
        if payment["status"] in FINAL:
            return web.json_response({"message": f"payment is {payment['status']}"}, status=422)
        payment.update(status="cancelled", updated_at=_now())
        return web.json_response(self._public(payment))

    async def bank_directory(self, request: web.Request) -> web.Response:
        injected = await self._inject("banks", request)
        if isinstance(injected, web.Response):
            return injected
        return web.json_response(self.banks)

    async def accounts(self, request: web.Request) -> web.Response:
        injected = await self._inject("balance", request)
        if isinstance(injected, web.Response):
            return injected
        return web.json_response([{"id": "nominal-1", "balance": format_amount(self.balance), "currency": "RUB"}])

    async def control(self, request: web.Request) -> web.Response:
        """Not konsol.pro's: lets `ymds simulate konsol` move a payment on, as konsol.pro would."""
        payment_id = request.match_info["payment_id"]
        if payment_id not in self.payments:
            return web.json_response({"message": "Payment not found"}, status=404)
        body = await request.json()
        self.payments[payment_id].update(status=str(body["status"]), updated_at=_now())
        return web.json_response(self._public(self.payments[payment_id]))

    def _public(self, payment: dict[str, Any]) -> dict[str, Any]:
        shown = dict(payment)
        details = dict(payment["bank_details"])
        if "card_number" in details:  # konsol.pro answers with a masked card, as card processors do
            number = str(details["card_number"])
            details["card_number"] = f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"
        shown["bank_details"] = details
        return shown

    async def _stop(self, app: web.Application) -> None:
        self.release.set()
        for task in list(self._tasks):
            task.cancel()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    kopecks = int(Decimal(amount) * 100) if amount else int(claim["amount"])
    body = webhook_body(payment_id, kopecks, status, _now())
    signature = ({SIGNATURE_HEADER: sign_webhook(body, settings.konsol_webhook_secret.get_secret_value())}
                 if settings.konsol_webhook_secret else {})
    async with session.post(f"{url}/notify/konsol", data=body,
                            headers={"Content-Type": "application/json", **signature}) as response:
        await response.read()
        return response.status


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "konsol_api_token": "demo-konsol-token",
        "konsol_base_url": emulator_url,
        "konsol_webhook_secret": "demo-konsol-webhook-secret",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    if settings.konsol_api_token is None:
        return None
    return KonsolEmulator(
        token=settings.konsol_api_token.get_secret_value(),
        webhook_secret=settings.konsol_webhook_secret.get_secret_value() if settings.konsol_webhook_secret else None,
        notify_url=local_base + "/notify/konsol",
        auto_settle_after=2.0,
        delivery_attempts=5,
    ).app()
