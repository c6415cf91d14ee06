"""`ymds demo --clock-speed 86400` (a day a second): a week paid by card through YooKassa, CloudPayments or
Payme (a card bound on the payment page) with "pay and renew automatically" chosen renews by itself, charged by
the demo's scheduler and worker against the emulators' saved methods."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urljoin

import aiohttp

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, Demo, running_demo
from tests.e2e.test_cloudpayments_demo import widget_config
from tests.e2e.test_demo import FormReader, wait_for_active
from webhook_server.demo import DEMO_USER_ID

ADMIN = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}
FAST = ("--clock-speed", "86400")
WEEK = timedelta(days=7)
WEEK_PLANS = """
[plans.week]
title = "1 week"
period_days = 7
prices = { RUB = 9900, UZS = 1000000 }
"""
PAYME_DEMO_MERCHANT = "5e730e8e0b852a417aa49ceb"  # webhook_server/emulators/payme.py demo_values


async def pay_with_yookassa(session: aiohttp.ClientSession, demo: Demo) -> None:
    async with session.get(demo.link) as page:
        form = FormReader("renew-yookassa")  # "pay and renew automatically": the consent renewals need
        form.feed(await page.text())
    async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as pressed:
        checkout = pressed.headers["Location"]
    async with session.post(checkout, data={"outcome": "pay"}) as back:
        assert back.status == 200


async def pay_with_cloudpayments(session: aiohttp.ClientSession, demo: Demo) -> None:
    async with session.get(demo.link) as page:
        form = FormReader("renew-cloudpayments")
        form.feed(await page.text())
    async with session.post(urljoin(demo.link, form.action), data=form.fields) as widget_page:
        config = widget_config(await widget_page.text())
    async with session.post(f"{demo.base}/emulator/cloudpayments/widget/pay", data={
            "scheme": config["scheme"], "outcome": "pay", "options": json.dumps(config["options"])}) as paid:
        assert (await paid.json())["success"]


async def bind_and_pay_with_payme(session: aiohttp.ClientSession, demo: Demo) -> None:
    """What the page's card form does: the card goes to (emulated) Payme only, then our server gets the token."""
    api, merchant = f"{demo.base}/emulator/payme/api", {"X-Auth": PAYME_DEMO_MERCHANT}

    async def rpc(method: str, params: dict) -> dict:
        async with session.post(api, json={"id": 1, "method": method, "params": params}, headers=merchant) as answer:
            return (await answer.json())["result"]

    token = (await rpc("cards.create", {"card": {"number": "8600069195406311", "expire": "0399"},
                                        "save": True}))["card"]["token"]
    await rpc("cards.get_verify_code", {"token": token})
    await rpc("cards.verify", {"token": token, "code": "666666"})
    async with session.get(demo.link) as page:
        form = FormReader("renew-payme")  # "pay and renew automatically" first: the card form needs the consent
        form.feed(await page.text())
    async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as chosen:
        assert chosen.status == 303
    path, _, query = demo.link.partition("?")
    signed = dict(parse_qsl(query))  # the page's form carries the signed link's fields
    async with session.post(f"{path}/payme/card", data={**signed, "token": token}) as paid:
        assert paid.status == 200


async def renewed_twice(session: aiohttp.ClientSession, base: str, first_end: datetime) -> dict:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(f"{base}/api/users/{DEMO_USER_ID}/subscription", headers=ADMIN) as response:
                body = await response.json()
            if datetime.fromisoformat(body["current_period_end"]) >= first_end + 2 * WEEK:
                return body
            await asyncio.sleep(0.1)  # polling the condition, bounded by the deadline above


async def check_renews(tmp_path: Path, pay, provider: str) -> None:  # type: ignore[no-untyped-def]
    plans = tmp_path / "week-plans.toml"
    plans.write_text(WEEK_PLANS)
    async with running_demo(tmp_path, *FAST, PLANS_FILE=str(plans)) as demo, aiohttp.ClientSession() as session:
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


async def test_a_payme_card_bound_on_the_page_renews_by_itself_in_the_fast_demo(tmp_path: Path) -> None:
    await check_renews(tmp_path, bind_and_pay_with_payme, "payme")
