"""What no other router took: unknown messages in a private chat, buttons nothing answers, and the bot's expected
failures.

A refusal of the domain (a BillingError such as an unknown plan or invoice: the user's input or a stale button)
is answered politely here. An outage (bot.middlewares.OUTAGES: the database, the queue, a provider) is not: it
fails the update, so that Telegram delivers it again (webhook mode answers 5xx) or the polling retry takes it.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import CallbackQuery, ErrorEvent, Message

from billing.errors import BillingError
from bot.middlewares import OUTAGES
from bot.texts import Texts

log = logging.getLogger(__name__)


def router() -> Router:
    router = Router(name="fallback")
    router.message.register(unknown, F.chat.type == "private")
    router.callback_query.register(stale_button)
    router.errors.register(refused, ExceptionTypeFilter(BillingError), ~ExceptionTypeFilter(*OUTAGES))
    return router


async def unknown(message: Message, t: Texts) -> None:
    await message.answer(t("unknown"))


async def stale_button(query: CallbackQuery, t: Texts) -> None:
    """A button of an old keyboard (or callback data nobody packed): answered, so the spinner stops."""
    await query.answer(t("error.stale_button"), show_alert=True)


async def refused(event: ErrorEvent, t: Texts | None = None) -> None:
    """The domain refused what the user asked (nothing was half done: every write is keyed and conditional)."""
    log.warning("bot update %s refused: %s: %s", event.update.update_id, type(event.exception).__name__,
                event.exception)
    if t is None:
        return
    if event.update.message is not None:
        await event.update.message.answer(t("error.refused"))
    elif event.update.callback_query is not None:
        await event.update.callback_query.answer(t("error.refused"), show_alert=True)
