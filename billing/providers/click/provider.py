"""The Click provider: the payment link, Prepare and Complete, and reconciliation through the Merchant API.

Prepare takes a hold on the invoice for its attempt (billing/claims.py, key "click:<operation id>"), so no
other provider, and no other Click attempt, takes the invoice while Click is debiting the payer. A Complete
with error 0 wins its attempt (prepared → confirming), makes the hold final and records the payment through
the Ledger (fulfilment enqueued), then marks the attempt completed; a crash or a database failure anywhere
leaves a state that the repeated Complete (or reconcile) finishes. A Complete with error < 0 cancels the
attempt and releases its hold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone

from pymongo.errors import DuplicateKeyError, PyMongoError

from billing import claims
from billing.clock import Clock
from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.invoices import find_invoice
from billing.ledger import Ledger, check_payable
from billing.money import Money
from billing.plans import Catalogue
from billing.ports import NoticeQueue, Notifier
from billing.providers.base import EventKind, Outcome, PageForm, ProviderAnswer, RawNotification, VerifiedEvent
from billing.providers.click.merchant import MerchantApi
from billing.providers.click.protocol import (
    CURRENCY,
    ID,
    NAME,
    PAY_URL,
    Action,
    ClickError,
    ClickRequest,
    Malformed,
    Reply,
    answer,
    click_amount,
    operation_id,
    parse_amount,
    parse_body,
    read_request,
    sign,
)
from billing.providers.click.receipts import ClickReceipts
from billing.signing import secrets_equal
from billing.steps import Checkpoint, no_checkpoint
from billing.sweep import ReconcileReport
from db import Invoice, InvoiceStatus
from db.click import ClickAttempt, ClickAttemptState, PrepareIdExhausted, next_prepare_id

log = logging.getLogger(__name__)

STEPS = ("after_hold", "after_prepare_insert", "after_confirming", "after_ledger_record")
MAX_ERROR_NOTE = 500
TASHKENT = timezone(timedelta(hours=5))  # Click files payments under its local day (status_by_mti; unconfirmed)
# How long a prepared attempt holds the invoice. Click documents no limit between Prepare and Complete:
# it debits right after our Prepare answer (the payer has already confirmed in Click's app or page) and
# sends Complete within seconds, retrying when it gets no answer. 30 minutes outlasts the debit and those
# retries with a wide margin, and bounds how long an abandoned attempt keeps other providers off the invoice.
HOLD = timedelta(minutes=30)
_REFUSAL: dict[Outcome, ClickError] = {
    Outcome.UNKNOWN_LABEL: ClickError.USER_DOES_NOT_EXIST,
    Outcome.WRONG_AMOUNT: ClickError.INCORRECT_AMOUNT,
    Outcome.WRONG_CURRENCY: ClickError.INCORRECT_AMOUNT,
    Outcome.ALREADY_PAID: ClickError.ALREADY_PAID,
}


def hold_key(click_trans_id: int, label: str) -> str:
    return claims.hold_key(NAME, operation_id(click_trans_id, label))


class Click:
    """The Click provider, built from explicit credentials; `merchant_api` (optional) lets it be asked."""

    name = NAME

    def __init__(self, *, service_id: str, merchant_id: str, secret_key: str, pay_url: str = PAY_URL,
                 merchant_api: MerchantApi | None = None, hold: timedelta = HOLD,
                 checkpoint: Checkpoint = no_checkpoint, receipts: ClickReceipts | None = None) -> None:
        """`receipts` (CLICK_RECEIPTS, with the Merchant API): each applied payment's fiscal receipt is submitted
        through Click's ofd_data (billing/providers/click/receipts.py)."""
        if not (ID.fullmatch(service_id) and ID.fullmatch(merchant_id)):
            raise ValueError("Click service_id and merchant_id are numbers")
        self._service_id = int(service_id)
        self._merchant_id = merchant_id
        self._secret = secret_key
        self._pay_url = pay_url
        self.merchant_api = merchant_api
        self.hold = hold
        self.checkpoint = checkpoint  # tests inject failures at STEPS
        self.receipts = receipts

    @property
    def submits_receipts(self) -> bool:
        """A ReceiptsAfterPayment (billing/receipt_links.py): fulfilment enqueues each payment's receipt."""
        return self.receipts is not None

    async def submit_receipt(self, operation_id: str, *, plans: Catalogue, notices: NoticeQueue, notifier: Notifier,
                             clock: Clock, checkpoint: Checkpoint) -> str:
        if self.receipts is None:
            return "receipts off"
        return await self.receipts.submit(operation_id, plans=plans, notices=notices, notifier=notifier, clock=clock,
                                          checkpoint=checkpoint)

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

    # ---- Prepare

    async def _prepare(self, request: ClickRequest, now: datetime) -> Reply:
        invoice = await find_invoice(request.label)
        if invoice is None:
            return Reply(ClickError.USER_DOES_NOT_EXIST)
        existing = await ClickAttempt.by_click_trans_id(request.click_trans_id, request.label)
        if existing is not None:
            return await self._repeated_prepare(existing, request, now)
        key = hold_key(request.click_trans_id, request.label)
        refusal = await self._refuse_payment(invoice, request, key, now)
        if refusal is not None:
            return Reply(refusal)
        if not await claims.claim(invoice.label, key, now=now, until=now + self.hold):
            return Reply(ClickError.ALREADY_PAID)  # another payment or hold took it since the check
        self.checkpoint("after_hold")
        tiyin = parse_amount(request.amount)
        assert tiyin is not None  # _refuse_payment checked it
        attempt = ClickAttempt(
            click_trans_id=request.click_trans_id, operation_id=operation_id(request.click_trans_id, request.label),
            prepare_id=await next_prepare_id(), label=request.label, amount=tiyin,
            click_paydoc_id=request.click_paydoc_id, prepared_at=now,
        )
        try:
            await attempt.insert_attempt()
        except DuplicateKeyError:  # the same Prepare, concurrently: answer what the first one stored
            existing = await ClickAttempt.by_click_trans_id(request.click_trans_id, request.label)
            if existing is None:
                raise LedgerUnavailable("click attempt vanished between insert and read") from None
            return await self._repeated_prepare(existing, request, now)
        self.checkpoint("after_prepare_insert")
        return Reply(ClickError.SUCCESS, attempt.prepare_id)

    async def _refuse_payment(self, invoice: Invoice, request: ClickRequest, key: str,
                              now: datetime) -> ClickError | None:
        """Prepare's invoice checks, in Click's order: paid or held by another -4, cancelled/expired -9, amount -2."""
        if invoice.status is InvoiceStatus.REFUNDED:
            return ClickError.TRANSACTION_CANCELLED
        taken_by = claims.holder(invoice, now)
        if invoice.status is InvoiceStatus.PAID or taken_by not in (None, key):
            return ClickError.ALREADY_PAID
        if invoice.expires_at <= now or request.error < 0:
            return ClickError.TRANSACTION_CANCELLED
        tiyin = parse_amount(request.amount)
        verdict = None if tiyin is None else await check_payable(
            invoice.label, Money(tiyin, CURRENCY), exact=True, now=now, holder=key)
        if tiyin is None or verdict in (Outcome.WRONG_AMOUNT, Outcome.WRONG_CURRENCY):
            log.warning("click prepare %s: amount %r is not the invoice's %s tiyin", request.click_trans_id,
                        request.amount, invoice.amounts.get(CURRENCY))
            return ClickError.INCORRECT_AMOUNT
        return None if verdict is None else _REFUSAL[verdict]

    async def _repeated_prepare(self, existing: ClickAttempt, request: ClickRequest, now: datetime) -> Reply:
        """Click repeats a Prepare whose answer it lost: the same merchant_prepare_id (its hold renewed), or the
        attempt's fate. A prepared attempt whose lapsed hold another payment took is -4."""
        if parse_amount(request.amount) != existing.amount:
            return Reply(ClickError.INCORRECT_AMOUNT, existing.prepare_id)
        if existing.state is ClickAttemptState.CANCELLED:
            return Reply(ClickError.TRANSACTION_CANCELLED, existing.prepare_id)
        if existing.state is not ClickAttemptState.PREPARED:
            return Reply(ClickError.ALREADY_PAID, existing.prepare_id)
        key = claims.hold_key(NAME, existing.ledger_id)
        if not await claims.claim(existing.label, key, now=now, until=now + self.hold):
            return Reply(ClickError.ALREADY_PAID, existing.prepare_id)
        return Reply(ClickError.SUCCESS, existing.prepare_id)

    # ---- Complete

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
        reply, _ = await self._confirm(attempt, ledger, now)
        return reply

    async def _confirm(self, attempt: ClickAttempt, ledger: Ledger, now: datetime) -> tuple[Reply, Outcome | None]:
        """Click debited the payer for `attempt` (a Complete with error 0, or Click's payment status): record it
        once. Also the ledger's outcome (None when nothing was recorded now)."""
        if attempt.state is ClickAttemptState.PREPARED:
            if await ClickAttempt.move(attempt.prepare_id, ClickAttemptState.PREPARED, ClickAttemptState.CONFIRMING,
                                       confirmed_at=now):
                attempt.state = ClickAttemptState.CONFIRMING
                self.checkpoint("after_confirming")
            else:  # a concurrent Complete (or cancel, or reconcile) moved it first
                attempt = await ClickAttempt.by_prepare_id(attempt.prepare_id) or attempt
        if attempt.state is ClickAttemptState.CANCELLED:
            return Reply(ClickError.TRANSACTION_CANCELLED, attempt.prepare_id), None
        if attempt.state is ClickAttemptState.COMPLETED:
            return Reply(ClickError.ALREADY_PAID, attempt.prepare_id), Outcome.DUPLICATE
        return await self._record(attempt, ledger, now)

    async def _record(self, attempt: ClickAttempt, ledger: Ledger, now: datetime) -> tuple[Reply, Outcome | None]:
        """A won (confirming) attempt: make its hold final, record it in the ledger, complete it. Safe to repeat.

        Click has debited the payer by now, and -4 tells Click the payment stands ("already confirmed"): so when
        another payment got the invoice after this hold lapsed, the money is still recorded, as `extra` (the
        ledger lists it for a refund through Click), and Click is answered -4 (click.md 3.5)."""
        key = claims.hold_key(NAME, attempt.ledger_id)
        claimed = await claims.claim(attempt.label, key, now=now)
        event = VerifiedEvent(provider=NAME, operation_id=attempt.ledger_id, label=attempt.label,
                              amount=Money(attempt.amount, CURRENCY), kind=EventKind.PAYMENT, occurred_at=now)
        outcome = await ledger.record(event)
        if outcome not in (Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.EXTRA):
            log.error("click %s: the ledger refused a debited payment (%s); reconcile it", attempt.ledger_id,
                      outcome.value)
            return Reply(_REFUSAL.get(outcome, ClickError.FAILED_TO_UPDATE), attempt.prepare_id), outcome
        self.checkpoint("after_ledger_record")
        won = await ClickAttempt.move(attempt.prepare_id, ClickAttemptState.CONFIRMING, ClickAttemptState.COMPLETED,
                                      completed_at=now)
        if not claimed or outcome is Outcome.EXTRA:
            log.error("click %s (paydoc %s) paid invoice %s, which another payment had claimed: answered -4, kept "
                      "as extra for a refund through Click", attempt.ledger_id, attempt.click_paydoc_id, attempt.label)
            return Reply(ClickError.ALREADY_PAID, attempt.prepare_id), Outcome.EXTRA
        return Reply(ClickError.SUCCESS if won else ClickError.ALREADY_PAID, attempt.prepare_id), outcome

    async def _cancel(self, attempt: ClickAttempt, request: ClickRequest, now: datetime) -> Reply:
        """Click reports its failure (error < 0): the attempt is cancelled and its hold released, -9.

        A failure reported for an attempt already paid is also answered -9, as Click's current test suite
        requires (docs.click.uz/testing/postman, scenario 8: error=-5017 after a confirmed payment expects -9;
        the older error table and Click's SDKs said -4). The payment is never un-paid here: it is kept, and the
        operator is told to check it through the Merchant API's payment/status.
        """
        note = request.fields["error_note"][:MAX_ERROR_NOTE]
        if attempt.state is ClickAttemptState.PREPARED:
            await ClickAttempt.move(attempt.prepare_id, ClickAttemptState.PREPARED, ClickAttemptState.CANCELLED,
                                    cancelled_at=now, click_error=request.error, click_error_note=note)
            attempt = await ClickAttempt.by_prepare_id(attempt.prepare_id) or attempt
        if attempt.state is ClickAttemptState.CANCELLED:
            await claims.release(attempt.label, claims.hold_key(NAME, attempt.ledger_id))
            return Reply(ClickError.TRANSACTION_CANCELLED, attempt.prepare_id)
        await ClickAttempt.note(attempt.prepare_id, click_error=request.error, click_error_note=note)
        log.error("click %s (paydoc %s): Click reports error %s for a payment already %s; answered -9, kept paid: "
                  "check it through payment/status", attempt.ledger_id, attempt.click_paydoc_id, request.error,
                  attempt.state.value)
        return Reply(ClickError.TRANSACTION_CANCELLED, attempt.prepare_id)

    # ---- reconciliation (billing/sweep.py): Click's Merchant API, asked by merchant_trans_id

    @property
    def reconcilable(self) -> bool:
        """Click can be asked only with the Merchant API credentials (CLICK_MERCHANT_USER_ID and the secret)."""
        return self.merchant_api is not None

    async def reconcile(self, start: datetime, end: datetime, *, ledger: Ledger, now: datetime) -> ReconcileReport:
        """Every attempt prepared in [start, end) that never completed nor failed here: a confirming one (its
        signed Complete said Click debited) is finished; a prepared one is recorded when Click's payment
        status for its label says paid — exactly as its Complete would record it, under the same operation id,
        so the late Complete is a repeat (-4). Raises ProviderUnavailable when Click cannot be asked."""
        if self.merchant_api is None:
            raise ProviderUnavailable("Click's Merchant API credentials are not set")
        report = ReconcileReport(provider=NAME)
        unfinished = await ClickAttempt.unfinished_between(start, end)
        for label, attempts in _by_label(unfinished).items():
            confirming = [a for a in attempts if a.state is ClickAttemptState.CONFIRMING]
            for attempt in confirming:
                _, outcome = await self._confirm(attempt, ledger, now)
                report.add(outcome or Outcome.DUPLICATE, f"{attempt.ledger_id} (Complete received, unfinished)")
            prepared = [a for a in attempts if a.state is ClickAttemptState.PREPARED]
            if prepared:
                await self._reconcile_label(label, prepared, report, ledger, now)
        return report

    async def _reconcile_label(self, label: str, prepared: list[ClickAttempt], report: ReconcileReport,
                               ledger: Ledger, now: datetime) -> None:
        assert self.merchant_api is not None
        payment = None
        for day in click_days(prepared[0].prepared_at, prepared[-1].prepared_at + self.hold, now):
            report.asked += 1
            payment = await self.merchant_api.payment_by_label(label, day, now=now)
            if payment is not None and payment.paid:
                break
        if payment is None or not payment.paid:
            status = "no payment" if payment is None else f"payment {payment.payment_id} status {payment.status}"
            report.lines.append(f"{label}: Click reports {status}; {len(prepared)} prepared attempt(s) left")
            return
        attempt = await _attempt_paid(payment.payment_id, label, prepared)
        if attempt is None:
            line = (f"{label}: Click reports payment {payment.payment_id} paid, which none of the "
                    f"{len(prepared)} prepared attempts can be told to be: check it by hand")
            log.warning("click reconciliation: %s", line)
            report.lines.append(line)
            return
        _, outcome = await self._confirm(attempt, ledger, now)
        report.add(outcome or Outcome.DUPLICATE, f"{attempt.ledger_id} (payment {payment.payment_id})")


def click_days(first: datetime, last: datetime, now: datetime) -> list[date]:
    """The days, in Click's time zone, a payment made between `first` and min(`last`, `now`) is filed under."""
    day, end = first.astimezone(TASHKENT).date(), min(last, now).astimezone(TASHKENT).date()
    days = [day]
    while days[-1] < end:
        days.append(days[-1] + timedelta(days=1))
    return days


def _by_label(attempts: list[ClickAttempt]) -> dict[str, list[ClickAttempt]]:
    grouped: dict[str, list[ClickAttempt]] = {}
    for attempt in attempts:
        grouped.setdefault(attempt.label, []).append(attempt)
    return grouped


async def _attempt_paid(payment_id: int, label: str, prepared: list[ClickAttempt]) -> ClickAttempt | None:
    """Which prepared attempt Click's paid payment is. Click's payment_id is the payer's paydoc number in
    every known integration (unconfirmed); failing that, the label's only attempt, if no other attempt of
    it was ever completed (then Click's report might be about that one)."""
    named = [a for a in prepared if payment_id in (a.click_paydoc_id, a.click_trans_id)]
    if len(named) == 1:
        return named[0]
    if named or len(prepared) != 1:
        return None
    completed = await ClickAttempt.any_in(label, (ClickAttemptState.COMPLETED, ClickAttemptState.CONFIRMING))
    return None if completed else prepared[0]
