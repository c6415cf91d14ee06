"""Telegram Stars in the fake Bot API: the invoice methods, the payment a user makes, renewals and refunds.

Bot API methods (as Telegram answers them, checked against the Stars rules): createInvoiceLink,
sendInvoice, answerPreCheckoutQuery, refundStarPayment, editUserStarSubscription, getStarTransactions.
What users do: `pay()` runs Telegram's dance (a pre_checkout_query, the bot's answer within 10 s, then
the successful_payment message), `renew()` charges a subscription's next 30 days, `user_cancels()` and
`renewal_fails()` send `subscription` updates. Tests drive them from Python; a person from the chat
page (`POST /fake/stars/pay`, `POST /fake/stars/renew`), and `ymds simulate telegram_stars` too.

Also the emulator module of `telegram_stars` in EMULATORS: EVENTS, simulate(), demo_values(), demo_app().
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from settings import ConfigError, Settings
from webhook_server.emulators.common import fetch_invoice

if TYPE_CHECKING:
    from webhook_server.emulators.telegram import FakeTelegram

SUBSCRIPTION_PERIOD = 2592000
MAX_SUBSCRIPTION_STARS = 10000
LINK_PREFIX = "https://t.me/$"
PRE_CHECKOUT_SECONDS = 10  # Telegram cancels the payment when the bot has not answered by then
Method = Callable[[dict[str, Any], int], Awaitable[Any]]


def wall_clock() -> int:
    return int(time.time())


def _refused(description: str) -> Exception:
    """Telegram's answer to a request it refuses: HTTP 400 with this description."""
    from webhook_server.emulators.telegram import ApiError  # the package imports this module

    return ApiError(400, description)


@dataclass(slots=True)
class FakeInvoice:
    slug: str
    title: str
    description: str
    payload: str
    amount: int
    subscription_period: int | None = None
    chat_id: int | None = None  # sent with sendInvoice: the chat and message carrying it
    message_id: int | None = None


@dataclass(slots=True)
class FakeSubscription:
    user_id: int
    payload: str
    amount: int
    first_charge_id: str
    expires_at: int
    canceled: bool = False
    canceled_by_bot: bool = False


@dataclass(frozen=True, slots=True)
class PayResult:
    ok: bool
    error_message: str | None = None
    charge_id: str | None = None
    update: dict[str, Any] | None = None  # the successful_payment update, for a test to deliver again


@dataclass(slots=True)
class FakeStars:
    clock: Callable[[], int] = wall_clock
    invoices: dict[str, FakeInvoice] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # pre_checkout_query id → the bot's answer
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, FakeSubscription] = field(default_factory=dict)  # by first charge id
    transactions: list[dict[str, Any]] = field(default_factory=list)
    refunded: set[str] = field(default_factory=set)
    _serial: int = 0

    def methods(self, fake: FakeTelegram) -> dict[str, Method]:
        return {
            "createinvoicelink": self._create_invoice_link, "sendinvoice": partial(self._send_invoice, fake),
            "answerprecheckoutquery": partial(self._answer_pre_checkout, fake),
            "refundstarpayment": partial(self._refund, fake), "edituserstarsubscription": self._edit_subscription,
            "getstartransactions": self._transactions,
        }

    def routes(self, fake: FakeTelegram) -> list[web.RouteDef]:
        return [web.post("/fake/stars/pay", partial(self.pay_view, fake)),
                web.post("/fake/stars/renew", partial(self.renew_view, fake))]

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    # ---- Bot API methods ----------------------------------------------------------------------

    async def _create_invoice_link(self, params: dict[str, Any], bot_id: int) -> str:
        invoice = self._invoice(params, subscription_period=_int(params.get("subscription_period")))
        return LINK_PREFIX + invoice.slug

    async def _send_invoice(self, fake: FakeTelegram, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        chat_id = _int(params.get("chat_id"))
        if chat_id is None:
            raise _refused("Bad Request: chat_id is empty")
        invoice = self._invoice(params, subscription_period=None)
        invoice.chat_id, invoice.message_id = chat_id, fake._new_message_id()
        message = {"message_id": invoice.message_id, "date": self.clock(), "chat": {"id": chat_id, "type": "private"},
                   "from": fake._bot_user(bot_id), "invoice": {
                       "title": invoice.title, "description": invoice.description, "start_parameter": "",
                       "currency": "XTR", "total_amount": invoice.amount}}
        await fake._show(chat_id, message)
        return message

    def _invoice(self, params: dict[str, Any], *, subscription_period: int | None) -> FakeInvoice:
        title, description = str(params.get("title") or ""), str(params.get("description") or "")
        payload, prices = str(params.get("payload") or ""), params.get("prices")
        if params.get("currency") != "XTR" or params.get("provider_token"):
            raise _refused("Bad Request: PAYMENT_PROVIDER_INVALID")
        if not 1 <= len(title) <= 32 or not 1 <= len(description) <= 255:
            raise _refused("Bad Request: INVOICE_TITLE_OR_DESCRIPTION_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise _refused("Bad Request: INVOICE_PAYLOAD_INVALID")
        if not isinstance(prices, list) or len(prices) != 1 or not isinstance(prices[0], dict):
            raise _refused("Bad Request: STARS_INVOICE_INVALID")
        amount = prices[0].get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise _refused("Bad Request: STARS_INVOICE_INVALID")
        if subscription_period is not None and subscription_period != SUBSCRIPTION_PERIOD:
            raise _refused("Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        if subscription_period is not None and amount > MAX_SUBSCRIPTION_STARS:
            raise _refused("Bad Request: SUBSCRIPTION_PRICE_INVALID")
        invoice = FakeInvoice(secrets.token_urlsafe(12), title, description, payload, amount, subscription_period)
        self.invoices[invoice.slug] = invoice
        return invoice

    async def _answer_pre_checkout(self, fake: FakeTelegram, params: dict[str, Any], bot_id: int) -> bool:
        query_id = str(params.get("pre_checkout_query_id") or "")
        ok = str(params.get("ok")).lower() == "true" or params.get("ok") is True
        if query_id not in self.answers or self.answers[query_id]:
            raise _refused("Bad Request: query is too old and response timeout expired or query ID is invalid")
        if not ok and not params.get("error_message"):
            raise _refused("Bad Request: error_message is required when ok is false")
        async with fake._changed:
            self.answers[query_id] = {"ok": ok, "error_message": params.get("error_message")}
            fake._changed.notify_all()
        return True

    async def _refund(self, fake: FakeTelegram, params: dict[str, Any], bot_id: int) -> bool:
        charge_id = str(params.get("telegram_payment_charge_id") or "")
        charge = self.charges.get(charge_id)
        if charge is None or charge["user_id"] != _int(params.get("user_id")):
            raise _refused("Bad Request: CHARGE_NOT_FOUND")
        if charge_id in self.refunded:
            raise _refused("Bad Request: CHARGE_ALREADY_REFUNDED")
        self.refunded.add(charge_id)
        self.transactions.append({"id": charge_id, "amount": charge["amount"], "date": self.clock(),
                                  "receiver": _partner(charge)})
        await fake.queue_update({"message": self._service_message(fake, charge["user_id"], "refunded_payment", {
            "currency": "XTR", "total_amount": charge["amount"], "invoice_payload": charge["payload"],
            "telegram_payment_charge_id": charge_id})})
        return True

    async def _edit_subscription(self, params: dict[str, Any], bot_id: int) -> bool:
        subscription = self.subscriptions.get(str(params.get("telegram_payment_charge_id") or ""))
        if subscription is None or subscription.user_id != _int(params.get("user_id")):
            raise _refused("Bad Request: SUBSCRIPTION_NOT_FOUND")  # only the first charge's id names it
        canceled = str(params.get("is_canceled")).lower() == "true" or params.get("is_canceled") is True
        if not canceled and subscription.canceled and not subscription.canceled_by_bot:
            raise _refused("Bad Request: SUBSCRIPTION_CANCELED_BY_USER")
        subscription.canceled, subscription.canceled_by_bot = canceled, canceled
        return True

    async def _transactions(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        offset, limit = _int(params.get("offset")) or 0, _int(params.get("limit")) or 100
        if not 1 <= limit <= 100 or offset < 0:
            raise _refused("Bad Request: limit must be 1-100")
        return {"transactions": self.transactions[offset:offset + limit]}

    # ---- what users do ------------------------------------------------------------------------

    def find(self, *, url: str | None = None, message_id: int | None = None,
             payload: str | None = None) -> FakeInvoice | None:
        """The invoice behind a link, an invoice message, or (the newest) with a payload."""
        if url is not None:
            return self.invoices.get(url.removeprefix(LINK_PREFIX)) if url.startswith(LINK_PREFIX) else None
        found = [invoice for invoice in self.invoices.values()
                 if (message_id is not None and invoice.message_id == message_id)
                 or (payload is not None and invoice.payload == payload)]
        return found[-1] if found else None

    def subscription_of(self, user_id: int, payload: str) -> FakeSubscription | None:
        found = [s for s in self.subscriptions.values() if s.user_id == user_id and s.payload == payload]
        return found[-1] if found else None

    def pre_checkout_query(self, user_id: int, invoice: FakeInvoice, *, amount: int | None = None) -> dict[str, Any]:
        """A pre_checkout_query update body; its id waits for the bot's answer."""
        query_id = f"pcq_{self._next()}"
        self.answers[query_id] = {}
        return {"pre_checkout_query": {"id": query_id, "from": _user(user_id), "currency": "XTR",
                                       "total_amount": invoice.amount if amount is None else amount,
                                       "invoice_payload": invoice.payload}}

    def charge(self, fake: FakeTelegram, user_id: int, invoice: FakeInvoice) -> dict[str, Any]:
        """Take the Stars (the bot said ok): the successful_payment message update body, subscription fields
        included for a subscription link."""
        charge_id = f"stx{secrets.token_hex(10)}"
        fields: dict[str, Any] = {"currency": "XTR", "total_amount": invoice.amount, "invoice_payload": invoice.payload,
                                  "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": f"{user_id}_0"}
        if invoice.subscription_period:
            expires = self.clock() + invoice.subscription_period
            self.subscriptions[charge_id] = FakeSubscription(user_id, invoice.payload, invoice.amount, charge_id,
                                                             expires)
            fields.update(subscription_expiration_date=expires, is_recurring=True, is_first_recurring=True)
        self._record(charge_id, user_id, invoice.payload, invoice.amount, invoice.subscription_period)
        return {"message": self._service_message(fake, user_id, "successful_payment", fields)}

    async def pay(self, fake: FakeTelegram, user_id: int, invoice: FakeInvoice) -> PayResult:
        """The user presses Pay: pre-checkout, the bot's answer (10 s at most), then the payment."""
        query = await fake.queue_update(self.pre_checkout_query(user_id, invoice))
        query_id = query["pre_checkout_query"]["id"]
        try:
            answer = await fake.wait_for(lambda: self.answers.get(query_id), timeout=PRE_CHECKOUT_SECONDS)
        except TimeoutError:
            await self._notice(fake, user_id, "Payment canceled: the bot did not confirm it in time.")
            return PayResult(False, "timeout")
        if not answer["ok"]:
            await self._notice(fake, user_id, f"Payment failed: {answer['error_message']}")
            return PayResult(False, str(answer["error_message"]))
        update = await fake.queue_update(self.charge(fake, user_id, invoice))
        await self._notice(fake, user_id, f"You paid ⭐ {invoice.amount}.")
        return PayResult(True, None, update["message"]["successful_payment"]["telegram_payment_charge_id"], update)

    async def renew(self, fake: FakeTelegram, subscription: FakeSubscription) -> dict[str, Any] | None:
        """Telegram charges the next 30 days itself (no pre-checkout); None when renewal is off."""
        if subscription.canceled:
            return None
        charge_id = f"stx{secrets.token_hex(10)}"
        subscription.expires_at += SUBSCRIPTION_PERIOD
        self._record(charge_id, subscription.user_id, subscription.payload, subscription.amount, SUBSCRIPTION_PERIOD)
        fields = {"currency": "XTR", "total_amount": subscription.amount, "invoice_payload": subscription.payload,
                  "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": f"{subscription.user_id}_0",
                  "subscription_expiration_date": subscription.expires_at, "is_recurring": True}
        return await fake.queue_update(
            {"message": self._service_message(fake, subscription.user_id, "successful_payment", fields)})

    async def user_cancels(self, fake: FakeTelegram, subscription: FakeSubscription) -> dict[str, Any]:
        subscription.canceled, subscription.canceled_by_bot = True, False
        return await fake.queue_update({"subscription": {"user": _user(subscription.user_id),
                                                         "invoice_payload": subscription.payload, "state": "canceled"}})

    async def renewal_fails(self, fake: FakeTelegram, subscription: FakeSubscription) -> dict[str, Any]:
        return await fake.queue_update({"subscription": {"user": _user(subscription.user_id),
                                                         "invoice_payload": subscription.payload, "state": "failed"}})

    def _record(self, charge_id: str, user_id: int, payload: str, amount: int, period: int | None) -> None:
        self.charges[charge_id] = {"user_id": user_id, "payload": payload, "amount": amount, "period": period}
        self.transactions.append({"id": charge_id, "amount": amount, "date": self.clock(),
                                  "source": _partner(self.charges[charge_id])})

    def _service_message(self, fake: FakeTelegram, user_id: int, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"message_id": fake._new_message_id(), "date": self.clock(),
                "chat": {"id": user_id, "type": "private", "first_name": "Ivan"}, "from": _user(user_id), kind: fields}

    async def _notice(self, fake: FakeTelegram, user_id: int, text: str) -> None:
        """What the Telegram app shows the payer, on the chat page only (not an update)."""
        await fake._show(user_id, {"message_id": fake._new_message_id(), "date": self.clock(),
                                   "from": {"id": 0, "is_bot": False, "first_name": "Telegram"}, "text": text})

    # ---- HTTP, for the chat page and `ymds simulate` ------------------------------------------

    async def pay_view(self, fake: FakeTelegram, request: web.Request) -> web.StreamResponse:
        from webhook_server.emulators.telegram import _read_params

        form = await _read_params(request)
        user_id = _int(form.get("user_id")) or 777
        invoice = self.find(url=str(form["url"])) if form.get("url") else self.find(
            message_id=_int(form.get("message_id")), payload=str(form.get("payload") or "") or None)
        if invoice is None and form.get("payload") and _int(form.get("amount")):
            invoice = self._invoice({"title": "Invoice", "description": "Invoice", "payload": form["payload"],
                                     "currency": "XTR", "prices": [{"amount": _int(form["amount"])}]},
                                    subscription_period=None)
        if invoice is None:
            return web.json_response({"ok": False, "error": "no such invoice"}, status=404)
        result = await self.pay(fake, user_id, invoice)
        return _answer(form, user_id, {"ok": result.ok, "error_message": result.error_message,
                                       "charge_id": result.charge_id}, 200 if result.ok else 409)

    async def renew_view(self, fake: FakeTelegram, request: web.Request) -> web.StreamResponse:
        from webhook_server.emulators.telegram import _read_params

        form = await _read_params(request)
        user_id = _int(form.get("user_id")) or 777
        subscription = self.subscriptions.get(str(form.get("charge_id") or "")) or self.subscription_of(
            user_id, str(form.get("payload") or ""))
        update = await self.renew(fake, subscription) if subscription is not None else None
        if update is None:
            return web.json_response({"ok": False, "error": "no subscription that renews"}, status=409)
        charge_id = update["message"]["successful_payment"]["telegram_payment_charge_id"]
        return _answer(form, subscription.user_id, {"ok": True, "charge_id": charge_id}, 200)

    def controls(self, user_id: int, language: str) -> str:
        """The chat page's Stars panel: each of the user's subscriptions, with a button that renews it now."""
        items = []
        for subscription in self.subscriptions.values():
            if subscription.user_id != user_id:
                continue
            state = "renewal off" if subscription.canceled else "renews"
            items.append(
                f'<form method="post" action="/fake/stars/renew"><input type="hidden" name="redirect" value="1">'
                f'<input type="hidden" name="user_id" value="{user_id}"><input type="hidden" name="language_code" '
                f'value="{html.escape(language)}"><input type="hidden" name="charge_id" '
                f'value="{html.escape(subscription.first_charge_id)}">⭐ {subscription.amount} every 30 days, '
                f'{state}, paid until {time.strftime("%Y-%m-%d %H:%M", time.gmtime(subscription.expires_at))} UTC '
                f'<button type="submit"{" disabled" if subscription.canceled else ""}>Renew now (+30 days)</button>'
                f'</form>')
        return f'<div class="kb"><b>Stars subscriptions</b>{"".join(items)}</div>' if items else ""


def pay_button(user_id: int, language: str, *, url: str | None = None, message_id: int | None = None,
               text: str = "Pay") -> str:
    """A chat-page button paying an invoice link (what the Telegram app opens in place) or invoice message;
    `language` comes HTML-escaped already."""
    target = (f'<input type="hidden" name="url" value="{html.escape(url)}">' if url is not None
              else f'<input type="hidden" name="message_id" value="{message_id}">')
    return (f'<form method="post" action="/fake/stars/pay" style="display:inline"><input type="hidden" '
            f'name="redirect" value="1"><input type="hidden" name="user_id" value="{user_id}"><input type="hidden" '
            f'name="language_code" value="{language}">{target}<button type="submit">'
            f'{html.escape(text)}</button></form>')


def _answer(form: dict[str, Any], user_id: int, body: dict[str, Any], status: int) -> web.StreamResponse:
    if "redirect" in form:
        raise web.HTTPSeeOther(f"/?user_id={user_id}&language_code={form.get('language_code') or 'en'}")
    return web.json_response(body, status=status)


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Ivan"}


def _partner(charge: dict[str, Any]) -> dict[str, Any]:
    partner = {"type": "user", "transaction_type": "invoice_payment", "user": _user(charge["user_id"]),
               "invoice_payload": charge["payload"]}
    return {**partner, "subscription_period": charge["period"]} if charge.get("period") else partner


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---- the emulator module of `telegram_stars` (EMULATORS) ---------------------------------------

EVENTS = ("payment", "renewal")


async def simulate(settings: Settings, session: aiohttp.ClientSession, url: str, event: str, label: str,
                   amount: str | None) -> int:
    """Pay (or renew) an invoice in Stars through the fake Bot API at TELEGRAM_API_URL, as its user: the fake
    sends the bot the pre_checkout_query and the successful_payment. HTTP 200 when the payment went through."""
    invoice = await fetch_invoice(session, settings, url, label)
    stars = amount or str(invoice.get("amounts", {}).get("XTR", ""))
    if not stars.isdigit():
        raise ConfigError(f"invoice {label} has no XTR price; pass --amount in whole Stars")
    form = {"user_id": str(invoice["user_id"]), "payload": label, "amount": stars}
    path = "/fake/stars/pay" if event == "payment" else "/fake/stars/renew"
    async with session.post(f"{settings.telegram_api_url.rstrip('/')}{path}", data=form) as response:
        await response.read()
        return response.status


def demo_values(base_url: str, emulator_url: str) -> dict[str, str]:
    """The demo sells in Stars (with BOT_TOKEN set; the fake Bot API takes the payments)."""
    return {"stars_enabled": "true", "stars_support_contact": "@ymds_demo_owner"}


def demo_app(settings: Settings, local_base: str) -> web.Application | None:
    return None  # the fake Bot API runs on its own: `ymds fake-telegram`
