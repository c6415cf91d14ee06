"""Failures injected between the steps of Payme's calls, then Payme's repeat (or its cancel): nothing lost,
nothing applied twice, and every failure answered with −32400 (HTTP 200) so that Payme tries again."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from billing.errors import LedgerUnavailable
from billing.providers.payme import Payme
from db import Invoice, InvoiceStatus, OperationStatus, Subscription
from db.payme import PaymeState, PaymeTransaction
from tests.helpers import new_invoice, operations
from tests.payme_support import PRICE_MONTH_UZS, error_code, payme, settings, transactions  # noqa: F401
from webhook_server.emulators.payme import new_payme_id
from webhook_server.keys import LEDGER, QUEUES


def fail_once(error: Exception, real: Any) -> Any:
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return await real(*args, **kwargs)

    return flaky


class FailingStateUpdates:
    """The transactions collection with its next `update_one` lost (the database gone mid-request)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.failures = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise AutoReconnect("connection lost")
        return await self._real.update_one(*args, **kwargs)


@pytest.fixture
def lose_next_state_update(monkeypatch: pytest.MonkeyPatch) -> FailingStateUpdates:
    failing = FailingStateUpdates(PaymeTransaction.get_motor_collection())
    monkeypatch.setattr(PaymeTransaction, "get_motor_collection", classmethod(lambda cls: failing))
    return failing


async def test_queue_down_during_perform_answers_32400_and_the_repeat_activates_once(
    client, worker, notifier, payme, monkeypatch
):
    invoice = await new_invoice(client, user_id=41)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    queues = client.app[QUEUES]
    monkeypatch.setattr(queues, "enqueue_fulfilment",
                        fail_once(LedgerUnavailable("redis: ConnectionError"), queues.enqueue_fulfilment))

    failed = await payme.by_id(client.session, "PerformTransaction", payme_id)
    assert (failed.status, error_code(failed)) == (200, -32400)
    assert [tx.state for tx in await transactions()] == [PaymeState.CREATED]

    repeated = await payme.by_id(client.session, "PerformTransaction", payme_id)
    assert repeated.result["state"] == 2
    await worker.drain()
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED]
    assert len(notifier.notices) == 1


async def test_database_lost_after_the_ledger_insert_then_the_repeat_finishes_once(
    client, worker, clock, notifier, payme, lose_next_state_update
):
    invoice = await new_invoice(client, user_id=42)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)

    failed = await payme.by_id(client.session, "PerformTransaction", payme_id)
    assert error_code(failed) == -32400
    assert [op.status for op in await operations()] == [OperationStatus.RECORDED]

    repeated = await payme.by_id(client.session, "PerformTransaction", payme_id)
    again = await payme.by_id(client.session, "PerformTransaction", payme_id)
    assert repeated.result["state"] == 2 and again.result == repeated.result
    await worker.drain()
    assert len(notifier.notices) == 1
    assert len((await Subscription.find_one(Subscription.user_id == 42)).applied_operations) == 1


async def test_database_lost_after_the_ledger_insert_then_paymes_cancel_takes_it_back(
    client, worker, notifier, payme, lose_next_state_update
):
    invoice = await new_invoice(client, user_id=43)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    assert error_code(await payme.by_id(client.session, "PerformTransaction", payme_id)) == -32400
    await worker.drain()  # the recorded payment may even be applied before Payme gives up

    cancel = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=3)
    assert cancel.result["state"] == -1
    await worker.drain()

    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    stored = await Invoice.find_one(Invoice.label == invoice["label"])
    assert stored.status is not InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 43)
    assert subscription is None or subscription.reversed_operations == subscription.applied_operations


async def test_queue_down_during_refund_then_the_repeated_cancel_reverses_once(client, worker, notifier, payme,
                                                                               monkeypatch):
    invoice = await new_invoice(client, user_id=44)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    queues = client.app[QUEUES]
    monkeypatch.setattr(queues, "enqueue_reversal",
                        fail_once(LedgerUnavailable("redis: TimeoutError"), queues.enqueue_reversal))

    assert error_code(await payme.by_id(client.session, "CancelTransaction", payme_id, reason=5)) == -32400
    repeated = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=5)
    assert repeated.result["state"] == -2
    await worker.drain()
    assert [op.status for op in await operations()] == [OperationStatus.REVERSED]
    assert len(notifier.reversals) == 1


async def test_database_down_answers_32400_with_http_200(client, payme, monkeypatch):
    async def unreachable(self: Payme) -> str:
        raise ServerSelectionTimeoutError("no servers")

    monkeypatch.setattr(Payme, "active_key", unreachable)
    answer = await payme.by_id(client.session, "CheckTransaction", new_payme_id())
    assert (answer.status, error_code(answer)) == (200, -32400)
    assert set(answer.body["error"]["message"]) == {"ru", "uz", "en"}


async def test_perform_racing_a_cancel_never_leaves_a_payment_applied(client, worker, payme, monkeypatch):
    """Cancel lands between Perform's ledger insert and its state update: Perform answers −31008 and
    takes back what it recorded."""
    invoice = await new_invoice(client, user_id=45)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    ledger = client.app[LEDGER]
    original = ledger.record

    async def record_then_cancel(event: Any) -> Any:
        outcome = await original(event)
        await PaymeTransaction.get_motor_collection().update_one(
            {"payme_id": payme_id}, {"$set": {"state": -1, "reason": 3, "cancel_time": 1}})
        return outcome

    monkeypatch.setattr(ledger, "record", record_then_cancel)
    assert error_code(await payme.by_id(client.session, "PerformTransaction", payme_id)) == -31008
    await worker.drain()
    [operation] = await operations()
    assert operation.status is OperationStatus.REVERSED
    assert (await Invoice.find_one(Invoice.label == invoice["label"])).status is not InvoiceStatus.PAID
