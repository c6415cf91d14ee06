"""The Payme emulator's Subscribe API (`POST /api`, JSON-RPC 2.0, `X-Auth`): cards and receipts.

Front-end methods (cards.create, cards.get_verify_code, cards.verify) accept `X-Auth: <merchant id>`
and answer CORS, since the payer's browser calls them from our payment page; server methods
(cards.check, cards.remove, receipts.*) need `X-Auth: <merchant id>:<KEY>`. Both compared in constant
time. The SMS code is always 666666, as in Payme's sandbox.

Test cards (any expiry in the future, e.g. 03/99): 8600 0691 9540 6311 and 8600 4954 7331 6478 (Payme's
sandbox cards) and any other number with a valid check digit verify and pay; 8600 1400 0000 0001 is
declined for insufficient funds (−31630) when charged; 8600 1300 0000 0002 is expired (−31301);
8600 3100 0000 0000 verifies but is not recurrent. A number with a bad check digit is −31300.
`decline_next()` (or `POST /control/cards/decline`) makes a token's next charges fail with a given code.
`fail_next()` (or `POST /control/failures`) makes the next calls of one method answer a Payme error
(−31601 merchant unknown or key inactive, −32400 system error, −31002 processing centre unavailable, ...)
or an HTTP status (a 5xx, or a 4xx as from a wrong URL), before it does anything.

With a merchant hook (PaymeEmulator.perform_receipts), receipts.pay goes through the shop's Merchant API
as the receipt moves through its states (reference §4, §5.3, §6): Check and Create (state 1), then the
debit (state 2), then Perform (state 3, then 4 paid); a debit that fails after Create makes Payme cancel
that transaction on the shop (CancelTransaction, reason 2) and the receipt (50), and receipts.pay answers
the decline.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from billing.luhn import luhn_valid
from billing.signing import secrets_equal
from webhook_server.emulators.payme_refunds import ReceiptCancels

# Receipt states (reference §4), the emulator's own: 0 waiting, 4 paid, 21 queued for cancel, 50 cancelled.
RECEIPT_CREATED = 0
RECEIPT_PAID = 4
RECEIPT_CANCEL_QUEUED = 21
RECEIPT_CANCELLED = 50
VERIFY_CODE = "666666"
PHONE = "99890*****31"
CODE_WAIT_MS = 60_000
UZS_NUMERIC = 860
INSUFFICIENT_FUNDS_CARD = "8600140000000001"
EXPIRED_CARD = "8600130000000002"
NOT_RECURRENT_CARD = "8600310000000000"
SANDBOX_CARDS = ("8600069195406311", "8600495473316478")
FRONT_END_METHODS = frozenset({"cards.create", "cards.get_verify_code", "cards.verify"})
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, X-Auth", "Access-Control-Max-Age": "600"}

# The card's debit: a decline code, or None once the money is taken.
Debit = Callable[[], int | None]
# Merchant API hook: pay the receipt through the shop's /notify/payme around the debit; an error code (the
# shop's, or the debit's once the shop's transaction was cancelled), or None when performed.
MerchantHook = Callable[[dict[str, Any], Debit], Awaitable[int | None]]


def masked(number: str) -> str:
    """A card number as Payme shows it in `card.number`: the first six and last four digits (860006******6311)."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


class RpcFailure(Exception):
    def __init__(self, code: int, en: str, ru: str, uz: str, data: str | None = None) -> None:
        super().__init__(en)
        self.error: dict[str, Any] = {"code": code, "message": {"ru": ru, "uz": uz, "en": en}}
        if data is not None:
            self.error["data"] = data


def access_denied() -> RpcFailure:
    return RpcFailure(-32504, "Access denied", "Доступ запрещён", "Kirish taqiqlangan")


def card_not_found() -> RpcFailure:
    return RpcFailure(-31400, "Card not found", "Карта не найдена", "Karta topilmadi")


def invalid_params(name: str) -> RpcFailure:
    return RpcFailure(-32602, "Invalid params", "Неверные параметры", "Parametrlar noto'g'ri", name)


def receipt_not_found() -> RpcFailure:
    return RpcFailure(-31602, "Receipt not found", "Чек не найден", "Chek topilmadi")


def impossible() -> RpcFailure:
    return RpcFailure(-31008, "Operation impossible in the receipt's state", "Операция невозможна",
                      "Amalni bajarib bo'lmaydi")


DECLINE_TEXTS: dict[int, tuple[str, str, str]] = {
    -31630: ("Insufficient funds on the card", "Недостаточно средств на карте", "Kartada mablag' yetarli emas"),
    -31303: ("Insufficient funds on the card", "Недостаточно средств на карте", "Kartada mablag' yetarli emas"),
    -31301: ("The card is expired or blocked", "Срок действия карты истёк или карта заблокирована",
             "Karta muddati tugagan yoki bloklangan"),
    -31300: ("Invalid card number or expiry", "Неверный номер или срок карты", "Karta raqami yoki muddati noto'g'ri"),
    -31400: ("Card not found", "Карта не найдена", "Karta topilmadi"),
    -31601: ("Unknown partner, or its id or key is inactive", "Партнёр не найден или неактивен",
             "Hamkor topilmadi yoki faol emas"),
    -31002: ("The processing centre is unavailable", "Процессинговый центр недоступен",
             "Protsessing markazi mavjud emas"),
    -32400: ("System error", "Системная ошибка", "Tizim xatosi"),
    -32500: ("Invalid token format", "Неверный формат токена", "Token formati noto'g'ri"),
}


def decline(code: int) -> RpcFailure:
    en, ru, uz = DECLINE_TEXTS.get(code, ("The payment was declined", "Платёж отклонён", "To'lov rad etildi"))
    return RpcFailure(code, en, ru, uz)


@dataclass(slots=True)
class EmulatedCard:
    number: str
    expire: str  # MMYY, as cards.create takes it
    token: str
    recurrent: bool
    verified: bool = False
    code_sent: bool = False

    def public(self) -> dict[str, Any]:
        return {"number": masked(self.number), "expire": f"{self.expire[:2]}/{self.expire[2:]}", "token": self.token,
                "recurrent": self.recurrent, "verify": self.verified, "type": "22618"}


@dataclass(slots=True)
class SubscribeEmulator:
    merchant_id: str
    key: str
    clock: Callable[[], int]  # epoch ms
    merchant_hook: MerchantHook | None = None  # set: receipts.pay runs the Merchant API first (reference §5.3)
    cards: dict[str, EmulatedCard] = field(default_factory=dict)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    declines: dict[str, list[int]] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)  # method → the next calls' error codes
    http_failures: list[int] = field(default_factory=list)  # the next calls' HTTP statuses, whatever the method
    methods: list[str] = field(default_factory=list)  # every method called, in order
    cancels: ReceiptCancels = field(default_factory=ReceiptCancels)  # 21 → 50 later (payme_refunds)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api", self.handle), web.options("/api", self.preflight),
                web.post("/control/cards/decline", self.control_decline),
                web.post("/control/failures", self.control_failures)]

    # ---- what tests and the demo use ----------------------------------------------------------

    def decline_next(self, token: str, count: int, code: int) -> None:
        """The token's next `count` charges (receipts.pay) fail with `code`."""
        self.declines.setdefault(token, []).extend([code] * count)

    def fail_next(self, method: str, code: int | None = None, count: int = 1, *,
                  http_status: int | None = None) -> None:
        """The next `count` calls of `method` answer Payme's error `code`; with `http_status`, the next calls
        (of any method) answer that HTTP status instead."""
        if count < 1 or (code is None) is (http_status is None):
            raise ValueError("count >= 1 and either a code or an HTTP status")
        if http_status is not None:
            self.http_failures.extend([http_status] * count)
        else:
            assert code is not None
            self.failures.setdefault(method, []).extend([code] * count)

    def paid_receipts(self) -> list[dict[str, Any]]:
        return [receipt for receipt in self.receipts.values() if receipt["state"] == RECEIPT_PAID]

    # ---- HTTP ---------------------------------------------------------------------------------

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=CORS_HEADERS)

    async def handle(self, request: web.Request) -> web.Response:
        if self.http_failures:
            return web.Response(status=self.http_failures.pop(0), text="emulated failure")
        request_id: Any = None
        try:
            try:
                body = json.loads(await request.read())
            except ValueError:
                raise RpcFailure(-32700, "Parse error", "Ошибка разбора", "Tahlil xatosi") from None
            if not isinstance(body, dict) or not isinstance(body.get("method"), str):
                raise RpcFailure(-32600, "Invalid request", "Неверный запрос", "Noto'g'ri so'rov")
            request_id, method = body.get("id"), body["method"]
            params = body.get("params") if isinstance(body.get("params"), dict) else {}
            if not self._authorized(request.headers.get("X-Auth", ""), server=method not in FRONT_END_METHODS):
                raise access_denied()
            handler = self._handlers().get(method)
            if handler is None:
                raise RpcFailure(-32601, "Method not found", "Метод не найден", "Metod topilmadi", method)
            self.methods.append(method)
            queued = self.failures.get(method)
            if queued:
                raise decline(queued.pop(0))
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": await handler(params)}
        except RpcFailure as failure:
            answer = {"jsonrpc": "2.0", "id": request_id, "error": failure.error}
        return web.json_response(answer, headers=CORS_HEADERS)

    async def control_decline(self, request: web.Request) -> web.Response:
        """Not Payme's: `{"token", "count", "code"}` makes the token's next charges fail (tests, the demo)."""
        if not self._authorized(request.headers.get("X-Auth", ""), server=True):
            return web.json_response({"error": "X-Auth id:key required"}, status=403)
        body = await request.json()
        token, count, code = body.get("token"), body.get("count", 1), body.get("code", -31630)
        if not isinstance(token, str) or not isinstance(count, int) or not isinstance(code, int):
            return web.json_response({"error": "token (str), count (int), code (int)"}, status=400)
        self.decline_next(token, count, code)
        return web.json_response({"token_declines": len(self.declines[token])})

    async def control_failures(self, request: web.Request) -> web.Response:
        """Not Payme's: `{"method", "code"}` or `{"http_status"}`, with `count`, makes the next calls fail."""
        if not self._authorized(request.headers.get("X-Auth", ""), server=True):
            return web.json_response({"error": "X-Auth id:key required"}, status=403)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
            method, code, count, status = body.get("method", ""), body.get("code"), body.get("count", 1), body.get(
                "http_status")
            if not (isinstance(method, str) and all(value is None or _is_count(value) for value in (code, status))
                    and _is_count(count)):
                raise ValueError("types")
            self.fail_next(method, code, count, http_status=status)
        except ValueError:
            return web.json_response({"error": "method (str) and code (int), or http_status (int); count (int)"},
                                     status=400)
        return web.json_response({"failures": sum(map(len, self.failures.values())) + len(self.http_failures)})

    def _authorized(self, given: str, *, server: bool) -> bool:
        """id:key for everything; the id alone for the front-end methods."""
        full = secrets_equal(f"{self.merchant_id}:{self.key}", given)
        return full or (not server and secrets_equal(self.merchant_id, given))

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]:
        return {
            "cards.create": self.cards_create, "cards.get_verify_code": self.cards_get_verify_code,
            "cards.verify": self.cards_verify, "cards.check": self.cards_check, "cards.remove": self.cards_remove,
            "receipts.create": self.receipts_create, "receipts.pay": self.receipts_pay,
            "receipts.get": self.receipts_get, "receipts.check": self.receipts_check,
            "receipts.cancel": self.receipts_cancel,
        }

    # ---- cards --------------------------------------------------------------------------------

    async def cards_create(self, params: dict[str, Any]) -> dict[str, Any]:
        card = params.get("card")
        number = "".join(str(card.get("number", "")).split()) if isinstance(card, dict) else ""
        expire = str(card.get("expire", "")).replace("/", "") if isinstance(card, dict) else ""
        if not (number.isdigit() and 16 <= len(number) <= 19 and luhn_valid(number)):
            raise decline(-31300)
        if not (len(expire) == 4 and expire.isdigit() and 1 <= int(expire[:2]) <= 12):
            raise decline(-31300)
        if number == EXPIRED_CARD or self._expired(expire):
            raise decline(-31301)
        save = params.get("save", True) is not False
        token = f"{self.merchant_id}_{secrets.token_urlsafe(48)}"
        self.cards[token] = EmulatedCard(number=number, expire=expire, token=token,
                                         recurrent=save and number != NOT_RECURRENT_CARD)
        return {"card": self.cards[token].public()}

    async def cards_get_verify_code(self, params: dict[str, Any]) -> dict[str, Any]:
        card = self._card(params)
        card.code_sent = True
        return {"sent": True, "phone": PHONE, "wait": CODE_WAIT_MS}

    async def cards_verify(self, params: dict[str, Any]) -> dict[str, Any]:
        card = self._card(params)
        if not card.code_sent:
            raise RpcFailure(-31101, "Request a code first", "Сначала запросите код", "Avval kodni so'rang")
        if not secrets_equal(VERIFY_CODE, str(params.get("code", ""))):
            raise RpcFailure(-31103, "Wrong SMS code", "Неверный код", "Kod noto'g'ri")
        card.verified = True
        return {"card": card.public()}

    async def cards_check(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"card": self._card(params).public()}

    async def cards_remove(self, params: dict[str, Any]) -> dict[str, Any]:
        self.cards.pop(self._card(params).token)
        return {"success": True}

    def _card(self, params: dict[str, Any]) -> EmulatedCard:
        card: EmulatedCard = _lookup(self.cards, params, "token", card_not_found)
        return card

    def _expired(self, expire: str) -> bool:
        now = datetime.fromtimestamp(self.clock() / 1000, UTC)
        return (2000 + int(expire[2:]), int(expire[:2])) < (now.year, now.month)

    # ---- receipts -----------------------------------------------------------------------------

    async def receipts_create(self, params: dict[str, Any]) -> dict[str, Any]:
        amount, account = params.get("amount"), params.get("account")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise invalid_params("amount")
        if not isinstance(account, dict) or not account:
            raise invalid_params("account")
        receipt_id = secrets.token_hex(12)
        self.receipts[receipt_id] = {
            "_id": receipt_id, "create_time": self.clock(), "pay_time": 0, "cancel_time": 0,
            "state": RECEIPT_CREATED, "type": 1, "external": False, "operation": -1, "category": None,
            "error": None, "description": str(params.get("description") or ""), "detail": None, "amount": amount,
            "currency": UZS_NUMERIC, "commission": 0,
            "account": [{"name": name, "title": name, "value": str(value)} for name, value in account.items()],
            "card": None, "merchant": {"_id": self.merchant_id, "name": "Payme emulator"},
            "meta": {"source": "subscribe", "owner": self.merchant_id}, "processing_id": None,
        }
        return {"receipt": self.receipts[receipt_id]}

    async def receipts_pay(self, params: dict[str, Any]) -> dict[str, Any]:
        receipt = self._receipt(params)
        card = self._card(params)
        if receipt["state"] != RECEIPT_CREATED:
            raise impossible()
        if not card.verified:
            raise card_not_found()
        if self.merchant_hook is None:
            failed = self._debit(card)
            if failed is not None:
                raise decline(failed)
        else:
            refused = await self.merchant_hook(receipt, lambda: self._debit(card))
            if refused is not None:
                receipt.update(state=RECEIPT_CANCELLED, cancel_time=self.clock())
                raise decline(refused)
        receipt.update(state=RECEIPT_PAID, pay_time=self.clock(),
                       card={"number": masked(card.number), "expire": card.expire[2:] + card.expire[:2]})
        return {"receipt": receipt}

    def _debit(self, card: EmulatedCard) -> int | None:
        """Take the money from the card: a decline code set for it (or its test number's), or None."""
        queued = self.declines.get(card.token)
        if queued:
            return queued.pop(0)
        return -31630 if card.number == INSUFFICIENT_FUNDS_CARD else None

    async def receipts_get(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"receipt": self._receipt(params)}

    async def receipts_check(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"state": self._receipt(params)["state"]}

    async def receipts_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        """A waiting receipt is cancelled (50); a paid one is queued for cancel (21), its money to return."""
        receipt = self._receipt(params)
        if receipt["state"] == RECEIPT_CREATED:
            receipt.update(state=RECEIPT_CANCELLED, cancel_time=self.clock())
        elif receipt["state"] == RECEIPT_PAID:
            receipt.update(state=RECEIPT_CANCEL_QUEUED, cancel_time=self.clock())
            self.cancels.queue(receipt["_id"], self.clock())
        return {"receipt": receipt}

    def _receipt(self, params: dict[str, Any]) -> dict[str, Any]:
        self.cancels.settle(self.receipts, self.clock())
        receipt: dict[str, Any] = _lookup(self.receipts, params, "id", receipt_not_found)
        return receipt


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lookup(store: dict[str, Any], params: dict[str, Any], name: str, missing: Callable[[], RpcFailure]) -> Any:
    """The card or receipt a parameter names: −32602 when it is absent, `missing()` when unknown."""
    key = params.get(name)
    if not isinstance(key, str) or not key:
        raise invalid_params(name)
    if key not in store:
        raise missing()
    return store[key]
