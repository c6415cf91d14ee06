"""A Payme emulator: the checkout page a payer reaches through the base64 link, the payer's "Pay"
step, Payme's servers calling the shop's Merchant API (Check → Create → Perform, cancels, and
the whole scenario list of Payme's sandbox), with Payme's Basic auth and JSON-RPC envelope, and the
Subscribe API at `/api` (saved cards and receipts, see payme_subscribe.py).

Written from the Payme reference (../shared/providers/payme.md), never from billing/providers/payme:
the Authorization header, the checkout link's encoding and the transaction states below are the
emulator's own, checked against the reference's worked vectors (§9), so an emulator that agreed with
a wrong implementation would show up as a failing vector instead of hiding the bug.
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web

from settings import ConfigError, Settings
from webhook_server.emulators.common import invoice_amount
from webhook_server.emulators.payme_fiscal import detail_problem, fiscal_data
from webhook_server.emulators.payme_subscribe import Debit, SubscribeEmulator

log = logging.getLogger(__name__)

LOGIN = "Paycom"  # reference §3.2: Basic base64("Paycom:" + KEY)
# Transaction states (reference §3.3)
STATE_CREATED = 1
STATE_PERFORMED = 2
STATE_CANCELLED = -1
STATE_CANCELLED_AFTER_PERFORM = -2
# Cancel reasons (reference §3.3)
REASON_DEBIT_ERROR = 2
REASON_EXECUTION_ERROR = 3
REASON_TIMEOUT = 4
REASON_REFUND = 5
TIMEOUT_MS = 43_200_000  # a state-1 transaction older than 12 h (from Payme's `time`) is dead


def basic_auth(key: str) -> str:
    """The Authorization header Payme's servers send: `Basic base64("Paycom:" + KEY)`, the key as is."""
    return "Basic " + base64.b64encode(f"{LOGIN}:{key}".encode()).decode("ascii")


def checkout_link(base_url: str, params: Mapping[str, str]) -> str:
    """`<checkout host>/<base64("k=v;k=v…")>` (reference §2.1), standard alphabet with padding."""
    text = ";".join(f"{name}={value}" for name, value in params.items())
    return f"{base_url.rstrip('/')}/{base64.b64encode(text.encode()).decode('ascii')}"


def read_checkout(encoded: str) -> dict[str, str]:
    """What Payme's checkout page reads from a link's last segment. Raises ValueError on a bad link."""
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ValueError("the checkout parameters are not base64 of UTF-8 text") from err
    params: dict[str, str] = {}
    for pair in text.split(";"):
        name, eq, value = pair.partition("=")
        if not eq or not name or name in params:
            raise ValueError(f"bad checkout parameter {pair!r}")
        params[name] = value
    return params


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def new_payme_id() -> str:
    """Payme's transaction ids are 24 hex characters."""
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class RpcResult:
    method: str
    status: int
    body: Any

    @property
    def result(self) -> dict[str, Any] | None:
        value = self.body.get("result") if isinstance(self.body, dict) else None
        return value if isinstance(value, dict) else None

    @property
    def code(self) -> int | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None


@dataclass(frozen=True, slots=True)
class Step:
    """One check of a sandbox scenario: what was sent, what came back, and whether Payme would accept it."""

    name: str
    ok: bool
    answer: RpcResult


@dataclass(slots=True)
class PaymeEmulator:
    merchant_id: str
    key: str
    notify_url: str
    account_field: str = "order_id"
    clock: Callable[[], int] = wall_clock_ms  # Payme's own time, sent as CreateTransaction's `time`
    calls: list[RpcResult] = field(default_factory=list)
    perform_receipts: bool = False  # receipts.pay runs Check/Create/Perform on the shop first (reference §5.3)
    fiscal: bool = False  # the kassa fiscalises: Check must answer a valid detail; SetFiscalData after Perform
    fiscal_refusals: list[str] = field(default_factory=list)  # why payments were refused for their detail
    send_fiscal_data: bool = True  # with `fiscal`: call SetFiscalData once a payment is performed
    _next_id: int = 1
    subscribe: SubscribeEmulator = field(init=False)

    def __post_init__(self) -> None:
        self.subscribe = SubscribeEmulator(merchant_id=self.merchant_id, key=self.key, clock=self.clock,
                                           merchant_hook=self.perform_receipt if self.perform_receipts else None)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/checkout/{encoded:.+}", self.checkout_page),
            web.post("/checkout/{encoded:.+}", self.checkout_pay),
            *self.subscribe.routes(),
        ])
        return app

    # ---- Payme's servers → the shop -----------------------------------------------------------

    async def call(
        self, session: aiohttp.ClientSession, method: str, params: dict[str, Any], *, authorization: str | None = ""
    ) -> RpcResult:
        """One Merchant API request; `authorization` "" means the right key, None means no header."""
        self._next_id += 1
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization or basic_auth(self.key)
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        async with session.post(self.notify_url, json=body, headers=headers) as response:
            text = await response.text()
            try:
                decoded: Any = await response.json(content_type=None)
            except ValueError:
                decoded = text
            answer = RpcResult(method, response.status, decoded)
        self.calls.append(answer)
        return answer

    def account(self, label: str) -> dict[str, str]:
        return {self.account_field: label}

    async def check(self, session: aiohttp.ClientSession, label: str, amount: int) -> RpcResult:
        return await self.call(session, "CheckPerformTransaction", {"amount": amount, "account": self.account(label)})

    async def create(
        self, session: aiohttp.ClientSession, payme_id: str, label: str, amount: int, payme_time: int | None = None
    ) -> RpcResult:
        params = {"id": payme_id, "time": self.clock() if payme_time is None else payme_time, "amount": amount,
                  "account": self.account(label)}
        return await self.call(session, "CreateTransaction", params)

    async def by_id(self, session: aiohttp.ClientSession, method: str, payme_id: str, **extra: Any) -> RpcResult:
        return await self.call(session, method, {"id": payme_id, **extra})

    async def pay(
        self, session: aiohttp.ClientSession, label: str, amount: int, payme_id: str | None = None
    ) -> tuple[str, list[RpcResult]]:
        """What Payme does when a payer pays: Check, Create, then Perform (once the card is debited)."""
        payme_id = payme_id or new_payme_id()
        answers = [await self.check(session, label, amount)]
        if answers[-1].result and self._detail_accepted(answers[-1], amount):
            answers.append(await self.create(session, payme_id, label, amount))
        if answers[-1].method == "CreateTransaction" and answers[-1].result:
            answers.append(await self.by_id(session, "PerformTransaction", payme_id))
            if answers[-1].result and self.fiscal and self.send_fiscal_data:
                await self.set_fiscal_data(session, payme_id)
        return payme_id, answers

    def _detail_accepted(self, check: RpcResult, amount: int) -> bool:
        """A fiscalising kassa refuses a Check result without a valid receipt detail (payme_fiscal.py)."""
        problem = detail_problem(check.result, amount) if self.fiscal else None
        if problem is not None:
            self.fiscal_refusals.append(problem)
            log.info("payme emulator refused the payment: %s", problem)
        return problem is None

    async def set_fiscal_data(self, session: aiohttp.ClientSession, payme_id: str, kind: str = "PERFORM",
                              **overrides: Any) -> RpcResult:
        """What Payme sends once the tax authority registered the transaction's receipt."""
        registered = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock() / 1000))
        data = {**fiscal_data(payme_id, self._next_id, registered), **overrides}
        return await self.call(session, "SetFiscalData", {"id": payme_id, "type": kind, "fiscal_data": data})

    async def time_out(self, session: aiohttp.ClientSession, payme_id: str) -> RpcResult:
        """What Payme does with a transaction left in state 1 past its 12 hours: CancelTransaction, reason 4."""
        return await self.by_id(session, "CancelTransaction", payme_id, reason=REASON_TIMEOUT)

    async def perform_receipt(self, receipt: dict[str, Any], debit: Debit) -> int | None:
        """A Subscribe receipt through the shop's Merchant API, its `_id` as the transaction id: Check and
        Create, the card's debit, then Perform; a failed debit cancels the created transaction (reason 2).
        The shop's error code or the debit's, or None once PerformTransaction succeeded."""
        label = next((item["value"] for item in receipt["account"] if item["name"] == self.account_field), "")
        payme_id = receipt["_id"]
        async with aiohttp.ClientSession() as session:
            answers = [await self.check(session, label, receipt["amount"])]
            if answers[-1].result and self._detail_accepted(answers[-1], receipt["amount"]):
                answers.append(await self.create(session, payme_id, label, receipt["amount"]))
            if answers[-1].method == "CreateTransaction" and answers[-1].result:
                failed = debit()
                if failed is not None:
                    await self.by_id(session, "CancelTransaction", payme_id, reason=REASON_DEBIT_ERROR)
                    return failed
                answers.append(await self.by_id(session, "PerformTransaction", payme_id))
                if answers[-1].result and self.fiscal and self.send_fiscal_data:
                    await self.set_fiscal_data(session, payme_id)
        last = answers[-1]
        if last.method == "PerformTransaction" and last.result:
            return None
        return last.code if isinstance(last.code, int) else -32400

    # ---- the sandbox (test.paycom.uz) scenarios -----------------------------------------------

    async def sandbox(
        self, session: aiohttp.ClientSession, label: str, amount: int, *, perform: bool, security: bool = True
    ) -> list[Step]:
        """Scenario 1 (perform=False: create, then cancel the waiting transaction) or scenario 2
        (perform=True: create, perform, cancel the performed one), checked as the sandbox checks."""
        steps: list[Step] = []

        def expect(name: str, answer: RpcResult, passes: Callable[[RpcResult], bool]) -> RpcResult:
            steps.append(Step(name, answer.status == 200 and passes(answer), answer))
            return answer

        if security:
            everything = {"id": new_payme_id(), "time": self.clock(), "amount": amount, "reason": 1, "from": 0,
                          "to": 1, "account": self.account(label)}
            for method in ("CheckPerformTransaction", "CreateTransaction", "PerformTransaction", "CancelTransaction",
                           "CheckTransaction", "GetStatement"):
                for bad in (basic_auth("wrong-" + self.key), None, "Basic not-base64!"):
                    expect(f"invalid authorization: {method}",
                           await self.call(session, method, everything, authorization=bad), code(-32504))
        wrong = amount + 100
        expect("invalid amount: Check", await self.check(session, label, wrong), code(-31001))
        expect("invalid amount: Create", await self.create(session, new_payme_id(), label, wrong), code(-31001))
        unknown = "nonexistent-" + secrets.token_hex(4)
        expect("unknown account: Check", await self.check(session, unknown, amount), self.account_error)
        expect("unknown account: Create", await self.create(session, new_payme_id(), unknown, amount),
               self.account_error)
        expect("CheckPerformTransaction", await self.check(session, label, amount),
               lambda answer: answer.result == {"allow": True})
        payme_id, payme_time = new_payme_id(), self.clock()
        first = expect("CreateTransaction", await self.create(session, payme_id, label, amount, payme_time),
                       state(STATE_CREATED))
        expect("CreateTransaction repeated", await self.create(session, payme_id, label, amount, payme_time),
               same_as(first))
        expect("CheckTransaction", await self.by_id(session, "CheckTransaction", payme_id),
               state(STATE_CREATED, reason=None))
        expect("CreateTransaction with a new id for the waiting order",
               await self.create(session, new_payme_id(), label, amount), code(-31008))
        reason, cancelled = REASON_EXECUTION_ERROR, STATE_CANCELLED
        if perform:
            done = expect("PerformTransaction", await self.by_id(session, "PerformTransaction", payme_id),
                          state(STATE_PERFORMED))
            expect("PerformTransaction repeated", await self.by_id(session, "PerformTransaction", payme_id),
                   same_as(done))
            expect("CheckTransaction after perform", await self.by_id(session, "CheckTransaction", payme_id),
                   state(STATE_PERFORMED, reason=None))
            reason, cancelled = REASON_REFUND, STATE_CANCELLED_AFTER_PERFORM
        cancel = expect("CancelTransaction",
                        await self.by_id(session, "CancelTransaction", payme_id, reason=reason), state(cancelled))
        expect("CancelTransaction repeated", await self.by_id(session, "CancelTransaction", payme_id, reason=reason),
               same_as(cancel))
        expect("CheckTransaction after cancel", await self.by_id(session, "CheckTransaction", payme_id),
               state(cancelled, reason=reason))
        return steps

    def account_error(self, answer: RpcResult) -> bool:
        """−31050…−31099 with the message in ru, uz and en, and `data` naming the account field."""
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        return (isinstance(error, dict) and -31099 <= error.get("code", 0) <= -31050
                and isinstance(error.get("message"), dict) and set(error["message"]) >= {"ru", "uz", "en"}
                and error.get("data") == self.account_field)

    # ---- the payer's browser ------------------------------------------------------------------

    def _read_link(self, request: web.Request) -> tuple[str, int, str | None]:
        try:
            params = read_checkout(request.match_info["encoded"])
            amount = int(params["a"])
            label = params[f"ac.{self.account_field}"]
        except (ValueError, KeyError) as err:
            raise web.HTTPBadRequest(text=f"Payme emulator: bad checkout link ({err})") from None
        if params.get("m") != self.merchant_id:
            raise web.HTTPBadRequest(text="Payme emulator: unknown merchant")
        return label, amount, params.get("c")

    async def checkout_page(self, request: web.Request) -> web.Response:
        label, amount, _ = self._read_link(request)
        body = (
            "<!doctype html><meta charset='utf-8'><title>Payme emulator</title>"
            f"<h1>Payme emulator</h1><p>Pay {html.escape(_sums(amount))} UZS for order {html.escape(label)}</p>"
            "<form method='post'><button type='submit' id='emulator-pay'>Pay</button></form>"
        )
        return web.Response(text=body, content_type="text/html")

    async def checkout_pay(self, request: web.Request) -> web.Response:
        label, amount, return_url = self._read_link(request)
        async with aiohttp.ClientSession() as session:
            _, answers = await self.pay(session, label, amount)
        last = answers[-1]
        if not (last.method == "PerformTransaction" and last.result):
            return web.Response(status=502, text=f"the shop refused the payment at {last.method}: {last.body}")
        if return_url:
            raise web.HTTPSeeOther(return_url)
        return web.Response(text="Paid. You may close this page.")


def code(expected: int) -> Callable[[RpcResult], bool]:
    return lambda answer: answer.code == expected


_UNSET: Any = object()


def state(expected: int, *, reason: Any = _UNSET) -> Callable[[RpcResult], bool]:
    def passes(answer: RpcResult) -> bool:
        result = answer.result
        return (result is not None and result.get("state") == expected
                and (reason is _UNSET or result.get("reason") == reason))
    return passes


def same_as(first: RpcResult) -> Callable[[RpcResult], bool]:
    """A repeated call must get the identical result (same ids, same times)."""
    return lambda answer: first.result is not None and answer.result == first.result


def _sums(tiyin: int) -> str:
    return f"{tiyin // 100}.{tiyin % 100:02d}"


def parse_sums(text: str) -> int:
    """`--amount 35000.00` (sums) → tiyin, exactly."""
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        raise ConfigError(f"--amount {text!r} is not an amount in sums such as 35000.00") from None
    if value != value.to_integral_value() or value <= 0:
        raise ConfigError(f"--amount {text!r} is not a positive amount with at most two decimals")
    return int(value)


EVENTS = ("payment", "cancel", "refund", "sandbox")


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate payme EVENT`: Payme's calls for one payment, a cancel, a refund, or the sandbox's
    scenarios 1 and 2. Returns 200 when the shop answered as Payme expects, else 400 (details logged)."""
    assert settings.payme_merchant_id and settings.payme_key
    tiyin = parse_sums(amount) if amount else await invoice_amount(session, settings, url, label, "UZS")
    emulator = PaymeEmulator(merchant_id=settings.payme_merchant_id, key=settings.payme_key.get_secret_value(),
                             notify_url=f"{url}/notify/payme", account_field=settings.payme_account_field)
    ok: bool
    if event == "sandbox":
        steps = await emulator.sandbox(session, label, tiyin, perform=False)
        steps += await emulator.sandbox(session, label, tiyin, perform=True, security=False)
        for step in steps:
            log.log(logging.INFO if step.ok else logging.ERROR, "payme sandbox: %s: %s %s",
                    step.name, "passed" if step.ok else "FAILED", step.answer.body)
        ok = all(step.ok for step in steps)
    elif event == "cancel":
        payme_id = new_payme_id()
        created = await emulator.create(session, payme_id, label, tiyin)
        cancel = await emulator.by_id(session, "CancelTransaction", payme_id, reason=REASON_EXECUTION_ERROR)
        ok = bool(created.result) and bool(cancel.result)
    else:
        payme_id, answers = await emulator.pay(session, label, tiyin)
        ok = answers[-1].method == "PerformTransaction" and bool(answers[-1].result)
        if ok and event == "refund":
            ok = bool((await emulator.by_id(session, "CancelTransaction", payme_id, reason=REASON_REFUND)).result)
    for answer in emulator.calls:
        log.info("payme %s → HTTP %s %s", answer.method, answer.status, answer.body)
    statuses = {answer.status for answer in emulator.calls}
    if statuses - {200}:
        return max(statuses - {200})
    return 200 if ok else 400


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "payme_merchant_id": "5e730e8e0b852a417aa49ceb",
        "payme_key": "demo-payme-key",
        "payme_checkout_url": emulator_url + "/checkout",
        "payme_api_url": emulator_url + "/api",
    }


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    if not (settings.payme_merchant_id and settings.payme_key):
        return None
    return PaymeEmulator(
        merchant_id=settings.payme_merchant_id,
        key=settings.payme_key.get_secret_value(),
        notify_url=local_base + "/notify/payme",
        account_field=settings.payme_account_field,
        fiscal=settings.payme_receipts,
    ).app()
