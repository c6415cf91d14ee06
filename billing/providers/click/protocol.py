"""Click's SHOP-API wire format: fields, the md5 `sign_string`, amounts in so'm, our answer codes and JSON.

Click calls us twice per payment attempt (`click_trans_id`): Prepare (action 0) asks whether the label may
be paid and gets our `merchant_prepare_id`; Complete (action 1) reports the debit (`error` 0) or Click's
failure (`error` < 0). Both are form-encoded and signed with an md5 over raw received strings and the
secret key. Every answer is HTTP 200 with a JSON object whose integer `error` carries the result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum

from billing import bounded_json
from billing.forms import RepeatedField, strict_form
from billing.providers.base import ProviderAnswer, RawNotification

NAME = "click"
CURRENCY = "UZS"
PAY_URL = "https://my.click.uz/services/pay"
REQUIRED_FIELDS = ("click_trans_id", "service_id", "click_paydoc_id", "merchant_trans_id", "amount", "action",
                   "error", "error_note", "sign_time", "sign_string")
ID = re.compile(r"[0-9]{1,18}")  # bigint ids as ASCII digits; 18 digits always fit in int64
_CLICK_ERROR = re.compile(r"-?[0-9]{1,9}")
_AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,8})?")


class Action(IntEnum):
    PREPARE = 0
    COMPLETE = 1


class ClickError(IntEnum):
    """Our answer codes to Click (click.md 3.4)."""

    SUCCESS = 0
    SIGN_CHECK_FAILED = -1
    INCORRECT_AMOUNT = -2
    ACTION_NOT_FOUND = -3
    ALREADY_PAID = -4
    USER_DOES_NOT_EXIST = -5
    TRANSACTION_DOES_NOT_EXIST = -6
    FAILED_TO_UPDATE = -7
    ERROR_IN_REQUEST = -8
    TRANSACTION_CANCELLED = -9


ERROR_NOTES: dict[ClickError, str] = {
    ClickError.SUCCESS: "Success",
    ClickError.SIGN_CHECK_FAILED: "SIGN CHECK FAILED!",
    ClickError.INCORRECT_AMOUNT: "Incorrect parameter amount",
    ClickError.ACTION_NOT_FOUND: "Action not found",
    ClickError.ALREADY_PAID: "Already paid",
    ClickError.USER_DOES_NOT_EXIST: "User does not exist",
    ClickError.TRANSACTION_DOES_NOT_EXIST: "Transaction does not exist",
    ClickError.FAILED_TO_UPDATE: "Failed to update user",
    ClickError.ERROR_IN_REQUEST: "Error in request from click",
    ClickError.TRANSACTION_CANCELLED: "Transaction cancelled",
}
ID_FIELD = {Action.PREPARE: "merchant_prepare_id", Action.COMPLETE: "merchant_confirm_id"}


def sign(fields: Mapping[str, str], secret: str) -> str:
    """sign_string: md5 over the raw received strings; merchant_prepare_id only in Complete's."""
    prepare_id = fields["merchant_prepare_id"] if fields["action"] == str(int(Action.COMPLETE)) else ""
    text = "".join((fields["click_trans_id"], fields["service_id"], secret, fields["merchant_trans_id"], prepare_id,
                    fields["amount"], fields["action"], fields["sign_time"]))
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def merchant_auth(merchant_user_id: str, secret: str, timestamp: int) -> str:
    """The Merchant API `Auth` header: user id, sha1(timestamp + secret), 10-digit Unix timestamp."""
    digest = hashlib.sha1(f"{timestamp}{secret}".encode()).hexdigest()
    return f"{merchant_user_id}:{digest}:{timestamp}"


def operation_id(click_trans_id: int, label: str) -> str:
    """The ledger's id of an attempt: Click's click_trans_id for this order.

    click_trans_id alone is not unique: Click's test tool sends one for every order it tests, so the same
    id for another order is another attempt (and another payment)."""
    return f"{click_trans_id}:{label}"


def click_amount(tiyin: int) -> str:
    """Integer tiyin as Click's so'm string: 3500000 → "35000.00"."""
    return f"{tiyin // 100}.{tiyin % 100:02d}"


def parse_amount(text: str) -> int | None:
    """Click's so'm string as integer tiyin, exactly (Decimal); None unless it is a whole number of tiyin."""
    if not _AMOUNT.fullmatch(text):
        return None
    tiyin = Decimal(text) * 100
    return int(tiyin) if tiyin == tiyin.to_integral_value() else None


def build_request(
    secret: str, *, action: Action, click_trans_id: int, service_id: str, label: str, amount: str,
    sign_time: str, click_paydoc_id: int, merchant_prepare_id: int | None = None,
    error: int = 0, error_note: str = "Success",
) -> dict[str, str]:
    """A correctly signed Prepare or Complete as Click sends it (tests of this module)."""
    fields = {
        "click_trans_id": str(click_trans_id), "service_id": service_id, "click_paydoc_id": str(click_paydoc_id),
        "merchant_trans_id": label, "amount": amount, "action": str(int(action)), "error": str(error),
        "error_note": error_note, "sign_time": sign_time,
    }
    if action is Action.COMPLETE:
        fields["merchant_prepare_id"] = str(merchant_prepare_id)
    fields["sign_string"] = sign(fields, secret)
    return fields


class Malformed(ValueError):
    """The body is not a usable Prepare/Complete: answered -8."""


def parse_body(raw: RawNotification) -> dict[str, str]:
    """A strict form (UTF-8, no repeated field), or a JSON object when the content type says so."""
    content_type = next((v for k, v in raw.headers.items() if k.lower() == "content-type"), "")
    try:
        text = raw.body.decode("utf-8")
        if content_type.split(";")[0].strip().lower() == "application/json":
            return _json_fields(text)
        return strict_form(text)
    except RepeatedField as err:
        raise Malformed(str(err)) from err
    except ValueError as err:
        raise Malformed("body is not a valid form") from err


def _json_fields(text: str) -> dict[str, str]:
    """JSON numbers are kept as their literal text, so the signature covers what Click sent; a body nested
    too deep, or a number past the reader's bounds, is malformed (-8)."""
    body = bounded_json.loads(text, number=str, integer=str)
    if not isinstance(body, dict) or not all(isinstance(value, str) for value in body.values()):
        raise Malformed("JSON body must be an object of strings and numbers")
    return body


@dataclass(frozen=True, slots=True)
class ClickRequest:
    """A Prepare or Complete whose fields are present and well-formed (not yet authenticated)."""

    fields: Mapping[str, str]
    action: Action
    click_trans_id: int
    service_id: int
    click_paydoc_id: int
    label: str
    error: int
    prepare_id: int | None  # Complete only

    @property
    def amount(self) -> str:
        return self.fields["amount"]


@dataclass(frozen=True, slots=True)
class Reply:
    code: ClickError
    merchant_id: int | None = None  # merchant_prepare_id / merchant_confirm_id when known


def read_request(fields: Mapping[str, str], route: Action) -> ClickRequest | ClickError:
    """The request, or the code that refuses it: -8 missing or malformed, -3 wrong action."""
    required = (*REQUIRED_FIELDS, "merchant_prepare_id") if route is Action.COMPLETE else REQUIRED_FIELDS
    if any(name not in fields for name in required):
        return ClickError.ERROR_IN_REQUEST
    ids = ("click_trans_id", "service_id", "click_paydoc_id", *required[len(REQUIRED_FIELDS):])
    if not all(ID.fullmatch(fields[name]) for name in ids) or not _CLICK_ERROR.fullmatch(fields["error"]):
        return ClickError.ERROR_IN_REQUEST
    if int(fields["error"]) > 0:  # 0 is success, negative is Click's failure; nothing else is defined
        return ClickError.ERROR_IN_REQUEST
    if fields["action"] != str(int(route)):
        return ClickError.ACTION_NOT_FOUND
    return ClickRequest(
        fields=fields, action=route, click_trans_id=int(fields["click_trans_id"]),
        service_id=int(fields["service_id"]), click_paydoc_id=int(fields["click_paydoc_id"]),
        label=fields["merchant_trans_id"], error=int(fields["error"]),
        prepare_id=int(fields["merchant_prepare_id"]) if route is Action.COMPLETE else None,
    )


def answer(route: Action, fields: Mapping[str, str], reply: Reply) -> ProviderAnswer:
    """Click's JSON answer: always HTTP 200, integer ids and error, the ids echoed (null when unknown)."""
    trans_id = fields.get("click_trans_id", "")
    body = {
        "click_trans_id": int(trans_id) if ID.fullmatch(trans_id) else None,
        "merchant_trans_id": fields.get("merchant_trans_id"),
        ID_FIELD[route]: reply.merchant_id,
        "error": int(reply.code),
        "error_note": ERROR_NOTES[reply.code],
    }
    return ProviderAnswer(200, json.dumps(body), "application/json")
