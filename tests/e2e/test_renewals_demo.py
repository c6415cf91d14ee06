"""`ymds demo --clock-speed 86400` (a day a second): a week paid by card through YooKassa or CloudPayments
renews by itself, charged by the demo's scheduler and worker against the emulators' saved methods."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, Demo, running_demo
from tests.e2e.test_cloudpayments_demo import widget_config
from tests.e2e.test_demo import FormReader, wait_for_active
from webhook_server.demo import DEMO_USER_ID

ADMIN = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}
FAST = ("--clock-speed", "86400")
WEEK = timedelta(days=7)


async def pay_with_yookassa(session: aiohttp.ClientSession, demo: Demo) -> None:
    async with session.get(demo.link) as page:
        form = FormReader("pay-yookassa")
        form.feed(await page.text())
    async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as pressed:
        checkout = pressed.headers["Location"]
    async with session.post(checkout, data={"outcome": "pay"}) as back:
        assert back.status == 200


async def pay_with_cloudpayments(session: aiohttp.ClientSession, demo: Demo) -> None:
    async with session.get(demo.link) as page:
        form = FormReader("pay-cloudpayments")
        form.feed(await page.text())
    async with session.post(form.action, data=form.fields) as widget_page:
        config = widget_config(await widget_page.text())
    async with session.post(f"{demo.base}/emulator/cloudpayments/widget/pay", data={
            "scheme": config["scheme"], "outcome": "pay", "options": json.dumps(config["options"])}) as paid:
        assert (await paid.json())["success"]


async def renewed_twice(session: aiohttp.ClientSession, base: str, first_end: datetime) -> dict:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(f"{base}/api/users/{DEMO_USER_ID}/subscription", headers=ADMIN) as response:
                body = await response.json()
            if datetime.fromisoformat(body["current_period_end"]) >= first_end + 2 * WEEK:
                return body
            await asyncio.sleep(0.1)  # polling the condition, bounded by the deadline above


async def check_renews(tmp_path: Path, pay, provider: str) -> None:  # type: ignore[no-untyped-def]
    async with running_demo(tmp_path, *FAST) as demo, aiohttp.ClientSession() as session:
        await pay(session, demo)
        first = await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        assert first["auto_renew"] is True and first["payment_provider"] == provider
        later = await renewed_twice(session, demo.base, datetime.fromisoformat(first["current_period_end"]))
        assert later["status"] == "active" and later["auto_renew"] is True
        end = datetime.fromisoformat(later["current_period_end"]) - datetime.fromisoformat(first["current_period_end"])
        assert end % WEEK == timedelta(0), "each renewal added exactly one period"


async def test_a_yookassa_card_renews_by_itself_in_the_fast_demo(tmp_path: Path) -> None:
    await check_renews(tmp_path, pay_with_yookassa, "yookassa")


async def test_a_cloudpayments_card_renews_by_itself_in_the_fast_demo(tmp_path: Path) -> None:
    await check_renews(tmp_path, pay_with_cloudpayments, "cloudpayments")
