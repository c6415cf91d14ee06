"""Long polling against the fake Bot API, in-process and as `ymds demo` + `ymds fake-telegram` run by a person."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bot.conftest import BOT_TOKEN, USER_ID
from tests.helpers import Forms
from tests.webhook_server.test_redis_faults import free_port

ROOT = Path(__file__).resolve().parents[2]
YMDS = Path(sys.executable).with_name("ymds")
DEADLINE_SECONDS = 30
ADMIN_CHAT = -1009


async def test_long_polling_answers_a_user_through_the_fake(dispatcher, bot, fake):
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False))
    try:
        await fake.user_sends(USER_ID, "/subscribe", language_code="uz")
        [answer] = await fake.wait_for(lambda: fake.bot_messages(USER_ID))
    finally:
        await dispatcher.stop_polling()
        await polling
    assert answer["text"].startswith("Tarifni tanlang.")
    assert len(answer["reply_markup"]["inline_keyboard"]) == 2
    assert fake.sent("setMyCommands"), "startup sets the command menus"


async def _start(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(str(YMDS), *args, cwd=cwd, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)


async def _wait_for_line(process: asyncio.subprocess.Process, needle: str) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"the process exited before printing {needle!r}")
            if needle in line:
                return line


@pytest.fixture
async def demo_with_bot(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    if not YMDS.exists():
        pytest.fail(f"{YMDS} missing: install the project with pip install -e .")
    telegram_port, web_port = free_port(), free_port()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PLANS_FILE": str(ROOT / "plans.toml"),
           "BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
           "ADMIN_CHAT_ID": str(ADMIN_CHAT)}
    fake = await _start("fake-telegram", "--port", str(telegram_port), env=env, cwd=tmp_path)
    demo = await _start("demo", "--port", str(web_port), env=env, cwd=tmp_path)
    try:
        await _wait_for_line(fake, "fake Telegram Bot API on")
        await _wait_for_line(demo, "long polling")
        yield f"http://127.0.0.1:{telegram_port}", f"http://127.0.0.1:{web_port}"
    finally:
        for process in (demo, fake):
            process.terminate()
            await asyncio.wait_for(process.wait(), DEADLINE_SECONDS)


async def _messages(session: aiohttp.ClientSession, telegram: str, chat_id: int, count: int) -> list[dict[str, Any]]:
    """The chat's bot messages once there are `count` of them (bounded by the deadline)."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(f"{telegram}/fake/messages", params={"chat_id": chat_id}) as response:
                found = [m for m in (await response.json())["messages"] if m["from"]["is_bot"]]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)  # polling another process's state, bounded by the deadline above


async def test_a_person_subscribes_pays_through_the_emulator_and_is_told(demo_with_bot):
    telegram, _ = demo_with_bot
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{telegram}/") as page:
            assert page.status == 200 and "Fake Telegram" in await page.text()
        async with session.post(f"{telegram}/fake/send", data={"user_id": USER_ID, "text": "/subscribe",
                                                                "language_code": "ru"}) as sent:
            assert sent.status == 200
        [offer] = await _messages(session, telegram, USER_ID, 1)
        link = offer["reply_markup"]["inline_keyboard"][0][0]["url"]
        assert "lang=ru" in link

        async with session.get(link) as page:
            assert page.status == 200
            forms = Forms()
            forms.feed(await page.text())
        form = forms.forms["pay-yoomoney"]
        action, fields = form["action"], form["fields"]
        async with session.post(action, data=fields) as emulator_page:
            assert emulator_page.status == 200
        async with session.post(action.rsplit("/", 1)[0] + "/pay", data=fields) as paid:
            assert paid.status == 200 and "lang=ru" in str(paid.url), "back on our page, still in Russian"

        activation = (await _messages(session, telegram, USER_ID, 2))[-1]
        assert activation["text"].startswith("Оплата получена: 299\xa0₽. Подписка «1 месяц» активна до ")
        [admin] = await _messages(session, telegram, ADMIN_CHAT, 1)
        assert admin["text"].startswith("✅ Invoice paid: ")
