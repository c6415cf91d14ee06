"""A Click emulator: the my.click.uz payment page, and Click's side of the SHOP-API.

It calls our Prepare and Complete routes exactly as Click does (form-encoded, md5-signed by
billing/providers/click.py), pays through its page in `ymds demo`, sends single events for
`ymds simulate click ...`, and runs the scenario list of Click's own test tool (click.md 3.6).
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
from aiohttp import web

from billing.providers.click import Action, build_request, click_amount
from settings import ConfigError, Settings
from webhook_server.emulators.common import fetch_invoice

log = logging.getLogger(__name__)

TASHKENT = timezone(timedelta(hours=5))  # sign_time is Click's local time (click.md 3.1, unconfirmed)
CLICK_FAILURE = -5017  # the Click-side error its test tool sends ("insufficient funds" in community code)
UNKNOWN_PREPARE_ID = 999999999
ROUTES = {Action.PREPARE: "prepare", Action.COMPLETE: "complete"}


def new_click_id() -> int:
    return secrets.randbelow(9 * 10**9) + 10**9


def sign_time(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(TASHKENT).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class ClickReply:
    """Our server's answer as Click reads it: the HTTP status and the JSON object (None if not JSON)."""

    status: int
    body: dict[str, Any] | None

    @property
    def error(self) -> int | None:
        value = self.body.get("error") if self.body else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One payment attempt as Click numbers it."""

    label: str
    amount: str
    click_trans_id: int = field(default_factory=new_click_id)
    click_paydoc_id: int = field(default_factory=new_click_id)


@dataclass(slots=True)
class ClickCaller:
    """Click's side of the SHOP-API: signs and sends Prepare and Complete to `notify_base` (…/notify/click)."""

    session: aiohttp.ClientSession
    notify_base: str
    service_id: str
    secret: str
    sent: list[tuple[dict[str, str], ClickReply]] = field(default_factory=list)

    def fields(self, action: Action, attempt: Attempt, *, prepare_id: int | None = None, error: int = 0,
               error_note: str = "Success") -> dict[str, str]:
        return build_request(
            self.secret, action=action, click_trans_id=attempt.click_trans_id, service_id=self.service_id,
            label=attempt.label, amount=attempt.amount, sign_time=sign_time(),
            click_paydoc_id=attempt.click_paydoc_id, merchant_prepare_id=prepare_id, error=error,
            error_note=error_note,
        )

    async def send(self, action: Action, fields: dict[str, str]) -> ClickReply:
        async with self.session.post(f"{self.notify_base}/{ROUTES[action]}", data=fields) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            reply = ClickReply(response.status, body if isinstance(body, dict) else None)
        self.sent.append((fields, reply))
        return reply

    async def prepare(self, attempt: Attempt, **changes: str) -> ClickReply:
        return await self.send(Action.PREPARE, {**self.fields(Action.PREPARE, attempt), **changes})

    async def complete(self, attempt: Attempt, prepare_id: int, *, error: int = 0, **changes: str) -> ClickReply:
        note = "Success" if error == 0 else "Insufficient funds"
        fields = self.fields(Action.COMPLETE, attempt, prepare_id=prepare_id, error=error, error_note=note)
        return await self.send(Action.COMPLETE, {**fields, **changes})

    async def pay(self, label: str, amount: str, *, error: int = 0) -> list[ClickReply]:
        """Prepare, then (if it answered 0) Complete with Click's `error`: 0 debited, < 0 failed."""
        attempt = Attempt(label, amount)
        prepared = await self.prepare(attempt)
        if prepared.error != 0 or prepared.body is None:
            return [prepared]
        return [prepared, await self.complete(attempt, prepared.body["merchant_prepare_id"], error=error)]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    number: int
    name: str
    expected: int
    got: int | None

    @property
    def passed(self) -> bool:
        return self.got == self.expected


async def run_test_suite(caller: ClickCaller, labels: Sequence[str], amount: str,
                         unknown_label: str = "no-such-order") -> list[ScenarioResult]:
    """Click's 15 go-live scenarios against three unpaid invoices (one per attempt that completes or fails).

    Scenario 8 (cancel a confirmed payment) expects -4: Click's error table and its own integrations
    answer so; a third-party reading of the current tool says -9 (click.md 3.6, unconfirmed).
    """
    first, second, third = (Attempt(label, amount) for label in labels)
    results: list[ScenarioResult] = []

    async def check(name: str, expected: int, reply: ClickReply) -> ClickReply:
        results.append(ScenarioResult(len(results) + 1, name, expected, reply.error))
        return reply

    def prepare_id(reply: ClickReply) -> int:
        return int(reply.body["merchant_prepare_id"]) if reply.body and reply.body.get("merchant_prepare_id") else 0

    await check("prepare with a wrong sign_string", -1, await caller.prepare(first, sign_string="0" * 32))
    await check("prepare for an unknown order", -5, await caller.prepare(Attempt(unknown_label, amount)))
    ok = await check("prepare", 0, await caller.prepare(first))
    await check("complete with a wrong sign_string", -1,
                await caller.complete(first, prepare_id(ok), sign_string="0" * 32))
    wrong_amount = caller.fields(Action.COMPLETE, Attempt(first.label, "300", first.click_trans_id,
                                                          first.click_paydoc_id), prepare_id=prepare_id(ok))
    await check("complete with amount 300", -2, await caller.send(Action.COMPLETE, wrong_amount))
    await check("complete", 0, await caller.complete(first, prepare_id(ok)))
    await check("complete again", -4, await caller.complete(first, prepare_id(ok)))
    await check("cancel the confirmed payment", -4, await caller.complete(first, prepare_id(ok), error=CLICK_FAILURE))
    ok = await check("prepare a new payment", 0, await caller.prepare(second))
    await check("complete an unknown merchant_prepare_id", -6, await caller.complete(second, UNKNOWN_PREPARE_ID))
    await check("complete", 0, await caller.complete(second, prepare_id(ok)))
    ok = await check("prepare a new payment", 0, await caller.prepare(third))
    await check("complete with Click's error", -9, await caller.complete(third, prepare_id(ok), error=CLICK_FAILURE))
    await check("the same error again", -9, await caller.complete(third, prepare_id(ok), error=CLICK_FAILURE))
    await check("complete the cancelled payment", -9, await caller.complete(third, prepare_id(ok)))
    return results


@dataclass(slots=True)
class ClickEmulator:
    """The my.click.uz stand-in for the demo: its page's Pay button runs Prepare → Complete on our server."""

    service_id: str
    merchant_id: str
    secret: str
    notify_base: str
    payments: list[list[ClickReply]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self._session_ctx)
        app.add_routes([web.get("/services/pay", self.pay_page), web.post("/services/pay", self.pay)])
        return app

    async def _session_ctx(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            self._session = session
            yield

    async def pay_page(self, request: web.Request) -> web.Response:
        query = request.query
        if (query.get("service_id"), query.get("merchant_id")) != (self.service_id, self.merchant_id):
            return web.Response(status=400, text="unknown service_id or merchant_id")
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
            for name in ("amount", "transaction_param", "return_url")
        )
        body = (
            "<!doctype html><meta charset='utf-8'><title>Click emulator</title><h1>Click emulator</h1>"
            f"<p>Pay {html.escape(query.get('amount', ''))} UZS for {html.escape(query.get('transaction_param', ''))}"
            f"</p><form method='post' action='{html.escape(request.path)}'>{hidden}"
            "<button type='submit' name='outcome' value='pay' id='emulator-pay'>Pay</button> "
            "<button type='submit' name='outcome' value='decline' id='emulator-decline'>Decline</button></form>"
        )
        return web.Response(text=body, content_type="text/html")

    async def pay(self, request: web.Request) -> web.Response:
        form = await request.post()
        declined = form.get("outcome") == "decline"
        assert self._session is not None
        caller = ClickCaller(self._session, self.notify_base, self.service_id, self.secret)
        replies = await caller.pay(str(form.get("transaction_param", "")), str(form.get("amount", "")),
                                   error=CLICK_FAILURE if declined else 0)
        self.payments.append(replies)
        expected = [0, -9] if declined else [0, 0]
        if [reply.error for reply in replies] != expected:
            answers = "; ".join(f"HTTP {reply.status} error {reply.error}" for reply in replies)
            return web.Response(status=502, text=f"the shop refused the payment: {answers}")
        raise web.HTTPSeeOther(str(form.get("return_url") or "/"))


EVENTS = ("payment", "prepare", "cancel", "suite")
EXPECTED = {"payment": [0, 0], "prepare": [0], "cancel": [0, -9]}


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate click EVENT`: Click's requests for one attempt, or its whole test suite.

    Click answers are HTTP 200 whatever the outcome, so: 200 when every answer was the expected
    one, the HTTP status when a request failed, and 422 when a Click error code was not the expected one.
    """
    assert settings.click_service_id is not None and settings.click_secret_key is not None
    invoice = await fetch_invoice(session, settings, url, label) if amount is None or event == "suite" else {}
    if amount is None:
        if "UZS" not in invoice.get("amounts", {}):
            raise ConfigError(f"invoice {label} has no UZS price")
        amount = click_amount(int(invoice["amounts"]["UZS"]))
    caller = ClickCaller(session, f"{url}/notify/click", settings.click_service_id,
                         settings.click_secret_key.get_secret_value())
    if event == "suite":
        labels = [label, *[await _new_invoice(session, settings, url, invoice) for _ in range(2)]]
        results = await run_test_suite(caller, labels, amount)
        for result in results:
            log.info("scenario %2d %s: expected %s, got %s%s", result.number, result.name, result.expected,
                     result.got, "" if result.passed else "  <-- FAILED")
        got = [result.got for result in results]
        expected = [result.expected for result in results]
    else:
        if event == "prepare":
            replies = [await caller.prepare(Attempt(label, amount))]
        else:
            replies = await caller.pay(label, amount, error=CLICK_FAILURE if event == "cancel" else 0)
        for reply in replies:
            log.info("click answered HTTP %s: %s", reply.status, reply.body)
        got, expected = [reply.error for reply in replies], EXPECTED[event]
    statuses = [reply.status for _, reply in caller.sent if reply.status != 200]
    if statuses:
        return statuses[0]
    return 200 if got == expected else 422


async def _new_invoice(session: aiohttp.ClientSession, settings: Settings, url: str, like: dict[str, Any]) -> str:
    """Another unpaid invoice for the same user and plan (the suite completes two payments and fails one)."""
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else ""
    async with session.post(f"{url}/api/invoices", json={"user_id": like["user_id"], "plan": like["plan"]},
                            headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status != 201:
            raise ConfigError(f"cannot create invoices on {url} (HTTP {response.status}) for the test suite")
        body: dict[str, Any] = await response.json()
        return str(body["label"])


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "click_service_id": "11111",
        "click_merchant_id": "22222",
        "click_secret_key": "demo-click-secret",
        "click_merchant_user_id": "33333",
        "click_pay_url": emulator_url + "/services/pay",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    if not (settings.provider_enabled("click") and settings.click_service_id and settings.click_merchant_id
            and settings.click_secret_key):
        return None
    return ClickEmulator(
        service_id=settings.click_service_id,
        merchant_id=settings.click_merchant_id,
        secret=settings.click_secret_key.get_secret_value(),
        notify_base=local_base + "/notify/click",
    ).app()
