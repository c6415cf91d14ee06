"""A YooKassa emulator: API v3 (payments, the payments list, capture, cancel, refunds; Basic auth,
Idempotence-Key and YooKassa's error bodies), a confirmation page where the payer pays or declines, and
notifications that are redelivered on the emulator's own clock for 24 hours, then given up.

Its formats come from the reference through `yookassa_wire`, never from billing/providers/yookassa. The
objects it keeps move as YooKassa's do: pending → succeeded (or waiting_for_capture when created with
capture false) or canceled; a refund makes the payment's `refunded_amount` grow. A notification carries
the object as it was when its status changed; the server under test must fetch it again, which this
emulator answers. `/control/payments/{id}` changes a payment's state without a notification, for
`ymds simulate`, which then notifies as YooKassa would; `/control/notifications/drop` loses deliveries
(the next N, or all) and `/control/notifications/redeliver` runs the redelivery schedule now.

A charge of a saved method (`payment_method_id`, no confirmation) is decided at once: succeeded, or
canceled with `permission_revoked` for a method this shop never saved, or with the reason
`decline_method` (or `POST /control/methods/{id}/decline`) set for its next charges; its notification
follows in the background, as after any merchant-initiated payment. The shop's refusals on demand
(`rules`, `POST /control/shop` and `/control/failures`, see yookassa_refusals): autopayments off (403),
receipts required (400), 5xx and 429 before or after the payment is made, and charges left pending
for a while on the emulator's clock, decided by the next API call after that time.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web

from billing.money import Money
from settings import Settings
from webhook_server.emulators.common import control_body, times_of
from webhook_server.emulators.yookassa_outbox import Notice, Outbox
from webhook_server.emulators.yookassa_pages import checkout_page
from webhook_server.emulators.yookassa_refusals import ShopRules, failure_code
from webhook_server.emulators.yookassa_simulate import EVENTS, MOUNT, emulator_base, simulate
from webhook_server.emulators.yookassa_state import TEST_CARD, YooKassaShop
from webhook_server.emulators.yookassa_wire import (
    PAYMENT_CANCELED,
    PAYMENT_SUCCEEDED,
    PAYMENT_WAITING,
    REFUND_SUCCEEDED,
    ListQuery,
    ListRefused,
    amount_minor,
    basic_auth,
    list_page,
)

log = logging.getLogger(__name__)

__all__ = ["EVENTS", "MOUNT", "YooKassaEmulator", "demo_app", "demo_values", "emulator_base", "simulate"]

DEMO_REDELIVERY_SECONDS = 30.0


def error_body(code: str, description: str, parameter: str | None = None) -> dict[str, str]:
    """YooKassa's error object (reference TV7)."""
    body = {"type": "error", "id": str(uuid.uuid4()), "code": code, "description": description}
    return body | {"parameter": parameter} if parameter else body


def error(status: int, code: str, description: str, parameter: str | None = None) -> web.Response:
    return web.json_response(error_body(code, description, parameter), status=status)


@dataclass(slots=True)
class YooKassaEmulator(YooKassaShop):
    notify_url: str | None = None  # None: no notifications unless a test sends them
    fail_with: int | None = None  # answer every API call with this HTTP status (an outage)
    redeliver_every: float | None = None  # seconds between runs of the schedule in the background; None: on call
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    deliveries: list[tuple[str, int]] = field(default_factory=list)  # (event, the shop's HTTP status)
    receipts: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (payment|refund, id, receipt)
    outbox: Outbox = field(init=False)
    _keys: dict[str, tuple[str, int, Any]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.outbox = Outbox(clock=lambda: self.clock(), send=self._send)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/v3/payments", self._create_payment),
            web.get("/v3/payments", self._list_payments),
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
            web.post("/control/notifications/drop", self._control_drop),
            web.delete("/control/notifications/drop", self._control_deliver),
            web.post("/control/notifications/redeliver", self._control_redeliver),
            web.post("/control/shop", self._control_shop),
            web.post("/control/failures", self._control_failures),
        ])
        if self.redeliver_every is not None:
            app.cleanup_ctx.append(self._redelivery_loop)
        return app

    # ---- notifications: delivered at once, redelivered on the clock (yookassa_outbox)

    def drop_deliveries(self, times: int = 0) -> None:
        """Lose the next `times` deliveries (all of them while 0) until `deliver_again`."""
        self.outbox.drop(times)

    def deliver_again(self) -> None:
        self.outbox.stop_dropping()

    async def redeliver_due(self) -> int:
        """Run the redelivery schedule at the clock's time; returns the attempts made."""
        self.refunds_due()
        return await self.outbox.redeliver_due()

    def refunds_due(self) -> None:
        """Pending refunds whose time has come end (yookassa_refunds); those that succeeded are notified."""
        for refund_id in self.end_due_refunds():
            self._later(REFUND_SUCCEEDED, refund_id)

    async def notify(self, event: str, object_id: str) -> int | None:
        """A status changed: notify the shop (if a URL is set), redelivering later until it answers 200."""
        if self.notify_url is None:
            return None
        return await self.outbox.notify(event, object_id, copy.deepcopy(self.notification(event, object_id)))

    async def deliver(self, event: str, object_id: str, url: str | None = None) -> int:
        """POST the current notification once, by hand, outside the schedule; the shop's HTTP status."""
        target = url or self.notify_url
        assert target is not None
        async with aiohttp.ClientSession() as session:
            return await self._post(session, target, event, self.notification(event, object_id))

    async def _send(self, notice: Notice) -> int | None:
        if self.notify_url is None:
            return None
        try:
            async with aiohttp.ClientSession() as session:
                return await self._post(session, self.notify_url, notice.event, notice.body)
        except aiohttp.ClientError as err:
            log.info("yookassa emulator could not reach %s: %s", self.notify_url, err)
            return None

    async def _post(self, session: aiohttp.ClientSession, url: str, event: str, body: dict[str, Any]) -> int:
        async with session.post(url, json=body) as response:
            await response.read()
            self.deliveries.append((event, response.status))
            return response.status

    def _later(self, event: str, object_id: str) -> None:
        """Notify in the background, after the API call has answered (as YooKassa does)."""
        if self.notify_url is None:
            return
        task = asyncio.get_running_loop().create_task(self.notify(event, object_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the notifications sent in the background."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _redelivery_loop(self, _: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            assert self.redeliver_every is not None
            while True:
                await asyncio.sleep(self.redeliver_every)
                await self.redeliver_due()
        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()

    # ---- the API

    async def _api(self, request: web.Request) -> tuple[web.Response | None, Any]:
        """Record the call, check auth and the outage switch; the JSON body or an error answer."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append((request.method, request.path, dict(request.headers), body))
        for payment_id in self.decide_due_charges():
            self._later(PAYMENT_SUCCEEDED if self.payments[payment_id]["status"] == "succeeded" else PAYMENT_CANCELED,
                        payment_id)
        if self.fail_with is not None:
            return error(self.fail_with, "internal_server_error", "emulated outage"), None
        failed = self.rules.failure(after_effect=False)
        if failed is not None:
            return error(failed, failure_code(failed), "emulated failure, nothing was done"), None
        expected = basic_auth(self.shop_id, self.secret_key).encode()
        if not hmac.compare_digest(expected, request.headers.get("Authorization", "").encode()):
            return error(401, "invalid_credentials", "Login or password is incorrect"), None
        if request.method == "POST":
            key = request.headers.get("Idempotence-Key", "")
            if not key or len(key) > 64:
                return error(400, "invalid_request", "Idempotence key is missing or too long",
                             "Idempotence-Key"), None
            if not isinstance(body, dict):
                return error(400, "invalid_request", "Request body is not a JSON object"), None
        return None, body

    async def _idempotent(self, request: web.Request, make: Callable[[dict[str, Any]], tuple[int, Any]]
                          ) -> web.Response:
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
        failed = self.rules.failure(after_effect=True)
        if failed is not None:  # done, but the answer is lost: a repeat under the same key gets the real one
            return error(failed, failure_code(failed), "no definite answer in time; the outcome is unknown")
        return web.json_response(answer, status=status)

    async def _create_payment(self, request: web.Request) -> web.Response:
        def make(body: dict[str, Any]) -> tuple[int, Any]:
            if amount_minor(body.get("amount")) is None:
                return 400, error_body("invalid_request", "Invalid amount", "amount")
            charge = "payment_method_id" in body
            if charge and not isinstance(body["payment_method_id"], str):
                return 400, error_body("invalid_request", "Invalid payment method id", "payment_method_id")
            if not charge and (not isinstance(body.get("confirmation"), dict)
                               or "return_url" not in body["confirmation"]):
                return 400, error_body("invalid_request", "Confirmation is missing", "confirmation")
            refused = self.rules.refusal(body)
            if refused is not None:
                log.info("yookassa emulator refused POST /payments: HTTP %s %s (%s)", *refused[:3])
                return refused[0], error_body(*refused[1:])
            payment = self.create(body)
            self._keep_receipt("payment", payment["id"], body)
            if charge and payment["status"] != "pending":
                self._later(PAYMENT_SUCCEEDED if payment["status"] == "succeeded" else PAYMENT_CANCELED,
                            payment["id"])
            return 200, self.public(payment)
        return await self._idempotent(request, make)

    async def _list_payments(self, request: web.Request) -> web.Response:
        refusal, _ = await self._api(request)
        if refusal is not None:
            return refusal
        try:
            query = ListQuery.parse(request.query)
        except ListRefused as err:
            return error(400, "invalid_request", f"Invalid value of {err}", str(err))
        return web.json_response(list_page(map(self.public, self.payments.values()), query))

    async def _get_payment(self, request: web.Request) -> web.Response:
        return await self._get(request, self.payments)

    async def _get_refund(self, request: web.Request) -> web.Response:
        self.refunds_due()
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
            asked = amount_minor(body.get("amount"))
            if payment is None or payment["status"] != "succeeded" or asked is None:
                return 400, error_body("invalid_request", "Payment cannot be refunded", "payment_id")
            paid, refunded = self.amount_of(payment, "amount")[0], self.amount_of(payment, "refunded_amount")[0]
            if asked[1] != payment["amount"]["currency"] or asked[0] > paid - refunded:
                return 400, error_body("invalid_request", "Refund amount exceeds the payment's remainder", "amount")
            refused = self.rules.receipt_refusal(body)
            if refused is not None:
                return refused[0], error_body(*refused[1:])
            refund = self.refund(payment["id"], Money(*asked), str(body.get("description", "")))
            self._keep_receipt("refund", refund["id"], body)
            if refund["status"] == "succeeded":
                self._later(REFUND_SUCCEEDED, refund["id"])
            return 200, self.public(refund)
        return await self._idempotent(request, make)

    def _keep_receipt(self, kind: str, object_id: str, body: dict[str, Any]) -> None:
        """The receipt YooKassa registered with the operation, for a test to read (fiscalizing shops only)."""
        if isinstance(body.get("receipt"), dict):
            self.receipts.append((kind, object_id, body["receipt"]))

    # ---- the payer's confirmation page, and the controls

    async def _checkout_page(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        if payment is None or payment["status"] != "pending":
            return web.Response(status=404, text="no payment waits for confirmation here")
        return checkout_page(payment, TEST_CARD)

    async def _checkout(self, request: web.Request) -> web.Response:
        """The payer pays or declines; YooKassa notifies the shop and sends the payer back whatever the
        shop answered (a notification that failed is redelivered later)."""
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
        await self.notify(event, payment["id"])
        raise web.HTTPSeeOther(return_url)

    async def _control(self, request: web.Request) -> web.Response:
        payment = self.payments.get(request.match_info["id"])
        body = await control_body(request)
        if payment is None or body is None:
            return error(404, "not_found", "Object not found")
        outcome = body.get("outcome")
        if outcome == "pay" and payment["status"] == "pending":
            return web.json_response(self.public(self.succeed(payment["id"])))
        if outcome == "decline" and payment["status"] == "pending":
            return web.json_response(self.public(self.cancel(payment["id"])))
        if outcome == "refund" and payment["status"] == "succeeded":
            return web.json_response(self.public(self.refund(payment["id"], Money(*self.amount_of(payment, "amount")))))
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

    async def _control_shop(self, request: web.Request) -> web.Response:
        """POST /control/shop {"autopayments": bool, "receipts_required": bool, "pending_seconds": int or null}:
        the shop's settings (each optional)."""
        body = await control_body(request)
        flags = ("autopayments", "receipts_required")
        if body is None or any(not isinstance(body.get(name, False), bool) for name in flags) or not (
                body.get("pending_seconds") is None or times_of({"times": body["pending_seconds"]}) is not None):
            return error(400, "invalid_request", "expected booleans and pending_seconds: int >= 0 or null")
        for name in flags:
            if name in body:
                setattr(self.rules, name, body[name])
        if "pending_seconds" in body:
            seconds = body["pending_seconds"]
            self.rules.pending_for = None if seconds is None else timedelta(seconds=seconds)
        log.info("yookassa emulator: the shop's autopayments are %s, receipts %s, charges pending for %s",
                 "on" if self.rules.autopayments else "off",
                 "required" if self.rules.receipts_required else "not required", self.rules.pending_for or "no time")
        return web.json_response({"autopayments": self.rules.autopayments,
                                  "receipts_required": self.rules.receipts_required,
                                  "pending_seconds": self.rules.pending_for and self.rules.pending_for.total_seconds()})

    async def _control_failures(self, request: web.Request) -> web.Response:
        """POST /control/failures {"status": 500, "times": 1, "after_effect": false}: the next calls fail."""
        body = await control_body(request)
        status, times = (body.get("status"), body.get("times", 1)) if body is not None else (None, None)
        after = body.get("after_effect", False) if body is not None else None
        try:
            if not (isinstance(status, int) and isinstance(times, int) and isinstance(after, bool)):
                raise ValueError("types")
            self.rules.fail_next(status, times, after_effect=after)
        except ValueError:
            return error(400, "invalid_request", "expected {\"status\": 400..599, \"times\": int >= 1, "
                                                 "\"after_effect\": bool}")
        return web.json_response({"failures": len(self.rules.failures)})

    async def _control_drop(self, request: web.Request) -> web.Response:
        """POST /control/notifications/drop {"times": N (absent or 0: every delivery until DELETE)}."""
        body = await control_body(request)
        times = times_of(body) if body is not None else None
        if times is None:
            return error(400, "invalid_request", "expected {\"times\": int >= 0}")
        self.drop_deliveries(times)
        return web.json_response({"dropping": times or "all"})

    async def _control_deliver(self, _: web.Request) -> web.Response:
        self.deliver_again()
        return web.json_response({"dropping": None})

    async def _control_redeliver(self, _: web.Request) -> web.Response:
        made = await self.redeliver_due()
        return web.json_response({"attempts": made, "waiting": len(self.outbox.waiting),
                                  "given_up": len(self.outbox.given_up)})


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
        redeliver_every=DEMO_REDELIVERY_SECONDS,
        rules=ShopRules(receipts_required=settings.yookassa_receipts),  # the demo shop fiscalizes as configured
    ).app()
