"""The CloudPayments emulator's online kassa (CloudKassir): its check of a CustomerReceipt and POST /kkt/receipt,
written from CloudKassir's documentation (developers.cloudkassir.ru: "Формат передачи данных для онлайн-чека",
"Формирование кассового чека", the code tables of vat, method, object and taxationSystem), never from
open-ymds' code.

A CustomerReceipt: `Items` (1-100) of `label` (1-128 characters), `price`, `quantity`, `amount` (numbers, or
their decimal text; amount = price × quantity to the kopeck), `vat` (absent or null: no VAT; else 0, 10, 20,
110, 120, 5, 7, 105, 107, 22, 122), `method` (tag 1214, 0-7) and `object` (tag 1212, 0-33); `taxationSystem`
0-5; an `email` or a `phone` to send it to; `amounts` whose parts add up to the items. With a shop that
requires receipts (`CloudPaymentsEmulator.receipts_required`, the emulator's reading: CloudPayments documents
no refusal of the payment itself), a widget payment without a valid one fails before Check, a token charge is
answered Success false without a Model, and /kkt/receipt refuses it with Success false and a Message.
"""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from webhook_server.emulators.cloudpayments_wire import basic_auth

if TYPE_CHECKING:
    from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator

VATS = frozenset({None, 0, 10, 20, 110, 120, 5, 7, 105, 107, 22, 122})
METHODS = range(0, 8)
OBJECTS = range(0, 34)
TAXATION_SYSTEMS = range(0, 6)
RECEIPT_TYPES = frozenset({"Income", "IncomeReturn", "Expense", "ExpenseReturn"})
AMOUNT_PARTS = ("electronic", "advancePayment", "credit", "provision")
_INN = re.compile(r"[0-9]{10}|[0-9]{12}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9]{7,15}")
CENT = Decimal("0.01")


def receipt_problem(receipt: Any, amount: int | None = None) -> str | None:
    """Why `receipt` is not a valid CustomerReceipt (for a payment of `amount` kopecks, when given); None if it is."""
    if not isinstance(receipt, dict):
        return "no CustomerReceipt"
    if not (_matches(_EMAIL, receipt.get("email")) or _matches(_PHONE, receipt.get("phone"))):
        return "neither a valid email nor a valid phone"
    system = receipt.get("taxationSystem")
    if system is not None and not (_integer(system) and system in TAXATION_SYSTEMS):
        return f"taxationSystem {system!r} is not 0-5"
    items = receipt.get("Items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        return "Items must hold 1 to 100 positions"
    total = Decimal(0)
    for index, item in enumerate(items):
        problem, line = _item(item)
        if problem is not None:
            return f"Items[{index}]: {problem}"
        total += line
    paid = _paid(receipt.get("amounts"), total)
    if paid is None or paid != total:
        return f"amounts ({paid}) are not the items' sum ({total})"
    if amount is not None and int(total * 100) != amount:
        return f"the items add up to {total}, the payment is {Decimal(amount) / 100}"
    return None


def _item(item: Any) -> tuple[str | None, Decimal]:
    if not isinstance(item, dict):
        return "not an object", Decimal(0)
    label = item.get("label")
    if not isinstance(label, str) or not 1 <= len(label) <= 128:
        return "label must be 1-128 characters", Decimal(0)
    price, quantity, amount = (_number(item.get(name)) for name in ("price", "quantity", "amount"))
    if price is None or quantity is None or amount is None or quantity <= 0 or price < 0:
        return "price, quantity and amount must be numbers, quantity above 0", Decimal(0)
    if (price * quantity).quantize(CENT) != amount:
        return f"amount {amount} is not price × quantity", Decimal(0)
    if item.get("vat") not in VATS:
        return f"vat {item.get('vat')!r} is not one of CloudKassir's rates", Decimal(0)
    for name, allowed in (("method", METHODS), ("object", OBJECTS)):
        value = item.get(name, 0)
        if not (_integer(value) and value in allowed):
            return f"{name} {value!r} is not a code of its table", Decimal(0)
    return None, amount


def _paid(amounts: Any, total: Decimal) -> Decimal | None:
    """What `amounts` says was paid; absent, CloudKassir takes the whole sum as paid electronically."""
    if amounts is None:
        return total
    if not isinstance(amounts, dict):
        return None
    parts = [_number(amounts.get(name, 0)) for name in AMOUNT_PARTS]
    return None if any(part is None or part < 0 for part in parts) else sum(parts, Decimal(0))  # type: ignore[misc]


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number == number.quantize(Decimal("0.001")) else None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(pattern: re.Pattern[str], value: Any) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def data_receipt(data: Any, *names: str) -> Any:
    """The receipt inside a widget's `data` or a charge's JsonData: data.CloudPayments.<names...>."""
    node = data.get("CloudPayments") if isinstance(data, dict) else None
    for name in names:
        node = node.get(name) if isinstance(node, dict) else None
    return node


def json_data(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal) if text else None
    except ValueError:
        return None


def kkt_handler(emulator: CloudPaymentsEmulator) -> Any:
    """POST /kkt/receipt: Basic auth, X-Request-ID answered from the store, a JSON body."""
    async def kkt_receipt(request: web.Request) -> web.Response:
        if emulator.down:
            return web.Response(status=503, text="Service Unavailable")
        if request.headers.get("Authorization") != basic_auth(emulator.public_id, emulator.api_secret):
            return web.Response(status=401, text="Unauthorized")
        request_id = request.headers.get("X-Request-ID", "")
        stored = emulator.stored_answer(request_id)
        if stored is not None:
            return web.json_response(stored)
        body = json_data((await request.read()).decode("utf-8", "replace"))
        answer = issue(emulator, body)
        if request_id:
            emulator.store_answer(request_id, answer)
        if emulator.kkt_failures > 0:  # the receipt was queued, but the answer is lost: a 500 after the effect
            emulator.kkt_failures -= 1
            return web.Response(status=500, text="Internal Server Error")
        return web.json_response(answer)
    return kkt_receipt


def issue(emulator: CloudPaymentsEmulator, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not _matches(_INN, body.get("Inn")) or body.get("Type") not in RECEIPT_TYPES:
        return {"Success": False, "Message": "Inn and Type are required", "Model": None}
    problem = receipt_problem(body.get("CustomerReceipt"))
    if problem is not None:
        return {"Success": False, "Message": f"CustomerReceipt is invalid: {problem}", "Model": None}
    receipt_id = secrets.token_hex(14)
    emulator.kkt_receipts.append({**body, "Id": receipt_id})
    return {"Success": True, "Message": "Queued", "Model": {"Id": receipt_id, "ErrorCode": 0}}
