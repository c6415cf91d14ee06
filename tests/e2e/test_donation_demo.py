"""`ymds demo` prints a donation link next to the subscription link; a donation made through it is paid through the
emulated YooMoney wallet as a person would: the page, a suggested amount and a message, the pay page, 'Pay'."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, running_demo
from tests.e2e.test_demo import FormReader
from webhook_server.demo import DEMO_USER_ID

HEADERS = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}


async def wait_for_paid(session: aiohttp.ClientSession, base: str, label: str) -> dict[str, object]:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(f"{base}/api/invoices/{label}", headers=HEADERS) as response:
                if response.status == 200 and (body := await response.json())["status"] == "paid":
                    return body
            await asyncio.sleep(0.05)  # polling the condition, bounded by the deadline above


async def test_the_printed_donation_link_is_paid_through_the_emulator(tmp_path: Path):
    async with running_demo(tmp_path) as demo, aiohttp.ClientSession() as session:
        assert demo.donation_link.startswith(f"{demo.base}/donate?user={DEMO_USER_ID}&")
        async with session.get(demo.donation_link) as page:
            assert page.status == 200
            donate = FormReader("donate")
            donate.feed(await page.text())
        async with session.post(f"{demo.base}{donate.action}", allow_redirects=False, data={
                **donate.fields, "pick": "RUB:30000", "message": "From the demo"}) as chosen:
            assert chosen.status == 303
            pay_link = chosen.headers["Location"]
        label = pay_link.split("/pay/", 1)[1].split("?", 1)[0]
        async with session.get(pay_link) as page:
            form = FormReader("pay-yoomoney")
            form.feed(await page.text())
        assert form.fields["sum"] == "300.00", "the amount fixed on the invoice, not anything the browser sends"
        async with session.post(form.action, data=form.fields) as emulator_page:
            assert emulator_page.status == 200
        async with session.post(form.action.rsplit("/", 1)[0] + "/pay", data=form.fields) as paid:
            assert paid.status == 200

        invoice = await wait_for_paid(session, demo.base, label)
        assert (invoice["kind"], invoice["message"], invoice["paid_amount"]) == ("donation", "From the demo", 30000)
        async with session.get(f"{demo.base}/api/users/{DEMO_USER_ID}/subscription", headers=HEADERS) as response:
            assert response.status == 404, "a donation grants no subscription"
