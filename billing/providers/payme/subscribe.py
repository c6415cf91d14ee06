"""Payme's Subscribe API (saved cards and receipts): JSON-RPC 2.0 to PAYME_API_URL, `X-Auth` in plain text.

The server methods used here (`cards.check`, `cards.remove`, `receipts.*`) authenticate with
`X-Auth: <merchant id>:<KEY>`; the front-end methods (`cards.create`, `cards.get_verify_code`,
`cards.verify`) are called by the payer's browser with the merchant id alone and never from here,
so the KEY never leaves the server. Payme answers HTTP 200 with a `result` or an `error` object:
an error object becomes PaymeSubscribeError (code and message), while a network failure, a
timeout, a 5xx or an answer that is not JSON-RPC becomes ProviderUnavailable (outcome unknown).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from billing.errors import ProviderUnavailable
from billing.providers.base import HttpTransport, ProviderHTTPError

# Receipt states (reference §4).
RECEIPT_CREATED = 0
RECEIPT_PAID = 4
RECEIPT_CANCEL_QUEUED = 21
RECEIPT_CANCELLED = 50

HTTP_TRANSPORT_ERROR = -32300  # payme-pkg's code for a transport-level failure; used for an HTTP 4xx
VISIBLE_FIRST, VISIBLE_LAST = 6, 4  # a card number as Payme masks it: 860006******6311

KeySource = Callable[[], Awaitable[str]]


class PaymeSubscribeError(Exception):
    """Payme answered the call with an error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"payme subscribe error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class SavedCard:
    number: str  # masked, as shown to a person
    expire: str
    token: str  # never logged
    recurrent: bool
    verified: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    receipt_id: str
    state: int
    amount: int  # tiyin
    pay_time: int  # epoch ms, 0 until paid
    card_number: str | None  # masked; None before a card paid it


def masked(number: str) -> str:
    """A card number as a person may see it: only the first six and last four digits, whatever Payme sent
    (its examples show both masked and full numbers)."""
    digits = "".join(char for char in number if char.isdigit() or char == "*")
    if len(digits) <= VISIBLE_FIRST + VISIBLE_LAST:
        return "*" * len(digits)
    hidden = len(digits) - VISIBLE_FIRST - VISIBLE_LAST
    return digits[:VISIBLE_FIRST] + "*" * hidden + digits[-VISIBLE_LAST:]


def _message(value: Any) -> str:
    """Payme's message: a string, or {"ru", "uz", "en"}; English preferred."""
    if isinstance(value, dict):
        for language in ("en", "ru", "uz"):
            if isinstance(value.get(language), str):
                return str(value[language])
        return ""
    return value if isinstance(value, str) else ""


def _card(result: Any) -> SavedCard:
    card = result.get("card") if isinstance(result, dict) else None
    if not isinstance(card, dict) or not isinstance(card.get("token"), str):
        raise ProviderUnavailable("payme answered without a card")
    return SavedCard(number=masked(str(card.get("number", ""))), expire=str(card.get("expire", "")),
                     token=card["token"], recurrent=card.get("recurrent") is True, verified=card.get("verify") is True)


def _receipt(result: Any) -> Receipt:
    receipt = result.get("receipt") if isinstance(result, dict) else None
    if not isinstance(receipt, dict) or not isinstance(receipt.get("_id"), str) or not _is_int(receipt.get("state")):
        raise ProviderUnavailable("payme answered without a receipt")
    card = receipt.get("card")
    number = card.get("number") if isinstance(card, dict) else None
    return Receipt(
        receipt_id=receipt["_id"], state=receipt["state"],
        amount=receipt["amount"] if _is_int(receipt.get("amount")) else 0,
        pay_time=receipt["pay_time"] if _is_int(receipt.get("pay_time")) else 0,
        card_number=masked(number) if isinstance(number, str) and number else None,
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class SubscribeClient:
    """The server side of the Subscribe API for one merchant (kassa)."""

    def __init__(self, transport: HttpTransport, api_url: str, merchant_id: str, key: KeySource,
                 account_field: str) -> None:
        self._transport = transport
        self._api_url = api_url
        self._merchant_id = merchant_id
        self._key = key
        self._account_field = account_field
        self._ids = itertools.count(1)

    async def cards_check(self, token: str) -> SavedCard:
        return _card(await self._call("cards.check", {"token": token}))

    async def cards_remove(self, token: str) -> bool:
        result = await self._call("cards.remove", {"token": token})
        return isinstance(result, dict) and result.get("success") is True

    async def receipts_create(self, amount: int, label: str, description: str) -> Receipt:
        """A receipt of `amount` tiyin for the order `label` (our account field), state 0."""
        params = {"amount": amount, "account": {self._account_field: label}, "description": description}
        return _receipt(await self._call("receipts.create", params))

    async def receipts_pay(self, receipt_id: str, token: str) -> Receipt:
        return _receipt(await self._call("receipts.pay", {"id": receipt_id, "token": token}))

    async def receipts_get(self, receipt_id: str) -> Receipt:
        return _receipt(await self._call("receipts.get", {"id": receipt_id}))

    async def receipts_cancel(self, receipt_id: str) -> Receipt:
        """Cancel a receipt: a paid one goes to 21 (queued for cancellation), later 50 (refunds.py)."""
        return _receipt(await self._call("receipts.cancel", {"id": receipt_id}))

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        body = {"id": next(self._ids), "method": method, "params": params}
        headers = {"X-Auth": f"{self._merchant_id}:{await self._key()}"}
        try:
            status, answer = await self._transport.request("POST", self._api_url, json=body, headers=headers)
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"payme {method}: {err}") from err
        if status >= 500:
            raise ProviderUnavailable(f"payme {method}: HTTP {status}")
        if status != 200:
            raise PaymeSubscribeError(HTTP_TRANSPORT_ERROR, f"HTTP {status}")
        if not isinstance(answer, dict):
            raise ProviderUnavailable(f"payme {method}: the answer is not JSON-RPC")
        error = answer.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            raise PaymeSubscribeError(code if _is_int(code) else 0, _message(error.get("message")), error.get("data"))
        if "result" not in answer:
            raise ProviderUnavailable(f"payme {method}: the answer has neither result nor error")
        return answer["result"]
