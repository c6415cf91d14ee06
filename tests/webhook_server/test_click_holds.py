"""One invoice, one payment for Click through the real routes: Prepare's hold, its release, its lapse; the
test tool's click_trans_id reused across orders; attempts stored before attempts were per order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from billing import claims
from billing.providers.click import HOLD
from billing.providers.payme.protocol import to_ms
from db import Invoice, InvoiceStatus, Operation, OperationStatus
from db.click import LEGACY_INDEX, ClickAttempt, ClickAttemptState
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.helpers import notification, operations, post_notification
from tests.payme_support import PAYME_CHECKOUT, PAYME_KEY, PAYME_MERCHANT, emulator_for
from tests.webhook_server.test_notify_click import CLICK, MONTH_UZS, caller, uzs_invoice  # noqa: F401 (fixture)
from webhook_server.emulators.click import CLICK_FAILURE, Attempt
from webhook_server.emulators.payme import new_payme_id


@pytest.fixture
def settings(yoomoney_emulator):
    _, emulator_url = yoomoney_emulator
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=emulator_url, payme_merchant_id=
                         PAYME_MERCHANT, payme_key=PAYME_KEY, payme_checkout_url=PAYME_CHECKOUT, **CLICK)


async def invoice(label: str) -> Invoice:
    found = await Invoice.find_one(Invoice.label == label)
    assert found is not None
    return found


async def test_a_prepared_attempt_holds_the_invoice_until_clicks_failure_releases_it(client, caller, clock):
    label = await uzs_invoice(client)
    first, second = Attempt(label, MONTH_UZS), Attempt(label, MONTH_UZS)
    prepare_id = (await caller.prepare(first)).body["merchant_prepare_id"]
    held = await invoice(label)
    assert claims.holder(held, clock.now) == f"click:{first.click_trans_id}:{label}"
    assert held.claim_until == clock.now + HOLD
    refused = await caller.prepare(second)
    assert (refused.error, refused.body["error_note"]) == (-4, "Already paid")
    assert await ClickAttempt.by_click_trans_id(second.click_trans_id, label) is None, "nothing stored for it"

    assert (await caller.complete(first, prepare_id, error=CLICK_FAILURE)).error == -9
    assert claims.holder(await invoice(label), clock.now) is None, "the cancelled attempt let go"
    assert (await caller.prepare(second)).error == 0, "at once, not after the hold's time"


async def test_a_lapsed_hold_lets_another_attempt_in_and_its_own_repeat_is_refused(client, caller, clock):
    label = await uzs_invoice(client)
    first, second = Attempt(label, MONTH_UZS), Attempt(label, MONTH_UZS)
    first_id = (await caller.prepare(first)).body["merchant_prepare_id"]
    clock.now += HOLD - timedelta(seconds=1)
    assert (await caller.prepare(second)).error == -4, "still held"
    renewed = await caller.prepare(first)
    assert (renewed.error, renewed.body["merchant_prepare_id"]) == (0, first_id), "Click's repeat renews its hold"
    clock.now += HOLD
    assert (await caller.prepare(second)).error == 0
    assert (await caller.prepare(first)).error == -4, "the other attempt holds it now"


async def test_a_payment_recorded_by_another_provider_refuses_prepare_before_any_worker_runs(client, caller,
                                                                                              queues):
    label = await uzs_invoice(client)
    assert await post_notification(client, notification(label)) == 200
    assert queues.depth() == 1, "recorded and queued; no worker has run"
    assert (await invoice(label)).status is InvoiceStatus.PENDING
    assert (await caller.prepare(Attempt(label, MONTH_UZS))).error == -4
    assert await ClickAttempt.find_all().to_list() == []


async def test_a_waiting_payme_transaction_refuses_prepare(client, caller, clock):
    label = await uzs_invoice(client)
    payme = emulator_for(client, clock)
    created = await payme.create(client.session, new_payme_id(), label, 3500000, payme_time=to_ms(clock.now))
    assert created.result and created.result["state"] == 1
    assert (await caller.prepare(Attempt(label, MONTH_UZS))).error == -4


async def test_prepare_never_takes_an_invoice_another_attempt_won_concurrently(client, caller):
    """Many attempts for one invoice at once: exactly one holds it (a conditional update decides)."""
    label = await uzs_invoice(client)
    replies = await asyncio.gather(*(caller.prepare(Attempt(label, MONTH_UZS)) for _ in range(16)))
    assert sorted(reply.error for reply in replies) == [-4] * 15 + [0]
    [attempt] = await ClickAttempt.find_all().to_list()
    assert (await invoice(label)).claimed_by == f"click:{attempt.ledger_id}"


async def test_one_click_trans_id_across_orders_is_judged_on_each_order(client, worker, caller):
    """Click's test tool sends one click_trans_id for every order; a redelivery for the same order stays idempotent."""
    first_label, second_label = await uzs_invoice(client, user_id=31), await uzs_invoice(client, user_id=32)
    first = Attempt(first_label, MONTH_UZS)
    second = Attempt(second_label, MONTH_UZS, first.click_trans_id, first.click_paydoc_id)
    first_id = (await caller.prepare(first)).body["merchant_prepare_id"]
    assert (await caller.complete(first, first_id)).error == 0
    prepared = await caller.prepare(second)
    assert prepared.error == 0 and prepared.body["merchant_prepare_id"] != first_id, "a new attempt, not a repeat"
    second_id = prepared.body["merchant_prepare_id"]
    assert (await caller.complete(second, first_id)).error == -6, "the other order's merchant_prepare_id"
    assert (await caller.complete(second, second_id)).error == 0
    assert [(await caller.complete(second, second_id)).error, (await caller.prepare(second)).error] == [-4, -4]
    await worker.drain()
    assert sorted(op.operation_id for op in await operations()) == sorted(
        f"{first.click_trans_id}:{label}" for label in (first_label, second_label))
    assert {(await invoice(label)).status for label in (first_label, second_label)} == {InvoiceStatus.PAID}


async def test_attempts_stored_before_per_order_ids_keep_their_ledger_id(client, worker, caller, clock):
    """A database from before: attempts without operation_id, the ledger keyed by click_trans_id alone, and the
    unique index on click_trans_id alone. Their repeats stay duplicates; a new order with that id still pays."""
    paid_label, open_label, new_label = [await uzs_invoice(client, user_id=40 + n) for n in range(3)]
    collection = ClickAttempt.get_motor_collection()
    await collection.create_index([("click_trans_id", 1)], unique=True, name=LEGACY_INDEX)
    paid = Attempt(paid_label, MONTH_UZS, 111, 211)
    await collection.insert_one({"click_trans_id": 111, "prepare_id": 901, "label": paid_label, "amount": 3500000,
                                 "click_paydoc_id": 211, "state": "completed", "prepared_at": clock.now})
    await Operation(provider="click", operation_id="111", label=paid_label, amount=3500000, currency="UZS",
                    status=OperationStatus.APPLIED, recorded_at=clock.now).insert()
    await claims.claim(paid_label, "click:111", now=clock.now)
    still_open = Attempt(open_label, MONTH_UZS, 112, 212)
    await collection.insert_one({"click_trans_id": 112, "prepare_id": 902, "label": open_label, "amount": 3500000,
                                 "click_paydoc_id": 212, "state": "prepared", "prepared_at": clock.now})

    assert (await caller.complete(paid, 901)).error == -4, "a repeat of the old payment"
    assert (await caller.complete(still_open, 902)).error == 0, "an old open attempt completes under its old id"
    reused = Attempt(new_label, MONTH_UZS, 111, 211)
    prepared = await caller.prepare(reused)
    assert prepared.error == 0, "the old unique index on click_trans_id alone no longer refuses another order"
    assert (await caller.complete(reused, prepared.body["merchant_prepare_id"])).error == 0
    assert LEGACY_INDEX not in await collection.index_information()
    await worker.drain()
    assert sorted(op.operation_id for op in await operations()) == ["111", f"111:{new_label}", "112"]
    states = {a.label: a.state for a in await ClickAttempt.find_all().to_list()}
    assert set(states.values()) == {ClickAttemptState.COMPLETED}
