"""/donate: a signed link to the donation page (billing/donations.py), valid for LINK_TTL_SECONDS."""

from __future__ import annotations

from datetime import timedelta

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from billing.clock import Clock
from billing.donations import donation_url
from bot.texts import Texts
from settings import Settings


def router() -> Router:
    router = Router(name="donate")
    router.message.register(donate, Command("donate"))
    return router


async def donate(message: Message, t: Texts, settings: Settings, clock: Clock) -> None:
    assert message.from_user is not None
    now = clock()
    url = donation_url(settings.public_base_url, settings.link_key, message.from_user.id, now=now,
                       ttl_seconds=settings.link_ttl_seconds, lang=t.language)
    button = InlineKeyboardButton(text=t("donate.button"), url=url)
    until = t.moment(now + timedelta(seconds=settings.link_ttl_seconds))
    await message.answer(t("donate.link", until=until), reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]))
