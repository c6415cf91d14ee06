"""CloudPayments (Russia): the payment widget, the seven notifications, two-stage confirm, refunds.

Everything open-ymds knows about CloudPayments lives in this package: `protocol` (signatures, bodies,
fields, answers, widget options), `api` (the API client), `notifications` (what each notification
does), `charges` (renewals charging a saved card token), `subscriptions` (CloudPayments' own subscriptions:
bound to the local one, stopped through /subscriptions/cancel), `reconcile` (payments found through
/payments/find when their Pay never arrived), `receipts` and `refund_receipts` (54-FZ, CLOUDPAYMENTS_RECEIPTS),
and here the provider object the web app holds.
CloudPayments calls
`POST /notify/cloudpayments/{kind}`; each request is proven by its Content-HMAC before anything is
parsed, and answered {"code": N}.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pymongo.errors import PyMongoError

from billing.clock import utc_now
from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.fiscal_ru import NO_CONTACT_REASON, ReceiptContactMissing, RussianReceiptDataMissing, RussianReceipts
from billing.invoices import find_invoice
from billing.ledger import Ledger
from billing.money import Money
from billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    PageForm,
    ProviderAnswer,
    ProviderRejected,
    RawNotification,
    Remember,
)
from billing.providers.cloudpayments.api import ApiClient, message
from billing.providers.cloudpayments.charges import (
    charge_fields,
    charge_request_id,
    charge_result,
    holds_money,
    named_transaction,
    transaction_model,
)
from billing.providers.cloudpayments.notifications import HANDLERS, STEPS, Notifications, Queues
from billing.providers.cloudpayments.protocol import (
    CURRENCY,
    NAME,
    WIDGET_URL,
    Code,
    Kind,
    Malformed,
    answer,
    authentic,
    header,
    parse_body,
    script_json,
    widget_language,
    widget_options,
)
from billing.providers.cloudpayments.receipts import customer_receipt
from billing.providers.cloudpayments.reconcile import reconcile_openings
from billing.providers.cloudpayments.refund_receipts import RefundReceipts
from billing.providers.cloudpayments.subscriptions import ENDED, cancelled, stop_for_payment
from billing.refunds import RefundResult, RefundStatus
from billing.steps import Checkpoint, no_checkpoint
from billing.sweep import ReconcileReport
from db import Invoice
from db.cloudpayments import CloudPaymentsNotice, CloudPaymentsWidgetOpening

log = logging.getLogger(__name__)

__all__ = ["NAME", "STEPS", "ApiClient", "CloudPayments", "Kind", "WidgetPage", "accepts_test_payments"]

LINK_FIELDS = ("exp", "lang", "sig")  # the signed link's parameters, carried to our widget page
REFUND_SENT = "refund_sent"  # a CloudPaymentsNotice kind: a refund /payments/refund accepted from us


def accepts_test_payments(test_mode: bool | None, development: bool) -> bool:
    """CLOUDPAYMENTS_TEST_MODE; unset, test payments (TestMode=1) are granted only in development."""
    return development if test_mode is None else test_mode


@dataclass(frozen=True, slots=True)
class WidgetPage:
    """What our widget page needs: the script to load and its configuration (JSON for a script element)."""

    script_url: str
    config_json: str


class CloudPayments:
    """The CloudPayments provider, built from explicit credentials and options."""

    name = NAME
    charge_currency = CURRENCY

    def __init__(
        self,
        *,
        public_id: str,
        api_secret: str,
        client: ApiClient,
        widget_url: str = WIDGET_URL,
        two_stage: bool = False,
        test_mode: bool = False,
        recurrent_plans: frozenset[str] = frozenset(),
        receipts: RussianReceipts | None = None,
        seller_inn: str | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        """`receipts` (CLOUDPAYMENTS_RECEIPTS): the widget, token charges and refunds carry 54-FZ receipts;
        `seller_inn` (CLOUDPAYMENTS_INN) is the kassa's INN a refund's receipt names."""
        self._public_id = public_id
        self._receipts = receipts
        self.refund_receipts = RefundReceipts(client, seller_inn) if receipts is not None else None
        self._secret = api_secret
        self._client = client
        self._widget_url = widget_url
        self._two_stage = two_stage
        self._test_mode = test_mode
        self._recurrent_plans = recurrent_plans
        self.checkpoint = checkpoint  # tests inject failures at STEPS

    # ---- the payment page ---------------------------------------------------------------------

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> PageForm | None:
        """A POST to our own widget page, /pay/{label}/cloudpayments, carrying the signed link's exp, lang and
        sig (read back from the return URL, which is the signed page itself); None without a RUB price."""
        if CURRENCY not in amounts:
            return None
        parts = urlsplit(success_url)
        query = dict(parse_qsl(parts.query))
        action = urlunsplit((parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}/{NAME}", "", ""))
        return PageForm(provider=NAME, action=action, method="post",
                        fields={name: query[name] for name in LINK_FIELDS if name in query})

    def widget_page(self, *, invoice: Invoice, description: str, language: str, return_url: str) -> WidgetPage | None:
        """The widget for a RUB invoice: `charge` (or `auth` in two-stage mode), invoiceId = label,
        accountId = the Telegram user id, and a subscription when the plan renews automatically. With receipts
        on, an invoice without the buyer's contact raises ReceiptContactMissing: no widget opens."""
        rub = invoice.amounts.get(CURRENCY)
        if rub is None:
            return None
        recurrent = invoice.period_days if self._renews_by_itself(invoice) else None
        receipt = customer_receipt(self._receipts.for_invoice(invoice, rub)) if self._receipts is not None else None
        options = widget_options(public_id=self._public_id, label=invoice.label, account_id=str(invoice.user_id),
                                 amount=Money(rub, CURRENCY), description=description, recurrent_days=recurrent,
                                 receipt=receipt)
        config = {"language": widget_language(language), "scheme": "auth" if self._two_stage else "charge",
                  "options": options, "returnUrl": return_url}
        return WidgetPage(script_url=self._widget_url, config_json=script_json(config))

    def _renews_by_itself(self, invoice: Invoice) -> bool:
        """A CloudPayments subscription is set up only for a recurrent plan whose payer chose "pay and renew
        automatically" with CloudPayments (the consent fixed on the invoice); "pay once" never makes one."""
        consent = getattr(invoice, "auto_renew_consent", None)
        return invoice.plan in self._recurrent_plans and consent is not None and consent.provider == NAME

    async def open_widget(self, *, invoice: Invoice, description: str, language: str, return_url: str,
                          now: datetime) -> WidgetPage | None:
        """The widget page, noting that this invoice's widget was opened: a payment made in it may reach
        us only through the reconciliation's /payments/find, which asks about opened invoices."""
        page = self.widget_page(invoice=invoice, description=description, language=language,
                                return_url=return_url)
        if page is not None:
            await CloudPaymentsWidgetOpening.opened(invoice.label, now)
        return page

    # ---- notifications ------------------------------------------------------------------------

    async def handle(self, kind: Kind, raw: RawNotification, *, ledger: Ledger, reversals: Queues,
                     now: datetime) -> tuple[ProviderAnswer, str]:
        """Answer one notification ({"code": N}); also an outcome name for the metrics."""
        if not authentic(raw.headers, raw.body, self._secret):
            log.warning("cloudpayments %s from %s refused: Content-HMAC missing or wrong", kind.value, raw.remote)
            return _refusal(kind, 401), "bad_signature"
        notifications = Notifications(ledger=ledger, reversals=reversals, now=now, accept_test=self._test_mode,
                                      checkpoint=self.checkpoint)
        try:
            fields = parse_body(raw.body, header(raw.headers, "Content-Type"))
            reply = await HANDLERS[kind](notifications, fields)
        except Malformed as err:
            log.warning("cloudpayments %s from %s is authentic but unreadable: %s", kind.value, raw.remote, err)
            return _refusal(kind, 400), "malformed"
        except (LedgerUnavailable, PyMongoError) as err:
            log.error("cloudpayments %s not recorded, CloudPayments must deliver it again: %s", kind.value,
                      type(err).__name__)
            return _refusal(kind, 500), "retry_later"
        return answer(reply.code), reply.outcome

    # ---- the API ------------------------------------------------------------------------------

    async def refund_part(self, *, operation_id: str, amount: Money, label: str, key: str) -> RefundResult:
        """Part of a completed payment back (billing/partial_refunds.py): /payments/refund with that amount and
        an X-Request-ID derived from `key`, so a retry is answered from CloudPayments' store, not refunded
        again. Final at once; CloudPayments' Refund notification follows and reverses the payment only when
        its refunds add up to the whole."""
        receipt = await self._refund_receipt(label, amount)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        await self._client.refund(operation_id, amount, request_id=f"ymds-refund-part-{digest}")
        await self._issue_refund_receipt(f"part:{key}", receipt, operation_id, amount)
        return RefundResult(RefundStatus.SUCCEEDED)

    async def _refund_receipt(self, label: str, amount: Money) -> dict[str, Any] | None:
        """The IncomeReturn receipt's body, made before the refund (none can be made: nothing is refunded)."""
        if self._receipts is None or self.refund_receipts is None:
            return None
        receipt = await self._receipts.for_label(label, amount.minor)
        invoice = await find_invoice(label)
        return self.refund_receipts.prepare(receipt, label=label, account_id=str(invoice.user_id if invoice else ""))

    async def _issue_refund_receipt(self, key: str, body: dict[str, Any] | None, operation_id: str,
                                    amount: Money) -> None:
        if body is not None and self.refund_receipts is not None:
            await self.refund_receipts.issue(key, body, transaction_id=operation_id, amount=amount)

    async def refund(self, *, operation_id: str, amount: Money, label: str) -> None:
        """Refund a completed payment in full through /payments/refund: the admin API's refund, and
        settle_extra's for an extra payment.

        Idempotent: nothing is asked again once our refund went through or CloudPayments' Refund (or Cancel)
        notifications show the payment taken back; a rerun before either (a worker that died mid-call)
        repeats the same X-Request-ID, which CloudPayments answers from its store for an hour.
        """
        if await _refunded_already(operation_id, amount):
            log.info("cloudpayments transaction %s for %s is refunded already; not asked again", operation_id, label)
            return
        receipt = await self._refund_receipt(label, amount)
        body = await self._client.refund(operation_id, amount)
        await self._issue_refund_receipt(f"full:{operation_id}", receipt, operation_id, amount)
        model = body.get("Model")
        if not isinstance(model, dict):
            model = {}
        await CloudPaymentsNotice(
            kind=REFUND_SENT, key=operation_id, transaction_id=str(model.get("TransactionId") or "") or None,
            payment_transaction_id=operation_id, label=label, amount=amount.minor, currency=amount.currency,
            received_at=utc_now(),
        ).record()
        log.info("cloudpayments refund of transaction %s (%s) for %s accepted", operation_id, amount, label)
        await self._stop_subscription_of(operation_id)

    async def _stop_subscription_of(self, operation_id: str) -> None:
        """A refunded payment of a CloudPayments subscription stops the subscription: marked first (so the
        scheduler retries), then cancelled now if CloudPayments answers."""
        row = await stop_for_payment(operation_id, "a payment of it was refunded", utc_now())
        if row is None:
            return
        try:
            await self.cancel_subscription(row.subscription_id)
        except (ProviderUnavailable, ProviderRejected) as err:
            log.warning("cloudpayments subscription %s not cancelled yet (%s); tried again from the scheduler",
                        row.subscription_id, err)

    async def cancel_subscription(self, subscription_id: str) -> bool:
        """Stop a CloudPayments subscription through /subscriptions/cancel. A refusal is looked up: one that is
        over already (or unknown to CloudPayments) counts as cancelled. Then the local subscription is no longer
        renewed by it. Raises ProviderUnavailable, or ProviderRejected when it refuses and still charges."""
        try:
            await self._client.cancel_subscription(subscription_id)
            status = "Cancelled"
        except ProviderRejected:
            body = await self._client.subscription(subscription_id)
            model = body.get("Model") if isinstance(body.get("Model"), dict) else None
            status = str(model.get("Status")) if model is not None else "Cancelled"
            if model is not None and status not in ENDED:
                raise
        await cancelled(subscription_id, status, utc_now())
        log.info("cloudpayments subscription %s is %s", subscription_id, status)
        return True

    async def confirm(self, *, operation_id: str, amount: Money, label: str) -> None:
        """Capture a two-stage payment through /payments/confirm (the admin API's confirm)."""
        await self._client.confirm(operation_id, amount)
        log.info("cloudpayments confirm of transaction %s (%s) for %s accepted", operation_id, amount, label)

    # ---- reconciliation -----------------------------------------------------------------------

    async def reconcile(self, start: datetime, end: datetime, *, ledger: Ledger, now: datetime) -> ReconcileReport:
        """Record the payments CloudPayments holds for invoices whose widget was opened in [start, end) and
        whose Pay never reached us (see `reconcile`). Raises ProviderUnavailable when it cannot be asked."""
        notifications = Notifications(ledger=ledger, reversals=None, now=now, accept_test=self._test_mode,
                                      checkpoint=self.checkpoint)
        if self.refund_receipts is not None:  # refund receipts whose outcome was unknown: the same request again
            await self.refund_receipts.send_pending()
        return await reconcile_openings(self._client, notifications, start, end)

    # ---- renewals: charging a saved card token without the payer -----------------------------

    async def charge(self, request: ChargeRequest, remember: Remember) -> ChargeResult:
        """Charge `request.token` once per idempotency key, or look up the transaction an earlier run named.

        X-Request-ID makes a repeat within an hour return the first answer; a run later than that (a worker
        that died before `remember`) first asks /payments/find whether the invoice's money was already taken.
        A transaction CloudPayments names is remembered before it is judged.
        """
        if request.known_operation_id is not None:
            body = await self._client.transaction(request.known_operation_id)
            model = transaction_model(body)
            if model is None:
                raise ProviderRejected(f"cloudpayments has no transaction {request.known_operation_id}: "
                                       f"{message(body)}")
            if (model.get("InvoiceId") or "") != request.label:
                raise ProviderRejected(f"cloudpayments transaction {request.known_operation_id} pays "
                                       f"{model.get('InvoiceId')!r}, not {request.label!r}")
        else:
            fields = charge_fields(request)
            if self._receipts is not None:
                try:
                    receipt = await self._receipts.for_label(request.label, request.amount.minor, renewal=True)
                    fields["JsonData"] = script_json({"CloudPayments": {"CustomerReceipt": customer_receipt(receipt)}})
                except (ReceiptContactMissing, RussianReceiptDataMissing) as err:
                    log.warning("cloudpayments renewal %s not charged: %s", request.label, err)
                    return ChargeResult(ChargeStatus.DECLINED, reason=NO_CONTACT_REASON, hard=True, keep_method=True)
            body = await self._client.latest_for_invoice(request.label)
            if not holds_money(body):
                body = await self._client.charge_token(fields, request_id=charge_request_id(request.idempotency_key))
            operation_id = named_transaction(body)
            if operation_id is not None:
                await remember(operation_id)
        return charge_result(body, request.token, accept_test=self._test_mode)

    async def forget(self, token: str) -> bool:
        """CloudPayments' API has no call that deletes a card token (only /payments/tokens/charge and /auth use
        one): forgetting it is ours alone, by never charging it again. (A CloudPayments subscription is stopped
        by `cancel_subscription`.)"""
        return False


async def _refunded_already(operation_id: str, amount: Money) -> bool:
    """Whether we refunded this payment through the API, or CloudPayments says it is refunded or cancelled."""
    if await CloudPaymentsNotice.find_one({"kind": REFUND_SENT, "key": operation_id}) is not None:
        return True
    cancelled, refunded = await CloudPaymentsNotice.taken_back(operation_id)
    return cancelled or refunded >= amount.minor


def _refusal(kind: Kind, status: int) -> ProviderAnswer:
    """Check is always answered 200 with code 13, which declines the payment; other kinds get `status`,
    which CloudPayments sees as a failed delivery."""
    return answer(Code.REFUSED) if kind is Kind.CHECK else answer(Code.REFUSED, status)
