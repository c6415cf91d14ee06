"""`ymds reconcile payme`: our ledger against the Payme transactions we would list in GetStatement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import ymds
from billing import reconcile_payme, reconciliation
from billing.providers.payme.protocol import to_ms
from billing.reconcile_payme import reconcile
from billing.reconciliation import parse_moment
from db import Operation, OperationStatus, init_db
from db.payme import PaymeState, PaymeTransaction
from settings import ConfigError
from tests.conftest import make_settings
from tests.helpers import new_invoice
from tests.payme_support import PRICE_MONTH_UZS, payme, settings  # noqa: F401 - fixtures
from webhook_server.emulators.payme import new_payme_id


def window(clock: Any) -> tuple[datetime, datetime]:
    return clock.now - timedelta(hours=1), clock.now + timedelta(hours=1)


async def test_a_clean_period_has_no_mismatch(client, worker, clock, payme):
    paid, waiting_cancelled, refunded = [await new_invoice(client) for _ in range(3)]
    await payme.pay(client.session, paid["label"], PRICE_MONTH_UZS)
    cancelled_id = new_payme_id()
    await payme.create(client.session, cancelled_id, waiting_cancelled["label"], PRICE_MONTH_UZS)
    await payme.by_id(client.session, "CancelTransaction", cancelled_id, reason=3)
    refund_id, _ = await payme.pay(client.session, refunded["label"], PRICE_MONTH_UZS)
    await worker.drain()
    await payme.by_id(client.session, "CancelTransaction", refund_id, reason=5)
    await worker.drain()

    report = await reconcile(*window(clock), clock.now)
    assert (report.transactions, report.operations, report.mismatches) == (3, 2, [])
    assert report.lines()[0].endswith("3 transactions, 2 ledger operations, 0 mismatches")


async def test_work_the_worker_has_not_done_yet_is_reported(client, worker, clock, payme):
    performed, refunded = await new_invoice(client), await new_invoice(client)
    performed_id, _ = await payme.pay(client.session, performed["label"], PRICE_MONTH_UZS)
    refund_id, _ = await payme.pay(client.session, refunded["label"], PRICE_MONTH_UZS)
    await payme.by_id(client.session, "CancelTransaction", refund_id, reason=5)

    report = await reconcile(*window(clock), clock.now)
    problems = {m.payme_id: m.problem for m in report.mismatches}
    assert problems == {performed_id: "performed at Payme, not yet applied by the worker",
                        refund_id: "refunded at Payme, but not reversed in the ledger (recorded)"}
    await worker.drain()
    assert (await reconcile(*window(clock), clock.now)).mismatches == []


async def test_ledger_and_payme_disagreements_are_reported(client, worker, clock, payme):
    changed, stale = await new_invoice(client), await new_invoice(client)
    changed_id, _ = await payme.pay(client.session, changed["label"], PRICE_MONTH_UZS)
    await worker.drain()
    await Operation.get_motor_collection().update_one({"operation_id": changed_id}, {"$set": {"amount": 1}})
    stale_id = new_payme_id()
    await payme.create(client.session, stale_id, stale["label"], PRICE_MONTH_UZS)
    await Operation(provider="payme", operation_id="orphan", label="inv_x", amount=5, currency="UZS",
                    status=OperationStatus.APPLIED, recorded_at=clock.now).insert()
    await Operation(provider="payme", operation_id=stale_id, label=stale["label"], amount=PRICE_MONTH_UZS,
                    currency="UZS", recorded_at=clock.now).insert()
    clock.now += timedelta(hours=12, seconds=1)

    report = await reconcile(clock.now - timedelta(hours=13), clock.now, clock.now)
    lines = report.lines()[1:]
    assert any(changed_id in line and "ledger has 1 UZS" in line for line in lines)
    assert any("orphan" in line and "without a Payme transaction" in line for line in lines)
    assert any(stale_id in line and "perform interrupted" in line for line in lines)
    assert any(stale_id in line and "more than 12 hours" in line for line in lines)
    assert len(lines) == 4


async def test_a_cancelled_transaction_whose_payment_stayed_applied_is_reported(client, worker, clock, payme):
    invoice = await new_invoice(client)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    await PaymeTransaction.get_motor_collection().update_one({"payme_id": payme_id}, {"$set": {"state": -1}})
    [mismatch] = (await reconcile(*window(clock), clock.now)).mismatches
    assert (mismatch.state, mismatch.problem) == (-1, "cancelled at Payme, but the ledger holds its payment (applied)")


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
    ("2025-01-31T10:00:00+05:00", datetime(2025, 1, 31, 5, tzinfo=UTC)),
    ("1735787045678", datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
])
def test_period_bounds_are_dates_datetimes_or_epoch_milliseconds(text, expected):
    assert parse_moment(text, "--from") == expected


def test_bad_bounds_and_an_in_memory_database_are_configuration_errors():
    with pytest.raises(ConfigError, match="--from"):
        parse_moment("last tuesday", "--from")
    with pytest.raises(ConfigError, match="--to"):
        reconcile_payme.run(make_settings(mongodb_uri="mongodb://db.invalid"), "2025-02-01", "2025-01-01")
    with pytest.raises(ConfigError, match="MONGODB_URI"):
        reconcile_payme.run(make_settings(), "2025-01-01", "2025-02-01")


def test_the_command_prints_each_mismatch_and_exits_1(monkeypatch, tmp_path, capsys):
    start = datetime(2025, 1, 1, tzinfo=UTC)

    async def seeded_db(uri: str, name: str) -> Any:
        client = await init_db("memory://", name)
        await PaymeTransaction(payme_id="a" * 24, payme_time=to_ms(start) + 5, amount=PRICE_MONTH_UZS, label="inv_1",
                               account={"order_id": "inv_1"}, state=PaymeState.PERFORMED, create_time=1,
                               perform_time=2, created_at=start).insert()
        return client

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.invalid:27017")
    monkeypatch.setattr(reconciliation, "init_db", seeded_db)
    assert ymds.main(["reconcile", "payme", "--from", "2025-01-01", "--to", "2025-01-02"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("1 transactions, 0 ledger operations, 1 mismatches")
    assert out[1] == (f"MISMATCH {'a' * 24} invoice inv_1 (state 2): performed at Payme, but the ledger has no "
                      "operation")
