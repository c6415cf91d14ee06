"""YooKassa (ЮKassa): redirect payments created through the API, notifications, refunds, saved methods.

Everything open-ymds knows about YooKassa lives in this package: `protocol` (amounts, keys, the
sender allowlist, parsing, the REST client) and here the provider object the web app holds.
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
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo.errors import PyMongoError

from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.ledger import Ledger, check_payable, find_operation
from billing.money import Money
from billing.ports import FulfilmentQueue
from billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    HttpTransport,
    NotificationRejected,
    PageForm,
    ProviderAnswer,
    ProviderRejected,
    RawNotification,
    RejectReason,
    Remember,
)
from billing.providers.yookassa.charges import charge_body, charge_key, charge_result
from billing.providers.yookassa.protocol import (
    CURRENCY,
    DESCRIPTION_LIMIT,
    HANDLED_EVENTS,
    NAME,
    OBJECT_ID,
    PAYMENT_CANCELED,
    PAYMENT_SUCCEEDED,
    REFUND_SUCCEEDED,
    ApiClient,
    Network,
    Notice,
    amount_json,
    cancellation,
    confirmation_url,
    create_key,
    idempotence_key,
    label_of,
    parse_notification,
    payment_event,
    payment_request,
    payment_status,
    read_amount,
    sender_allowed,
)
from billing.steps import Checkpoint, no_checkpoint
from db.yookassa import YooKassaStatus, latest_attempt, record_created, record_status, reserve

log = logging.getLogger(__name__)

__all__ = ["NAME", "YooKassa"]

MAX_CREATE_ROUNDS = 4  # a press can meet a cancelled attempt, reserve the next, and lose a race once more
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
                 checkpoint: Checkpoint = no_checkpoint) -> None:
        self.api = ApiClient(transport, api_url, shop_id, secret_key)
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
        fields = {name: query[name] for name in ("exp", "lang", "sig") if name in query}
        if "exp" not in fields or "sig" not in fields:
            return None
        return PageForm(provider=NAME, action=f"{parts.path.rstrip('/')}/{NAME}", method="post", fields=fields)

    async def start_payment(self, *, label: str, amount: Money, return_url: str, description: str,
                            now: datetime) -> str | None:
        """Where to send the payer: the confirmation URL of this invoice's open payment, created once per
        attempt; None when the invoice's payment already succeeded (or waits for capture)."""
        request = payment_request(amount=amount, return_url=return_url, description=description, label=label,
                                  save_method=self._save_method)
        for _ in range(MAX_CREATE_ROUNDS):
            record = await latest_attempt(label)
            if record is None or record.status is YooKassaStatus.CANCELED:
                attempt = 0 if record is None else record.attempt + 1
                record = await reserve(create_key(label, attempt), label, attempt, request, now)
            if record.status in (YooKassaStatus.SUCCEEDED, YooKassaStatus.WAITING_FOR_CAPTURE):
                return None
            if record.status is YooKassaStatus.CANCELED:
                continue
            if record.status is YooKassaStatus.PENDING and record.payment_id:
                payment = await self._refresh(record.payment_id)
                if payment is None:  # YooKassa did not answer: the stored page is still the best guess
                    return record.confirmation_url
                status = payment_status(payment)
            else:  # creating: (re)send the reserved request under its key; YooKassa answers once
                payment = await self.api.create_payment(record.request, record.key)
                status = payment_status(payment)
                await record_created(record.key, payment["id"], status, confirmation_url(payment), now,
                                     **cancellation(payment))
            if status in (YooKassaStatus.SUCCEEDED, YooKassaStatus.WAITING_FOR_CAPTURE):
                return None
            if status is YooKassaStatus.CANCELED:
                await record_status(payment["id"], status, now, label=label, **cancellation(payment))
                continue
            url = confirmation_url(payment) or record.confirmation_url
            if url is None:
                raise ProviderUnavailable(f"yookassa payment {payment['id']} is pending without a confirmation URL")
            return url
        raise ProviderUnavailable(f"yookassa: no payment could be opened for {label}")

    async def _refresh(self, payment_id: str) -> dict[str, Any] | None:
        try:
            return await self.api.get_payment(payment_id)
        except ProviderUnavailable:
            return None

    # ---- renewals: charging a saved method without the payer

    async def charge(self, request: ChargeRequest, remember: Remember) -> ChargeResult:
        """Charge `request.token` (a payment_method_id) once per idempotency key, or look up the payment an
        earlier run of this attempt made. A payment YooKassa names is remembered before it is judged."""
        if request.known_operation_id is None:
            payment = await self.api.create_payment(charge_body(request), charge_key(request.idempotency_key))
            await remember(str(payment["id"]))
        else:
            found = await self.api.get_payment(request.known_operation_id)
            if found is None:
                raise ProviderRejected(f"yookassa has no payment {request.known_operation_id} for this shop")
            payment = found
        if label_of(payment) != request.label:
            raise ProviderRejected(f"yookassa payment {payment['id']} pays {label_of(payment)!r}, "
                                   f"not {request.label!r}")
        return charge_result(payment, test_mode=self._test_mode)

    async def forget(self, token: str) -> bool:
        """YooKassa's API offers no call that deletes a saved payment method: forgetting it is ours alone, by
        never charging it again."""
        return False

    # ---- refunds (the admin API)

    async def refund(self, *, operation_id: str, amount: Money, label: str) -> None:
        """Refund a payment in full; one Idempotence-Key per payment, so a repeated request refunds once."""
        body = {"payment_id": operation_id, "amount": amount_json(amount),
                "description": f"Refund of invoice {label}"[:DESCRIPTION_LIMIT]}
        refund = await self.api.create_refund(body, idempotence_key("refund", operation_id))
        if refund.get("status") == "canceled":
            details = cancellation(refund)
            raise ProviderRejected(f"yookassa canceled the refund ({details['party']}: {details['reason']})")
        log.info("yookassa refund %s of payment %s: %s", refund["id"], operation_id, refund.get("status"))

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
            return await self._refunded(fetched, ledger, reversals)
        if fetched.get("test") is not self._test_mode:
            return self._wrong_mode(fetched)
        if notice.event == PAYMENT_SUCCEEDED:
            outcome = await ledger.record(payment_event(fetched))
            self.checkpoint("after_ledger_record")
            await record_status(notice.object_id, YooKassaStatus.SUCCEEDED, now)
            return OK, outcome.value
        if notice.event == PAYMENT_CANCELED:
            details = cancellation(fetched)
            label = label_of(fetched)
            await record_status(notice.object_id, YooKassaStatus.CANCELED, now, label=label, **details)
            log.info("yookassa payment %s for %r canceled by %s: %s", notice.object_id, label, details["party"],
                     details["reason"])
            return OK, "canceled"
        return await self._capture_or_release(fetched)

    def _wrong_mode(self, payment: Mapping[str, Any]) -> tuple[ProviderAnswer, str]:
        log.error("yookassa payment %s has test=%r but YOOKASSA_TEST_MODE is %s: not credited; YooKassa delivers "
                  "it again for 24 hours", payment.get("id"), payment.get("test"), self._test_mode)
        return UNCONFIRMED, "test_mode_mismatch"

    async def _capture_or_release(self, payment: Mapping[str, Any]) -> tuple[ProviderAnswer, str]:
        """A payment held for capture (we always ask for capture: true, so this is a defence): capture it when
        it pays a pending invoice exactly, release the money otherwise."""
        event = payment_event(payment)
        verdict = await check_payable(event.label, event.amount, exact=True)
        if verdict is None:
            await self.api.capture(event.operation_id, event.amount)
            log.warning("yookassa payment %s for %s waited for capture: captured", event.operation_id, event.label)
            return OK, "captured"
        await self.api.cancel(event.operation_id)
        log.warning("yookassa payment %s for %r waited for capture: released (%s)", event.operation_id, event.label,
                    verdict.value)
        return OK, "released"

    async def _refunded(self, refund: Mapping[str, Any], ledger: Ledger,
                        reversals: FulfilmentQueue) -> tuple[ProviderAnswer, str]:
        """A succeeded refund takes the payment back once the payment is refunded in full (a partial refund
        keeps the subscription). A payment we never recorded is recorded first, so nothing is missed."""
        payment_id = refund.get("payment_id")
        payment = await self.api.get_payment(payment_id) if isinstance(payment_id, str) and OBJECT_ID.fullmatch(
            payment_id) else None
        if payment is None:
            log.warning("yookassa refund %s names payment %r, which this shop does not have", refund["id"], payment_id)
            return OK, "not_found"
        if payment.get("test") is not self._test_mode:
            return self._wrong_mode(payment)
        total, refunded = read_amount(payment.get("amount")), read_amount(payment.get("refunded_amount"))
        if total is None or refunded is None or refunded.minor < total.minor:
            log.info("yookassa refund %s of payment %s is partial (%s of %s): the subscription stays",
                     refund["id"], payment_id, refunded, total)
            return OK, "partial_refund"
        if await find_operation(NAME, str(payment_id)) is None:  # its payment.succeeded never reached us
            await ledger.record(payment_event(payment))
        await reversals.enqueue_reversal(NAME, str(payment_id), "refunded in YooKassa")
        return OK, "refunded"
