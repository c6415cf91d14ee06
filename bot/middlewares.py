"""Cross-cutting concerns of the bot: the user's language (and `t`), and admin-only commands."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from aiogram.utils.i18n import I18nMiddleware

from billing.clock import Clock
from bot.texts import Catalogue, Texts, language_or_default
from db.users import find_user, remember_user

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class LocaleMiddleware(I18nMiddleware):
    """The user's stored language, else Telegram's language_code (ru, en, uz; anything else en).

    A user seen for the first time is remembered with that language, so the payment page and the
    worker's notices speak it too. Handlers receive `t`, the catalogue in that language.
    """

    def __init__(self, catalogue: Catalogue, clock: Clock) -> None:
        super().__init__(i18n=catalogue, i18n_key="i18n", middleware_key="i18n_middleware")
        self.catalogue = catalogue
        self._clock = clock

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: User | None = data.get("event_from_user")
        if user is None:
            return self.i18n.default_locale
        stored = await find_user(user.id)
        if stored is not None and stored.language and stored.blocked_at is None:
            return stored.language
        # First contact, or back after blocking the bot: remember the user (and that they can be written to).
        language = stored.language if stored and stored.language else language_or_default(user.language_code)
        await remember_user(user.id, language, chosen=False, now=self._clock())
        return language

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        language = await self.get_locale(event=event, data=data)
        data["t"] = self.catalogue.texts(language)
        data[self.i18n_key or "i18n"] = self.i18n
        with self.i18n.context(), self.i18n.use_locale(language):
            return await handler(event, data)


class AdminOnly(BaseMiddleware):
    """Inner middleware of the admin router: runs after a command matched, lets only ADMIN_IDS through
    and politely refuses everyone else."""

    def __init__(self, admin_ids: frozenset[int]) -> None:
        self._admins = admin_ids

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is not None and user.id in self._admins:
            return await handler(event, data)
        log.warning("user %s was refused an admin command", user.id if user else None)
        t: Texts = data["t"]
        if isinstance(event, Message):
            await event.answer(t("admin.refused"))
        elif isinstance(event, CallbackQuery):
            await event.answer(t("admin.refused"), show_alert=True)
        return None
