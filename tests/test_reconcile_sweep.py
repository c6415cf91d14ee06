"""The reconciliation sweep as `ymds scheduler` and `ymds reconcile` run it: every notification of a payment
lost, the scheduler's first sweep pays it, and a later delivery changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import ymds
from billing import reconciliation
from billing.renewals.scheduler import run_scheduler
from db import Invoice, Subscription, init_db
from tests.helpers import PRICE_MONTH_RUB, new_invoice, operations
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import sweeper_for

DEADLINE_SECONDS = 30


async def until(condition: Any, worker: Any) -> None:
    """Drain the worker until `condition()` holds, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await condition():
        assert loop.time() < deadline, "the condition did not hold in time"
        await worker.drain()
        await asyncio.sleep(0.05)


async def active(user_id: int) -> bool:
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    return subscription is not None and subscription.status.value == "active"


class CountingLease:
    def __init__(self) -> None:
        self.holds = 0

    def hold(self) -> bool:
        self.holds += 1
        return True

    def release(self) -> None:
        return None


async def test_the_scheduler_sweep_pays_a_payment_whose_notifications_were_all_lost(
        client, worker, yoomoney_emulator, clock, notifier):
    emulator, _ = yoomoney_emulator
    emulator.clock = clock
    emulator.drop_notifications = True
    invoice = await new_invoice(client, user_id=90)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB)
    clock.now += timedelta(minutes=2)

    settings = client.app[SETTINGS]
    services = renewal_services(settings, client.app[QUEUES], client.app[PROVIDERS], clock)
    sweeper = sweeper_for(settings, client.app[QUEUES], client.app[PROVIDERS], clock)
    assert [r.name for r in sweeper.asked] == ["yoomoney"]
    stop = asyncio.Event()
    lease = CountingLease()
    scheduler = asyncio.create_task(run_scheduler(services, lease, clock, interval=0.01, stop=stop,
                                                  sweeper=sweeper))
    try:
        await until(lambda: active(90), worker)
    finally:
        stop.set()
        await scheduler
    assert sweeper.last == clock.now, "swept at the first tick"
    assert lease.holds >= 1

    subscription = await Subscription.find_one(Subscription.user_id == 90)
    assert subscription is not None
    assert await emulator.deliver_late(operation.operation_id) == 200
    await worker.drain()
    again = await Subscription.find_one(Subscription.user_id == 90)
    assert again is not None and again.current_period_end == subscription.current_period_end
    assert [row.operation_id for row in await operations()] == [operation.operation_id]
    assert len(notifier.notices) == 1


async def test_the_sweep_waits_for_its_interval(client, clock):
    sweeper = sweeper_for(client.app[SETTINGS], client.app[QUEUES], client.app[PROVIDERS], clock)
    assert await sweeper.run_if_due(clock.now) is not None
    assert await sweeper.run_if_due(clock.now + timedelta(seconds=299)) is None
    assert await sweeper.run_if_due(clock.now + timedelta(seconds=300)) is not None


async def test_ymds_reconcile_yoomoney_records_what_the_ledger_lacks(client, yoomoney_emulator, redis_conn,
                                                                    monkeypatch, tmp_path, capsys, clock):
    """The command against the wallet API, with its own database holding the invoice: it records the payment
    whose notification was lost, exits 1 and says so; run again, it finds nothing new and exits 0."""
    emulator, emulator_url = yoomoney_emulator
    emulator.drop_notifications = True
    invoice = await Invoice.find_one(Invoice.label == (await new_invoice(client, user_id=91))["label"])
    assert invoice is not None
    operation = await emulator.pay(invoice.label, PRICE_MONTH_RUB)
    databases: list[Any] = []

    async def command_db(uri: str, name: str) -> Any:
        if not databases:  # the first run's database, kept for the second run as a real MongoDB would be
            databases.append(await init_db("memory://", name))
            await Invoice(**invoice.model_dump(exclude={"id", "revision_id"})).insert()
        return _Unclosed(databases[0])

    settings = client.app[SETTINGS]
    monkeypatch.chdir(tmp_path)
    for name, value in {"MONGODB_URI": "mongodb://db.invalid:27017", "REDIS_URL": settings.redis_url,
                        "YOOMONEY_WALLET": settings.yoomoney_wallet,
                        "YOOMONEY_NOTIFICATION_SECRET": settings.yoomoney_notification_secret.get_secret_value(),
                        "YOOMONEY_API_TOKEN": settings.yoomoney_api_token.get_secret_value(),
                        "YOOMONEY_API_URL": emulator_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(reconciliation, "init_db", command_db)
    day = clock.now.date()
    period = ["--from", str(day - timedelta(days=1)), "--to", str(day + timedelta(days=1))]

    assert await asyncio.to_thread(ymds.main, ["reconcile", "yoomoney", *period]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(operation.operation_id in line and line.endswith(": accepted") for line in lines), lines
    assert lines[-1].startswith("yoomoney: asked ") and lines[-1].endswith("found 1 payment(s), 1 new to the ledger")
    assert await asyncio.to_thread(ymds.main, ["reconcile", "yoomoney", *period]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("found 1 payment(s), 0 new to the ledger")


class _Unclosed:
    """The command closes its client when it is done; the test keeps the in-memory one for the next run."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def close(self) -> None:
        return None
