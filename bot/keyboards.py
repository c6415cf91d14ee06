"""Inline keyboards; callback data only through typed CallbackData factories."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.offers import Offer
from bot.texts import LANGUAGES, Catalogue, Texts


class LanguageChosen(CallbackData, prefix="lang"):
    code: str


def plans_keyboard(offers: list[Offer], t: Texts) -> InlineKeyboardMarkup:
    """One URL button per plan: its title and its price in every currency, opening its signed link."""
    rows = [
        [InlineKeyboardButton(text=t("subscribe.button", title=t.plan_title(offer.plan.title),
                                     prices=t.prices(offer.link.invoice.amounts)), url=offer.link.url)]
        for offer in offers
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def languages_keyboard(catalogue: Catalogue) -> InlineKeyboardMarkup:
    """Each language's button in that language's own name."""
    rows = [
        [InlineKeyboardButton(text=catalogue.texts(code)("language.name"),
                              callback_data=LanguageChosen(code=code).pack())]
        for code in LANGUAGES
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)
