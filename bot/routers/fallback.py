"""What no other router took: unknown messages in a private chat, and the bot's expected failures."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent, Message
from pymongo.errors import PyMongoError

from billing.errors import LedgerUnavailable
from bot.texts import Texts

log = logging.getLogger(__name__)


def router() -> Router:
    router = Router(name="fallback")
    router.message.register(unknown, F.chat.type == "private")
    router.errors.register(storage_down, ExceptionTypeFilter(LedgerUnavailable, PyMongoError))
    return router


async def unknown(message: Message, t: Texts) -> None:
    await message.answer(t("unknown"))


async def storage_down(event: ErrorEvent, t: Texts | None = None) -> None:
    """The database or the queue failed under a handler: nothing was half done (every write is idempotent
    and keyed), so the user is asked to try again."""
    log.error("bot update %s failed: %s", event.update.update_id, event.exception)
    message = event.update.message
    if message is not None and t is not None:
        await message.answer(t("error.retry_later"))
