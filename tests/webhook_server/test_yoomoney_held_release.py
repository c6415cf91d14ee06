"""YooMoney held payments (issue 24, part 3): `unaccepted` is not covered by sha1_hash, so a signed notification's
word that held money is now available never releases it; only the wallet API (operation-details, the sweep) does.

Through real HTTP to our app, the YooMoney emulator as a real HTTP server signing with its own code (the legacy
sha1_hash), the real Redis and a real RQ worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from db import Invoice, OperationStatus, Subscription
from tests.conftest import make_settings
from tests.helpers import PRICE_MONTH_RUB, new_invoice, notification, operations, post_notification
from webhook_server.app import create_app
from webhook_server.keys import LEDGER, PROVIDERS

WINDOW = timedelta(hours=72)


@pytest.fixture
def emulator(yoomoney_emulator, clock):
    """The emulator signing its notifications, on the app's clock (its history and our sweep window agree)."""
    emulator, _ = yoomoney_emulator
    emulator.clock = clock
    emulator.sign_notifications = True
    return emulator


def flipped(fields: dict[str, str]) -> dict[str, str]:
    """The same signed fields saying the money is available: sha1_hash still matches (unaccepted is unhashed)."""
    assert fields["unaccepted"] == "true" and "sha1_hash" in fields
    return {**fields, "unaccepted": "false"}


async def status_of(label: str) -> str:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice.status.value


async def row_status(operation_id: str) -> OperationStatus:
    [row] = [op for op in await operations() if op.operation_id == operation_id]
    return row.status


async def sweep(client, clock):
    provider = client.app[PROVIDERS].get("yoomoney")
    return await provider.reconcile(clock.now - WINDOW, clock.now + timedelta(seconds=1), ledger=client.app[LEDGER],
                                    now=clock.now)


async def test_a_flipped_unaccepted_flag_does_not_release_the_hold(client, worker, emulator, clock, notifier):
    invoice = await new_invoice(client, user_id=90)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    assert emulator.deliveries == [200]
    await worker.drain()
    assert await row_status(operation.operation_id) is OperationStatus.HELD

    held_fields = emulator.notification_of(operation)
    assert await post_notification(client, flipped(held_fields)) == 200
    await worker.drain()
    assert await row_status(operation.operation_id) is OperationStatus.HELD, "the notification's word is not enough"
    assert await status_of(invoice["label"]) == "pending" and notifier.notices == []
    assert await Subscription.find_one(Subscription.user_id == 90) is None
    assert emulator.api_calls[-1] == ("operation-details", {"operation_id": operation.operation_id})

    emulator.accept(operation.operation_id)  # the owner accepts; the wallet sends no notification for it
    clock.now += timedelta(minutes=5)
    report = await sweep(client, clock)
    await worker.drain()
    assert report.found == 1
    assert await row_status(operation.operation_id) is OperationStatus.APPLIED
    assert await status_of(invoice["label"]) == "paid" and [n.user_id for n in notifier.notices] == [90]


async def test_unaccepted_false_for_money_the_wallet_has_in_progress_is_held(client, worker, emulator, notifier):
    """The first word we hear is already the flipped one (the real notification lost): the wallet API decides."""
    invoice = await new_invoice(client, user_id=91)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    assert emulator.deliveries == [] and await operations() == []

    assert await post_notification(client, flipped(emulator.notification_of(operation))) == 200
    await worker.drain()
    assert await row_status(operation.operation_id) is OperationStatus.HELD
    assert await status_of(invoice["label"]) == "pending" and notifier.notices == []
    assert [n.label for n in notifier.holds] == [invoice["label"]]


async def test_once_the_wallet_credits_it_a_notification_releases_through_the_api(client, worker, emulator,
                                                                                 notifier):
    invoice = await new_invoice(client, user_id=92)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    held_fields = emulator.notification_of(operation)
    emulator.accept(operation.operation_id)
    calls = len(emulator.api_calls)

    assert await post_notification(client, flipped(held_fields)) == 200
    await worker.drain()
    assert emulator.api_calls[calls:] == [("operation-details", {"operation_id": operation.operation_id})]
    assert await row_status(operation.operation_id) is OperationStatus.APPLIED
    assert await status_of(invoice["label"]) == "paid" and [n.user_id for n in notifier.notices] == [92]


async def test_a_redelivered_held_notification_never_releases_either(client, worker, emulator, notifier):
    """The wallet credited the money, but the notification still says unaccepted=true: held until the API is asked
    by the sweep; a hold never turns into a payment without the API's record."""
    invoice = await new_invoice(client, user_id=93)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    emulator.accept(operation.operation_id)
    assert await post_notification(client, emulator.notification_of(operation)) == 200
    await worker.drain()
    assert await row_status(operation.operation_id) is OperationStatus.HELD and notifier.notices == []


async def test_with_the_wallet_api_down_the_flipped_word_is_held_until_the_sweep(client, worker, emulator, clock,
                                                                                 notifier):
    invoice = await new_invoice(client, user_id=94)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    emulator.api_available = False
    assert await post_notification(client, flipped(emulator.notification_of(operation))) == 200
    await worker.drain()
    assert await row_status(operation.operation_id) is OperationStatus.HELD and notifier.notices == []

    emulator.api_available = True
    clock.now += timedelta(minutes=5)
    await sweep(client, clock)
    await worker.drain()
    assert await row_status(operation.operation_id) is OperationStatus.HELD, "still in progress in the wallet"
    emulator.refuse(operation.operation_id)
    await sweep(client, clock)
    await worker.drain()
    assert await status_of(invoice["label"]) == "pending" and notifier.notices == []
    assert await Subscription.find_one(Subscription.user_id == 94) is None


async def test_a_signed_payment_the_wallet_refused_is_not_paid(client, worker, emulator, notifier):
    invoice = await new_invoice(client, user_id=95)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB, unaccepted=True)
    emulator.refuse(operation.operation_id)
    assert await post_notification(client, flipped(emulator.notification_of(operation))) == 200
    await worker.drain()
    assert await status_of(invoice["label"]) == "pending" and notifier.notices == []


async def test_without_a_wallet_api_a_hold_is_never_released_by_a_notification(plans, clock, redis_conn):
    """No YOOMONEY_API_TOKEN: nothing can confirm the release, so the hold stays for the owner to settle."""
    async with TestClient(TestServer(create_app(make_settings(), plans=plans, clock=clock))) as bare:
        invoice = await new_invoice(bare)
        held = notification(invoice["label"], operation_id="700", unaccepted=True)
        assert await post_notification(bare, held) == 200
        assert await post_notification(bare, flipped(held)) == 200
        [row] = await operations()
        assert row.status is OperationStatus.HELD
        assert await status_of(invoice["label"]) == "pending"
