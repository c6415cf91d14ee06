"""Issue 18's Done when, in a real `ymds demo --clock-speed 86400` process with the bot long-polling the fake Bot
API: a plan with a private chat is paid through the printed link, the user gets a one-time invite link and joins
through it, the week and GRACE_DAYS pass on the demo's clock, the scheduler's sweep removes them from the chat
(banned then unbanned), and they are told why with /subscribe."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.e2e.demo_process import running_demo
from tests.e2e.test_demo import FormReader
from tests.e2e.test_payouts_demo import ADMIN, BOT_TOKEN, bot_says, chat
from tests.e2e.test_renewals_demo import FAST
from webhook_server.demo import DEMO_USER_ID

__all__ = ["chat"]  # the fake Bot API fixture

CHAT = -1001234567890
PLANS = f"""
[plans.week]
title = "1 week"
period_days = 7
prices = {{ RUB = 9900 }}
chats = [{CHAT}]
"""


async def test_a_paid_user_joins_the_plans_chat_and_is_removed_after_it_ends(chat, tmp_path: Path) -> None:
    fake, telegram_url = chat
    fake.groups.add_chat(CHAT, "Members only")
    plans = tmp_path / "chat-plans.toml"
    plans.write_text(PLANS)
    env = {"PLANS_FILE": str(plans), "BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": telegram_url,
           "ADMIN_IDS": str(ADMIN), "ADMIN_CHAT_ID": str(ADMIN), "GRACE_DAYS": "1",
           "SCHEDULER_INTERVAL_SECONDS": "0.2"}
    async with running_demo(tmp_path, *FAST, **env) as demo, aiohttp.ClientSession() as session:
        async with session.get(demo.link) as page:
            form = FormReader("pay-yoomoney")
            form.feed(await page.text())
        async with session.post(form.action.rsplit("/", 1)[0] + "/pay", data=form.fields) as paid:
            assert paid.status == 200

        invited = await bot_says(fake, DEMO_USER_ID, "https://t.me/+")
        [link] = re.findall(r"https://t\.me/\+\S+", invited["text"])
        assert fake.groups.join(CHAT, DEMO_USER_ID, link), "the one-time link admits the payer"
        assert not fake.groups.join(CHAT, DEMO_USER_ID + 1, link), "and nobody after them"

        told = await bot_says(fake, DEMO_USER_ID, "removed")
        assert "/subscribe" in told["text"]
        assert fake.groups.status(CHAT, DEMO_USER_ID) == "left", "banned, then unbanned so that they can rejoin"
        assert [p["only_if_banned"] for p in fake.sent("unbanChatMember")] == ["true"]
