"""Click (click.uz): the my.click.uz payment link and the SHOP-API callbacks Prepare and Complete.

Everything open-ymds knows about Click lives here. Click calls us twice per payment attempt
(`click_trans_id`): Prepare (action 0) asks whether the label may be paid and gets our
`merchant_prepare_id`; Complete (action 1) reports the debit (`error` 0) or Click's failure
(`error` < 0). Both are form-encoded and signed with an md5 over raw received strings and the
secret key. Every answer is HTTP 200 with a JSON object whose integer `error` carries the result.

A Complete with error 0 wins its attempt (prepared → confirming), records the payment through the
Ledger (unique on click_trans_id, fulfilment enqueued), then marks the attempt completed; a crash
or a database failure anywhere leaves a state that the repeated Complete finishes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum

from pymongo.errors import DuplicateKeyError, PyMongoError

from billing.errors import LedgerUnavailable
from billing.forms import RepeatedField, strict_form
from billing.invoices import find_invoice
from billing.ledger import Ledger, check_payable
from billing.money import Money
from billing.providers.base import EventKind, Outcome, PageForm, ProviderAnswer, RawNotification, VerifiedEvent
from billing.signing import secrets_equal
from billing.steps import Checkpoint, no_checkpoint
from db import Invoice, InvoiceStatus
from db.click import ClickAttempt, ClickAttemptState, PrepareIdExhausted, next_prepare_id

log = logging.getLogger(__name__)

NAME = "click"
CURRENCY = "UZS"
PAY_URL = "https://my.click.uz/services/pay"
STEPS = ("after_prepare_insert", "after_confirming", "after_ledger_record")
REQUIRED_FIELDS = ("click_trans_id", "service_id", "click_paydoc_id", "merchant_trans_id", "amount", "action",
                   "error", "error_note", "sign_time", "sign_string")
_ID = re.compile(r"[0-9]{1,18}")  # bigint ids as ASCII digits; 18 digits always fit in int64
_CLICK_ERROR = re.compile(r"-?[0-9]{1,9}")
_AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,8})?")
MAX_ERROR_NOTE = 500


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
    """A correctly signed Prepare or Complete as Click sends it (the emulator, `ymds simulate`, tests)."""
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
    """JSON numbers are kept as their literal text, so the signature covers what Click sent."""
    body = json.loads(text, parse_float=str, parse_int=str)
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

    @property
    def operation_id(self) -> str:
        return str(self.click_trans_id)


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
    if not all(_ID.fullmatch(fields[name]) for name in ids) or not _CLICK_ERROR.fullmatch(fields["error"]):
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
        "click_trans_id": int(trans_id) if _ID.fullmatch(trans_id) else None,
        "merchant_trans_id": fields.get("merchant_trans_id"),
        ID_FIELD[route]: reply.merchant_id,
        "error": int(reply.code),
        "error_note": ERROR_NOTES[reply.code],
    }
    return ProviderAnswer(200, json.dumps(body), "application/json")


class Click:
    """The Click provider, built from explicit credentials."""

    name = NAME

    def __init__(self, *, service_id: str, merchant_id: str, secret_key: str, pay_url: str = PAY_URL,
                 checkpoint: Checkpoint = no_checkpoint) -> None:
        if not (_ID.fullmatch(service_id) and _ID.fullmatch(merchant_id)):
            raise ValueError("Click service_id and merchant_id are numbers")
        self._service_id = int(service_id)
        self._merchant_id = merchant_id
        self._secret = secret_key
        self._pay_url = pay_url
        self.checkpoint = checkpoint  # tests inject failures at STEPS

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> PageForm | None:
        """The my.click.uz payment link as a GET form, for an invoice with a UZS price; else None."""
        tiyin = amounts.get(CURRENCY)
        if tiyin is None:
            return None
        return PageForm(provider=NAME, action=self._pay_url, method="get", fields={
            "service_id": str(self._service_id), "merchant_id": self._merchant_id, "amount": click_amount(tiyin),
            "transaction_param": label, "return_url": success_url,
        })

    async def handle(self, route: Action, raw: RawNotification, *, ledger: Ledger,
                     now: datetime) -> tuple[ProviderAnswer, str]:
        """Answer one Prepare or Complete in Click's JSON, errors included; also an outcome name for metrics."""
        reply, fields = await self._reply(route, raw, ledger, now)
        return answer(route, fields, reply), f"{route.name.lower()}_{reply.code.name.lower()}"

    async def _reply(self, route: Action, raw: RawNotification, ledger: Ledger,
                     now: datetime) -> tuple[Reply, Mapping[str, str]]:
        try:
            fields = parse_body(raw)
        except Malformed as err:
            log.warning("click %s from %s rejected: %s", route.name.lower(), raw.remote, err)
            return Reply(ClickError.ERROR_IN_REQUEST), {}
        request = read_request(fields, route)
        if isinstance(request, ClickError):
            log.warning("click %s from %s rejected: %s", route.name.lower(), raw.remote, request.name)
            return Reply(request), fields
        if not self._authentic(request):
            log.warning("click %s %s from %s: bad sign_string or foreign service_id", route.name.lower(),
                        request.click_trans_id, raw.remote)
            return Reply(ClickError.SIGN_CHECK_FAILED), fields
        try:
            if route is Action.PREPARE:
                reply = await self._prepare(request, now)
            else:
                reply = await self._complete(request, ledger, now)
        except (PyMongoError, LedgerUnavailable, PrepareIdExhausted) as err:
            log.error("click %s %s not recorded, Click told -7: %s", route.name.lower(), request.click_trans_id,
                      type(err).__name__)
            reply = Reply(ClickError.FAILED_TO_UPDATE)
        log.info("click %s %s (paydoc %s) for %s: %s", route.name.lower(), request.click_trans_id,
                 request.click_paydoc_id, request.label, reply.code.name)
        return reply, fields

    def _authentic(self, request: ClickRequest) -> bool:
        given = request.fields["sign_string"].lower()
        signed = secrets_equal(sign(request.fields, self._secret), given)
        return signed and request.service_id == self._service_id

    async def _prepare(self, request: ClickRequest, now: datetime) -> Reply:
        invoice = await find_invoice(request.label)
        if invoice is None:
            return Reply(ClickError.USER_DOES_NOT_EXIST)
        existing = await ClickAttempt.by_click_trans_id(request.click_trans_id)
        if existing is not None:
            return _repeated_prepare(existing, request)
        refusal = await self._refuse_payment(invoice, request, now)
        if refusal is not None:
            return Reply(refusal)
        tiyin = parse_amount(request.amount)
        assert tiyin is not None  # _refuse_payment checked it
        attempt = ClickAttempt(
            click_trans_id=request.click_trans_id, prepare_id=await next_prepare_id(), label=request.label,
            amount=tiyin, click_paydoc_id=request.click_paydoc_id, prepared_at=now,
        )
        try:
            await attempt.insert()
        except DuplicateKeyError:  # the same Prepare, concurrently: answer what the first one stored
            existing = await ClickAttempt.by_click_trans_id(request.click_trans_id)
            if existing is None:
                raise LedgerUnavailable("click attempt vanished between insert and read") from None
            return _repeated_prepare(existing, request)
        self.checkpoint("after_prepare_insert")
        return Reply(ClickError.SUCCESS, attempt.prepare_id)

    async def _refuse_payment(self, invoice: Invoice, request: ClickRequest, now: datetime) -> ClickError | None:
        """Prepare's invoice checks, in Click's order: paid -4, cancelled/expired -9, amount -2."""
        if invoice.status is InvoiceStatus.REFUNDED:
            return ClickError.TRANSACTION_CANCELLED
        in_flight = (ClickAttemptState.CONFIRMING, ClickAttemptState.COMPLETED)
        if invoice.status is InvoiceStatus.PAID or await ClickAttempt.any_in(invoice.label, in_flight):
            return ClickError.ALREADY_PAID
        if invoice.expires_at <= now or request.error < 0:
            return ClickError.TRANSACTION_CANCELLED
        tiyin = parse_amount(request.amount)
        verdict = None if tiyin is None else await check_payable(invoice.label, Money(tiyin, CURRENCY), exact=True)
        if tiyin is None or verdict in (Outcome.WRONG_AMOUNT, Outcome.WRONG_CURRENCY):
            log.warning("click prepare %s: amount %r is not the invoice's %s tiyin", request.click_trans_id,
                        request.amount, invoice.amounts.get(CURRENCY))
            return ClickError.INCORRECT_AMOUNT
        return None if verdict is None else _REFUSAL[verdict]

    async def _complete(self, request: ClickRequest, ledger: Ledger, now: datetime) -> Reply:
        invoice = await find_invoice(request.label)
        if invoice is None:
            return Reply(ClickError.USER_DOES_NOT_EXIST)
        assert request.prepare_id is not None
        attempt = await ClickAttempt.by_prepare_id(request.prepare_id)
        if attempt is None or (attempt.label, attempt.click_trans_id) != (request.label, request.click_trans_id):
            return Reply(ClickError.TRANSACTION_DOES_NOT_EXIST)
        if parse_amount(request.amount) != attempt.amount:
            log.warning("click %s: amount %s differs from the prepared %s tiyin", request.click_trans_id,
                        request.amount, attempt.amount)
            return Reply(ClickError.INCORRECT_AMOUNT, attempt.prepare_id)
        if request.error < 0:
            return await self._cancel(attempt, request, now)
        if attempt.state is ClickAttemptState.PREPARED:
            if await ClickAttempt.move(attempt.prepare_id, ClickAttemptState.PREPARED, ClickAttemptState.CONFIRMING,
                                       confirmed_at=now):
                attempt.state = ClickAttemptState.CONFIRMING
                self.checkpoint("after_confirming")
            else:  # a concurrent Complete (or cancel) moved it first
                attempt = await ClickAttempt.by_prepare_id(attempt.prepare_id) or attempt
        if attempt.state is ClickAttemptState.CANCELLED:
            return Reply(ClickError.TRANSACTION_CANCELLED, attempt.prepare_id)
        if attempt.state is ClickAttemptState.COMPLETED:
            return Reply(ClickError.ALREADY_PAID, attempt.prepare_id)
        return await self._record(attempt, invoice, request, ledger, now)

    async def _record(self, attempt: ClickAttempt, invoice: Invoice, request: ClickRequest, ledger: Ledger,
                      now: datetime) -> Reply:
        """A won (confirming) attempt: record it in the ledger, then complete it. Safe to repeat."""
        ours = f"{NAME}:{request.operation_id}"
        paid_by_other = invoice.status is not InvoiceStatus.PENDING and invoice.paid_by != ours
        paid_elsewhere = paid_by_other or await ClickAttempt.any_in(
            invoice.label, (ClickAttemptState.COMPLETED,), besides=attempt.prepare_id)
        event = VerifiedEvent(provider=NAME, operation_id=request.operation_id, label=attempt.label,
                              amount=Money(attempt.amount, CURRENCY), kind=EventKind.PAYMENT, occurred_at=now)
        outcome = await ledger.record(event)
        if outcome not in (Outcome.ACCEPTED, Outcome.DUPLICATE):
            log.error("click %s: the ledger refused a debited payment (%s); reconcile it", request.click_trans_id,
                      outcome.value)
            return Reply(_REFUSAL.get(outcome, ClickError.FAILED_TO_UPDATE), attempt.prepare_id)
        self.checkpoint("after_ledger_record")
        won = await ClickAttempt.move(attempt.prepare_id, ClickAttemptState.CONFIRMING, ClickAttemptState.COMPLETED,
                                      completed_at=now)
        if paid_elsewhere:
            log.error("click %s (paydoc %s) paid invoice %s a second time: answered -4; refund it through Click",
                      request.click_trans_id, request.click_paydoc_id, invoice.label)
            return Reply(ClickError.ALREADY_PAID, attempt.prepare_id)
        return Reply(ClickError.SUCCESS if won else ClickError.ALREADY_PAID, attempt.prepare_id)

    async def _cancel(self, attempt: ClickAttempt, request: ClickRequest, now: datetime) -> Reply:
        """Click reports its failure: a prepared attempt is cancelled (-9); a paid one is never un-paid (-4)."""
        note = request.fields["error_note"][:MAX_ERROR_NOTE]
        if attempt.state is ClickAttemptState.PREPARED:
            await ClickAttempt.move(attempt.prepare_id, ClickAttemptState.PREPARED, ClickAttemptState.CANCELLED,
                                    cancelled_at=now, click_error=request.error, click_error_note=note)
            attempt = await ClickAttempt.by_prepare_id(attempt.prepare_id) or attempt
        if attempt.state is ClickAttemptState.CANCELLED:
            return Reply(ClickError.TRANSACTION_CANCELLED, attempt.prepare_id)
        log.error("click %s (paydoc %s): Click reports error %s for a payment already %s; kept paid, reconcile "
                  "through payment/status", request.click_trans_id, request.click_paydoc_id, request.error,
                  attempt.state.value)
        return Reply(ClickError.ALREADY_PAID, attempt.prepare_id)


_REFUSAL: dict[Outcome, ClickError] = {
    Outcome.UNKNOWN_LABEL: ClickError.USER_DOES_NOT_EXIST,
    Outcome.WRONG_AMOUNT: ClickError.INCORRECT_AMOUNT,
    Outcome.WRONG_CURRENCY: ClickError.INCORRECT_AMOUNT,
    Outcome.ALREADY_PAID: ClickError.ALREADY_PAID,
}


def _repeated_prepare(existing: ClickAttempt, request: ClickRequest) -> Reply:
    """Click repeats a Prepare whose answer it lost: the same merchant_prepare_id, or the attempt's fate."""
    if existing.label != request.label:
        return Reply(ClickError.TRANSACTION_DOES_NOT_EXIST)
    if parse_amount(request.amount) != existing.amount:
        return Reply(ClickError.INCORRECT_AMOUNT, existing.prepare_id)
    if existing.state is ClickAttemptState.PREPARED:
        return Reply(ClickError.SUCCESS, existing.prepare_id)
    if existing.state is ClickAttemptState.CANCELLED:
        return Reply(ClickError.TRANSACTION_CANCELLED, existing.prepare_id)
    return Reply(ClickError.ALREADY_PAID, existing.prepare_id)
