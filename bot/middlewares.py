"""Cross-cutting concerns of the bot: the user's language (and `t`), admin-only commands, outages that must
fail an update rather than be answered, and callback answers that may fail without harm."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.methods import AnswerCallbackQuery, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User
from aiogram.utils.i18n import I18nMiddleware
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from billing.clock import Clock
from billing.errors import LedgerUnavailable, ProviderUnavailable
from bot.texts import Catalogue, Texts, language_or_default
from db.users import find_user, normal_username, remember_user, remember_username
from settings import Settings

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
Sleep = Callable[[float], Awaitable[None]]

# What fails an update instead of being answered: our database, our queue, or a provider we depend on did not
# answer. Nothing about the update is wrong, so handling it again later succeeds (every write is keyed).
OUTAGES: tuple[type[Exception], ...] = (PyMongoError, RedisError, LedgerUnavailable, ProviderUnavailable)
POLLING_RETRY_DELAYS = (1.0, 5.0, 30.0)  # seconds before each new attempt of an update that met an outage
PAYMENT_MESSAGES = ("successful_payment", "refunded_payment")


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
            if stored.username != normal_username(user.username):  # written only when it changed
                await remember_username(user.id, user.username, self._clock())
            return stored.language
        # First contact, or back after blocking the bot: remember the user (and that they can be written to).
        language = stored.language if stored and stored.language else language_or_default(user.language_code)
        await remember_user(user.id, language, chosen=False, now=self._clock(), username=user.username)
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


class RetryOutages(BaseMiddleware):
    """Polling mode, on the Dispatcher's update observer: aiogram confirms every update it fetched, whatever its
    handler did, so an update that met an outage is handled again here after each of `delays` (the FSM state put
    back as it was). When the last attempt fails too, the admin chat is told, and the user is asked to try again
    (never the payer of a payment message: their Stars are taken, and the Stars reconciliation recovers it).

    Webhook mode has no such middleware: the outage answers 5xx and Telegram delivers the update again."""

    def __init__(self, delays: Sequence[float] = POLLING_RETRY_DELAYS, *, sleep: Sleep = asyncio.sleep) -> None:
        self._delays = tuple(delays)
        self._sleep = sleep

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        saved = (await state.get_state(), await state.get_data()) if state is not None else None
        for attempt, delay in enumerate((*self._delays, None), start=1):
            try:
                return await handler(event, data)
            except OUTAGES as err:
                update_id = getattr(event, "update_id", None)
                if delay is None:
                    log.error("update %s failed %d times, lost to polling: %s: %s", update_id, attempt,
                              type(err).__name__, err)
                    await _tell_of_failure(event, data, err, attempt)
                    return None
                log.warning("update %s met an outage (%s: %s); attempt %d in %s s", update_id, type(err).__name__,
                            err, attempt + 1, delay)
            await self._sleep(delay)
            if state is not None and saved is not None:
                await state.set_state(saved[0])
                await state.set_data(saved[1])
        return None


async def _tell_of_failure(event: TelegramObject, data: dict[str, Any], err: Exception, attempts: int) -> None:
    """The admin chat learns which update was lost (no message text: it may hold a card number); the user, where
    the update was their message or button, is asked to try again."""
    bot: Bot = data["bot"]
    settings: Settings = data["settings"]
    catalogue: Catalogue = data["catalogue"]
    user: User | None = data.get("event_from_user")
    update = event if isinstance(event, Update) else None
    kind = update.event_type if update is not None else type(event).__name__
    sends: list[tuple[int, str]] = []
    if settings.admin_chat_id is not None:
        sends.append((settings.admin_chat_id, catalogue.texts(settings.admin_language)(
            "error.update_lost", update=getattr(update, "update_id", "?"), kind=kind,
            user=user.id if user else "?", attempts=attempts, error=type(err).__name__)))
    chat_id = _user_chat(update)
    if chat_id is not None:
        sends.append((chat_id, catalogue.texts(language_or_default(user.language_code if user else None))(
            "error.retry_later")))
    for target, text in sends:
        try:
            await bot.send_message(target, text)
        except TelegramAPIError as send_err:
            log.error("could not tell chat %s that update %s was lost: %s", target,
                      getattr(update, "update_id", None), send_err)


def _user_chat(update: Update | None) -> int | None:
    """Where to ask the user to try again: their message's chat (not a payment's), or their button's."""
    if update is None:
        return None
    if update.message is not None:
        paid = any(getattr(update.message, name, None) is not None for name in PAYMENT_MESSAGES)
        return None if paid else update.message.chat.id
    if update.callback_query is not None:
        query = update.callback_query
        return query.message.chat.id if query.message is not None else query.from_user.id
    return None


class ForgivingCallbackAnswers(BaseRequestMiddleware):
    """On the bot's session: answerCallbackQuery only stops the button's spinner, and Telegram refuses it for a
    query that is too old or answered already (a redelivered update) or fails it like any call. Its failure is
    logged and taken as done, so it never undoes the handler's real work nor stops what follows it."""

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if not isinstance(method, AnswerCallbackQuery):
            return await make_request(bot, method)
        try:
            return await make_request(bot, method)
        except TelegramAPIError as err:
            log.info("answerCallbackQuery for %s not taken: %s", method.callback_query_id, err.message)
            return cast(Response[TelegramType], Response[bool](ok=True, result=True))
