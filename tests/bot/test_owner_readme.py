"""README "Your own bot": both examples, taken from the README as written, run against a real Redis and a real
RQ worker; the aiogram one through its Dispatcher against the fake Bot API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from db import Subscription
from tests.bot.conftest import USER_ID, last_text, message_update, send
from tests.conftest import REDIS_TEST_URL
from tests.helpers import notification, post_notification
from ymds_client import YmdsClient

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_USER_ID = 123456789
OTHER_USER_ID = 555


def examples() -> list[str]:
    """The python code blocks of the README's "Your own bot" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Your own bot\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def run_example(code: str, *, redis_url: str) -> dict[str, Any]:
    """Execute an example as a module of the owner's (not as __main__), pointed at the test Redis."""
    namespace: dict[str, Any] = {"__name__": "owner_example"}
    exec(compile(code.replace("redis://localhost:6379/0", redis_url), str(README), "exec"), namespace)
    return namespace


@pytest.fixture
async def answering(worker) -> AsyncIterator[None]:
    worker.start()
    yield
    await worker.stop()


@pytest.fixture
async def owner_client(redis_conn) -> AsyncIterator[YmdsClient]:
    ymds = YmdsClient(REDIS_TEST_URL)
    yield ymds
    ymds.close()


def test_the_readme_has_both_examples():
    plain, aiogram_bot = examples()
    assert "YmdsClient(" in plain and "subscribe_links" in plain and "subscription_status" in plain
    assert "ActiveSubscription(client)" in aiogram_bot and "subscription_router(client)" in aiogram_bot


async def test_the_plain_python_example_prints_links_and_the_status(client, answering, capsys):
    plain = examples()[0]
    await asyncio.to_thread(run_example, plain, redis_url=REDIS_TEST_URL)
    lines = capsys.readouterr().out.splitlines()

    assert [line.split(" http")[0] for line in lines[:2]] == [
        "1 month {'RUB': 29900, 'UZS': 3500000}", "12 months {'RUB': 299000, 'UZS': 35000000}"]
    assert all("http://shop.test/pay/inv_" in line and "lang=en" in line for line in lines[:2])
    assert lines[2] == "not active None None"

    month_label = lines[0].split("/pay/")[1].split("?")[0]
    assert await post_notification(client, notification(month_label)) == 200
    await asyncio.to_thread(run_example, plain, redis_url=REDIS_TEST_URL)
    subscription = await Subscription.find_one(Subscription.user_id == EXAMPLE_USER_ID)
    assert subscription is not None
    assert capsys.readouterr().out.splitlines()[2] == f"active month {subscription.current_period_end.isoformat()}"


async def test_the_aiogram_example_gates_its_handler_on_an_active_subscription(
    client, answering, owner_client, dispatcher, bot, fake,
):
    owner_dispatcher = run_example(examples()[1], redis_url=REDIS_TEST_URL)["build_dispatcher"](owner_client)

    async def owner_send(text: str, **options: Any) -> None:
        await owner_dispatcher.feed_raw_update(bot, message_update(text, **options))

    await owner_send("/secret", update_id=1)
    assert last_text(fake) == "This is for subscribers: send /subscribe to choose a plan."

    await owner_send("/subscribe", update_id=2, language_code="ru")
    owners_offer = fake.bot_messages(USER_ID)[-1]
    await send(dispatcher, bot, "/subscribe", update_id=3, language_code="ru")
    our_offer = fake.bot_messages(USER_ID)[-1]
    assert owners_offer["text"] == our_offer["text"] and "Выберите" in owners_offer["text"]
    assert owners_offer["reply_markup"] == our_offer["reply_markup"], \
        "the owner's /subscribe shows the same invoices, links and prices as ours"

    month_url = owners_offer["reply_markup"]["inline_keyboard"][0][0]["url"]
    label = month_url.split("/pay/")[1].split("?")[0]
    assert await post_notification(client, notification(label)) == 200
    await owner_send("/secret", update_id=4)
    subscription = await Subscription.find_one(Subscription.user_id == USER_ID)
    assert subscription is not None
    assert last_text(fake) == f"The secret, for you until {subscription.current_period_end.date().isoformat()}."

    await owner_send("/secret", update_id=5, user_id=OTHER_USER_ID)
    assert last_text(fake, OTHER_USER_ID) == "This is for subscribers: send /subscribe to choose a plan."
