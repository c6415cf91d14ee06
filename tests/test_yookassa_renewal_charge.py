"""Renewal charges of a saved YooKassa method (SavedMethodCharger), through the app's own provider and
transport, over real HTTP to the YooKassa emulator; the ledger and the RQ worker are the real ones."""

from __future__ import annotations

import uuid
from datetime import timedelta

import aiohttp
import pytest

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.providers.base import ChargeStatus, Outcome, ProviderRejected, SavedMethodCharger
from billing.providers.yookassa import YooKassa
from db import OperationStatus, Subscription
from tests.charge_support import RENEWAL_PRICE, Remembered, WorkerDied, charger, renewal
from tests.consent_support import consent_on
from tests.helpers import new_invoice, operations
from tests.webhook_server.test_redis_faults import free_port
from tests.yookassa_support import (
    SECRET_KEY,
    SHOP_ID,
    created_payment,
    paid_payment,
    post_notification,
    settings,
    yookassa,
    yookassa_emulator,
)
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import HTTP, LEDGER

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

METHOD = "2e0d37a5-000f-5000-9000-1d6b39e5b4b7"  # a payment_method_id saved by an earlier payment


def provider(client) -> YooKassa:
    return charger(client, "yookassa")


@pytest.fixture
def emulator(yookassa_emulator: tuple[YooKassaEmulator, str]) -> YooKassaEmulator:
    """The emulator without notifications (tests that want them use `yookassa`), with METHOD saved."""
    emulator, _ = yookassa_emulator
    emulator.saved_methods.add(METHOD)
    return emulator


def reference_key(idempotency_key: str) -> str:
    """The Idempotence-Key the reference's scheme (§10 TV5) gives a renewal attempt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"open-ymds:yookassa:charge:{idempotency_key}"))


async def test_the_charge_is_a_merchant_initiated_payment_and_its_event_is_the_ledgers(client, emulator):
    invoice = await new_invoice(client, user_id=21)
    remembered = Remembered(seen=lambda payment_id: emulator.payments[payment_id]["status"])
    result = await provider(client).charge(renewal(invoice["label"], METHOD, user_id=21), remembered)

    assert result.status is ChargeStatus.SUCCEEDED and emulator.charges == [result.operation_id]
    assert remembered.ids == [result.operation_id] and remembered.seen_then == ["succeeded"]
    [(method, path, headers, body)] = emulator.requests
    assert (method, path) == ("POST", "/v3/payments")
    assert headers["Idempotence-Key"] == reference_key("renewal:sub-1:period-1:attempt-0")
    assert body == {"amount": {"value": "299.00", "currency": "RUB"}, "capture": True, "payment_method_id": METHOD,
                    "description": f"Renewal of invoice {invoice['label']}", "metadata": {"label": invoice["label"]}}
    event = result.event
    assert (event.provider, event.operation_id, event.label, event.amount) == (
        "yookassa", result.operation_id, invoice["label"], RENEWAL_PRICE)
    assert (event.payment_token, event.payment_method) == (METHOD, "MasterCard •••• 4444")
    assert event.net_amount == Money(28853, "RUB") and event.occurred_at is not None


async def test_a_method_saved_by_a_first_payment_renews_the_subscription(client, worker, yookassa, clock):
    first = await new_invoice(client, user_id=22)
    await consent_on(first["label"], "yookassa")  # the payer chose "pay and renew" on the page
    first_payment = paid_payment(yookassa, first["label"])
    assert await post_notification(client, yookassa.notification("payment.succeeded", first_payment)) == 200
    await worker.drain()
    saved = await Subscription.find_one(Subscription.user_id == 22)

    second = await new_invoice(client, user_id=22)
    result = await provider(client).charge(renewal(second["label"], saved.payment_token, user_id=22), Remembered())
    await yookassa.settle()
    assert result.status is ChargeStatus.SUCCEEDED
    assert await client.app[LEDGER].record(result.event) is Outcome.DUPLICATE  # its notification came first
    await worker.drain()

    renewed = await Subscription.find_one(Subscription.user_id == 22)
    assert renewed.current_period_end == clock.now + timedelta(days=60)
    assert renewed.payment_token == saved.payment_token == first_payment


async def test_a_soft_decline_is_retried_by_the_next_attempt(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=23)
    yookassa.saved_methods.add(METHOD)
    yookassa.decline_method(METHOD, "insufficient_funds", times=1)
    charger = provider(client)
    remembered = Remembered()

    declined = await charger.charge(renewal(invoice["label"], METHOD, key="attempt-0"), remembered)
    await yookassa.settle()
    assert (declined.status, declined.reason, declined.hard, declined.event) == (
        ChargeStatus.DECLINED, "insufficient_funds", False, None)
    assert yookassa.payments[declined.operation_id]["status"] == "canceled"
    assert yookassa.deliveries == [("payment.canceled", 200)] and await operations() == []

    retried = await charger.charge(renewal(invoice["label"], METHOD, key="attempt-1"), remembered)
    assert retried.status is ChargeStatus.SUCCEEDED and retried.operation_id != declined.operation_id
    assert remembered.ids == [declined.operation_id, retried.operation_id]


@pytest.mark.parametrize(("reason", "hard"), [
    ("card_expired", True), ("permission_revoked", True), ("payment_method_restricted", True),
    ("fraud_suspected", True), ("insufficient_funds", False), ("general_decline", False), ("call_issuer", False),
])
async def test_hard_declines_are_the_ones_no_retry_can_fix(client, emulator, reason, hard):
    invoice = await new_invoice(client)
    emulator.decline_method(METHOD, reason)
    result = await provider(client).charge(renewal(invoice["label"], METHOD), Remembered())
    assert (result.status, result.reason, result.hard) == (ChargeStatus.DECLINED, reason, hard)


async def test_a_method_the_shop_never_saved_is_a_revoked_permission(client, emulator):
    invoice = await new_invoice(client)
    result = await provider(client).charge(renewal(invoice["label"], "2f000000-000f-5000-9000-000000000000"),
                                           Remembered())
    assert (result.status, result.reason, result.hard) == (ChargeStatus.DECLINED, "permission_revoked", True)
    assert emulator.charges == [result.operation_id]


async def test_the_same_attempt_twice_charges_once_and_answers_the_same(client, emulator):
    invoice = await new_invoice(client)
    charger = provider(client)
    first = await charger.charge(renewal(invoice["label"], METHOD), Remembered())
    again = await charger.charge(renewal(invoice["label"], METHOD), Remembered())
    assert emulator.charges == [first.operation_id]
    assert again == first

    emulator.decline_method(METHOD, "insufficient_funds", times=1)
    declined = await charger.charge(renewal(invoice["label"], METHOD, key="attempt-1"), Remembered())
    declined_again = await charger.charge(renewal(invoice["label"], METHOD, key="attempt-1"), Remembered())
    assert declined_again == declined and declined.status is ChargeStatus.DECLINED
    assert emulator.charges == [first.operation_id, declined.operation_id]


async def test_a_run_after_a_crash_looks_the_charge_up_instead_of_charging_again(client, emulator):
    invoice = await new_invoice(client)
    charger = provider(client)
    dying = Remembered(seen=lambda payment_id: payment_id in emulator.payments, die=True)
    with pytest.raises(WorkerDied):
        await charger.charge(renewal(invoice["label"], METHOD), dying)
    [payment_id] = dying.ids
    assert dying.seen_then == [True] and emulator.charges == [payment_id]

    rerun = Remembered()
    result = await charger.charge(renewal(invoice["label"], METHOD, key="another-key",
                                          known_operation_id=payment_id), rerun)
    assert (result.status, result.operation_id) == (ChargeStatus.SUCCEEDED, payment_id)
    assert emulator.charges == [payment_id] and rerun.ids == []
    assert [(method, path) for method, path, _, _ in emulator.requests][-1] == ("GET", f"/v3/payments/{payment_id}")


@pytest.mark.parametrize("capture", [True, False])
async def test_a_known_payment_not_decided_yet_is_pending(client, emulator, capture):
    invoice = await new_invoice(client)
    payment_id = created_payment(emulator, invoice["label"], capture=capture)
    if not capture:
        emulator.succeed(payment_id)  # waiting_for_capture
    result = await provider(client).charge(renewal(invoice["label"], METHOD, known_operation_id=payment_id),
                                           Remembered())
    assert (result.status, result.operation_id, result.event) == (ChargeStatus.PENDING, payment_id, None)
    assert emulator.charges == []


async def test_a_known_payment_that_is_missing_or_pays_another_invoice_is_rejected(client, emulator):
    invoice, other = await new_invoice(client), await new_invoice(client)
    charger = provider(client)
    with pytest.raises(ProviderRejected, match="no payment"):
        await charger.charge(renewal(invoice["label"], METHOD, known_operation_id="no-such-payment"), Remembered())
    foreign = paid_payment(emulator, other["label"])
    with pytest.raises(ProviderRejected, match="pays"):
        await charger.charge(renewal(invoice["label"], METHOD, known_operation_id=foreign), Remembered())
    assert emulator.charges == []


async def test_an_outage_leaves_the_outcome_unknown(client, emulator):
    invoice = await new_invoice(client)
    emulator.fail_with = 500
    remembered = Remembered()
    with pytest.raises(ProviderUnavailable):
        await provider(client).charge(renewal(invoice["label"], METHOD), remembered)
    unreachable = YooKassa(shop_id=SHOP_ID, secret_key=SECRET_KEY, api_url=f"http://127.0.0.1:{free_port()}/v3",
                           transport=AiohttpTransport(client.app[HTTP]), notify_networks=[], test_mode=True)
    with pytest.raises(ProviderUnavailable):
        await unreachable.charge(renewal(invoice["label"], METHOD), remembered)
    assert remembered.ids == [] and emulator.charges == []


async def test_refused_requests_are_rejected(client, emulator, yookassa_emulator):
    invoice = await new_invoice(client)
    wrong_key = YooKassa(shop_id=SHOP_ID, secret_key="wrong", api_url=yookassa_emulator[1] + "/v3",
                         transport=AiohttpTransport(client.app[HTTP]), notify_networks=[], test_mode=True)
    refused = await wrong_key.charge(renewal(invoice["label"], METHOD), Remembered())
    assert (refused.status, refused.hard, refused.keep_method) == (ChargeStatus.DECLINED, True, True)
    assert "HTTP 401" in refused.reason and "invalid_credentials" in refused.reason
    with pytest.raises(ProviderRejected, match="RUB"):
        await provider(client).charge(renewal(invoice["label"], METHOD, amount=Money(100, "USD")), Remembered())
    assert emulator.charges == []


async def test_a_payment_in_the_other_mode_is_not_credited(client, emulator, yookassa_emulator):
    invoice = await new_invoice(client)
    live = YooKassa(shop_id=SHOP_ID, secret_key=SECRET_KEY, api_url=yookassa_emulator[1] + "/v3",
                    transport=AiohttpTransport(client.app[HTTP]), notify_networks=[], test_mode=False)
    remembered = Remembered()
    with pytest.raises(ProviderRejected, match="test"):
        await live.charge(renewal(invoice["label"], METHOD), remembered)
    assert len(emulator.charges) == 1 and remembered.ids == emulator.charges  # named, so a rerun finds it


async def test_notification_then_charge_event_records_one_operation(client, worker, yookassa, clock, notifier):
    invoice = await new_invoice(client, user_id=24)
    await consent_on(invoice["label"], "yookassa")
    yookassa.saved_methods.add(METHOD)
    result = await provider(client).charge(renewal(invoice["label"], METHOD, user_id=24), Remembered())
    await yookassa.settle()
    assert yookassa.deliveries == [("payment.succeeded", 200)]
    assert await client.app[LEDGER].record(result.event) is Outcome.DUPLICATE
    await worker.drain()
    await assert_renewed_once(24, result.operation_id, clock, notifier)


async def test_charge_event_then_notification_records_one_operation(client, worker, yookassa, clock, notifier):
    invoice = await new_invoice(client, user_id=25)
    await consent_on(invoice["label"], "yookassa")
    yookassa.saved_methods.add(METHOD)
    yookassa.notify_url = None  # the notification is late: delivered by hand below
    result = await provider(client).charge(renewal(invoice["label"], METHOD, user_id=25), Remembered())
    assert await client.app[LEDGER].record(result.event) is Outcome.ACCEPTED
    assert await post_notification(client, yookassa.notification("payment.succeeded", result.operation_id)) == 200
    await worker.drain()
    await assert_renewed_once(25, result.operation_id, clock, notifier)


async def assert_renewed_once(user_id: int, operation_id: str, clock, notifier) -> None:
    [operation] = await operations()
    assert (operation.operation_id, operation.status, operation.payment_token) == (
        operation_id, OperationStatus.APPLIED, METHOD)
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert subscription.payment_token == METHOD and len(notifier.notices) == 1


async def test_it_is_a_saved_method_charger_that_cannot_forget(client):
    charger = provider(client)
    assert isinstance(charger, SavedMethodCharger) and charger.charge_currency == "RUB"
    assert await charger.forget(METHOD) is False


async def test_the_emulators_decline_control_route(client, emulator, yookassa_emulator):
    invoice = await new_invoice(client)
    charger = provider(client)
    control = f"{yookassa_emulator[1]}/control/methods/{METHOD}/decline"

    async def statuses(count: int, prefix: str) -> list[str]:
        results = [await charger.charge(renewal(invoice["label"], METHOD, key=f"{prefix}-{n}"), Remembered())
                   for n in range(count)]
        return [result.reason or result.status.value for result in results]

    async with aiohttp.ClientSession() as session:
        async with session.post(control, json={"reason": "card_expired", "times": 2}) as response:
            assert response.status == 200
        assert await statuses(3, "twice") == ["card_expired", "card_expired", "succeeded"]
        async with session.post(control, json={"reason": "insufficient_funds"}) as response:
            assert response.status == 200
        assert await statuses(3, "always") == ["insufficient_funds"] * 3
        async with session.delete(control) as response:
            assert response.status == 200
        assert await statuses(1, "allowed") == ["succeeded"]
        for bad in ({"times": 1}, {"reason": "card_expired", "times": -1}, {"reason": "card_expired", "times": "2"},
                    ["card_expired"]):
            async with session.post(control, json=bad) as response:
                assert response.status == 400
        async with session.post(control, data=b"not json") as response:
            assert response.status == 400
    assert len(emulator.charges) == 7
