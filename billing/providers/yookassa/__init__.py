"""YooKassa (ЮKassa): redirect payments created through the API, notifications, refunds, saved methods.

Everything open-ymds knows about YooKassa lives in this package: `protocol` (amounts, keys, the
sender allowlist, parsing, the REST client), `receipts` (the 54-FZ receipt, YOOKASSA_RECEIPTS) and here the
provider object the web app holds.
YooKassa signs nothing: a notification is believed only when it comes from one of YooKassa's
published addresses (YOOKASSA_NOTIFY_IPS) AND the object it names, fetched again from the API
with our credentials, has the status and amount it claims; from then on only the fetched object
is used. The payment page's button posts to /pay/{label}/yookassa, which creates the payment once
per attempt (the Idempotence-Key is fixed before the first try) and redirects to YooKassa. Renewals
charge a saved method through `charge` (see `charges`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo.errors import PyMongoError

from billing import claims
from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.fiscal_ru import NO_CONTACT_REASON, ReceiptContactMissing, RussianReceiptDataMissing, RussianReceipts
from billing.ledger import Ledger, check_payable, find_operation
from billing.money import Money
from billing.networks import Network
from billing.ports import FulfilmentQueue
from billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    HttpTransport,
    NotificationRejected,
    Outcome,
    PageForm,
    ProviderAnswer,
    ProviderRejected,
    RawNotification,
    RejectReason,
    Remember,
)
from billing.providers.yookassa.charges import charge_saved_method
from billing.providers.yookassa.checkout import Checkout, open_checkout
from billing.providers.yookassa.protocol import (
    CURRENCY,
    HANDLED_EVENTS,
    NAME,
    OBJECT_ID,
    REFUND_SUCCEEDED,
    ApiClient,
    Notice,
    cancellation,
    label_of,
    parse_notification,
    payment_event,
    payment_request,
    payment_status,
    read_amount,
    sender_allowed,
)
from billing.providers.yookassa.receipts import receipt_json
from billing.providers.yookassa.reconcile import reconcile
from billing.providers.yookassa.refunds import refund_part, refund_payment, refund_status
from billing.refunds import RefundResult, RefundStatus, count_part, find_refund, settle
from billing.steps import Checkpoint, no_checkpoint
from billing.sweep import ReconcileReport
from db.yookassa import YooKassaStatus, record_status

log = logging.getLogger(__name__)

__all__ = ["NAME", "Checkout", "YooKassa"]

CAPTURE_HOLD = timedelta(minutes=10)  # how long a payment waiting for capture holds the invoice while we capture
STEPS = ("after_fetch", "after_ledger_record")
OK = ProviderAnswer(200)
MALFORMED = ProviderAnswer(400, "malformed notification")
FOREIGN = ProviderAnswer(403, "not a YooKassa address")
UNCONFIRMED = ProviderAnswer(409, "the API does not confirm this notification")
RETRY = ProviderAnswer(503, "temporary failure, retry")


class YooKassa:
    """The YooKassa provider, built from explicit credentials and options."""

    name = NAME
    charge_currency = CURRENCY

    def __init__(self, *, shop_id: str, secret_key: str, api_url: str, transport: HttpTransport,
                 notify_networks: Iterable[Network], test_mode: bool = False, save_payment_method: bool = False,
                 receipts: RussianReceipts | None = None, checkpoint: Checkpoint = no_checkpoint) -> None:
        """`receipts` (YOOKASSA_RECEIPTS): every payment, renewal charge and refund carries its 54-FZ receipt."""
        self.api = ApiClient(transport, api_url, shop_id, secret_key)
        self._receipts = receipts
        self._networks = list(notify_networks)
        self._test_mode = test_mode
        self._save_method = save_payment_method
        self.checkpoint = checkpoint  # tests inject failures at STEPS

    # ---- the payment page: a POST to our own /pay/{label}/yookassa, which creates the payment

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> PageForm | None:
        """A form posting the link's signed parameters back to us; None without a RUB price."""
        if CURRENCY not in amounts:
            return None
        parts = urlsplit(success_url)
        query = dict(parse_qsl(parts.query))
        fields: dict[str, str] = {name: query[name] for name in ("exp", "lang", "sig") if name in query}
        if "exp" not in fields or "sig" not in fields:
            return None
        return PageForm(provider=NAME, action=f"{parts.path.rstrip('/')}/{NAME}", method="post", fields=fields)

    async def start_payment(self, *, label: str, amount: Money, return_url: str, description: str,
                            now: datetime, ledger: Ledger) -> Checkout:
        """The pay button: refuse an invoice another payment has claimed before creating anything; else
        open (or reuse) this invoice's payment, settling one YooKassa already decided (see `checkout`)."""
        verdict = await check_payable(label, amount, now=now)
        if verdict is Outcome.ALREADY_PAID:
            return Checkout(outcome=Outcome.ALREADY_PAID)
        if verdict is not None:
            raise ProviderRejected(f"invoice {label} cannot be paid with {amount}: {verdict.value}")
        request = payment_request(amount=amount, return_url=return_url, description=description, label=label,
                                  save_method=self._save_method)
        if self._receipts is not None:  # ReceiptContactMissing before anything is created
            request["receipt"] = receipt_json(await self._receipts.for_label(label, amount.minor))

        async def settle(payment: Mapping[str, Any]) -> tuple[str, Outcome | None]:
            return await self._settle(payment, ledger, now)
        return await open_checkout(self.api, request, label, now, settle)

    # ---- reconciliation (billing/sweep.py)

    async def reconcile(self, start: datetime, end: datetime, *, ledger: Ledger, now: datetime) -> ReconcileReport:
        """Ask YooKassa about our open payments and our invoices' succeeded payments of [start, end), and
        settle each as its notification would; ProviderUnavailable when the API does not answer."""
        async def settle(payment: Mapping[str, Any]) -> tuple[str, Outcome | None]:
            return await self._settle(payment, ledger, now)
        return await reconcile(self.api, settle, start, end, now=now)

    # ---- renewals: charging a saved method without the payer

    async def charge(self, request: ChargeRequest, remember: Remember) -> ChargeResult:
        """Charge `request.token` (a payment_method_id) once per idempotency key (see `charges`). With receipts on
        and no contact (or receipt data) to write one, YooKassa is not called: a hard decline that keeps the
        method, as for our own credentials, so the renewal stops for this period, the user gets a link to pay
        by hand (where the page asks for the contact) and the admin chat is told once."""
        receipt = None
        if self._receipts is not None and request.known_operation_id is None:
            try:
                receipt = receipt_json(await self._receipts.for_label(request.label, request.amount.minor,
                                                                      renewal=True))
            except (ReceiptContactMissing, RussianReceiptDataMissing) as err:
                log.warning("yookassa renewal %s not charged: %s", request.label, err)
                return ChargeResult(ChargeStatus.DECLINED, reason=NO_CONTACT_REASON, hard=True, keep_method=True)
        return await charge_saved_method(self.api, request, remember, test_mode=self._test_mode, receipt=receipt)

    async def forget(self, token: str) -> bool:
        """YooKassa's API offers no call that deletes a saved payment method: forgetting it is ours alone, by
        never charging it again."""
        return False

    # ---- refunds (the admin API, settle_extra, and the look-ups of pending ones: see `refunds`)

    async def refund(self, *, operation_id: str, amount: Money, label: str) -> RefundResult:
        """Refund a payment in full: the invoice's own (the admin API) or an extra one (settle_extra).
        Succeeded, or pending (tracked until it ends); a refund YooKassa cancels raises ProviderRejected."""
        return await refund_payment(self.api, operation_id=operation_id, amount=amount, label=label,
                                    receipt=await self._refund_receipt(label, amount))

    async def refund_part(self, *, operation_id: str, amount: Money, label: str, key: str) -> RefundResult:
        """Part of a payment back (billing/partial_refunds.py), once per `key`."""
        return await refund_part(self.api, operation_id=operation_id, amount=amount, label=label, key=key,
                                 receipt=await self._refund_receipt(label, amount))

    async def _refund_receipt(self, label: str, amount: Money) -> dict[str, Any] | None:
        """The refund's receipt: the invoice's item at the amount given back, to the payment's contact."""
        if self._receipts is None:
            return None
        return receipt_json(await self._receipts.for_label(label, amount.minor))

    async def refund_status(self, refund_id: str) -> RefundResult:
        return await refund_status(self.api, refund_id)

    # ---- notifications

    async def handle(self, raw: RawNotification, *, ledger: Ledger, reversals: FulfilmentQueue,
                     now: datetime) -> tuple[ProviderAnswer, str]:
        """One notification → our answer and an outcome name for the metrics. Sender first, then shape,
        then the API's word; anything that keeps us from deciding makes YooKassa deliver again."""
        if not sender_allowed(raw.remote, self._networks):
            log.warning("yookassa notification from %s refused: not in YOOKASSA_NOTIFY_IPS", raw.remote)
            return FOREIGN, "foreign_ip"
        try:
            notice = parse_notification(raw.body)
        except NotificationRejected as err:
            log.warning("yookassa notification from %s rejected: %s", raw.remote, err)
            return MALFORMED, RejectReason.MALFORMED.value
        if notice.event not in HANDLED_EVENTS:
            log.info("yookassa %s for %s ignored", notice.event, notice.object_id)
            return OK, "ignored"
        try:
            return await self._confirmed(notice, ledger, reversals, now)
        except (ProviderUnavailable, ProviderRejected, LedgerUnavailable, PyMongoError) as err:
            log.error("yookassa %s for %s not processed, YooKassa will deliver again: %s",
                      notice.event, notice.object_id, err)
            return RETRY, "retry_later"

    async def _confirmed(self, notice: Notice, ledger: Ledger, reversals: FulfilmentQueue,
                         now: datetime) -> tuple[ProviderAnswer, str]:
        refund = notice.event == REFUND_SUCCEEDED
        fetched = await (self.api.get_refund if refund else self.api.get_payment)(notice.object_id)
        self.checkpoint("after_fetch")
        if fetched is None:
            log.warning("yookassa %s names %s, which this shop does not have; ignored", notice.event, notice.object_id)
            return OK, "not_found"
        claimed_status = notice.event.split(".", 1)[1]
        if (fetched.get("id") != notice.object_id or fetched.get("status") != claimed_status
                or notice.status != claimed_status or read_amount(fetched.get("amount")) != notice.amount):
            log.warning("yookassa %s for %s refused: the API has status %r and amount %r", notice.event,
                        notice.object_id, fetched.get("status"), read_amount(fetched.get("amount")))
            return UNCONFIRMED, "not_confirmed"
        if refund:
            return await self._refunded(fetched, ledger, reversals, now)
        if fetched.get("test") is not self._test_mode:
            return self._wrong_mode(fetched)
        name, _ = await self._settle(fetched, ledger, now)
        return OK, name

    async def _settle(self, payment: Mapping[str, Any], ledger: Ledger, now: datetime) -> tuple[str, Outcome | None]:
        """The one path for a fetched Payment, whoever fetched it (a notification, the pay button, the sweep):
        succeeded → the ledger (operation id = the payment id); canceled → kept with why; waiting for capture
        → captured or released. Returns a name for the metrics and the ledger's outcome when it recorded."""
        status, payment_id, label = payment_status(payment), str(payment["id"]), label_of(payment)
        if status is YooKassaStatus.SUCCEEDED:
            if payment.get("test") is not self._test_mode:
                raise ProviderRejected(f"yookassa payment {payment_id} has test={payment.get('test')!r} but "
                                       f"YOOKASSA_TEST_MODE is {self._test_mode}")
            outcome = await ledger.record(payment_event(payment))
            self.checkpoint("after_ledger_record")
            await record_status(payment_id, YooKassaStatus.SUCCEEDED, now)
            return outcome.value, outcome
        if status is YooKassaStatus.CANCELED:
            details = cancellation(payment)
            await record_status(payment_id, status, now, label=label, **details)
            log.info("yookassa payment %s for %r canceled by %s: %s", payment_id, label, details["party"],
                     details["reason"])
            return "canceled", None
        if status is YooKassaStatus.WAITING_FOR_CAPTURE:
            return await self._capture_or_release(payment, now), None
        return "pending", None

    def _wrong_mode(self, payment: Mapping[str, Any]) -> tuple[ProviderAnswer, str]:
        log.error("yookassa payment %s has test=%r but YOOKASSA_TEST_MODE is %s: not credited; YooKassa delivers "
                  "it again for 24 hours", payment.get("id"), payment.get("test"), self._test_mode)
        return UNCONFIRMED, "test_mode_mismatch"

    async def _capture_or_release(self, payment: Mapping[str, Any], now: datetime) -> str:
        """A payment held for capture (we always ask for capture: true, so this is a defence): capture it when
        it pays a pending invoice exactly and nobody else has it (held for us while we capture, so another
        provider's payment cannot slip in), release the money otherwise. It can still be refused here."""
        event = payment_event(payment)
        key = claims.hold_key(NAME, event.operation_id)
        verdict = await check_payable(event.label, event.amount, exact=True, now=now, holder=key)
        if verdict is None and await claims.claim(event.label, key, now=now, until=now + CAPTURE_HOLD):
            await self.api.capture(event.operation_id, event.amount)
            log.warning("yookassa payment %s for %s waited for capture: captured", event.operation_id, event.label)
            return "captured"
        await self.api.cancel(event.operation_id)
        log.warning("yookassa payment %s for %r waited for capture: released (%s)", event.operation_id, event.label,
                    (verdict or Outcome.ALREADY_PAID).value)
        return "released"

    async def _refunded(self, refund: Mapping[str, Any], ledger: Ledger, reversals: FulfilmentQueue,
                        now: datetime) -> tuple[ProviderAnswer, str]:
        """A succeeded refund takes the payment back once the payment is refunded in full (a partial refund
        keeps the subscription), and ends its tracked row, if any, so nobody looks it up again. A payment we
        never recorded is recorded first, so nothing is missed."""
        payment_id = refund.get("payment_id")
        payment = await self.api.get_payment(payment_id) if isinstance(payment_id, str) and OBJECT_ID.fullmatch(
            payment_id) else None
        if payment is None:
            log.warning("yookassa refund %s names payment %r, which this shop does not have", refund["id"], payment_id)
            return OK, "not_found"
        if payment.get("test") is not self._test_mode:
            return self._wrong_mode(payment)
        tracked = await find_refund(NAME, str(refund["id"]))
        if tracked is not None and tracked.part_key is not None and tracked.status is RefundStatus.PENDING:
            await count_part(tracked)  # our partial refund ended: counted on the invoice, once
            await settle(NAME, RefundResult(RefundStatus.SUCCEEDED, str(refund["id"])), now=now)
        total, refunded = read_amount(payment.get("amount")), read_amount(payment.get("refunded_amount"))
        if total is None or refunded is None or refunded.minor < total.minor:
            log.info("yookassa refund %s of payment %s is partial (%s of %s): the subscription stays",
                     refund["id"], payment_id, refunded, total)
            return OK, "partial_refund"
        if await find_operation(NAME, str(payment_id)) is None:  # its payment.succeeded never reached us
            await ledger.record(payment_event(payment))
        await reversals.enqueue_reversal(NAME, str(payment_id), "refunded in YooKassa")
        await settle(NAME, RefundResult(RefundStatus.SUCCEEDED, str(refund["id"])), now=now)
        return OK, "refunded"
