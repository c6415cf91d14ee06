"""/start and /language: greeting, and the user's language (Telegram's language_code, or their choice)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message

from billing.clock import Clock
from bot.keyboards import LanguageChosen, languages_keyboard
from bot.texts import LANGUAGES, Catalogue, Texts, language_or_default
from db.users import remember_user, stored_language


def router() -> Router:
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(choose_language, Command("language"))
    router.callback_query.register(language_chosen, LanguageChosen.filter(F.code.in_(LANGUAGES)))
    return router


async def start(message: Message, catalogue: Catalogue, clock: Clock) -> None:
    """Follows Telegram's language_code unless the user picked a language with /language."""
    user = message.from_user
    assert user is not None  # CommandStart matches messages from users only
    await remember_user(user.id, language_or_default(user.language_code), chosen=False, now=clock(),
                        username=user.username)
    t = catalogue.texts(await stored_language(user.id))
    await message.answer(t("start.greeting", name=user.first_name))


async def choose_language(message: Message, t: Texts, catalogue: Catalogue) -> None:
    await message.answer(t("language.choose"), reply_markup=languages_keyboard(catalogue))


async def language_chosen(query: CallbackQuery, callback_data: LanguageChosen, catalogue: Catalogue,
                          clock: Clock) -> None:
    await remember_user(query.from_user.id, callback_data.code, chosen=True, now=clock())
    t = catalogue.texts(callback_data.code)
    if isinstance(query.message, Message):
        await query.message.edit_text(t("language.set"))
    await query.answer()
