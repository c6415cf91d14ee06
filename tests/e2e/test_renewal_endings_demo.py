"""`ymds demo --clock-speed 86400` (a day a second) with the bot long-polling a fake Bot API: the two ways an
automatic renewal ends that issue 17 asks the demo to show, each in a real demo process.

- A refused renewal ends cleanly: a week paid with YooKassa under "pay and renew automatically", then the
  emulator's shop turns autopayments off (its control route); the notice before the charge comes first, then
  the renewal charge is refused with 403, the renewal stops after that one attempt, the user is told once,
  the admin chat once, and the subscription expires with its period.
- A CloudPayments subscription (CLOUDPAYMENTS_RECURRENT_PLANS) is cancelled from the bot: /cancel offers to
  turn it off, the press reaches CloudPayments' /subscriptions/cancel through the demo's worker, and the bot
  says CloudPayments cancelled it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.demo_process import DEADLINE_SECONDS, running_demo
from tests.e2e.test_demo import wait_for_active
from tests.e2e.test_payouts_demo import ADMIN, BOT_TOKEN, bot_says, chat, data
from tests.e2e.test_renewals_demo import ADMIN as API, FAST, WEEK_PLANS, pay_with_cloudpayments, pay_with_yookassa
from webhook_server.demo import DEMO_USER_ID
from webhook_server.emulators import cloudpayments
from webhook_server.emulators.cloudpayments_wire import basic_auth
from webhook_server.emulators.telegram import FakeTelegram

__all__ = ["chat"]  # the fake Bot API fixture


def with_bot(telegram_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    plans = tmp_path / "week-plans.toml"
    plans.write_text(WEEK_PLANS)
    return {"PLANS_FILE": str(plans), "BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": telegram_url,
            "ADMIN_IDS": str(ADMIN), "ADMIN_CHAT_ID": str(ADMIN), **extra}


async def subscription_when(session: aiohttp.ClientSession, base: str,
                            condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The admin API's view of the demo user's subscription, once `condition` holds (within the deadline)."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(f"{base}/api/users/{DEMO_USER_ID}/subscription", headers=API) as response:
                body: dict[str, Any] = await response.json()
            if response.status == 200 and condition(body):
                return body
            await asyncio.sleep(0.1)  # polling the condition, bounded by the deadline above


def texts(fake: FakeTelegram, chat_id: int, part: str) -> list[str]:
    return [str(m["text"]) for m in fake.bot_messages(chat_id) if part in str(m.get("text"))]


async def cloudpayments_find(session: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    """CloudPayments' own record of the demo user's subscriptions (/subscriptions/find, as the API offers it)."""
    values = cloudpayments.demo_values("", "")
    auth = basic_auth(values["cloudpayments_public_id"], values["cloudpayments_api_secret"])
    async with session.post(f"{base}/emulator/cloudpayments/subscriptions/find", json={"AccountId": str(DEMO_USER_ID)},
                            headers={"Authorization": auth}) as response:
        body = await response.json()
    assert body["Success"], body
    return list(body["Model"])


async def test_a_refused_yookassa_renewal_ends_cleanly_in_the_fast_demo(tmp_path: Path, chat) -> None:
    fake, telegram_url = chat
    async with running_demo(tmp_path, *FAST, **with_bot(telegram_url, tmp_path)) as demo, \
            aiohttp.ClientSession() as session:
        await pay_with_yookassa(session, demo)
        first = await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        assert first["auto_renew"] is True and first["payment_provider"] == "yookassa"
        async with session.post(f"{demo.base}/emulator/yookassa/control/shop", json={"autopayments": False}) as shop:
            assert shop.status == 200 and (await shop.json())["autopayments"] is False

        stopped = await bot_says(fake, DEMO_USER_ID, "has stopped")
        assert "Autopayments are not available" in stopped["text"], stopped["text"]
        said = [str(m["text"]) for m in fake.bot_messages(DEMO_USER_ID)]
        [notice] = [i for i, text in enumerate(said) if "renews automatically" in text]  # RENEWAL_NOTICE_DAYS ahead
        assert "99" in said[notice] and notice < said.index(stopped["text"]), "the notice came before the charge"
        await bot_says(fake, ADMIN, "Renewal failed for good")
        ended = await subscription_when(session, demo.base, lambda body: body["status"] == "expired")
        assert ended["current_period_end"] == first["current_period_end"], "nothing was charged"
        assert ended["auto_renew"] is False and ended["renewal"]["status"] == "failed"
        assert ended["renewal"]["attempts"] == 1, "a refusal no retry fixes is not retried"
        assert len(texts(fake, DEMO_USER_ID, "has stopped")) == 1
        assert len(texts(fake, ADMIN, "Renewal failed for good")) == 1


async def test_a_cloudpayments_subscription_is_cancelled_from_the_bot_in_the_fast_demo(tmp_path: Path, chat) -> None:
    fake, telegram_url = chat
    env = with_bot(telegram_url, tmp_path, CLOUDPAYMENTS_RECURRENT_PLANS="week")
    async with running_demo(tmp_path, *FAST, **env) as demo, aiohttp.ClientSession() as session:
        await pay_with_cloudpayments(session, demo)
        await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        bound = await subscription_when(session, demo.base, lambda body: body["auto_renew"] is True)
        assert bound["payment_provider"] == "cloudpayments"
        [created] = await cloudpayments_find(session, demo.base)
        assert created["Status"] == "Active"

        await fake.user_sends(DEMO_USER_ID, "/cancel")
        question = await bot_says(fake, DEMO_USER_ID, "Turn off automatic renewal of")
        await fake.user_presses(DEMO_USER_ID, question["message_id"], data(question, "Turn it off"))
        await bot_says(fake, DEMO_USER_ID, "cancelling your subscription at CloudPayments")
        told = await bot_says(fake, DEMO_USER_ID, "cancelled at CloudPayments")
        assert "will not be charged again" in told["text"]
        [cancelled] = await cloudpayments_find(session, demo.base)
        assert (cancelled["Id"], cancelled["Status"]) == (created["Id"], "Cancelled")
        off = await subscription_when(session, demo.base, lambda body: body["auto_renew"] is False)
        assert datetime.fromisoformat(off["current_period_end"]) >= datetime.fromisoformat(
            bound["current_period_end"]), "the paid period runs to its end"
