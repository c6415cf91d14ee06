"""The once-a-minute sweep of unfinished payments (webhook_server/sweeper.py, Ledger.requeue_stranded) against the
real Redis: payout rows are not customer payments, no number of them hides a stranded payment, and a job that failed
for good tells the admins once, not once a minute."""

from __future__ import annotations

from datetime import timedelta

from rq.job import Job

from db import Operation, OperationStatus
from db.payouts import ClaimStatus, settle_payout_rows
from rq_access import job_id
from tests.helpers import new_invoice, notification, post_notification
from tests.konsol_support import accepted_claim, konsol, konsol_server, payouts, settings, stored  # noqa: F401
from webhook_server.sweeper import STRANDED_AFTER, sweep_once

PAYOUT_ROWS = 520


async def payout_rows(count: int, recorded_at, status: OperationStatus = OperationStatus.RECORDED) -> None:
    """Outcome rows of settled payouts as versions before this one left them: `recorded`, provider konsol."""
    await Operation.insert_many([
        Operation(provider="konsol", operation_id=f"{n:08d}-0000-4000-8000-000000000000:executed", label=f"po_{n:016x}",
                  amount=150000, currency="RUB", status=status, reason="payout executed", recorded_at=recorded_at)
        for n in range(count)])


async def stranded_payment(client, queues, clock) -> tuple[str, str]:
    """A customer payment recorded, its job then lost by Redis: (invoice label, operation id)."""
    invoice = await new_invoice(client, user_id=4242)
    fields = notification(invoice["label"], operation_id="stranded-1")
    assert await post_notification(client, fields) == 200
    lost = Job.fetch(job_id("fulfil", "yoomoney", "stranded-1"), connection=queues.connection)
    lost.delete()
    clock.now += STRANDED_AFTER + timedelta(seconds=1)
    return invoice["label"], "stranded-1"


async def test_a_stranded_payment_is_recovered_beside_more_than_500_payout_rows(client, worker, queues, clock,
                                                                                 notifier):
    await payout_rows(PAYOUT_ROWS, clock.now - timedelta(days=30))  # older than the payment: first in the sweep
    label, _ = await stranded_payment(client, queues, clock)

    assert await sweep_once(client.app) == 1, "the payment, and none of the payout rows"
    await worker.drain()
    [payment] = await Operation.find({"provider": "yoomoney"}).to_list()
    assert payment.status is OperationStatus.APPLIED and payment.notified_at is not None
    assert [notice.label for notice in notifier.notices] == [label]
    assert notifier.failures == [], "no payout row was run as an invoice payment"

    for _ in range(3):  # minute after minute
        clock.now += timedelta(minutes=1)
        assert await sweep_once(client.app) == 0
        await worker.drain()
    assert notifier.failures == [] and len(notifier.notices) == 1


async def test_payout_rows_left_recorded_by_older_versions_are_settled_when_the_database_opens(client, clock):
    await payout_rows(3, clock.now)
    assert await settle_payout_rows(Operation.get_motor_collection().database) == 3
    assert {row.status for row in await Operation.find({"provider": "konsol"}).to_list()} == {OperationStatus.PAYOUT}
    assert await settle_payout_rows(Operation.get_motor_collection().database) == 0


async def test_a_settled_payout_leaves_a_finished_row_that_no_sweep_picks_up(client, worker, konsol, payouts, clock,
                                                                             notifier):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [made] = konsol.created()
    assert await konsol.settle(made["id"]) == [200]
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.PAID

    clock.now += STRANDED_AFTER + timedelta(minutes=1)
    assert await sweep_once(client.app) == 0
    [row] = await Operation.find({"provider": "konsol"}).to_list()
    assert row.status is OperationStatus.PAYOUT
    assert notifier.failures == []


async def test_a_job_that_failed_for_good_alerts_once_however_many_sweeps_follow(client, worker, queues, clock,
                                                                                 notifier):
    invoice = await new_invoice(client, user_id=4343)

    def database_gone(step: str) -> None:
        if step == "after_ledger_insert":
            raise RuntimeError("MongoDB went away")

    worker.runtime.checkpoint = database_gone
    assert await post_notification(client, notification(invoice["label"], operation_id="doomed-1")) == 200
    await worker.drain()
    assert len(notifier.failures) == 1, "the admins are told once"

    for _ in range(5):
        clock.now += timedelta(minutes=1)
        assert await sweep_once(client.app) == 0, "its job exists: failed, waiting for the admins"
        await worker.drain()
    assert len(notifier.failures) == 1
