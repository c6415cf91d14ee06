"""`ymds demo` paid by card through YooKassa as a person would: the page's YooKassa button, our redirect to
the emulator's confirmation page, Pay, back to our page; then a refund from the admin API and
`ymds simulate yookassa payment`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, YMDS, running_demo
from tests.e2e.test_demo import FormReader, wait_for_active
from webhook_server.demo import DEMO_USER_ID

ADMIN = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}


async def wait_for_status(session: aiohttp.ClientSession, base: str, label: str, status: str) -> None:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:  # the demo's worker thread applies it; each poll is a real round trip
            async with session.get(f"{base}/api/invoices/{label}", headers=ADMIN) as response:
                if (await response.json())["status"] == status:
                    return


async def test_demo_rub_invoice_paid_by_card_through_yookassa_then_refunded(tmp_path: Path):
    async with running_demo(tmp_path) as demo, aiohttp.ClientSession() as session:
        label = demo.link.split("/pay/", 1)[1].split("?", 1)[0]
        async with session.get(demo.link) as page:
            form = FormReader("pay-yookassa")
            form.feed(await page.text())
        # "pay once": the choice is fixed on the invoice at /choose, which sends the payer on to YooKassa
        assert form.action == f"/pay/{label}/choose" and set(form.fields) >= {"exp", "sig", "provider", "choice"}
        assert (form.fields["provider"], form.fields["choice"]) == ("yookassa", "once")
        async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as pressed:
            assert pressed.status == 303
            checkout = pressed.headers["Location"]
        assert checkout.startswith(f"{demo.base}/emulator/yookassa/checkout/")
        async with session.get(checkout) as confirmation:
            assert confirmation.status == 200 and "99.00 RUB" in await confirmation.text()
        async with session.post(checkout, data={"outcome": "pay"}) as back:
            assert back.status == 200 and str(back.url) == demo.link + "&returned=1", "back on our page"
        subscription = await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        assert subscription["plan"] == "week"

        async with session.post(f"{demo.base}/api/invoices/{label}/refund", headers=ADMIN) as refunded:
            assert refunded.status == 202
        await wait_for_status(session, demo.base, label, "refunded")

        async with session.post(f"{demo.base}/api/invoices", json={"user_id": 5, "plan": "week"},
                                headers=ADMIN) as created:
            other = (await created.json())["label"]
        simulate = await asyncio.create_subprocess_exec(
            str(YMDS), "simulate", "yookassa", "payment", "--invoice", other, "--url", demo.base, env=demo.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(simulate.communicate(), DEADLINE_SECONDS)
        assert simulate.returncode == 0, err.decode()
        assert "HTTP 200" in out.decode()
        await wait_for_status(session, demo.base, other, "paid")
