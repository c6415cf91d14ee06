"""`ymds demo` paid with Payme as a person would: the page's Payme button, the emulator's checkout page
(which runs Check → Create → Perform against /notify/payme), back to our page; then `ymds simulate payme`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.demo_process import YMDS, running_demo
from tests.e2e.test_demo import DEADLINE_SECONDS, wait_for_active
from tests.webhook_server.test_payme_methods import PaymeForm
from webhook_server.demo import DEMO_USER_ID

ADMIN = {"Authorization": "Bearer owner-admin-token"}
PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900, UZS = 3500000 }
"""


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
    (tmp_path / "plans.toml").write_text(PLANS)
    async with running_demo(tmp_path, PLANS_FILE=str(tmp_path / "plans.toml")) as running:
        yield running.base, running.link, running.env


async def test_demo_invoice_paid_through_the_payme_emulator_activates(demo):
    base, link, env = demo
    async with aiohttp.ClientSession() as session:
        async with session.get(link) as page:
            reader = PaymeForm()
            reader.feed(await page.text())
        assert reader.method == "get" and reader.action.startswith(f"{base}/emulator/payme/checkout/")
        async with session.get(reader.action + "?") as checkout:  # a GET form with no fields adds '?'
            assert checkout.status == 200 and "35000.00 UZS" in await checkout.text()
        async with session.post(reader.action) as paid:
            assert paid.status == 200 and str(paid.url) == link + "&returned=1", "the payer comes back to our page"
        subscription = await wait_for_active(session, base, str(DEMO_USER_ID))
        assert subscription["plan"] == "month"

        async with session.post(f"{base}/api/invoices", json={"user_id": 5, "plan": "month"}, headers=ADMIN) as made:
            label = (await made.json())["label"]

    simulate = await asyncio.create_subprocess_exec(
        str(YMDS), "simulate", "payme", "sandbox", "--invoice", label, "--url", base, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(simulate.communicate(), DEADLINE_SECONDS)
    assert simulate.returncode == 0, err.decode()[-3000:]
    assert "HTTP 200" in out.decode() and "FAILED" not in err.decode()
