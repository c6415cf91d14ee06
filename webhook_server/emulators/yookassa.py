"""A YooKassa emulator: API v3 (payments, capture, cancel, refunds; Basic auth, Idempotence-Key and
YooKassa's error bodies), a confirmation page where the payer pays or declines, and notifications.

The objects it keeps move as YooKassa's do: pending → succeeded (or waiting_for_capture when
created with capture false) or canceled; a refund makes the payment's `refunded_amount` grow.
A notification carries the object as it is when its status changed; the server under test must
fetch it again, which this emulator answers. `/control/payments/{id}` changes a payment's state
without a notification, for `ymds simulate`, which then notifies as YooKassa would.

A charge of a saved method (`payment_method_id`, no confirmation) is decided at once: succeeded, or
canceled with `permission_revoked` for a method this shop never saved, or with the reason
`decline_method` (or `POST /control/methods/{id}/decline`) set for its next charges; its notification
follows in the background, as after any merchant-initiated payment.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from billing.money import Money
from billing.providers.yookassa.protocol import (
    PAYMENT_CANCELED,
    PAYMENT_SUCCEEDED,
    PAYMENT_WAITING,
    REFUND_SUCCEEDED,
    amount_json,
    authorization,
    build_notification,
    payment_request,
    read_amount,
)
from billing.signing import secrets_equal
from settings import ConfigError, Settings
from webhook_server.emulators.common import Declines, control_body, invoice_amount, times_of

log = logging.getLogger(__name__)

MOUNT = "/emulator/yookassa"  # where `ymds demo` mounts it (webhook_server/demo.py EMULATOR_ROOT + name)
FEE_PER_MILLE = 35  # YooKassa's fee (3.5 %) in tenths of a percent, for income_amount
TEST_CARD = {"first6": "555555", "last4": "4444", "expiry_month": "12", "expiry_year": "2030",
             "card_type": "MasterCard", "issuer_country": "RU"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_body(code: str, description: str, parameter: str | None = None) -> dict[str, str]:
    """YooKassa's error object (reference TV7)."""
    body = {"type": "error", "id": str(uuid.uuid4()), "code": code, "description": description}
    return body | {"parameter": parameter} if parameter else body


def error(status: int, code: str, description: str, parameter: str | None = None) -> web.Response:
    return web.json_response(error_body(code, description, parameter), status=status)


@dataclass(slots=True)
class YooKassaEmulator:
    shop_id: str
    secret_key: str
    checkout_base: str = ""  # where the payer's browser reaches this emulator
    notify_url: str | None = None  # None: no notifications unless a test sends them
    test: bool = True
    refund_status: str = "succeeded"  # what a new refund becomes: succeeded, pending or canceled
    fail_with: int | None = None  # answer every API call with this HTTP status (an outage)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    deliveries: list[tuple[str, int]] = field(default_factory=list)
    saved_methods: set[str] = field(default_factory=set)  # payment_method ids a later charge may use
    method_declines: Declines[str] = field(default_factory=Declines)  # method id → cancellation reason
    charges: list[str] = field(default_factory=list)  # ids of the payments made by charging a saved method
    _keys: dict[str, tuple[str, int, Any]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/v3/payments", self._create_payment),
            web.get("/v3/payments/{id}", self._get_payment),
            web.post("/v3/payments/{id}/capture", self._capture),
            web.post("/v3/payments/{id}/cancel", self._cancel),
            web.post("/v3/refunds", self._create_refund),
            web.get("/v3/refunds/{id}", self._get_refund),
            web.get("/checkout/{id}", self._checkout_page),
            web.post("/checkout/{id}", self._checkout),
            web.post("/control/payments/{id}", self._control),
            web.post("/control/methods/{id}/decline", self._control_decline),
            web.delete("/control/methods/{id}/decline", self._control_allow),
        ])
        return app

    # ---- the state machine (tests call it directly too)

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        payment_id = str(uuid.uuid4())
        payment: dict[str, Any] = {
            "id": payment_id, "status": "pending", "paid": False, "amount": dict(body["amount"]),
            "description": body.get("description", ""), "recipient": {"account_id": self.shop_id,
                                                                       "gateway_id": "2190001"},
            "created_at": now_iso(), "test": self.test, "refundable": False,
            "metadata": dict(body.get("metadata") or {}), "_capture": bool(body.get("capture", False)),
            "_save": body.get("save_payment_method") is True,
        }
        self.payments[payment_id] = payment
        method_id = body.get("payment_method_id")
        if isinstance(method_id, str):
            self._charge_method(payment, method_id)
        else:
            payment["confirmation"] = {"type": "redirect", "return_url": body["confirmation"]["return_url"],
                                       "confirmation_url": f"{self.checkout_base}/checkout/{payment_id}"}
        return payment

    def _charge_method(self, payment: dict[str, Any], method_id: str) -> None:
        """A merchant-initiated charge: succeeded, or canceled as the issuer or YooKassa would cancel it."""
        self.charges.append(payment["id"])
        payment["_save"] = True
        if method_id not in self.saved_methods:
            self.cancel(payment["id"], "yoo_money", "permission_revoked")
            return
        reason = self.method_declines.take(method_id)
        if reason is None:
            self.succeed(payment["id"], payment=payment, method_id=method_id)
        else:
            self.cancel(payment["id"], "payment_network", reason)

    def decline_method(self, method_id: str, reason: str, times: int = 0) -> None:
        """Cancel the next `times` charges of a saved method (all of them while 0) with this reason."""
        self.method_declines.add(method_id, reason, times)

    def allow_method(self, method_id: str) -> None:
        self.method_declines.clear(method_id)

    def succeed(self, payment_id: str, *, payment: dict[str, Any] | None = None,
                method_id: str | None = None) -> dict[str, Any]:
        """The payer paid: succeeded (captured) or, for capture false, waiting_for_capture."""
        payment = payment or self.payments[payment_id]
        payment.pop("confirmation", None)
        minor = read_amount(payment["amount"]).minor  # type: ignore[union-attr]
        saved = payment["_save"]
        payment.update({
            "paid": True, "status": "succeeded" if payment["_capture"] or method_id else "waiting_for_capture",
            "income_amount": amount_json(Money(minor - -(-minor * FEE_PER_MILLE // 1000), payment["amount"]["currency"])),
            "payment_method": {"type": "bank_card", "id": method_id or payment_id, "saved": saved,
                               "title": f"Bank card *{TEST_CARD['last4']}", "card": dict(TEST_CARD)},
            "authorization_details": {"rrn": "603668680243", "auth_code": "000000",
                                      "three_d_secure": {"applied": False}},
        })
        if payment["status"] == "succeeded":
            self._captured(payment)
        if saved:
            self.saved_methods.add(payment["payment_method"]["id"])
        return payment

    def _captured(self, payment: dict[str, Any]) -> None:
        payment.update({"status": "succeeded", "captured_at": now_iso(), "refundable": True,
                        "refunded_amount": {"value": "0.00", "currency": payment["amount"]["currency"]}})

    def cancel(self, payment_id: str, party: str = "payment_network",
               reason: str = "insufficient_funds") -> dict[str, Any]:
        payment = self.payments[payment_id]
        payment.pop("confirmation", None)
        payment.update({"status": "canceled", "paid": False,
                        "cancellation_details": {"party": party, "reason": reason}})
        return payment

    def refund(self, payment_id: str, amount: Money, description: str = "") -> dict[str, Any]:
        payment = self.payments[payment_id]
        refund = {"id": str(uuid.uuid4()), "payment_id": payment_id, "status": self.refund_status,
                  "created_at": now_iso(), "amount": amount_json(amount), "description": description}
        if self.refund_status == "canceled":
            refund["cancellation_details"] = {"party": "yoo_money", "reason": "rejected_by_payee"}
        else:
            refunded = read_amount(payment["refunded_amount"]).minor + amount.minor  # type: ignore[union-attr]
            payment["refunded_amount"] = amount_json(Money(refunded, amount.currency))
            payment["refundable"] = refunded < read_amount(payment["amount"]).minor  # type: ignore[union-attr]
        self.refunds[refund["id"]] = refund
        return refund

    def public(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """An object as the API shows it (without the emulator's own bookkeeping)."""
        return {name: value for name, value in obj.items() if not name.startswith("_")}

    def notification(self, event: str, object_id: str) -> dict[str, Any]:
        store = self.refunds if event == REFUND_SUCCEEDED else self.payments
        return build_notification(event, self.public(store[object_id]))

    async def deliver(self, event: str, object_id: str, url: str | None = None) -> int:
        """POST a notification as YooKassa does; returns the HTTP status the shop answered."""
        target = url or self.notify_url
        assert target is not None
        async with aiohttp.ClientSession() as session:
            async with session.post(target, json=self.notification(event, object_id)) as response:
                await response.read()
                self.deliveries.append((event, response.status))
                return response.status

    async def settle(self) -> None:
        """Wait for the notifications sent in the background (refunds)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    # ---- the API

    async def _api(self, request: web.Request) -> tuple[web.Response | None, Any]:
        """Record the call, check auth and the outage switch; the JSON body or an error answer."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append((request.method, request.path, dict(request.headers), body))
        if self.fail_with is not None:
            return error(self.fail_with, "internal_server_error", "emulated outage"), None
        if not secrets_equal(authorization(self.shop_id, self.secret_key), request.headers.get("Authorization", "")):
            return error(401, "invalid_credentials", "Login or password is incorrect"), None
        if request.method == "POST":
            key = request.headers.get("Idempotence-Key", "")
            if not key or len(key) > 64:
                return error(400, "invalid_request", "Idempotence key is missing or too long",
                             "Idempotence-Key"), None
            if not isinstance(body, dict):
                return error(400, "invalid_request", "Request body is not a JSON object"), None
        return None, body

    async def _idempotent(self, request: web.Request, make: Any) -> web.Response:
        refusal, body = await self._api(request)
        if refusal is not None:
            return refusal
        key = request.headers["Idempotence-Key"]
        fingerprint = request.path + json.dumps(body, sort_keys=True)
        if key in self._keys:
            seen, status, answer = self._keys[key]
            if seen != fingerprint:
                return error(400, "invalid_request", "Idempotence key duplicated", "Idempotence-Key")
            return web.json_response(answer, status=status)
        status, answer = make(body)
        self._keys[key] = (fingerprint, status, answer)
        return web.json_response(answer, status=status)

    async def _create_payment(self, request: web.Request) -> web.Response:
        def make(body: dict[str, Any]) -> tuple[int, Any]:
            if read_amount(body.get("amount")) is None:
                return 400, error_body("invalid_request", "Invalid amount", "amount")
            charge = "payment_method_id" in body
            if charge and not isinstance(body["payment_method_id"], str):
                return 400, error_body("invalid_request", "Invalid payment method id", "payment_method_id")
            if not charge and (not isinstance(body.get("confirmation"), dict)
                               or "return_url" not in body["confirmation"]):
                return 400, error_body("invalid_request", "Confirmation is missing", "confirmation")
            payment = self.create(body)
            if charge:
                self._later(PAYMENT_SUCCEEDED if payment["status"] == "succeeded" else PAYMENT_CANCELED,
                            payment["id"])
            return 200, self.public(payment)
        return await self._idempotent(request, make)

    async def _get_payment(self, request: web.Request) -> web.Response:
        return await self._get(request, self.payments)

    async def _get_refund(self, request: web.Request) -> web.Response:
        return await self._get(request, self.refunds)

    async def _get(self, request: web.Request, store: dict[str, dict[str, Any]]) -> web.Response:
        refusal, _ = await self._api(request)
        if refusal is not None:
            return refusal
        obj = store.get(request.match_info["id"])
        if obj is None:
            return error(404, "not_found", "Object not found")
        return web.json_response(self.public(obj))

    async def _capture(self, request: web.Request) -> web.Response:
        return await self._settle_held(request, capture=True)

    async def _cancel(self, request: web.Request) -> web.Response:
        return await self._settle_held(request, capture=False)

    async def _settle_held(self, request: web.Request, *, capture: bool) -> web.Response:
        """Capture or cancel a payment waiting for capture; YooKassa then notifies the new status."""
        def make(body: dict[str, Any]) -> tuple[int, Any]:
            payment = self.payments.get(request.match_info["id"])
            if payment is None or payment["status"] != "waiting_for_capture":
                return 400, error_body("invalid_request", "Wrong payment status")
            if capture:
                self._captured(payment)
            else:
                self.cancel(payment["id"], "merchant", "canceled_by_merchant")
            self._later(PAYMENT_SUCCEEDED if capture else PAYMENT_CANCELED, payment["id"])
            return 200, self.public(payment)
        return await self._idempotent(request, make)

    async def _create_refund(self, request: web.Request) -> web.Response:
        def make(body: dict[str, Any]) -> tuple[int, Any]:
            payment = self.payments.get(str(body.get("payment_id")))
            amount = read_amount(body.get("amount"))
            if payment is None or payment["status"] != "succeeded" or amount is None:
                return 400, error_body("invalid_request", "Payment cannot be refunded", "payment_id")
            paid, refunded = read_amount(payment["amount"]), read_amount(payment["refunded_amount"])
            if paid is None or refunded is None or amount.minor > paid.minor - refunded.minor:
                return 400, error_body("invalid_request", "Refund amount exceeds the payment's remainder", "amount")
            refund = self.refund(payment["id"], amount, str(body.get("description", "")))
            if refund["status"] == "succeeded":
                self._later(REFUND_SUCCEEDED, refund["id"])
            return 200, refund
        return await self._idempotent(request, make)

    def _later(self, event: str, object_id: str) -> None:
        """Notify in the background, after the API call has answered (as YooKassa does)."""
        if self.notify_url is None:
            return
        task = asyncio.get_running_loop().create_task(self.deliver(event, object_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the payer's confirmation page, and the control the simulator uses

    async def _checkout_page(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None or payment["status"] != "pending":
            return web.Response(status=404, text="no payment waits for confirmation here")
        body = (
            "<!doctype html><meta charset='utf-8'><title>YooKassa emulator</title><h1>YooKassa emulator</h1>"
            f"<p>Pay {html.escape(payment['amount']['value'])} {html.escape(payment['amount']['currency'])}: "
            f"{html.escape(payment['description'])}</p><p>Test card {TEST_CARD['first6']}******{TEST_CARD['last4']}"
            "</p><form method='post'><button type='submit' name='outcome' value='pay' id='emulator-pay'>Pay</button> "
            "<button type='submit' name='outcome' value='decline' id='emulator-decline'>Decline</button></form>"
        )
        return web.Response(text=body, content_type="text/html")

    async def _checkout(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None or payment["status"] != "pending":
            return web.Response(status=404, text="no payment waits for confirmation here")
        return_url = payment["confirmation"]["return_url"]
        declined = (await request.post()).get("outcome") == "decline"
        if declined:
            self.cancel(payment["id"])
        else:
            self.succeed(payment["id"])
        event = PAYMENT_CANCELED if declined else {"succeeded": PAYMENT_SUCCEEDED}.get(payment["status"],
                                                                                       PAYMENT_WAITING)
        if self.notify_url is not None:
            status = await self.deliver(event, payment["id"])
            if status != 200:
                return web.Response(status=502, text=f"the shop answered the notification with HTTP {status}")
        raise web.HTTPSeeOther(return_url)

    async def _control(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        try:
            body = await request.json()
        except ValueError:
            return error(400, "invalid_request", "Request body is not JSON")
        if payment is None or not isinstance(body, dict):
            return error(404, "not_found", "Object not found")
        outcome = body.get("outcome")
        if outcome == "pay" and payment["status"] == "pending":
            return web.json_response(self.public(self.succeed(payment["id"])))
        if outcome == "decline" and payment["status"] == "pending":
            return web.json_response(self.public(self.cancel(payment["id"])))
        if outcome == "refund" and payment["status"] == "succeeded":
            return web.json_response(self.refund(payment["id"], read_amount(payment["amount"])))  # type: ignore[arg-type]
        return error(400, "invalid_request", f"cannot {outcome} a {payment['status']} payment")

    async def _control_decline(self, request: web.Request) -> web.Response:
        """POST /control/methods/{id}/decline {"reason": "insufficient_funds", "times": N (absent or 0: always)}."""
        body = await control_body(request)
        reason, times = (body.get("reason"), times_of(body)) if body is not None else (None, None)
        if not isinstance(reason, str) or not reason or times is None:
            return error(400, "invalid_request", "expected {\"reason\": str, \"times\": int >= 0}")
        self.decline_method(request.match_info["id"], reason, times)
        return web.json_response({"method": request.match_info["id"], "reason": reason, "times": times})

    async def _control_allow(self, request: web.Request) -> web.Response:
        """DELETE /control/methods/{id}/decline: the method's charges succeed again."""
        self.allow_method(request.match_info["id"])
        return web.json_response({"method": request.match_info["id"], "reason": None})


EVENTS = ("payment", "canceled", "refund")


def emulator_base(settings: Settings, url: str) -> str:
    """The emulator the server at `url` talks to: the demo's own (mounted inside it), or YOOKASSA_API_URL's."""
    api = settings.yookassa_api_url.rstrip("/")
    return url.rstrip("/") + MOUNT if api.endswith(MOUNT + "/v3") else api.removesuffix("/v3")


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate yookassa EVENT`: a payment for the invoice at the emulator, paid (or declined, or paid and
    refunded) there, then its notifications sent from here as YooKassa sends them. Returns our server's answer
    (the first that was not 200)."""
    assert settings.yookassa_shop_id is not None and settings.yookassa_secret_key is not None
    paid = read_amount({"value": amount, "currency": "RUB"}) if amount else Money(
        await invoice_amount(session, settings, url, label, "RUB"), "RUB")
    if paid is None:
        raise ConfigError(f"--amount {amount!r} is not an amount such as 299.00")
    base = emulator_base(settings, url)
    headers = {"Authorization": authorization(settings.yookassa_shop_id,
                                              settings.yookassa_secret_key.get_secret_value()),
               "Idempotence-Key": str(uuid.uuid4())}
    body = payment_request(amount=paid, return_url=f"{url}/pay/{label}", description=f"ymds simulate {event}",
                           label=label, save_method=settings.yookassa_save_payment_method)
    async with session.post(f"{base}/v3/payments", json=body, headers=headers) as response:
        if response.status != 200:
            raise ConfigError(f"the YooKassa emulator at {base} answered HTTP {response.status}; `ymds simulate "
                              "yookassa` needs the emulator of `ymds demo` (or YOOKASSA_API_URL pointing at one)")
        payment = await response.json()
    changed = await _control(session, base, payment["id"], "decline" if event == "canceled" else "pay")
    status = await _notify(session, url, PAYMENT_CANCELED if event == "canceled" else PAYMENT_SUCCEEDED, changed)
    if event != "refund" or status != 200:
        return status
    return await _notify(session, url, REFUND_SUCCEEDED, await _control(session, base, payment["id"], "refund"))


async def _control(session: aiohttp.ClientSession, base: str, payment_id: str, outcome: str) -> dict[str, Any]:
    async with session.post(f"{base}/control/payments/{payment_id}", json={"outcome": outcome}) as response:
        if response.status != 200:
            raise ConfigError(f"the YooKassa emulator could not {outcome} payment {payment_id}: HTTP {response.status}")
        answer: dict[str, Any] = await response.json()
        return answer


async def _notify(session: aiohttp.ClientSession, url: str, event: str, obj: dict[str, Any]) -> int:
    async with session.post(f"{url}/notify/yookassa", json=build_notification(event, obj)) as response:
        await response.read()
        log.info("yookassa %s for %s: our server answered HTTP %s", event, obj.get("id"), response.status)
        return response.status


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "yookassa_shop_id": "100500",
        "yookassa_secret_key": "demo-yookassa-secret-key",
        "yookassa_api_url": emulator_url + "/v3",
        "yookassa_notify_ips": "127.0.0.1,::1",  # the emulator notifies over loopback
        "yookassa_test_mode": "true",
        "yookassa_save_payment_method": "true",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    """The emulator, unless YooKassa is disabled or YOOKASSA_API_URL points elsewhere (the real API)."""
    if not (settings.yookassa_shop_id and settings.yookassa_secret_key) or not settings.yookassa_api_url.rstrip(
            "/").endswith(MOUNT + "/v3"):
        return None
    return YooKassaEmulator(
        shop_id=settings.yookassa_shop_id,
        secret_key=settings.yookassa_secret_key.get_secret_value(),
        checkout_base=settings.public_base_url.rstrip("/") + MOUNT,
        notify_url=local_base + "/notify/yookassa",
        test=settings.yookassa_test_mode,
    ).app()
