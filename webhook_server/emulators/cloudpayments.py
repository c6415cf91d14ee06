"""A CloudPayments emulator: a stand-in widget script, the seven notifications signed with Content-HMAC,
and the API (Basic auth, X-Request-ID) for confirm, void, refund, card-token charges and lookups.

It speaks the protocol reference (../shared/providers/cloudpayments.md) through its own wire code
(`cloudpayments_wire`), never through billing/providers/cloudpayments.

The widget script defines `cp.CloudPayments` with `pay()` (and the legacy `charge()`/`auth()`): it shows
Pay and Decline buttons, and the emulator then runs Check → Pay (or Fail), with Recurrent when the
payment sets up a subscription, against our notification routes, exactly as CloudPayments does.

Failure modes on demand (attributes, or `POST /control/notifications`):
- `skip_check`: the terminal has no Check notification configured, so a payment goes straight to Pay
  (nothing asks the shop first, as with real terminals set up without Check).
- `drop_notifications(*kinds)`: notifications of those kinds (all, without kinds) are lost on the way and
  kept in `dropped`; `redeliver_dropped()` sends them late. A lost Check gets no answer, and CloudPayments
  then declines the payment (the emulator's reading; the reference does not say).
- `deliver = False`: API operations (confirm, void, refund, token charges) send no notification.

A widget payment issues a card token; `/payments/tokens/charge` charges a token it issued and sends Pay
(or Fail) as CloudPayments does. A request CloudPayments refuses outright (an unknown token, or any token
while `token_payments` is off: token payments not enabled for the site) is answered Success false without
a Model. `/payments/void` cancels only a two-stage (Authorized) payment; a completed one-stage payment is
refused, to be refunded instead. Subscriptions (the widget's `recurrent`, /subscriptions/*) and their
charges on the emulator's own clock are in `cloudpayments_subscriptions` (`desk`, `run_schedule()`). `decline_token` (or
`POST /control/tokens/{token}/decline`) makes a token's next charges decline with a ReasonCode, or ask
for 3-D Secure. A repeated X-Request-ID gets the stored answer for the emulator's life (CloudPayments
keeps it an hour; `expire_request_ids` plays that hour passing). Every refund the API made is in `refunds`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web

from billing.money import Money
from settings import ConfigError, Environment, Settings
from webhook_server.emulators.cloudpayments_receipts import data_receipt, json_data, kkt_handler, receipt_problem
from webhook_server.emulators.cloudpayments_subscriptions import EmulatedSubscription, SubscriptionDesk, widget_schedule
from webhook_server.emulators.cloudpayments_wire import (
    AUTHORIZED,
    AWAITING_AUTHENTICATION,
    CANCELLED,
    COMPLETED,
    DECLINED,
    FORM,
    INSUFFICIENT_FUNDS,
    TEST_CARD,
    Kind,
    basic_auth,
    cancel_fields,
    decimal_text,
    fail_fields,
    minor_units,
    notification_body,
    notification_headers,
    read_request,
    recurrent_fields,
    refund_fields,
    transaction_fields,
)
from webhook_server.emulators.common import Declines, control_body, fetch_invoice, times_of

log = logging.getLogger(__name__)

NAME = "cloudpayments"
EMULATOR = web.AppKey("cloudpayments_emulator", "CloudPaymentsEmulator")
WIDGET_JS = """(function () {
  var script = document.currentScript;
  var base = script.src.replace(/\\/widget\\.js(\\?.*)?$/, "");
  function CloudPayments(config) { this.config = config || {}; }
  CloudPayments.prototype.pay = function (scheme, options, callbacks) {
    callbacks = callbacks || {};
    var box = document.createElement("div");
    box.id = "emulator-widget";
    box.innerHTML = "<p>CloudPayments emulator: " + options.amount + " " + (options.currency || "RUB") +
      "</p><button id='emulator-pay'>Pay</button> <button id='emulator-decline'>Decline</button>";
    document.body.appendChild(box);
    function send(outcome) {
      var body = new URLSearchParams({scheme: scheme, outcome: outcome, options: JSON.stringify(options)});
      fetch(base + "/widget/pay", {method: "POST", body: body}).then(function (r) { return r.json(); })
        .then(function (result) {
          box.remove();
          if (result.success) { callbacks.onSuccess && callbacks.onSuccess(options); }
          else { callbacks.onFail && callbacks.onFail(result.reason, options); }
          callbacks.onComplete && callbacks.onComplete(result, options);
        });
    }
    document.getElementById("emulator-pay").onclick = function () { send("pay"); };
    document.getElementById("emulator-decline").onclick = function () { send("decline"); };
    if (window.location.hash === "#emulator-autopay") { send("pay"); }
  };
  CloudPayments.prototype.charge = function (o, s, f) { this.pay("charge", o, {onSuccess: s, onFail: f}); };
  CloudPayments.prototype.auth = function (o, s, f) { this.pay("auth", o, {onSuccess: s, onFail: f}); };
  window.cp = {CloudPayments: CloudPayments};
})();
"""


def new_transaction_id() -> int:
    return secrets.randbelow(9 * 10**9) + 10**9


def utc_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Reply:
    """Our server's answer as CloudPayments reads it: the HTTP status and the code (None if not JSON).
    A lost notification has status 0: CloudPayments got no answer at all."""

    status: int
    code: int | None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.code == 0


LOST = Reply(0, None)


@dataclass(slots=True)
class NotificationSender:
    """CloudPayments' side of the notifications: signs each body with Content-HMAC and POSTs it."""

    session: aiohttp.ClientSession
    notify_base: str  # …/notify/cloudpayments
    secret: str
    content_type: str = FORM
    sent: list[tuple[Kind, dict[str, str], Reply]] = field(default_factory=list)

    async def send(self, kind: Kind | str, fields: Mapping[str, str]) -> Reply:
        kind = Kind(kind)
        body = notification_body(fields, self.content_type)
        async with self.session.post(f"{self.notify_base}/{kind.value}", data=body,
                                     headers=notification_headers(body, self.secret, self.content_type)) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
            code = answer.get("code") if isinstance(answer, dict) else None
            reply = Reply(response.status, code if isinstance(code, int) else None)
        self.sent.append((kind, dict(fields), reply))
        return reply


@dataclass(slots=True)
class Payment:
    id: int
    label: str
    account_id: str
    amount: Money
    status: str
    token: str
    subscription_id: str = ""
    refunded: int = 0
    description: str = ""
    reason: tuple[int, str] | None = None  # a declined transaction's ReasonCode and Reason
    created_at: datetime = field(default_factory=utc_clock)


@dataclass(frozen=True, slots=True)
class Refund:
    """One refund the API made (a repeated X-Request-ID is answered from the store and makes none)."""

    refund_id: int
    payment_id: int
    amount: int  # kopecks


@dataclass(frozen=True, slots=True)
class TokenDecline:
    """How a token charge fails: declined with a ReasonCode, or stopped by the bank asking for 3-D Secure."""

    code: int = INSUFFICIENT_FUNDS[0]
    reason: str = INSUFFICIENT_FUNDS[1]
    secure3d: bool = False


UNKNOWN_TOKEN = "Token not found"
TOKENS_OFF = "Token payments are not enabled for this site"  # the emulator's wording of that refusal
TOKEN_CHARGE_REQUIRED = ("Amount", "AccountId", "Token", "TrInitiatorCode")
SUCCEEDED = (COMPLETED, AUTHORIZED)  # the statuses whose lookup answers Success true


@dataclass(slots=True)
class CloudPaymentsEmulator:
    public_id: str
    api_secret: str
    notify_base: str
    test_mode: bool = True
    content_type: str = FORM
    deliver: bool = True  # False: API operations send no notification
    skip_check: bool = False  # True: a terminal without Check; payments go straight to Pay
    drop: set[Kind] = field(default_factory=set)  # notifications of these kinds are lost on the way
    down: bool = False  # True: the API answers 503
    token_payments: bool = True  # False: the site may not charge saved tokens (refused without a Model)
    receipts_required: bool = False  # the site's online kassa needs a valid CustomerReceipt (cloudpayments_receipts)
    receipts: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (widget|recurrent|charge, ...)
    kkt_receipts: list[dict[str, Any]] = field(default_factory=list)  # what /kkt/receipt issued, with its Id
    kkt_failures: int = 0  # the next /kkt/receipt calls issue the receipt but answer HTTP 500
    clock: Callable[[], datetime] = utc_clock
    transactions: dict[int, Payment] = field(default_factory=dict)
    subscriptions: dict[str, EmulatedSubscription] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)  # card tokens its widget payments issued
    token_declines: Declines[TokenDecline] = field(default_factory=Declines)
    charges: list[int] = field(default_factory=list)  # transactions made by /payments/tokens/charge
    refunds: list[Refund] = field(default_factory=list)
    api_calls: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    replies: list[tuple[Kind, Reply]] = field(default_factory=list)
    delivered: list[tuple[Kind, dict[str, str]]] = field(default_factory=list)  # what reached the shop
    dropped: list[tuple[Kind, dict[str, str]]] = field(default_factory=list)
    _answered: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    desk: SubscriptionDesk = field(init=False)

    def __post_init__(self) -> None:
        self.desk = SubscriptionDesk(self)

    async def run_schedule(self) -> list[int]:
        """CloudPayments' clock: the subscriptions' charges (and notifications sent again) due by now."""
        return await self.desk.run_schedule()

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self._session_ctx)
        app.add_routes([web.get("/widget.js", self.widget_js), web.post("/widget/pay", self.widget_pay),
                        web.post("/control/notifications", self._control_notifications),
                        web.post("/control/notifications/redeliver", self._control_redeliver),
                        web.post("/control/tokens/{token}/decline", self._control_decline),
                        web.delete("/control/tokens/{token}/decline", self._control_allow),
                        web.post("/kkt/receipt", kkt_handler(self))]
                       + [web.post(path, self.api(method)) for path, method in self._methods().items()])
        return app

    async def _session_ctx(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            self._session = session
            yield

    def sender(self) -> NotificationSender:
        assert self._session is not None, "the emulator's app is not running"
        return NotificationSender(self._session, self.notify_base, self.api_secret, self.content_type)

    # ---- notifications ------------------------------------------------------------------------

    def drop_notifications(self, *kinds: Kind | str) -> None:
        """Lose every later notification of these kinds (of every kind when none is named)."""
        self.drop = {Kind(kind) for kind in kinds} if kinds else set(Kind)

    async def notify(self, kind: Kind | str, fields: Mapping[str, str]) -> Reply:
        """Send one notification, or lose it when its kind is dropped (kept for `redeliver_dropped`)."""
        kind = Kind(kind)
        if kind in self.drop:
            self.dropped.append((kind, dict(fields)))
            log.info("cloudpayments emulator lost a %s notification on the way", kind.value)
            return LOST
        return await self._deliver(kind, fields)

    async def _deliver(self, kind: Kind, fields: Mapping[str, str]) -> Reply:
        reply = await self.sender().send(kind, fields)
        self.replies.append((kind, reply))
        self.delivered.append((kind, dict(fields)))
        return reply

    async def redeliver_dropped(self) -> list[Reply]:
        """The lost notifications arrive late, in the order they were sent (whatever `drop` says now)."""
        late, self.dropped = self.dropped, []
        return [await self._deliver(kind, fields) for kind, fields in late]

    # ---- the widget ---------------------------------------------------------------------------

    async def widget_js(self, request: web.Request) -> web.Response:
        return web.Response(text=WIDGET_JS, content_type="application/javascript")

    async def widget_pay(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            options = json.loads(str(form.get("options", "")), parse_float=Decimal)
        except ValueError:
            return _cors(web.json_response({"success": False, "reason": "options are not JSON"}, status=400))
        result = await self.pay_widget(options, str(form.get("scheme", "charge")), str(form.get("outcome", "pay")))
        return _cors(web.json_response(result))

    async def pay_widget(self, options: Mapping[str, Any], scheme: str = "charge",
                         outcome: str = "pay") -> dict[str, Any]:
        """The payer pressed Pay (or Decline) in the widget: Check (unless skipped), then Pay or Fail, then
        Recurrent when the payment sets up a subscription."""
        if options.get("publicId") != self.public_id:
            return {"success": False, "reason": "unknown publicId"}
        amount = _widget_amount(options)
        if amount is None:
            return {"success": False, "reason": "bad amount"}
        label, account = str(options.get("invoiceId", "")), str(options.get("accountId", ""))
        data: dict[str, Any] = options["data"] if isinstance(options.get("data"), dict) else {}
        refused = self._widget_receipts(data, label, amount.minor)
        if refused is not None:
            return {"success": False, "reason": refused}
        tx = Payment(new_transaction_id(), label, account, amount, AUTHORIZED if scheme == "auth" else COMPLETED,
                     "tk_" + secrets.token_hex(12), created_at=self.clock())
        common: dict[str, Any] = {"transaction_id": tx.id, "amount": amount, "label": label, "account_id": account,
                                  "test": self.test_mode}
        if not self.skip_check:
            check = await self.notify(Kind.CHECK, transaction_fields(**common, status=tx.status, pay=False,
                                                                     data=data))
            if not check.ok:
                reason = "the shop did not answer Check" if check is LOST else \
                    f"the shop declined the payment (code {check.code})"
                return {"success": False, "reason": reason}
        if outcome == "decline":
            await self.notify(Kind.FAIL, fail_fields(**common))
            return {"success": False, "reason": INSUFFICIENT_FUNDS[1]}
        schedule = widget_schedule(data)
        if schedule is not None:
            tx.subscription_id = self.desk.open(account_id=account, amount=amount, token=tx.token,
                                                interval=schedule[0], period=schedule[1], label=label,
                                                description=str(options.get("description", ""))).id
        self.transactions[tx.id] = tx
        self.tokens.add(tx.token)
        await self.notify(Kind.PAY, transaction_fields(**common, status=tx.status, token=tx.token, data=data,
                                                       subscription_id=tx.subscription_id))
        if schedule is not None:
            await self.desk.send(Kind.RECURRENT, self.desk.recurrent(self.subscriptions[tx.subscription_id]))
        return {"success": True, "transactionId": tx.id}

    def _widget_receipts(self, data: Mapping[str, Any], label: str, amount: int) -> str | None:
        """A kassa that needs receipts: the widget's CustomerReceipt, and the subscription's customerReceipt when
        it sets one up, each valid for the amount; why not, or None (the receipts then kept)."""
        if not self.receipts_required:
            return None
        wanted = [("widget", ("CustomerReceipt",))]
        if widget_schedule(data) is not None:
            wanted.append(("recurrent", ("recurrent", "customerReceipt")))
        found = [(kind, data_receipt(data, *path)) for kind, path in wanted]
        for kind, receipt in found:
            problem = receipt_problem(receipt, amount)
            if problem is not None:
                log.info("cloudpayments emulator refused the widget's payment: %s receipt: %s", kind, problem)
                return f"receipt: {problem}"
        self.receipts.extend((kind, label, receipt) for kind, receipt in found)
        return None

    def stored_answer(self, request_id: str) -> dict[str, Any] | None:
        stored = self._answered.get(request_id) if request_id else None
        return stored[1] if stored is not None else None

    def store_answer(self, request_id: str, body: dict[str, Any]) -> None:
        self._answered[request_id] = (200, body)

    async def renew(self, subscription_id: str, *, with_invoice_id: bool = False) -> Payment:
        """A scheduled charge of a subscription: Pay with its SubscriptionId (InvoiceId only if asked)."""
        sub = self.subscriptions[subscription_id]
        tx = Payment(new_transaction_id(), sub.label if with_invoice_id else "", sub.account_id,
                     sub.amount, COMPLETED, sub.token, subscription_id, created_at=self.clock())
        self.transactions[tx.id] = tx
        await self.notify(Kind.PAY, transaction_fields(
            transaction_id=tx.id, amount=tx.amount, label=tx.label, account_id=tx.account_id, test=self.test_mode,
            token=tx.token, subscription_id=subscription_id))
        return tx

    async def _after_api(self, kind: Kind, fields: Mapping[str, str]) -> None:
        """The notification an API operation causes, unless `deliver` is off."""
        if self.deliver and self.notify_base:
            await self.notify(kind, fields)

    # ---- the API ------------------------------------------------------------------------------

    def _methods(self) -> dict[str, Any]:
        return {"/test": self._test, "/payments/confirm": self._confirm, "/payments/void": self._void,
                "/payments/refund": self._refund, "/payments/tokens/charge": self._charge_token,
                "/payments/get": self._get, "/payments/find": self._find, **self.desk.methods()}

    def api(self, method: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if self.down:
                return web.Response(status=503, text="Service Unavailable")
            if request.headers.get("Authorization") != basic_auth(self.public_id, self.api_secret):
                return web.Response(status=401, text="Unauthorized")
            fields = read_request(await request.read(), request.headers.get("Content-Type"))
            if fields is None:
                return web.json_response({"Success": False, "Message": "Bad request", "Model": None})
            request_id = request.headers.get("X-Request-ID", "")
            self.api_calls.append((request.path, fields, request_id))
            if request_id and request_id in self._answered:  # a repeated X-Request-ID gets the stored answer
                status, body = self._answered[request_id]
                return web.json_response(body, status=status)
            body = await method(fields)
            if request_id:
                self._answered[request_id] = (200, body)
            return web.json_response(body)

        return handler

    def _transaction(self, fields: Mapping[str, str]) -> Payment | None:
        raw = fields.get("TransactionId", "")
        return self.transactions.get(int(raw)) if raw.isdigit() else None

    async def _test(self, fields: Mapping[str, str]) -> dict[str, Any]:
        return _ok(None)

    async def _confirm(self, fields: Mapping[str, str]) -> dict[str, Any]:
        tx = self._transaction(fields)
        if tx is None or tx.status != AUTHORIZED:
            return _refused("Payment is not authorized")
        amount = minor_units(fields.get("Amount", ""))
        if amount is None or amount > tx.amount.minor:
            return _refused("Amount exceeds the authorized amount")
        tx.status, tx.amount = COMPLETED, Money(amount, tx.amount.currency)
        await self._after_api(Kind.CONFIRM, transaction_fields(
            transaction_id=tx.id, amount=tx.amount, label=tx.label, account_id=tx.account_id,
            test=self.test_mode, token=tx.token, subscription_id=tx.subscription_id))
        return _ok(None)

    async def _void(self, fields: Mapping[str, str]) -> dict[str, Any]:
        tx = self._transaction(fields)
        if tx is None or tx.status != AUTHORIZED:  # a completed one-stage payment is refunded, never voided
            return _refused("Payment cannot be voided")
        tx.status = CANCELLED
        await self._after_api(Kind.CANCEL, cancel_fields(transaction_id=tx.id, amount=tx.amount, label=tx.label,
                                                         account_id=tx.account_id))
        return _ok(None)

    async def _refund(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """§6: a refund of a completed payment, partial allowed, never more than paid; a Refund notification
        (PaymentTransactionId = the payment) follows."""
        tx = self._transaction(fields)
        amount = minor_units(fields.get("Amount", ""))
        if tx is None or tx.status != COMPLETED:
            return _refused("Payment is not completed")
        if amount is None or amount <= 0 or tx.refunded + amount > tx.amount.minor:
            return _refused("Refund amount exceeds the payment")
        tx.refunded += amount
        refund = Refund(new_transaction_id(), tx.id, amount)
        self.refunds.append(refund)
        await self._after_api(Kind.REFUND, refund_fields(
            refund_id=refund.refund_id, payment_id=tx.id, amount=Money(amount, tx.amount.currency), label=tx.label,
            account_id=tx.account_id))
        return _ok({"TransactionId": refund.refund_id})

    # ---- card-token charges ---------------------------------------------------------------------

    def decline_token(self, token: str, decline: TokenDecline = TokenDecline(), times: int = 0) -> None:
        """Make the next `times` charges of a token (all of them while 0) fail as `decline` says."""
        self.token_declines.add(token, decline, times)

    def allow_token(self, token: str) -> None:
        self.token_declines.clear(token)

    def expire_request_ids(self) -> None:
        """An hour has passed: CloudPayments no longer answers a repeated X-Request-ID from its store."""
        self._answered.clear()

    async def _charge_token(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """A merchant-initiated one-stage charge of a saved token: Completed, or Declined (Fail), or stopped
        for 3-D Secure (no notification until the payer passes it, which never happens here)."""
        missing = next((name for name in TOKEN_CHARGE_REQUIRED if not fields.get(name)), None)
        amount = minor_units(fields.get("Amount", ""))
        if missing is not None or amount is None or amount <= 0:
            return _refused(f"{missing} is required" if missing else "Amount is not a decimal amount")
        token = fields["Token"]
        if not self.token_payments or token not in self.tokens:
            return _refused(TOKENS_OFF if not self.token_payments else UNKNOWN_TOKEN)
        if self.receipts_required:
            receipt = data_receipt(json_data(fields.get("JsonData", "")), "CustomerReceipt")
            problem = receipt_problem(receipt, amount)
            if problem is not None:
                return _refused(f"CustomerReceipt is invalid: {problem}")
            self.receipts.append(("charge", fields.get("InvoiceId", ""), receipt))
        tx = Payment(new_transaction_id(), fields.get("InvoiceId", ""), fields["AccountId"],
                     Money(amount, fields.get("Currency") or "RUB"), COMPLETED, token,
                     description=fields.get("Description", ""), created_at=self.clock())
        self.transactions[tx.id] = tx
        self.charges.append(tx.id)
        decline = self.token_declines.take(token)
        if decline is not None and decline.secure3d:
            tx.status = AWAITING_AUTHENTICATION
            return {"Success": False, "Message": None, "Model": {
                "TransactionId": tx.id, "PaReq": secrets.token_urlsafe(24), "GoReq": None,
                "AcsUrl": "https://acs.emulator.test/3ds"}}
        common: dict[str, Any] = {"transaction_id": tx.id, "amount": tx.amount, "label": tx.label,
                                  "account_id": tx.account_id, "test": self.test_mode}
        if decline is not None:
            tx.status, tx.reason = DECLINED, (decline.code, decline.reason)
            await self._after_api(Kind.FAIL, fail_fields(**common, reason=tx.reason))
            return {"Success": False, "Message": None, "Model": self._model(tx)}
        await self._after_api(Kind.PAY, transaction_fields(**common, token=token, description=tx.description))
        return _ok(self._model(tx))

    async def _get(self, fields: Mapping[str, str]) -> dict[str, Any]:
        tx = self._transaction(fields)
        return _refused("Not found") if tx is None else self._envelope(tx)

    async def _find(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """§4: the latest transaction whose InvoiceId is the one asked for; Success says whether it took (or
        holds) the money, and a declined one comes back as a model with Success false."""
        label = fields.get("InvoiceId", "")
        if not label:
            return _refused("InvoiceId is required")
        tx = next((tx for tx in reversed(self.transactions.values()) if tx.label == label), None)
        return _refused("Not found") if tx is None else self._envelope(tx)

    def _envelope(self, tx: Payment) -> dict[str, Any]:
        return {"Success": tx.status in SUCCEEDED, "Message": None, "Model": self._model(tx)}

    def _model(self, tx: Payment) -> dict[str, Any]:
        """A transaction as the API's Model shows it (amounts as JSON numbers, as CloudPayments writes them)."""
        first_six, last_four, card_type, expiry = TEST_CARD
        code, reason = tx.reason or (0, "Approved")
        amount = float(decimal_text(tx.amount.minor))
        return {
            "TransactionId": tx.id, "Amount": amount, "Currency": tx.amount.currency, "PaymentAmount": amount,
            "PaymentCurrency": tx.amount.currency, "InvoiceId": tx.label or None, "AccountId": tx.account_id,
            "Email": None, "Description": tx.description, "JsonData": None,
            "CreatedDateIso": tx.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "TestMode": self.test_mode,
            "Status": tx.status, "Reason": reason, "ReasonCode": code,
            "CardHolderMessage": "Payment declined" if tx.reason else "Payment successful",
            "CardFirstSix": first_six, "CardLastFour": last_four, "CardType": card_type, "CardExpDate": expiry,
            "Name": "CARD HOLDER", "Token": tx.token or None, "SubscriptionId": tx.subscription_id or None,
        }

    # ---- the control API ------------------------------------------------------------------------

    async def _control_notifications(self, request: web.Request) -> web.Response:
        """POST /control/notifications {"drop": "all" | ["pay", ...] | [], "skip_check": bool}: which
        notifications are lost on the way, and whether the terminal sends Check at all."""
        body = await control_body(request)
        drop = body.get("drop", sorted(self.drop)) if body is not None else None
        skip_check = body.get("skip_check", self.skip_check) if body is not None else None
        kinds = [Kind.__members__.get(str(kind).upper()) for kind in drop] if isinstance(drop, list) else None
        if not isinstance(skip_check, bool) or not (drop == "all" or (kinds is not None and None not in kinds)):
            return web.json_response({"error": f"expected drop: \"all\" or a list of {[k.value for k in Kind]}, "
                                               "skip_check: bool"}, status=400)
        self.drop = set(Kind) if drop == "all" else {kind for kind in kinds or [] if kind is not None}
        self.skip_check = skip_check
        return web.json_response(self._control_state())

    async def _control_redeliver(self, request: web.Request) -> web.Response:
        """POST /control/notifications/redeliver: the lost notifications arrive now."""
        replies = await self.redeliver_dropped()
        return web.json_response({**self._control_state(), "redelivered": len(replies),
                                  "answered": sum(reply.ok for reply in replies)})

    def _control_state(self) -> dict[str, Any]:
        return {"drop": sorted(kind.value for kind in self.drop), "skip_check": self.skip_check,
                "dropped": len(self.dropped), "refunds": len(self.refunds)}

    async def _control_decline(self, request: web.Request) -> web.Response:
        """POST /control/tokens/{token}/decline {"ReasonCode": 5051, "Reason": "InsufficientFunds", "times": N
        (absent or 0: always), "secure3d": false}."""
        body = await control_body(request)
        refusal = web.json_response({"error": "expected ReasonCode: int, Reason: str, times: int >= 0, "
                                              "secure3d: bool"}, status=400)
        if body is None:
            return refusal
        times, secure3d = times_of(body), body.get("secure3d", False)
        code, reason = body.get("ReasonCode", INSUFFICIENT_FUNDS[0]), body.get("Reason", INSUFFICIENT_FUNDS[1])
        if (times is None or not isinstance(code, int) or isinstance(code, bool) or not isinstance(reason, str)
                or not isinstance(secure3d, bool)):
            return refusal
        self.decline_token(request.match_info["token"], TokenDecline(code, reason, secure3d), times)
        return web.json_response({"ReasonCode": code, "Reason": reason, "times": times, "secure3d": secure3d})

    async def _control_allow(self, request: web.Request) -> web.Response:
        """DELETE /control/tokens/{token}/decline: the token's charges succeed again."""
        self.allow_token(request.match_info["token"])
        return web.json_response({"declined": False})


def _widget_amount(options: Mapping[str, Any]) -> Money | None:
    """The widget's `amount` (major units, a number or its text) and `currency`, as exact kopecks."""
    try:
        minor = minor_units(format(Decimal(str(options.get("amount", ""))), "f"))
    except InvalidOperation:
        return None
    return None if minor is None else Money(minor, str(options.get("currency") or "RUB"))


def _ok(model: Any) -> dict[str, Any]:
    return {"Success": True, "Message": None, "Model": model}


def _refused(message: str) -> dict[str, Any]:
    return {"Success": False, "Message": message, "Model": None}


def _cors(response: web.Response) -> web.Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


EVENTS = ("payment", "check", "fail", "hold", "confirm", "refund", "cancel", "subscription", "renewal")


async def simulate(
    settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str, amount: str | None
) -> int:
    """`ymds simulate cloudpayments EVENT`: CloudPayments' notifications for one payment, correctly signed.

    payment: Check, Pay; check: Check; fail: Check, Fail; hold: Check, Pay (Authorized); confirm: hold, then
    Confirm; refund: payment, then Refund; cancel: hold, then Cancel; subscription: a payment that sets up a
    subscription, then Recurrent; renewal: subscription, then a scheduled Pay of it. 200 when every answer was
    {"code": 0}; the HTTP status of the first that was not 200; 422 when a code was not 0.
    """
    assert settings.cloudpayments_api_secret is not None
    invoice = await fetch_invoice(session, settings, url, label)
    paid = _simulated_amount(invoice, label, amount)
    secret = settings.cloudpayments_api_secret.get_secret_value()
    sender = NotificationSender(session, f"{url}/notify/cloudpayments", secret)
    payment_id = new_transaction_id()
    common: dict[str, Any] = {"transaction_id": payment_id, "amount": paid, "label": label,
                              "account_id": str(invoice["user_id"]), "test": plays_test_site(settings)}
    held = event in ("hold", "confirm", "cancel")
    subscription = "sc_" + secrets.token_hex(12) if event in ("subscription", "renewal") else ""
    status = AUTHORIZED if held else COMPLETED
    replies = [await sender.send(Kind.CHECK, transaction_fields(**common, status=status, pay=False))]
    if event == "fail":
        replies.append(await sender.send(Kind.FAIL, fail_fields(**common)))
    elif event != "check" and replies[0].ok:
        replies.append(await sender.send(Kind.PAY, transaction_fields(
            **common, status=status, token="tk_" + secrets.token_hex(12), subscription_id=subscription)))
    if event == "confirm":
        replies.append(await sender.send(Kind.CONFIRM, transaction_fields(**common)))
    elif event == "refund":
        replies.append(await sender.send(Kind.REFUND, refund_fields(
            refund_id=new_transaction_id(), payment_id=payment_id, amount=paid, label=label,
            account_id=common["account_id"])))
    elif event == "cancel":
        replies.append(await sender.send(Kind.CANCEL, cancel_fields(
            transaction_id=payment_id, amount=paid, label=label, account_id=common["account_id"])))
    elif subscription:
        replies.append(await sender.send(Kind.RECURRENT, recurrent_fields(
            subscription_id=subscription, account_id=common["account_id"], amount=paid, status="Active",
            interval="Day", period=int(invoice.get("period_days") or 30))))
        if event == "renewal":
            replies.append(await sender.send(Kind.PAY, transaction_fields(
                **{**common, "transaction_id": new_transaction_id(), "label": ""},
                token="tk_" + secrets.token_hex(12), subscription_id=subscription)))
    for kind, _, reply in sender.sent:
        log.info("cloudpayments %s answered HTTP %s, code %s", kind.value, reply.status, reply.code)
    failed = [reply.status for reply in replies if reply.status != 200]
    if failed:
        return failed[0]
    return 200 if all(reply.ok for reply in replies) else 422


def _simulated_amount(invoice: Mapping[str, Any], label: str, amount: str | None) -> Money:
    """--amount (major units), else the invoice's RUB price."""
    if amount is not None:
        minor = minor_units(amount)
        if minor is None:
            raise ConfigError("--amount is not a decimal amount")
        return Money(minor, "RUB")
    if "RUB" not in invoice.get("amounts", {}):
        raise ConfigError(f"invoice {label} has no RUB price")
    return Money(int(invoice["amounts"]["RUB"]), "RUB")


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    return {
        "cloudpayments_public_id": "pk_demo00000000000000000000000",
        "cloudpayments_api_secret": "demo-cloudpayments-api-secret",
        "cloudpayments_api_url": emulator_url,
        "cloudpayments_widget_url": emulator_url + "/widget.js",
        "cloudpayments_two_stage": "false",
        "cloudpayments_test_mode": "true",  # the emulator is a test site: its notifications carry TestMode=1
        "cloudpayments_recurrent_plans": "",
    }


def demo_app(settings: Settings, local_base: str, clock: Callable[[], datetime] = utc_clock) -> web.Application | None:
    """The demo's emulator; its subscriptions charge on `clock` (pass the demo's clock when it runs faster)."""
    if not (settings.provider_enabled(NAME) and settings.cloudpayments_public_id
            and settings.cloudpayments_api_secret):
        return None
    emulator = CloudPaymentsEmulator(
        public_id=settings.cloudpayments_public_id,
        api_secret=settings.cloudpayments_api_secret.get_secret_value(),
        notify_base=local_base + "/notify/cloudpayments",
        test_mode=plays_test_site(settings),
        clock=clock,
        receipts_required=settings.cloudpayments_receipts,  # the demo's kassa fiscalizes as configured
    )
    app = emulator.app()
    app[EMULATOR] = emulator
    app.cleanup_ctx.append(emulator.desk.clock_ctx)
    return app


def plays_test_site(settings: Settings) -> bool:
    """The emulator plays a site in test mode (TestMode=1) when our server grants test payments:
    CLOUDPAYMENTS_TEST_MODE, or unset, in development."""
    if settings.cloudpayments_test_mode is not None:
        return settings.cloudpayments_test_mode
    return settings.environment is Environment.DEVELOPMENT
