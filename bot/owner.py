"""For the owner's own aiogram bot: a filter that lets a handler run only for an active subscriber, and a
router whose /subscribe answers with our signed payment links. Both ask open-ymds through `ymds_client`
(Redis and RQ), so the owner's process needs neither our settings nor our database.

    client = YmdsClient("redis://localhost:6379/0")
    dp.include_router(subscription_router(client))

    @router.message(Command("secret"), ActiveSubscription(client))
    async def secret(message: Message, subscription: dict) -> None: ...
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from aiogram import Router
from aiogram.filters import Command, Filter
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from billing.languages import supported_language
from bot.texts import Texts, catalogue
from ymds_client import YmdsClient, YmdsError

log = logging.getLogger(__name__)


class ActiveSubscription(Filter):
    """Passes when the sender has access now (billing/owner_rpc.py subscription_status), and hands the handler
    the status as `subscription`. When open-ymds does not answer it does not pass: access is never granted on
    a guess."""

    def __init__(self, client: YmdsClient, *, timeout: float = 5) -> None:
        self._client = client
        self._timeout = timeout

    async def __call__(self, event: Message | CallbackQuery) -> bool | dict[str, Any]:
        if event.from_user is None:
            return False
        try:
            status = await asyncio.to_thread(self._client.subscription_status, event.from_user.id,
                                             timeout=self._timeout)
        except YmdsError as err:
            log.warning("subscription status of user %s unknown: %s", event.from_user.id, err)
            return False
        return {"subscription": status} if status["active"] else False


def subscription_router(client: YmdsClient, *, command: str = "subscribe", timeout: float = 5) -> Router:
    """A router to include in the owner's Dispatcher: `/subscribe` (or `command`) answers with one URL button
    per plan, each opening its signed payment page in the sender's language."""
    router = Router(name="ymds-subscription")

    @router.message(Command(command))
    async def subscribe(message: Message) -> None:
        if message.from_user is None:
            return
        language = supported_language(message.from_user.language_code)
        t = catalogue().texts(language)
        try:
            links = await asyncio.to_thread(client.subscribe_links, message.from_user.id, language, timeout=timeout)
        except YmdsError as err:
            log.warning("no payment links for user %s: %s", message.from_user.id, err)
            await message.answer(t("error.retry_later"))
            return
        until = min(datetime.fromisoformat(link["expires_at"]) for link in links)
        await message.answer(t("subscribe.choose", until=t.moment(until)), reply_markup=links_keyboard(links, t))

    return router


def links_keyboard(links: list[dict[str, Any]], t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=t("subscribe.button", title=t.plan_title(link["title"]),
                                 prices=t.prices(link["amounts"])), url=link["pay_url"])]
        for link in links
    ])
