"""`ymds reconcile stars`: the ledger against getStarTransactions of the fake Bot API."""

from __future__ import annotations

from datetime import timedelta

import pytest

import ymds
from billing.reconcile_stars import reconcile, run
from bot.stars_api import BotStarsApi
from bot.stars_reconcile import bot_api
from db import Operation, OperationStatus
from settings import ConfigError
from tests.bot.conftest import USER_ID
from tests.bot.test_stars import drain, plans, settings, subscribed, webhook  # noqa: F401 - shared fixtures
from tests.conftest import AUTH


async def report_of(bot, clock, *, days: int = 1):
    return await reconcile(BotStarsApi(bot), clock.now - timedelta(days=days), clock.now + timedelta(days=days))


async def test_charges_applied_and_refunds_reversed_agree(webhook, fake, drain, bot, clock):
    label, charge = await subscribed(fake, drain)
    await fake.stars.renew(fake, fake.stars.subscriptions[charge])
    await drain()
    assert (await webhook.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 202
    await drain()

    report = await report_of(bot, clock)
    assert report.mismatches == [] and (report.payments, report.refunds, report.operations) == (2, 1, 2)
    assert report.lines()[0].endswith("2 payments, 1 refunds, 2 ledger operations, 0 mismatches")


async def test_a_charge_the_bot_never_recorded_is_reported(webhook, fake, drain, bot, clock):
    label, _ = await subscribed(fake, drain)
    lost = fake.stars.charge(fake, USER_ID, fake.stars.find(payload=label))  # polling lost the update
    lost_id = lost["message"]["successful_payment"]["telegram_payment_charge_id"]

    [mismatch] = (await report_of(bot, clock)).mismatches
    assert mismatch.charge_id == lost_id and "paid in Telegram, but not in the ledger" in mismatch.problem
    assert mismatch.line().startswith(f"MISMATCH {lost_id}: ⭐ 250 from user {USER_ID} for {label}")


async def test_a_refund_not_yet_reversed_is_reported_until_the_worker_reverses_it(webhook, fake, drain, bot, clock):
    _, charge = await subscribed(fake, drain)
    await BotStarsApi(bot).refund(USER_ID, charge)  # refunded in Telegram; its reversal is queued, not yet run

    problems = [mismatch.problem for mismatch in (await report_of(bot, clock)).mismatches]
    assert problems == ["refunded in Telegram, but the ledger has it applied"]
    await drain()
    assert (await report_of(bot, clock)).mismatches == []


async def test_a_ledger_operation_without_a_transaction_and_a_different_amount_are_reported(
        webhook, fake, drain, bot, clock):
    _, charge = await subscribed(fake, drain)
    await Operation(provider="telegram_stars", operation_id="stxGHOST", label="inv_ghost", amount=250, currency="XTR",
                    status=OperationStatus.APPLIED, recorded_at=clock.now).insert()
    fake.stars.transactions[0]["amount"] = 200

    problems = {mismatch.charge_id: mismatch.problem for mismatch in (await report_of(bot, clock)).mismatches}
    assert problems == {charge: "ledger has 250 XTR, Telegram ⭐ 200",
                        "stxGHOST": "ledger operation (applied) for inv_ghost without a Telegram transaction"}


async def test_a_refund_in_the_period_of_an_earlier_payment_is_checked(webhook, fake, drain, bot, clock):
    _, charge = await subscribed(fake, drain)
    clock.now += timedelta(days=5)
    await BotStarsApi(bot).refund(USER_ID, charge)
    [mismatch] = (await report_of(bot, clock)).mismatches
    assert (mismatch.charge_id, mismatch.problem) == (charge, "refunded in Telegram, but the ledger has it applied")
    await drain()
    assert (await report_of(bot, clock)).mismatches == []


async def test_only_the_period_counts_and_every_page_is_read(webhook, fake, drain, bot, clock):
    fake.stars.transactions.extend({"id": f"w{n}", "amount": 1, "date": int(clock.now.timestamp()),
                                    "receiver": {"type": "fragment"}} for n in range(150))  # withdrawals
    label, _ = await subscribed(fake, drain)
    lost = fake.stars.charge(fake, USER_ID, fake.stars.find(payload=label))
    fake.stars.transactions[-1]["date"] -= 10 * 86400  # paid long before the period asked about
    report = await report_of(bot, clock)
    assert report.payments == 1 and report.mismatches == []
    assert lost["message"]["successful_payment"]["telegram_payment_charge_id"] not in str(report.lines())
    assert len((await report_of(bot, clock, days=11)).mismatches) == 1


def test_the_command_needs_the_real_database_the_bot_token_and_a_period(settings):
    with pytest.raises(ConfigError, match="MONGODB_URI"):
        run(settings, "2026-01-01", "2026-02-01", open_api=bot_api)
    real = settings.model_copy(update={"mongodb_uri": "mongodb://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="BOT_TOKEN"):
        run(real.model_copy(update={"bot_token": None}), "2026-01-01", "2026-02-01", open_api=bot_api)
    with pytest.raises(ConfigError, match="--to must be after --from"):
        run(real, "2026-02-01", "2026-01-01", open_api=bot_api)


def test_ymds_reconcile_takes_stars(monkeypatch, capsys):
    for name in ("MONGODB_URI", "BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env
    assert ymds.main(["reconcile", "stars", "--from", "2026-01-01", "--to", "2026-02-01"]) == 2
    assert "MONGODB_URI" in capsys.readouterr().err
