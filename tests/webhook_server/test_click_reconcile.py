"""Click reconciliation through the real routes, the Click emulator's Merchant API over HTTP and a real RQ worker:
every Complete lost, the sweep asks Click by merchant_trans_id, the worker activates, the late Complete is a repeat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing.errors import ProviderUnavailable
from billing.providers.click.config import click_from_settings
from billing.sweep import reconcilers, sweep_once
from db import Invoice, InvoiceStatus, OperationStatus, Subscription
from db.click import ClickAttempt, ClickAttemptState
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.helpers import notification, operations, post_notification
from tests.webhook_server.test_notify_click import CLICK, MONTH_UZS, SECRET, Crash, fail_at, uzs_invoice
from webhook_server.emulators.click import (
    CLICK_FAILURE,
    MERCHANT_API,
    PREPARE,
    Attempt,
    ClickCaller,
    ClickEmulator,
    ClickState,
)
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import HTTP, LEDGER, PROVIDERS, SETTINGS

WINDOW = timedelta(hours=6)


@pytest.fixture
async def click_emulator(clock) -> AsyncIterator[tuple[ClickEmulator, str]]:
    emulator = ClickEmulator(service_id="11111", merchant_id="22222", secret=SECRET, notify_base="",
                             merchant_user_id="33333", state=ClickState(clock=clock))
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def settings(yoomoney_emulator, click_emulator):
    return make_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
                         **{**CLICK, "click_api_url": click_emulator[1] + MERCHANT_API})


@pytest.fixture
def click(client: TestClient, click_emulator) -> ClickCaller:
    emulator, _ = click_emulator
    emulator.notify_base = str(client.make_url("/notify/click"))
    # The app's Click as click_from_settings builds it (with the Merchant API); webhook_server/providers.py is
    # asked to build it the same way, which makes this line a no-op.
    client.app[PROVIDERS].providers["click"] = click_from_settings(client.app[SETTINGS],
                                                                   AiohttpTransport(client.app[HTTP]))
    return emulator.caller(client.session)


async def sweep(client: TestClient, now):
    click = [reconciler for reconciler in reconcilers(client.app[PROVIDERS]) if reconciler.name == "click"]
    return await sweep_once(click, client.app[LEDGER], start=now - WINDOW, end=now, now=now)


async def subscription_end(user_id: int):
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    return None if subscription is None else (subscription.status.value, subscription.current_period_end)


async def test_every_complete_lost_then_the_sweep_activates_and_the_late_complete_is_a_repeat(
        client, worker, click, click_emulator, clock, notifier):
    emulator, _ = click_emulator
    emulator.state.drop = {"complete"}
    label = await uzs_invoice(client, user_id=21)
    prepared, completed = await click.pay(label, MONTH_UZS)
    assert prepared.error == 0 and completed.dropped and emulator.state.payments[0].status == 2, "debited, unseen"
    await worker.drain()
    assert await operations() == [] and await subscription_end(21) is None

    clock.now += timedelta(minutes=10)
    [report] = await sweep(client, clock.now)
    assert (report.provider, report.found, report.recorded) == ("click", 1, 1)
    await worker.drain()
    assert await subscription_end(21) == ("active", clock.now + timedelta(days=30))
    [operation] = await operations()
    assert (operation.operation_id, operation.status) == (f"{prepared.body['click_trans_id']}:{label}",
                                                          OperationStatus.APPLIED)

    [late] = await click.deliver_late()
    assert (late.error, late.body["merchant_confirm_id"]) == (-4, prepared.body["merchant_prepare_id"])
    await worker.drain()
    assert [op.status for op in await operations()] == [OperationStatus.APPLIED] and len(notifier.notices) == 1
    assert await subscription_end(21) == ("active", clock.now + timedelta(days=30)), "applied once"
    [again] = await sweep(client, clock.now)
    assert (again.found, again.recorded) == (0, 0), "nothing left to ask about"


async def test_a_payment_click_failed_or_never_made_is_not_recorded(client, worker, click, click_emulator, clock):
    emulator, _ = click_emulator
    emulator.state.drop = {"complete"}
    failed, never = await uzs_invoice(client, user_id=22), await uzs_invoice(client, user_id=23)
    await click.pay(failed, MONTH_UZS, error=CLICK_FAILURE)
    assert (await click.send(PREPARE, click.fields(PREPARE, Attempt(never, MONTH_UZS)))).error == 0
    [report] = await sweep(client, clock.now + timedelta(minutes=1))
    assert (report.asked, report.found, report.recorded) == (2, 0, 0)
    assert any(f"status {CLICK_FAILURE}" in line for line in report.lines)
    assert any("no payment" in line for line in report.lines)
    await worker.drain()
    assert await operations() == []
    assert {a.state for a in await ClickAttempt.find_all().to_list()} == {ClickAttemptState.PREPARED}


async def test_an_attempt_whose_complete_crashed_midway_is_finished_without_asking(client, worker, click, clock):
    label = await uzs_invoice(client, user_id=24)
    provider = client.app[PROVIDERS].get("click")
    provider.checkpoint = fail_at("after_confirming", Crash("process died"))
    replies = await click.pay(label, MONTH_UZS)
    assert replies[1].status == 500, "Click got no answer (and, here, never repeats it)"
    provider.checkpoint = lambda reached: None
    clock.now += timedelta(minutes=1)
    [report] = await sweep(client, clock.now)
    assert (report.asked, report.found, report.recorded) == (0, 1, 1)
    await worker.drain()
    assert (await subscription_end(24))[0] == "active"


async def test_a_payment_found_after_its_hold_lapsed_and_another_provider_paid_is_extra(
        client, worker, click, click_emulator, clock):
    emulator, _ = click_emulator
    emulator.state.drop = {"complete"}
    label = await uzs_invoice(client, user_id=25)
    await click.pay(label, MONTH_UZS)
    clock.now += timedelta(hours=1)
    assert await post_notification(client, notification(label)) == 200, "YooMoney pays it after the hold lapsed"
    [report] = await sweep(client, clock.now)
    [payment] = emulator.state.payments
    assert report.recorded == 1 and report.lines == [f"{payment.click_trans_id}:{label} (payment "
                                                     f"{payment.payment_id}): extra"]
    await worker.drain()
    assert sorted((op.provider, op.status.value) for op in await operations()) == [
        ("click", "extra"), ("yoomoney", "applied")], "Click's debit listed for a refund, never applied"
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID


async def test_a_paid_payment_no_open_attempt_can_be_told_to_be_is_left_for_a_check_by_hand(
        client, worker, click, click_emulator, clock):
    """status_by_mti names one payment per order and day: when it names one we already recorded, the other
    (lapsed) attempt of that order cannot be told paid or not."""
    emulator, _ = click_emulator
    label = await uzs_invoice(client, user_id=26)
    emulator.state.drop = {"complete"}
    await click.pay(label, MONTH_UZS)
    clock.now += timedelta(hours=1)
    emulator.state.drop = set()
    assert [reply.error for reply in await click.pay(label, MONTH_UZS)] == [0, 0]
    [report] = await sweep(client, clock.now + timedelta(minutes=1))
    assert (report.found, report.recorded) == (0, 0)
    assert [line for line in report.lines if "check it by hand" in line] != []
    await worker.drain()
    assert [op.status.value for op in await operations()] == ["applied"]


async def test_wrong_merchant_api_credentials_skip_click_and_say_why(client, click, click_emulator, clock, caplog):
    emulator, _ = click_emulator
    emulator.merchant_user_id = "44444"
    await click.send(PREPARE, click.fields(PREPARE, Attempt(await uzs_invoice(client), MONTH_UZS)))
    clock.now += timedelta(minutes=1)
    provider = client.app[PROVIDERS].get("click")
    with pytest.raises(ProviderUnavailable, match="HTTP 401.*CLICK_MERCHANT_USER_ID"):
        await provider.reconcile(clock.now - WINDOW, clock.now, ledger=client.app[LEDGER], now=clock.now)
    assert await sweep(client, clock.now) == [] and "click reconciliation skipped" in caplog.text
    assert SECRET not in caplog.text


async def test_click_without_merchant_api_credentials_is_not_offered(client, clock):
    settings = client.app[SETTINGS].model_copy(update={"click_merchant_user_id": None})
    provider = click_from_settings(settings, AiohttpTransport(client.app[HTTP]))
    assert provider.reconcilable is False and reconcilers([provider]) == []
    with pytest.raises(ProviderUnavailable):
        await provider.reconcile(clock.now - WINDOW, clock.now, ledger=client.app[LEDGER], now=clock.now)
