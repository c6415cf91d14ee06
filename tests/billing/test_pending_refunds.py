"""Refunds that are still pending are not refunds (issue 17.4), through the real seams: the admin API, the
YooKassa and Payme emulators over HTTP, the scheduler's tick, the real RQ worker on the real Redis.

A pending refund keeps the subscription; it is reversed once when it succeeds (YooKassa's refund.succeeded
or a look-up of GET /v3/refunds/{id}; Payme's receipt reaching state 50), and a canceled one keeps access
and tells the admin chat once, with the provider's reason. The pending refund is kept in MongoDB, so a
lost queue or a new scheduler still looks it up.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from billing.ledger import find_operation
from billing.money import Money
from billing.providers.base import ChargeRequest, ChargeStatus, RefundUnsupported
from billing.providers.yookassa.protocol import idempotence_key
from billing.refunds import POLL_DELAYS
from billing.renewals.scheduler import tick
from db import ExtraRefund, Invoice, InvoiceStatus, OperationStatus, Subscription
from db.refunds import ProviderRefund, RefundStatus
from settings import Settings
from tests.conftest import AUTH, YOOMONEY_API_TOKEN, FrozenClock, RecordingNotifier, make_settings
from tests.helpers import get_json, new_invoice
from tests.payme_subscribe_support import PaymeApi, payme_api
from tests.payme_support import PAYME_CHECKOUT, PAYME_KEY, PAYME_MERCHANT
from tests.yookassa_support import paid_payment, post_notification, yookassa_emulator, yookassa_settings
from webhook_server.emulators.payme_subscribe import EmulatedCard
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.emulators.yookassa_refunds import RefundTimeline
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.keys import LEDGER, PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import InProcessWorker

__all__ = ["payme_api", "yookassa_emulator"]  # fixtures, imported for pytest

SETTLES_AFTER = timedelta(hours=2)
CARD_TOKEN = "payme-card-token-refund-1"


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], yookassa_emulator: tuple[YooKassaEmulator, str],
             payme_api: PaymeApi) -> Settings:
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **yookassa_settings(yookassa_emulator[1] + "/v3"), payme_merchant_id=PAYME_MERCHANT,
                         payme_key=PAYME_KEY, payme_checkout_url=PAYME_CHECKOUT, payme_api_url=payme_api.url)


@pytest.fixture
def yookassa(client: TestClient, yookassa_emulator: tuple[YooKassaEmulator, str],
             clock: FrozenClock) -> YooKassaEmulator:
    """The emulator on the test's clock, notifying the app; its refunds stay pending for SETTLES_AFTER."""
    emulator, _ = yookassa_emulator
    emulator.notify_url = str(client.make_url("/notify/yookassa"))
    emulator.clock = clock
    emulator.refund_status = "pending"
    emulator.refund_timeline = RefundTimeline(settles_after=SETTLES_AFTER)
    return emulator


def scheduler(client: TestClient, clock: FrozenClock):  # type: ignore[no-untyped-def]
    """The services `ymds scheduler` builds at start; a new call is a restarted scheduler."""
    app = client.app
    return renewal_services(app[SETTINGS], app[QUEUES], app[PROVIDERS], clock)


async def paid_at_yookassa(client: TestClient, worker: InProcessWorker, emulator: YooKassaEmulator,
                           user_id: int) -> tuple[str, str]:
    invoice = await new_invoice(client, user_id=user_id)
    payment_id = paid_payment(emulator, invoice["label"])
    assert await post_notification(client, emulator.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    return invoice["label"], payment_id


async def state(label: str, user_id: int) -> tuple[InvoiceStatus, Any]:
    invoice = await Invoice.find_one(Invoice.label == label)
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    assert invoice is not None and subscription is not None
    return invoice.status, subscription.current_period_end


async def refund_pending(client: TestClient, label: str) -> dict[str, Any]:
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    body = await response.json()
    assert response.status == 202 and body["refund"] == "pending", body
    assert body["provider_refund"]["status"] == "pending"
    return body


async def look_up_due(client: TestClient, worker: InProcessWorker, clock: FrozenClock) -> int:
    """Move past the next look-up time, tick, run the jobs; how many look-ups the tick sent."""
    clock.now += timedelta(seconds=POLL_DELAYS[-1])
    checks = (await tick(clock(), scheduler(client, clock))).refund_checks
    await worker.drain()
    return checks


async def test_pending_refund_keeps_access_and_the_invoice_shows_it_pending(client, worker, yookassa, clock,
                                                                            notifier: RecordingNotifier):
    label, payment_id = await paid_at_yookassa(client, worker, yookassa, 501)
    before = await state(label, 501)
    body = await refund_pending(client, label)
    assert body["status"] == "paid" and body["provider_refund"]["cancellation"] is None
    await worker.drain()
    assert await state(label, 501) == before and notifier.reversals == []
    status, shown = await get_json(client, f"/api/invoices/{label}")
    assert status == 200 and shown["status"] == "paid" and shown["provider_refund"]["status"] == "pending"
    again = await refund_pending(client, label)  # asked again while pending: the same refund, nothing new
    assert again["provider_refund"]["refund_id"] == body["provider_refund"]["refund_id"]
    assert len(yookassa.refunds_of(payment_id)) == 1


async def test_succeeded_notification_reverses_once_whatever_the_deliveries(client, worker, yookassa, clock,
                                                                             notifier: RecordingNotifier):
    label, payment_id = await paid_at_yookassa(client, worker, yookassa, 502)
    body = await refund_pending(client, label)
    refund_id = body["provider_refund"]["refund_id"]
    clock.now += SETTLES_AFTER
    yookassa.refunds_due()  # YooKassa finishes the refund and notifies refund.succeeded
    await yookassa.settle()
    assert yookassa.deliveries[-1] == ("refund.succeeded", 200)
    notice = yookassa.notification("refund.succeeded", refund_id)
    statuses = await asyncio.gather(*(post_notification(client, notice) for _ in range(6)))  # redelivered, at once
    assert set(statuses) == {200}
    await worker.drain()
    invoice_status, period_end = await state(label, 502)
    assert invoice_status is InvoiceStatus.REFUNDED and period_end == clock.now - SETTLES_AFTER
    assert len(notifier.reversals) == 1
    row = await ProviderRefund.find_one(ProviderRefund.refund_id == refund_id)
    assert row is not None and row.status is RefundStatus.SUCCEEDED, "the notification ends the look-ups"
    assert await look_up_due(client, worker, clock) == 0
    _, shown = await get_json(client, f"/api/invoices/{label}")
    assert (shown["status"], shown["provider_refund"]["status"]) == ("refunded", "succeeded")


async def test_succeeded_found_by_the_poll_reverses_once(client, worker, yookassa, clock,
                                                         notifier: RecordingNotifier):
    label, payment_id = await paid_at_yookassa(client, worker, yookassa, 503)
    await refund_pending(client, label)
    yookassa.drop_deliveries()  # every refund.succeeded lost on the way
    assert await look_up_due(client, worker, clock) == 1  # the look-up (GET /v3/refunds/{id}) finds it succeeded
    invoice_status, _ = await state(label, 503)
    assert invoice_status is InvoiceStatus.REFUNDED and len(notifier.reversals) == 1
    gets = [path for method, path, _, _ in yookassa.requests if method == "GET" and path.startswith("/v3/refunds/")]
    assert len(gets) == 1
    assert await look_up_due(client, worker, clock) == 0
    yookassa.deliver_again()
    await yookassa.redeliver_due()  # the notification arrives at last: it changes nothing more
    await yookassa.settle()
    await worker.drain()
    assert len(notifier.reversals) == 1 and notifier.canceled_refunds == []


async def test_poll_before_the_end_changes_nothing_and_looks_again_later(client, worker, yookassa, clock,
                                                                         notifier: RecordingNotifier):
    label, _ = await paid_at_yookassa(client, worker, yookassa, 504)
    await refund_pending(client, label)
    yookassa.refund_timeline.settles_after = timedelta(days=30)
    [row] = await ProviderRefund.find_all().to_list()
    yookassa.refunds[row.refund_id]["_ends_at"] = clock.now + timedelta(days=30)
    services = scheduler(client, clock)
    assert (await tick(clock(), services)).refund_checks == 0, "not yet due"
    assert await look_up_due(client, worker, clock) == 1
    assert await look_up_due(client, worker, clock) == 1, "still pending: looked up again on schedule"
    assert (await state(label, 504))[0] is InvoiceStatus.PAID and notifier.reversals == []
    stored = await ProviderRefund.get(row.id)
    assert stored is not None and stored.checks == 2 and stored.status is RefundStatus.PENDING


async def test_canceled_refund_keeps_access_and_tells_the_admin_once(client, worker, yookassa, clock,
                                                                     notifier: RecordingNotifier):
    yookassa.refund_timeline = RefundTimeline(settles_after=SETTLES_AFTER, ends="canceled", party="yoo_money",
                                              reason="insufficient_funds")
    label, payment_id = await paid_at_yookassa(client, worker, yookassa, 505)
    before = await state(label, 505)
    await refund_pending(client, label)
    assert await look_up_due(client, worker, clock) == 1
    assert await state(label, 505) == before and notifier.reversals == []
    [told] = notifier.canceled_refunds
    assert (told.label, told.user_id, told.amount, told.party, told.reason) == (
        label, 505, Money(29900, "RUB"), "yoo_money", "insufficient_funds")
    assert all(event != "refund.succeeded" for event, _ in yookassa.deliveries), "no notice of a canceled refund"
    assert await look_up_due(client, worker, clock) == 0 and len(notifier.canceled_refunds) == 1
    _, shown = await get_json(client, f"/api/invoices/{label}")
    assert shown["status"] == "paid" and shown["provider_refund"]["cancellation"] == {
        "party": "yoo_money", "reason": "insufficient_funds"}

    yookassa.refund_status = "succeeded"  # the admin tries again: a new refund under a key of its own
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 202 and (await response.json())["refund"] == "requested"
    keys = [headers["Idempotence-Key"] for method, path, headers, _ in yookassa.requests
            if (method, path) == ("POST", "/v3/refunds")]
    assert keys[0] == idempotence_key("refund", payment_id) and keys[-1] != keys[0]
    await yookassa.settle()
    await worker.drain()
    assert (await state(label, 505))[0] is InvoiceStatus.REFUNDED and len(notifier.reversals) == 1


async def extra_payment_at_yookassa(client: TestClient, worker: InProcessWorker, emulator: YooKassaEmulator,
                                    user_id: int) -> tuple[str, str]:
    """An invoice paid, then paid again at YooKassa (a stale tab): the second payment is extra, and the settle job
    asks YooKassa to refund it, which answers pending."""
    label, _ = await paid_at_yookassa(client, worker, emulator, user_id)
    second = paid_payment(emulator, label)
    assert await post_notification(client, emulator.notification("payment.succeeded", second)) == 200
    await worker.drain()
    return label, second


async def extra_state(operation_id: str) -> tuple[ExtraRefund | None, str]:
    extra = await find_operation("yookassa", operation_id)
    assert extra is not None and extra.status in (OperationStatus.EXTRA, OperationStatus.REVERSED), "never applied"
    return extra.extra_refund, extra.extra_detail or ""


async def test_a_pending_refund_of_an_extra_payment_is_not_called_refunded_until_it_succeeds(
        client, worker, yookassa, clock, notifier: RecordingNotifier):
    label, second = await extra_payment_at_yookassa(client, worker, yookassa, 507)
    refund, detail = await extra_state(second)
    assert refund is ExtraRefund.REFUND_PENDING and "pending at yookassa" in detail
    [told] = notifier.extras
    assert (told.pending, told.refunded) == (True, False), "the admin chat hears it is pending, not refunded"
    _, listed = await get_json(client, "/api/extras")
    assert [(row["operation_id"], row["refund"]) for row in listed["extras"]] == [(second, "refund_pending")]

    assert await look_up_due(client, worker, clock) == 1  # YooKassa finished it meanwhile
    assert (await extra_state(second))[0] is ExtraRefund.REFUNDED
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None and invoice.status is InvoiceStatus.PAID, "the first payment's invoice is untouched"
    assert notifier.reversals == [] and len(notifier.extras) == 1


async def test_a_canceled_refund_of_an_extra_payment_is_listed_to_refund_by_hand(client, worker, yookassa, clock,
                                                                               notifier: RecordingNotifier):
    yookassa.refund_timeline = RefundTimeline(settles_after=SETTLES_AFTER, ends="canceled", party="yoo_money",
                                              reason="rejected_by_payee")
    label, second = await extra_payment_at_yookassa(client, worker, yookassa, 508)
    assert await look_up_due(client, worker, clock) == 1
    refund, detail = await extra_state(second)
    assert refund is ExtraRefund.MANUAL and "rejected_by_payee" in detail
    [canceled] = notifier.canceled_refunds
    assert (canceled.label, canceled.reason) == (label, "rejected_by_payee")
    _, manual = await get_json(client, "/api/extras?refund=manual")
    assert [row["operation_id"] for row in manual["extras"]] == [second], "the owner sees it is still to give back"
    assert await look_up_due(client, worker, clock) == 0 and len(notifier.canceled_refunds) == 1


async def test_a_restart_between_does_not_lose_the_pending_refund(client, worker, yookassa, clock,
                                                                  redis_conn: redis.Redis,
                                                                  notifier: RecordingNotifier):
    label, _ = await paid_at_yookassa(client, worker, yookassa, 506)
    await refund_pending(client, label)
    yookassa.drop_deliveries()
    clock.now += SETTLES_AFTER
    assert (await tick(clock(), scheduler(client, clock))).refund_checks == 1
    redis_conn.flushdb()  # Redis restarted without its data: the queued look-up is gone, the worker never ran it
    assert (await state(label, 506))[0] is InvoiceStatus.PAID
    assert await look_up_due(client, worker, clock) == 1, "a new scheduler finds the refund in MongoDB"
    assert (await state(label, 506))[0] is InvoiceStatus.REFUNDED and len(notifier.reversals) == 1


async def test_forged_or_premature_refund_notifications_are_refused(client, worker, yookassa, clock,
                                                                    notifier: RecordingNotifier):
    label, _ = await paid_at_yookassa(client, worker, yookassa, 507)
    body = await refund_pending(client, label)
    refund_id = body["provider_refund"]["refund_id"]
    forged = yookassa.notification("refund.succeeded", refund_id)
    forged["object"]["status"] = "succeeded"  # the API still has it pending: not believed
    assert await post_notification(client, forged) == 409
    unknown = yookassa.notification("refund.succeeded", refund_id)
    unknown["object"]["id"] = "2f6a1c3e-0015-5000-9000-000000000999"
    assert await post_notification(client, unknown) == 200  # not this shop's: acknowledged, ignored
    assert await post_notification(client, {"type": "notification", "event": "refund.succeeded"}) == 400
    spoofed = await client.post("/notify/yookassa", json=forged, headers={"X-Forwarded-For": "185.71.76.10"})
    assert spoofed.status == 409, "an address header from an untrusted peer is not believed; the API decides"
    provider = client.app[PROVIDERS].get("yookassa")
    allowed = provider._networks
    provider._networks = [ip_network("185.71.76.0/27")]  # YooKassa's own range only: the test client is foreign
    try:
        clock.now += SETTLES_AFTER
        yookassa.end_due_refunds()  # now even a true notification from a foreign address is refused
        assert await post_notification(client, yookassa.notification("refund.succeeded", refund_id)) == 403
    finally:
        provider._networks = allowed
    await worker.drain()
    assert (await state(label, 507))[0] is InvoiceStatus.PAID and notifier.reversals == []
    row = await ProviderRefund.find_one(ProviderRefund.refund_id == refund_id)
    assert row is not None and row.status is RefundStatus.PENDING


# ---- Payme: receipts.cancel goes through state 21 (queued for cancellation) before 50

async def paid_at_payme(client: TestClient, worker: InProcessWorker, payme_api: PaymeApi, user_id: int) -> str:
    """A saved card charged through the Subscribe API (receipts.create + receipts.pay) and recorded."""
    payme_api.subscribe.cards[CARD_TOKEN] = EmulatedCard(number="8600069195406311", expire="1299",
                                                         token=CARD_TOKEN, recurrent=True, verified=True)
    invoice = await new_invoice(client, user_id=user_id)
    charger = client.app[PROVIDERS].get("payme")
    remembered: list[str] = []

    async def remember(receipt_id: str) -> None:
        remembered.append(receipt_id)

    result = await charger.charge(ChargeRequest(
        label=invoice["label"], amount=Money(invoice["amounts"]["UZS"], "UZS"), token=CARD_TOKEN,
        idempotency_key="ymds-test-refund", user_id=user_id, description="test"), remember)
    assert result.status is ChargeStatus.SUCCEEDED and result.event is not None
    await client.app[LEDGER].record(result.event)
    await worker.drain()
    return str(invoice["label"])


@pytest.mark.parametrize("fails", [False, True])
async def test_payme_receipt_queued_for_cancellation_is_pending_until_it_ends(client, worker, payme_api, clock,
                                                                             notifier: RecordingNotifier, fails):
    payme_api.subscribe.cancels.fails = fails
    label = await paid_at_payme(client, worker, payme_api, 510)
    before = await state(label, 510)
    body = await refund_pending(client, label)  # receipts.cancel → state 21
    receipt_id = body["provider_refund"]["refund_id"]
    assert payme_api.subscribe.receipts[receipt_id]["state"] == 21
    await worker.drain()
    assert await state(label, 510) == before and notifier.reversals == []
    assert await look_up_due(client, worker, clock) == 1  # receipts.get: 50 (or paid again, 4)
    if fails:
        assert await state(label, 510) == before and notifier.reversals == []
        [told] = notifier.canceled_refunds
        assert told.provider == "payme" and "state 4" in told.reason
    else:
        assert (await state(label, 510))[0] is InvoiceStatus.REFUNDED and len(notifier.reversals) == 1
        assert notifier.canceled_refunds == []
    assert await look_up_due(client, worker, clock) == 0


async def test_payme_payment_that_is_no_receipt_is_refunded_in_the_cabinet(client, payme_api):
    """A checkout payment (Merchant API) is no Subscribe receipt: Payme answers −31602 and the refund is by hand."""
    with pytest.raises(RefundUnsupported, match="cabinet"):
        await client.app[PROVIDERS].get("payme").refund(operation_id="5305e3bab097f420a62ced0b",
                                                       amount=Money(3500000, "UZS"), label="inv_checkout")
    assert await ProviderRefund.find_all().count() == 0
