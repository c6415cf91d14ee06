"""`ymds reconcile stars`: billing/reconcile_stars.py with the Star transactions read over the bot's client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from billing import reconcile_stars
from billing.providers.stars.protocol import StarsApi
from bot.main import make_bot
from bot.stars_api import OnDemandStarsApi
from settings import Settings


@asynccontextmanager
async def bot_api(settings: Settings) -> AsyncIterator[StarsApi]:
    yield OnDemandStarsApi(partial(make_bot, settings))


def run(settings: Settings, start_text: str, end_text: str) -> tuple[int, list[str]]:
    return reconcile_stars.run(settings, start_text, end_text, open_api=bot_api)
