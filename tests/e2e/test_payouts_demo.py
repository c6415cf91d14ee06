"""`ymds demo` with the bot: a payout claim goes from the chat to paid through the konsol.pro emulator, in a real
process long-polling a fake Bot API; then `ymds simulate konsol` moves a second payout on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, YMDS, running_demo
from tests.konsol_support import CARD
from webhook_server.emulators.telegram import FakeTelegram

BOT_TOKEN = "123456:demo-payout-token"
USER = 777
ADMIN = 1001  # the admin chat is the admin's own chat with the bot, so the fake lets them press its buttons
API = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}


@pytest.fixture
async def chat() -> AsyncIterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram(token=BOT_TOKEN)
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


async def bot_says(fake: FakeTelegram, chat_id: int, text: str) -> dict[str, Any]:
    """The bot's first message in this chat containing `text`, waited for."""
    def found() -> dict[str, Any] | None:
        return next((m for m in fake.bot_messages(chat_id) if text in str(m.get("text"))), None)

    return await fake.wait_for(found, DEADLINE_SECONDS)


def data(message: dict[str, Any], label: str) -> str:
    return next(b["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for b in row
                if b["text"] == label)


async def test_a_payout_claim_goes_from_the_bot_to_paid_through_the_emulator(tmp_path: Path, chat):
    fake, telegram_url = chat
    async with running_demo(tmp_path, BOT_TOKEN=BOT_TOKEN, TELEGRAM_API_URL=telegram_url, ADMIN_IDS=str(ADMIN),
                            ADMIN_CHAT_ID=str(ADMIN)) as demo:
        await fake.user_sends(USER, "/payout")
        await bot_says(fake, USER, "How much should be paid out?")
        await fake.user_sends(USER, "1500")
        methods = await bot_says(fake, USER, "Where should")
        await fake.user_presses(USER, methods["message_id"], data(methods, "💳 To a bank card"))
        await bot_says(fake, USER, "Send the card number")
        await fake.user_sends(USER, CARD)
        confirm = await bot_says(fake, USER, "Please check your claim")
        await fake.user_presses(USER, confirm["message_id"], data(confirm, "✅ Send"))
        await bot_says(fake, USER, "has been sent to the administrators")

        claim = await bot_says(fake, ADMIN, "💸 Payout claim po_")
        label = claim["text"].split()[3]
        await fake.user_presses(ADMIN, claim["message_id"], data(claim, "✅ Accept"))
        paid = await bot_says(fake, USER, f"💸 Payout {label}: 1,500\xa0RUB has been sent to •••• 6412.")
        assert paid and await bot_says(fake, ADMIN, f"✅ Payout paid: {label}")
        assert fake.sent("deleteMessage", chat_id=USER), "the card number left the chat"

        async with aiohttp.ClientSession() as session:
            async with session.get(f"{demo.base}/api/payouts/{label}", headers=API) as response:
                body = await response.json()
            assert (body["status"], body["destination"], body["konsol_id"] is not None) == ("paid", "•••• 6412", True)
            async with session.get(f"{demo.base}/api/payouts/balance", headers=API) as response:
                assert (await response.json())["total"]["RUB"] == 100_000_000 - 150000

            async with session.post(f"{demo.base}/api/payouts", headers=API) as response:
                assert response.status == 405

        simulate = await asyncio.create_subprocess_exec(
            str(YMDS), "simulate", "konsol", "completed", "--invoice", label, "--url", demo.base, env=demo.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(simulate.communicate(), DEADLINE_SECONDS)
        assert simulate.returncode == 0, err.decode()[-2000:]
        assert "HTTP 200" in out.decode(), "a repeated outcome is a duplicate, acknowledged"
