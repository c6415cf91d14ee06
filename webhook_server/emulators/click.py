"""A Click emulator: the my.click.uz payment page, Click's side of the SHOP-API, and the Merchant API's status calls.

Written from ../shared/providers/click.md, never from billing/providers/click: its own md5 `sign_string`
(section 3.2) and its own Merchant API `Auth` check (section 4), both tested against the reference's
worked vectors (section 9). It calls our Prepare and Complete routes as Click does (form-encoded, HTTP 200
JSON answers), keeps Click's own book of the payments it debited, and answers `payment/status` and
`payment/status_by_mti` from that book. Click's failure modes on demand (`ClickState`, or `/control/...`):

- dropped deliveries: a dropped Prepare is one whose answer Click never got (it cancels the payment, no
  debit); a dropped Complete is one we never got although Click debited the payer. `deliver_late()` (or
  `POST /control/deliver`) sends the dropped Completes afterwards;
- Click's test tool reusing one `click_trans_id` (and `click_paydoc_id`) across orders.
The fiscalisation API (`payment/ofd_data/...`) is click_ofd.py's, mounted here.
It pays through its page in `ymds demo`, sends single events for `ymds simulate click ...`, and runs the
scenario list of Click's own test tool (click.md 3.6).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web

from settings import ConfigError, Settings
from webhook_server.emulators.click_ofd import OfdEmulator, OfdState
from webhook_server.emulators.common import control_body, fetch_invoice

log = logging.getLogger(__name__)

TASHKENT = timezone(timedelta(hours=5))  # sign_time and Click's payment day are Click's local time (unconfirmed)
PREPARE, COMPLETE = "0", "1"  # Click's `action`
ROUTES = {PREPARE: "prepare", COMPLETE: "complete"}
DELIVERIES = frozenset(ROUTES.values())
CLICK_FAILURE = -5017  # the Click-side error its test tool sends ("insufficient funds" in community code)
UNKNOWN_PREPARE_ID = 999999999
MERCHANT_API = "/v2/merchant"
# Click's payment_status (click.md 4): < 0 error, 0 created, 1 processing, 2 successful.
CREATED, SUCCESSFUL = 0, 2
NO_ANSWER = -1  # Click cancels a payment whose Prepare it got no answer to (the exact code is unconfirmed)
NOT_FOUND = -5  # Merchant API error_code for "no such payment": undocumented, any negative code will do
_TIMESTAMP = re.compile(r"[0-9]{10}")


def wall_clock() -> datetime:
    return datetime.now(UTC)


def new_click_id() -> int:
    return secrets.randbelow(9 * 10**9) + 10**9


def som(tiyin: int) -> str:
    """Integer tiyin as Click writes so'm: 3500000 → "35000.00" (click.md 2)."""
    return f"{tiyin // 100}.{tiyin % 100:02d}"


def sign_time(now: datetime) -> str:
    return now.astimezone(TASHKENT).strftime("%Y-%m-%d %H:%M:%S")


def click_day(moment: datetime) -> str:
    """The day Click files a payment under (status_by_mti's date), in Click's time zone."""
    return moment.astimezone(TASHKENT).date().isoformat()


def sign_string(fields: dict[str, str], secret: str) -> str:
    """md5(click_trans_id service_id SECRET merchant_trans_id [merchant_prepare_id] amount action sign_time)."""
    prepare_id = fields["merchant_prepare_id"] if fields["action"] == COMPLETE else ""
    text = (fields["click_trans_id"] + fields["service_id"] + secret + fields["merchant_trans_id"] + prepare_id
            + fields["amount"] + fields["action"] + fields["sign_time"])
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def auth_digest(timestamp: str, secret: str) -> str:
    return hashlib.sha1((timestamp + secret).encode("utf-8")).hexdigest()


def auth_header(merchant_user_id: str, secret: str, timestamp: int) -> str:
    """What a merchant sends as `Auth`: merchant_user_id:sha1(timestamp + secret_key):timestamp."""
    return f"{merchant_user_id}:{auth_digest(str(timestamp), secret)}:{timestamp}"


def auth_valid(header: str | None, merchant_user_id: str, secret: str) -> bool:
    """Click's check of `Auth`. The allowed clock skew is undocumented, so the timestamp is checked for form only."""
    parts = (header or "").split(":")
    if len(parts) != 3 or not _TIMESTAMP.fullmatch(parts[2]):
        return False
    user, digest, timestamp = parts
    same_user = hmac.compare_digest(user.encode(), merchant_user_id.encode())
    return hmac.compare_digest(digest.lower().encode(), auth_digest(timestamp, secret).encode()) and same_user


@dataclass(frozen=True, slots=True)
class ClickReply:
    """Our server's answer as Click reads it: the HTTP status and the JSON object (None if not JSON).

    A dropped delivery has `dropped` set and no answer at all.
    """

    status: int
    body: dict[str, Any] | None
    dropped: bool = False

    @property
    def error(self) -> int | None:
        value = self.body.get("error") if self.body else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


DROPPED = ClickReply(0, None, dropped=True)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One payment attempt as Click numbers it."""

    label: str
    amount: str
    click_trans_id: int = field(default_factory=new_click_id)
    click_paydoc_id: int = field(default_factory=new_click_id)


@dataclass(slots=True)
class ClickPayment:
    """A payment in Click's own book, as the Merchant API reports it; payment_id is the payer's paydoc number."""

    payment_id: int
    click_trans_id: int
    label: str
    amount: str
    day: str
    status: int = CREATED


@dataclass(slots=True)
class ClickState:
    """Click's side: its book of payments, the switches for its failure modes, and its clock."""

    payments: list[ClickPayment] = field(default_factory=list)
    drop: set[str] = field(default_factory=set)  # "prepare", "complete": deliveries we never receive
    undelivered: list[dict[str, str]] = field(default_factory=list)  # dropped Completes, oldest first
    reuse: Attempt | None = None  # the test tool's habit: every new attempt carries these Click ids
    clock: Callable[[], datetime] = wall_clock

    def new_attempt(self, label: str, amount: str) -> Attempt:
        if self.reuse is None:
            return Attempt(label, amount)
        return Attempt(label, amount, self.reuse.click_trans_id, self.reuse.click_paydoc_id)

    def reuse_ids(self, click_trans_id: int | None = None, click_paydoc_id: int | None = None) -> Attempt:
        """From now on every attempt, whatever its order, carries one click_trans_id (as Click's test tool does)."""
        self.reuse = Attempt("", "", click_trans_id or new_click_id(), click_paydoc_id or new_click_id())
        return self.reuse

    def open(self, attempt: Attempt) -> ClickPayment:
        payment = ClickPayment(attempt.click_paydoc_id, attempt.click_trans_id, attempt.label, attempt.amount,
                               click_day(self.clock()))
        self.payments.append(payment)
        return payment

    def by_label(self, label: str, day: str) -> ClickPayment | None:
        """The latest payment for `label` filed on `day`, a successful one first."""
        found = [p for p in self.payments if (p.label, p.day) == (label, day)]
        paid = [p for p in found if p.status == SUCCESSFUL]
        return (paid or found or [None])[-1]

    def by_id(self, payment_id: int) -> ClickPayment | None:
        return next((p for p in reversed(self.payments) if p.payment_id == payment_id), None)


@dataclass(slots=True)
class ClickCaller:
    """Click's side of the SHOP-API: signs and sends Prepare and Complete to `notify_base` (…/notify/click)."""

    session: aiohttp.ClientSession
    notify_base: str
    service_id: str
    secret: str
    state: ClickState = field(default_factory=ClickState)
    sent: list[tuple[dict[str, str], ClickReply]] = field(default_factory=list)

    def fields(self, action: str, attempt: Attempt, *, prepare_id: int | None = None, error: int = 0,
               error_note: str = "Success") -> dict[str, str]:
        fields = {
            "click_trans_id": str(attempt.click_trans_id), "service_id": self.service_id,
            "click_paydoc_id": str(attempt.click_paydoc_id), "merchant_trans_id": attempt.label,
            "amount": attempt.amount, "action": action, "error": str(error), "error_note": error_note,
            "sign_time": sign_time(self.state.clock()),
        }
        if action == COMPLETE:
            fields["merchant_prepare_id"] = str(prepare_id)
        fields["sign_string"] = sign_string(fields, self.secret)
        return fields

    async def send(self, action: str, fields: dict[str, str]) -> ClickReply:
        async with self.session.post(f"{self.notify_base}/{ROUTES[action]}", data=fields) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            reply = ClickReply(response.status, body if isinstance(body, dict) else None)
        self.sent.append((fields, reply))
        return reply

    async def deliver(self, action: str, fields: dict[str, str]) -> ClickReply:
        """Send as Click would, unless that delivery is switched to be dropped."""
        if ROUTES[action] not in self.state.drop:
            return await self.send(action, fields)
        if action == COMPLETE:
            self.state.undelivered.append(fields)
        log.info("click emulator dropped a %s for %s", ROUTES[action], fields["merchant_trans_id"])
        return DROPPED

    async def deliver_late(self) -> list[ClickReply]:
        """The dropped Completes, delivered now unchanged (the same signed request Click made then)."""
        late, self.state.undelivered[:] = list(self.state.undelivered), []
        return [await self.send(COMPLETE, fields) for fields in late]

    async def prepare(self, attempt: Attempt, **changes: str) -> ClickReply:
        return await self.send(PREPARE, {**self.fields(PREPARE, attempt), **changes})

    async def complete(self, attempt: Attempt, prepare_id: int, *, error: int = 0, **changes: str) -> ClickReply:
        note = "Success" if error == 0 else "Insufficient funds"
        fields = self.fields(COMPLETE, attempt, prepare_id=prepare_id, error=error, error_note=note)
        return await self.send(COMPLETE, {**fields, **changes})

    async def pay(self, label: str, amount: str, *, error: int = 0) -> list[ClickReply]:
        """A payment as Click makes it: Prepare; if answered 0, debit (error 0) or fail (error < 0); then Complete.

        Click's book records the outcome whatever reaches us: no answer to Prepare cancels the payment, and a
        dropped Complete leaves it debited with nobody told.
        """
        attempt = self.state.new_attempt(label, amount)
        payment = self.state.open(attempt)
        prepared = await self.deliver(PREPARE, self.fields(PREPARE, attempt))
        if prepared.dropped or prepared.error != 0 or prepared.body is None:
            payment.status = NO_ANSWER if prepared.dropped else (prepared.error or NO_ANSWER)
            return [prepared]
        payment.status = SUCCESSFUL if error == 0 else error
        note = "Success" if error == 0 else "Insufficient funds"
        fields = self.fields(COMPLETE, attempt, prepare_id=prepared.body["merchant_prepare_id"], error=error,
                             error_note=note)
        return [prepared, await self.deliver(COMPLETE, fields)]


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
                         unknown_label: str = "no-such-order", *, one_click_trans_id: bool = True,
                         ) -> list[ScenarioResult]:
    """Click's 15 go-live scenarios against three unpaid invoices (one per attempt that completes or fails).

    Like Click's Postman generator, every scenario carries one click_trans_id and click_paydoc_id across the
    three orders (`one_click_trans_id`). Scenario 8 (Click's failure on a confirmed payment) expects -9, as the
    current suite at docs.click.uz/testing/postman does (click.md 3.6 listed it as unconfirmed).
    """
    shared = Attempt("", amount)
    first, second, third = (
        Attempt(label, amount, shared.click_trans_id, shared.click_paydoc_id) if one_click_trans_id
        else Attempt(label, amount) for label in labels
    )
    results: list[ScenarioResult] = []

    async def check(name: str, expected: int, reply: ClickReply) -> ClickReply:
        results.append(ScenarioResult(len(results) + 1, name, expected, reply.error))
        return reply

    def prepare_id(reply: ClickReply) -> int:
        return int(reply.body["merchant_prepare_id"]) if reply.body and reply.body.get("merchant_prepare_id") else 0

    unknown = Attempt(unknown_label, amount, first.click_trans_id, first.click_paydoc_id)
    await check("prepare with a wrong sign_string", -1, await caller.prepare(first, sign_string="0" * 32))
    await check("prepare for an unknown order", -5, await caller.prepare(unknown))
    ok = await check("prepare", 0, await caller.prepare(first))
    await check("complete with a wrong sign_string", -1,
                await caller.complete(first, prepare_id(ok), sign_string="0" * 32))
    wrong_amount = caller.fields(COMPLETE, Attempt(first.label, "300", first.click_trans_id, first.click_paydoc_id),
                                 prepare_id=prepare_id(ok))
    await check("complete with amount 300", -2, await caller.send(COMPLETE, wrong_amount))
    await check("complete", 0, await caller.complete(first, prepare_id(ok)))
    await check("complete again", -4, await caller.complete(first, prepare_id(ok)))
    await check("cancel the confirmed payment", -9, await caller.complete(first, prepare_id(ok), error=CLICK_FAILURE))
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
    """my.click.uz and api.click.uz in one app: the page's Pay button runs Prepare → Complete on our server,
    `/v2/merchant/payment/...` answers from Click's book, `/control/...` switches the failure modes."""

    service_id: str
    merchant_id: str
    secret: str
    notify_base: str
    merchant_user_id: str | None = None  # the Merchant API refuses every call without one
    state: ClickState = field(default_factory=ClickState)
    ofd: OfdState = field(default_factory=OfdState)  # the fiscal receipts registered (click_ofd.py)
    payments: list[list[ClickReply]] = field(default_factory=list)  # the page's payments, each run's replies
    _session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self._session_ctx)
        app.add_routes([
            web.get("/services/pay", self.pay_page), web.post("/services/pay", self.pay),
            web.get(MERCHANT_API + "/payment/status/{service_id}/{payment_id}", self.payment_status),
            web.get(MERCHANT_API + "/payment/status_by_mti/{service_id}/{label}/{day}", self.status_by_label),
            web.post("/control/drop", self.control_drop), web.delete("/control/drop", self.control_drop),
            web.post("/control/deliver", self.control_deliver),
            web.post("/control/reuse", self.control_reuse), web.delete("/control/reuse", self.control_reuse),
            *OfdEmulator(self.service_id, self._ofd_refusal, self._paid_tiyin, self.ofd).routes(MERCHANT_API),
        ])
        return app

    def caller(self, session: aiohttp.ClientSession) -> ClickCaller:
        return ClickCaller(session, self.notify_base, self.service_id, self.secret, self.state)

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
        replies = await self.caller(self._session).pay(str(form.get("transaction_param", "")),
                                                        str(form.get("amount", "")),
                                                        error=CLICK_FAILURE if declined else 0)
        self.payments.append(replies)
        completed = replies[1:]  # a dropped Complete: the payer still sees Click's own outcome
        refused = replies[0].dropped or replies[0].error != 0 or not completed
        if refused or not (completed[0].dropped or completed[0].error == (-9 if declined else 0)):
            answers = "; ".join(f"HTTP {reply.status} error {reply.error}" for reply in replies)
            return web.Response(status=502, text=f"the shop refused the payment: {answers}")
        raise web.HTTPSeeOther(str(form.get("return_url") or "/"))

    # ---- the Merchant API (click.md 4): JSON, `Auth` on every call

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self.merchant_user_id is None or not auth_valid(request.headers.get("Auth"), self.merchant_user_id,
                                                           self.secret):
            return web.json_response({"error_code": -401, "error_note": "Not Authorized"}, status=401)
        if request.match_info["service_id"] != self.service_id:
            return web.json_response({"error_code": -403, "error_note": "Forbidden"}, status=403)
        return None

    def _ofd_refusal(self, request: web.Request) -> web.Response | None:
        """The fiscal routes: `Auth` always; the service id where the path carries one (submit_items has it in
        its body, checked there)."""
        if "service_id" in request.match_info:
            return self._refusal(request)
        if self.merchant_user_id is None or not auth_valid(request.headers.get("Auth"), self.merchant_user_id,
                                                           self.secret):
            return web.json_response({"error_code": -401, "error_note": "Not Authorized"}, status=401)
        return None

    def _paid_tiyin(self, payment_id: int) -> int | None:
        """What Click debited for a successful payment, in tiyin; None when it has no such payment."""
        payment = self.state.by_id(payment_id)
        if payment is None or payment.status != SUCCESSFUL:
            return None
        return int(Decimal(payment.amount) * 100)

    async def payment_status(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        raw_id = request.match_info["payment_id"]
        payment = self.state.by_id(int(raw_id)) if raw_id.isdigit() else None
        if payment is None:
            return web.json_response({"error_code": NOT_FOUND, "error_note": "Payment not found"})
        return web.json_response({"error_code": 0, "error_note": "Success", "payment_id": payment.payment_id,
                                  "payment_status": payment.status})

    async def status_by_label(self, request: web.Request) -> web.Response:
        """Click's documented example carries payment_id and merchant_trans_id only: the status is asked next."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            day = date.fromisoformat(request.match_info["day"]).isoformat()
        except ValueError:
            return web.json_response({"error_code": -400, "error_note": "Bad request"}, status=400)
        payment = self.state.by_label(request.match_info["label"], day)
        if payment is None:
            return web.json_response({"error_code": NOT_FOUND, "error_note": "Payment not found"})
        return web.json_response({"error_code": 0, "error_note": "Success", "payment_id": payment.payment_id,
                                  "merchant_trans_id": payment.label})

    # ---- controls

    async def control_drop(self, request: web.Request) -> web.Response:
        """POST /control/drop {"deliveries": ["prepare", "complete"]}; DELETE /control/drop delivers again."""
        if request.method == "DELETE":
            self.state.drop.clear()
            return web.json_response({"drop": []})
        body = await control_body(request)
        wanted = body.get("deliveries") if body else None
        if not isinstance(wanted, list) or not set(wanted) <= DELIVERIES:
            return web.json_response({"error": "deliveries: a list of 'prepare', 'complete'"}, status=400)
        self.state.drop = set(wanted)
        return web.json_response({"drop": sorted(self.state.drop)})

    async def control_deliver(self, request: web.Request) -> web.Response:
        """POST /control/deliver: send every dropped Complete now; answers what our server replied to each."""
        assert self._session is not None
        replies = await self.caller(self._session).deliver_late()
        return web.json_response({"delivered": [{"status": reply.status, "error": reply.error} for reply in replies]})

    async def control_reuse(self, request: web.Request) -> web.Response:
        """POST /control/reuse {"click_trans_id": N (optional)}: one id across orders; DELETE: fresh ids again."""
        if request.method == "DELETE":
            self.state.reuse = None
            return web.json_response({"click_trans_id": None})
        body = await control_body(request) or {}
        given = body.get("click_trans_id")
        if given is not None and not (isinstance(given, int) and not isinstance(given, bool) and given > 0):
            return web.json_response({"error": "click_trans_id: a positive integer"}, status=400)
        return web.json_response({"click_trans_id": self.state.reuse_ids(given).click_trans_id})


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
        amount = som(int(invoice["amounts"]["UZS"]))
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
        "click_api_url": emulator_url + MERCHANT_API,
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
        merchant_user_id=settings.click_merchant_user_id,
    ).app()
