"""A discounted invoice through Payme's exact amount check (the emulator speaking Payme's JSON-RPC): the
discounted amount is accepted, the full plan price refused."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from billing.invoices import get_invoice
from billing.promo import discounted_invoice
from billing.subscriptions import get_subscription
from db import InvoiceStatus
from tests.conftest import AUTH, FrozenClock
from tests.payme_support import (  # noqa: F401 - fixtures
    PRICE_MONTH_UZS,
    error_code,
    payme,
    settings,
)
from webhook_server.emulators.payme import PaymeEmulator
from webhook_server.keys import PLANS, SETTINGS
from webhook_server.runner import InProcessWorker

WRONG_AMOUNT = -31001  # Payme's "wrong amount" (shared/providers/payme.md)


async def test_payme_takes_exactly_the_discounted_amount(client: TestClient, worker: InProcessWorker,
                                                         clock: FrozenClock, payme: PaymeEmulator) -> None:
    code = {"code": "UZ-HALF", "kind": "percent", "percent_off": 50, "max_uses": 1}
    assert (await client.post("/api/promo-codes", json=code, headers=AUTH)).status == 201
    invoice = await discounted_invoice("uz-half", client.app[PLANS].get("month"), 31, now=clock(),
                                       ttl_seconds=client.app[SETTINGS].invoice_ttl_seconds)
    half = PRICE_MONTH_UZS // 2
    assert invoice.amounts["UZS"] == half

    assert error_code(await payme.check(client.session, invoice.label, PRICE_MONTH_UZS)) == WRONG_AMOUNT
    _, answers = await payme.pay(client.session, invoice.label, half)
    assert all(answer.result for answer in answers), [answer.body for answer in answers]
    await worker.drain()
    assert (await get_invoice(invoice.label)).status is InvoiceStatus.PAID
    assert await get_subscription(31) is not None
