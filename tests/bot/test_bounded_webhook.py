"""Issue 24, part 1, for POST /telegram/webhook over real HTTP: the update is read with the bounded JSON reader
(nesting past the limit, numbers past the bounds: 400, never a 500 that Telegram would deliver again), and a
secret-token header of invalid UTF-8 is a wrong token (401)."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from billing.bounded_json import MAX_DEPTH
from db.users import BotUser
from tests.bot.conftest import USER_ID, last_text, message_update
from tests.bot.test_webhook import SECRET_HEADER, webhook  # noqa: F401 - the fixture
from tests.raw_http import raw_request


def update_with(field: str, literal: str) -> bytes:
    """A /start update whose top-level `field` holds `literal` as raw JSON text."""
    return json.dumps({**message_update("/start"), field: "__X__"}).replace('"__X__"', literal).encode()


async def post(webhook: TestClient, settings, data: bytes) -> int:
    response = await webhook.post("/telegram/webhook", data=data,
                                  headers={SECRET_HEADER: settings.webhook_secret_token})
    return response.status


async def test_an_update_with_extra_nesting_within_the_limit_is_handled(webhook, fake, settings):
    pad = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert await post(webhook, settings, update_with("pad", pad)) == 200
    assert last_text(fake).startswith("Hello")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
async def test_an_update_nested_too_deep_is_400(webhook, fake, settings, depth):
    pad = "[" * depth + "]" * depth
    assert await post(webhook, settings, update_with("pad", pad)) == 400
    assert fake.sent() == []


@pytest.mark.parametrize("literal", ["1e999999999", "9" * 5000], ids=["exp-billion", "digits-5000"])
async def test_an_update_id_past_the_number_bounds_is_400(webhook, fake, settings, literal):
    assert await post(webhook, settings, update_with("update_id", literal)) == 400
    assert fake.sent() == [] and await BotUser.find_one(BotUser.user_id == USER_ID) is None


@pytest.mark.parametrize("value", [b"\xff\xfe", b"\xed\xa0\x80"], ids=["not-utf8", "utf8-surrogate"])
async def test_a_secret_token_of_invalid_utf8_is_401(webhook, fake, value):
    answer = await raw_request(webhook, "POST", "/telegram/webhook",
                               {SECRET_HEADER: value, "Content-Type": "application/json"},
                               json.dumps(message_update("/start")).encode())
    assert answer.status == 401
    assert fake.sent() == []
