"""Payme and Click racing for one invoice from two threads, each its own HTTP client, many times: exactly one
payment is accepted and the other is refused before any money is taken (issue 16 part 1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription
from settings import Settings
from tests.conftest import make_settings
from tests.helpers import new_invoice
from tests.payme_support import PAYME_CHECKOUT, PAYME_KEY, PAYME_MERCHANT, PRICE_MONTH_UZS, emulator_for
from webhook_server.emulators.click import ClickCaller

ROUNDS = 25
CLICK_SECRET = "race_secret"
CLICK = {"click_service_id": "11111", "click_merchant_id": "22222", "click_secret_key": CLICK_SECRET,
         "click_pay_url": "http://click.test/services/pay"}
MONTH_UZS_SUMS = "35000.00"


@pytest.fixture
def settings() -> Settings:
    return make_settings(payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, payme_checkout_url=PAYME_CHECKOUT,
                         **CLICK)


def in_own_thread(start: threading.Barrier, flow: Callable[[aiohttp.ClientSession], Awaitable[bool]]) -> bool:
    """Run `flow` on a new event loop with its own HTTP client, released together with the other thread."""
    async def run() -> bool:
        async with aiohttp.ClientSession() as session:
            start.wait()
            return await flow(session)

    return asyncio.run(run())


async def test_payme_and_click_racing_for_one_invoice_accept_exactly_one(client: TestClient, worker: Any,
                                                                          clock: Any) -> None:
    notify_click = str(client.make_url("/notify/click"))
    winners: list[str] = []
    for _ in range(ROUNDS):
        label = (await new_invoice(client))["label"]
        start = threading.Barrier(2)

        async def by_payme(session: aiohttp.ClientSession, label: str = label) -> bool:
            _, answers = await emulator_for(client, clock).pay(session, label, PRICE_MONTH_UZS)
            return answers[-1].method == "PerformTransaction" and answers[-1].result is not None

        async def by_click(session: aiohttp.ClientSession, label: str = label) -> bool:
            caller = ClickCaller(session, notify_click, CLICK["click_service_id"], CLICK_SECRET)
            replies = await caller.pay(label, MONTH_UZS_SUMS)
            return len(replies) == 2 and replies[-1].error == 0

        payme_won, click_won = await asyncio.gather(asyncio.to_thread(in_own_thread, start, by_payme),
                                                    asyncio.to_thread(in_own_thread, start, by_click))
        assert payme_won != click_won, f"round for {label}: payme {payme_won}, click {click_won}"
        winners.append("payme" if payme_won else "click")
        invoice = await Invoice.find_one(Invoice.label == label)
        assert invoice is not None and invoice.claimed_by is not None
        assert invoice.claimed_by.startswith(winners[-1] + ":"), "the claim is the winner's, before any worker"

    await worker.drain()
    statuses = [operation.status for operation in await Operation.find_all().to_list()]
    assert statuses == [OperationStatus.APPLIED] * ROUNDS, "the loser was refused before it took any money"
    assert await Invoice.find(Invoice.status == InvoiceStatus.PAID).count() == ROUNDS
    subscription = await Subscription.find_one(Subscription.user_id == 42)
    assert subscription is not None and len(subscription.applied_operations) == ROUNDS
