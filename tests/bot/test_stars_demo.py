"""`ymds demo` with `ymds fake-telegram`, as a person runs them: a Stars subscription bought from the chat page,
then renewed by Telegram, each charge activating 30 more days."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import aiohttp

from tests.bot.conftest import USER_ID
from tests.bot.test_polling import DEADLINE_SECONDS, _messages, demo_with_bot  # noqa: F401 - the processes' fixture

DEMO_TOKEN = {"Authorization": "Bearer demo-admin-token"}


async def _paid_notices(session: aiohttp.ClientSession, telegram: str, count: int) -> list[str]:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            texts = [m.get("text", "") for m in await _messages(session, telegram, USER_ID, 1)]
            notices = [text for text in texts if text.startswith("Payment received: 250")]
            if len(notices) >= count:
                return notices
            await asyncio.sleep(0.05)  # another process's state, bounded by the deadline above


async def _period_end(session: aiohttp.ClientSession, web: str) -> datetime:
    async with session.get(f"{web}/api/users/{USER_ID}/subscription", headers=DEMO_TOKEN) as response:
        body = await response.json()
        assert response.status == 200 and body["status"] == "active", body
        return datetime.fromisoformat(body["current_period_end"])


async def test_a_stars_subscription_is_bought_and_renewed_in_the_demo(demo_with_bot):
    telegram, web = demo_with_bot
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{telegram}/fake/send", data={"user_id": USER_ID, "text": "/subscribe"}) as sent:
            assert sent.status == 200
        [offer] = await _messages(session, telegram, USER_ID, 1)
        link = offer["reply_markup"]["inline_keyboard"][0][1]
        assert link["text"] == "⭐ 250 every 30 days" and link["url"].startswith("https://t.me/$")
        async with session.get(f"{telegram}/", params={"user_id": USER_ID}) as page:
            assert 'action="/fake/stars/pay"' in await page.text(), "the chat page pays the link in place"

        async with session.post(f"{telegram}/fake/stars/pay", data={"user_id": USER_ID, "url": link["url"]}) as paid:
            assert paid.status == 200 and (await paid.json())["ok"]
        await _paid_notices(session, telegram, 1)
        first_end = await _period_end(session, web)

        async with session.get(f"{telegram}/", params={"user_id": USER_ID}) as page:
            assert "Renew now (+30 days)" in await page.text()
        label = offer["reply_markup"]["inline_keyboard"][0][0]["url"].split("/pay/")[1].split("?")[0]
        async with session.post(f"{telegram}/fake/stars/renew", data={"user_id": USER_ID, "payload": label}) as renewed:
            assert renewed.status == 200
        await _paid_notices(session, telegram, 2)
        assert await _period_end(session, web) == first_end + timedelta(days=30)
