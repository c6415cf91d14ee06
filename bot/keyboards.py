"""Inline keyboards; callback data only through typed CallbackData factories."""

from __future__ import annotations

from collections.abc import Mapping

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from billing.providers.stars.protocol import CURRENCY as STARS_CURRENCY
from bot.notice_keyboards import HOLD
from bot.offers import Offer
from bot.texts import LANGUAGES, Catalogue, Texts


class LanguageChosen(CallbackData, prefix="lang"):
    code: str


def plans_keyboard(offers: list[Offer], t: Texts,
                   beside: Mapping[str, InlineKeyboardButton] | None = None) -> InlineKeyboardMarkup:
    """One URL button per plan: its title and its price in every currency the page takes, opening its signed
    link; `beside` adds a button after it by plan name (Telegram Stars: bot/stars.py)."""
    rows = [
        [InlineKeyboardButton(text=t("subscribe.button", title=t.plan_title(offer.plan.title),
                                     prices=t.prices(_page_amounts(offer.link.invoice.amounts))), url=offer.link.url),
         *([beside[offer.plan.name]] if beside and offer.plan.name in beside else [])]
        for offer in offers
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _page_amounts(amounts: Mapping[str, int]) -> dict[str, int]:
    """Stars (XTR) are paid in the bot, not on the payment page the link opens."""
    return {currency: minor for currency, minor in amounts.items() if currency != STARS_CURRENCY}


def languages_keyboard(catalogue: Catalogue) -> InlineKeyboardMarkup:
    """Each language's button in that language's own name."""
    rows = [
        [InlineKeyboardButton(text=catalogue.texts(code)("language.name"),
                              callback_data=LanguageChosen(code=code).pack())]
        for code in LANGUAGES
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


class HoldConfirm(CallbackData, prefix=HOLD):
    """An admin's Confirm of a two-stage payment held for invoice `label`."""

    label: str


class DataDeletion(CallbackData, prefix="deldata"):
    """The answer to /deletedata's question: `erase` (with the end of the paid access the user was told would
    end, unix seconds, 0 for none) or `keep`. The data erased are always the presser's own."""

    action: str
    access: int = 0
