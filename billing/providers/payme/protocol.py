"""Payme's wire protocol: JSON-RPC envelope, Basic auth, error codes with their ru/uz/en messages,
millisecond times, parameter readers, and the checkout link. Plain data only, no database.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import bounded_json
from billing.providers.base import ProviderAnswer
from billing.signing import secrets_equal

NAME = "payme"
CURRENCY = "UZS"  # Payme speaks tiyin, our minor unit: amounts cross unchanged
LOGIN = "Paycom"
TIMEOUT_MS = 43_200_000  # a waiting transaction older than 12 h (from Payme's `time`) is dead
PRODUCTION_CHECKOUT_URL = "https://checkout.paycom.uz"
SANDBOX_CHECKOUT_URL = "https://test.paycom.uz"
PRODUCTION_API_URL = "https://checkout.paycom.uz/api"  # the Subscribe API (saved cards, receipts)
SANDBOX_API_URL = "https://checkout.test.paycom.uz/api"
DEFAULT_ACCOUNT_FIELD = "order_id"
MAX_ID_LENGTH = 64
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIYIN = 10**15  # ten trillion sum: more than any invoice, and exact in every store and JSON reader
MAX_MS = 10**13 - 1  # Payme's times are 13-digit epoch milliseconds (until the year 2286); 0 is "not yet"

CANCEL_REASONS: dict[int, str] = {
    1: "receivers not found or inactive",
    2: "debit error at the processing centre",
    3: "transaction execution error",
    4: "cancelled by timeout",
    5: "refund",
    10: "unknown error",
}
REASON_TIMEOUT = 4


@dataclass(frozen=True, slots=True)
class Fault:
    """One Payme error: its code and the message in the three languages Payme shows."""

    code: int
    ru: str
    uz: str
    en: str

    def message(self) -> dict[str, str]:
        return {"ru": self.ru, "uz": self.uz, "en": self.en}


PARSE_ERROR = Fault(-32700, "Ошибка разбора JSON", "JSON so'rovini o'qib bo'lmadi", "Parse error: the body is not JSON")
INVALID_REQUEST = Fault(-32600, "Неверный запрос JSON-RPC", "JSON-RPC so'rovi noto'g'ri", "Invalid JSON-RPC request")
METHOD_NOT_FOUND = Fault(-32601, "Метод не найден", "Metod topilmadi", "Method not found")
INSUFFICIENT_PRIVILEGE = Fault(
    -32504, "Недостаточно привилегий для выполнения метода", "Metodni bajarish uchun huquq yetarli emas",
    "Insufficient privilege to perform this method",
)
SYSTEM_ERROR = Fault(
    -32400, "Системная ошибка, повторите запрос позже", "Tizim xatosi, so'rovni keyinroq takrorlang",
    "System error, retry later",
)
NOT_POST = Fault(
    -32300, "Запрос должен быть отправлен методом POST", "So'rov POST usulida yuborilishi kerak",
    "The request must be sent with POST",
)
WRONG_AMOUNT = Fault(-31001, "Неверная сумма", "Noto'g'ri summa", "Incorrect amount")
TRANSACTION_NOT_FOUND = Fault(-31003, "Транзакция не найдена", "Tranzaksiya topilmadi", "Transaction not found")
CANNOT_CANCEL = Fault(
    -31007, "Заказ выполнен, транзакцию невозможно отменить",
    "Buyurtma bajarilgan, tranzaksiyani bekor qilib bo'lmaydi",
    "The order is completed; the transaction cannot be cancelled",
)
CANNOT_PERFORM = Fault(
    -31008, "Невозможно выполнить операцию в текущем состоянии транзакции",
    "Tranzaksiyaning joriy holatida amalni bajarib bo'lmaydi",
    "The operation is impossible in the transaction's current state",
)
TIMED_OUT = Fault(
    -31008, "Время ожидания транзакции истекло, транзакция отменена",
    "Tranzaksiyani kutish muddati tugadi, tranzaksiya bekor qilindi",
    "The transaction timed out and was cancelled",
)
TOO_OLD = Fault(
    -31008, "С момента создания транзакции в Payme прошло более 12 часов",
    "Payme tranzaksiyani yaratganidan beri 12 soatdan ko'proq vaqt o'tdi",
    "More than 12 hours have passed since Payme created the transaction",
)
TIME_AHEAD = Fault(
    -31008, "Время создания транзакции в Payme позже нашего времени",
    "Payme tranzaksiyani yaratgan vaqt bizning vaqtimizdan keyin",
    "Payme's transaction time is ahead of our clock",
)
ORDER_BUSY = Fault(
    -31008, "По этому заказу уже есть другая транзакция", "Bu buyurtma bo'yicha boshqa tranzaksiya mavjud",
    "Another transaction exists for this order",
)
PAID_ELSEWHERE = Fault(
    -31008, "Заказ уже оплачен другим способом", "Buyurtma boshqa usulda to'langan",
    "The order has already been paid by other means",
)
ORDER_NOT_FOUND = Fault(-31050, "Заказ не найден", "Buyurtma topilmadi", "Order not found")
ORDER_NOT_PAYABLE = Fault(
    -31051, "Заказ уже оплачен или отменён", "Buyurtma allaqachon to'langan yoki bekor qilingan",
    "The order is already paid or cancelled",
)
ORDER_EXPIRED = Fault(-31052, "Срок оплаты заказа истёк", "Buyurtmani to'lash muddati tugagan", "The order has expired")
ORDER_NOT_IN_UZS = Fault(
    -31053, "Заказ нельзя оплатить в сумах", "Buyurtmani so'mda to'lab bo'lmaydi", "The order cannot be paid in UZS"
)
ORDER_HELD = Fault(
    -31054, "Заказ сейчас оплачивается другим способом", "Buyurtma hozir boshqa usulda to'lanmoqda",
    "The order is being paid by other means right now",
)
RECEIPT_NOT_FOUND = Fault(-32001, "Чек не найден", "Chek topilmadi", "Receipt not found")
INVALID_PARAMS = Fault(-32602, "Неверные параметры", "Parametrlar noto'g'ri", "Invalid parameters")


class PaymeError(Exception):
    """A Payme error answer: raised by the method handlers, formatted by error_answer()."""

    def __init__(self, fault: Fault, data: str | None = None) -> None:
        super().__init__(f"{fault.code} {fault.en}" + (f" ({data})" if data else ""))
        self.fault = fault
        self.data = data


@dataclass(frozen=True, slots=True)
class RpcRequest:
    request_id: int | str
    method: str
    params: dict[str, Any]


# ---- times ----------------------------------------------------------------------------------


def to_ms(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float on the way)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


# ---- authentication -------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (RawNotification.headers is a plain mapping)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def authorized(headers: Mapping[str, str], key: str) -> bool:
    """`Basic <token>`, token = base64("Paycom:" + key), split on the first ':'; constant-time compare."""
    scheme, _, token = (header(headers, "Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    login, colon, password = decoded.partition(":")
    if not colon or not key:
        return False
    login_ok = secrets_equal(LOGIN, login)
    key_ok = secrets_equal(key, password)
    return login_ok and key_ok


# ---- the envelope ---------------------------------------------------------------------------


def parse_body(body: bytes) -> Any:
    """The JSON body, bounded (billing.bounded_json): numbers with a fraction read as Decimal (never float),
    a number past the bounds as a marker the parameter readers refuse. Raises ValueError."""
    return bounded_json.loads(body)


def request_id_of(payload: Any) -> int | str | None:
    """The id to echo, when the payload has a usable one."""
    if isinstance(payload, dict):
        value = payload.get("id")
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
    return None


def read_request(payload: Any) -> RpcRequest:
    """Validate the JSON-RPC envelope; −32600 when method, params or id is missing or mistyped."""
    if not isinstance(payload, dict):
        raise PaymeError(INVALID_REQUEST)
    request_id = request_id_of(payload)
    if request_id is None:
        raise PaymeError(INVALID_REQUEST, "id")
    method, params = payload.get("method"), payload.get("params")
    if not isinstance(method, str) or not method:
        raise PaymeError(INVALID_REQUEST, "method")
    if not isinstance(params, dict):
        raise PaymeError(INVALID_REQUEST, "params")
    return RpcRequest(request_id, method, params)


def _json_answer(document: dict[str, Any]) -> ProviderAnswer:
    """Payme reads the body only: every JSON-RPC answer, errors included, is HTTP 200."""
    return ProviderAnswer(200, json.dumps(document, ensure_ascii=False), "application/json")


def result_answer(request_id: int | str | None, result: dict[str, Any]) -> ProviderAnswer:
    return _json_answer({"jsonrpc": "2.0", "id": request_id, "result": result})


def error_answer(request_id: int | str | None, err: PaymeError) -> ProviderAnswer:
    error: dict[str, Any] = {"code": err.fault.code, "message": err.fault.message()}
    if err.data is not None:
        error["data"] = err.data
    return _json_answer({"jsonrpc": "2.0", "id": request_id, "error": error})


# ---- parameters -----------------------------------------------------------------------------


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def param_int(params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    """An integer parameter within [low, high]; anything else is −32600 naming it."""
    number = _integer(params.get(name))
    if number is None or not low <= number <= high:
        raise PaymeError(INVALID_REQUEST, name)
    return number


def param_time(params: Mapping[str, Any], name: str) -> int:
    """A time Payme gives (`time`, `from`, `to`): epoch milliseconds of at most 13 digits."""
    return param_int(params, name, 0, MAX_MS)


def param_reason(params: Mapping[str, Any]) -> int:
    """A cancel reason from Payme's list (1–5, 10); any other value is −32600 naming `reason`."""
    reason = _integer(params.get("reason"))
    if reason is None or reason not in CANCEL_REASONS:
        raise PaymeError(INVALID_REQUEST, "reason")
    return reason


def param_str(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise PaymeError(INVALID_REQUEST, name)
    return value


def param_amount(params: Mapping[str, Any]) -> int:
    """Tiyin: a JSON integer. A fraction of a tiyin, or an amount outside 1…MAX_TIYIN, can match no
    invoice (−31001); what is not a number at all is −32600."""
    value = params.get("amount")
    if isinstance(value, Decimal) and value.is_finite() and _integer(value) is None:
        raise PaymeError(WRONG_AMOUNT)
    amount = _integer(value)
    if amount is None:
        raise PaymeError(INVALID_REQUEST, "amount")
    if not 0 < amount <= MAX_TIYIN:
        raise PaymeError(WRONG_AMOUNT)
    return amount


def param_account(params: Mapping[str, Any], field: str) -> tuple[str, dict[str, str]]:
    """(label, account as received). A missing or unusable field is an account error naming it."""
    account = params.get("account")
    value = account.get(field) if isinstance(account, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise PaymeError(ORDER_NOT_FOUND, field)
    assert isinstance(account, dict)
    echoed = {str(name): str(item) for name, item in account.items() if isinstance(item, (str, int))}
    return value, echoed


# ---- checkout link --------------------------------------------------------------------------


def checkout_text(
    *, merchant_id: str, account_field: str, label: str, amount: int,
    lang: str | None = None, return_url: str | None = None, return_delay_ms: int | None = None,
) -> str:
    """`m=…;ac.<field>=…;a=…[;l=…][;c=…][;ct=…]`; no value may hold the ';' separator."""
    pairs = [("m", merchant_id), (f"ac.{account_field}", label), ("a", str(amount))]
    if lang:
        pairs.append(("l", lang))
    if return_url:
        pairs.append(("c", return_url))
    if return_delay_ms is not None:
        pairs.append(("ct", str(return_delay_ms)))
    for name, value in pairs:
        if ";" in value or ";" in name:
            raise ValueError(f"checkout parameter {name} may not contain ';'")
    return ";".join(f"{name}={value}" for name, value in pairs)


def encode_checkout(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def checkout_url(base_url: str, text: str) -> str:
    """`<checkout host>/<base64(params)>`, standard alphabet with padding, as Payme's example."""
    return f"{base_url.rstrip('/')}/{encode_checkout(text)}"
