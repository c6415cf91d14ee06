"""The Telegram Stars buttons: beside each plan's link in /subscribe, and the auto-renewal switch of /renewal."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.texts import Texts
from db.stars import RenewalState, StarsSubscription


class StarsBuy(CallbackData, prefix="stars"):
    """Send the one-time Stars invoice of this (pending) invoice; re-checked against the presser."""

    label: str


class RenewalSwitch(CallbackData, prefix="renew"):
    """Turn the Stars subscription of this invoice off (on=False) or back on."""

    label: str
    on: bool


def monthly_button(t: Texts, stars: int, url: str) -> InlineKeyboardButton:
    """Opens the subscription's invoice link: Telegram charges it every 30 days."""
    return InlineKeyboardButton(text=t("stars.button.monthly", stars=stars), url=url)


def once_button(t: Texts, stars: int, label: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=t("stars.button.once", stars=stars), callback_data=StarsBuy(label=label).pack())


def renewal_keyboard(t: Texts, subscriptions: list[tuple[str, StarsSubscription]]) -> InlineKeyboardMarkup | None:
    """One switch per subscription (with its plan's title): off while it renews, on if the bot turned it off."""
    rows = []
    for plan, subscription in subscriptions:
        if subscription.state is RenewalState.ACTIVE:
            rows.append([InlineKeyboardButton(text=t("stars.renewal.button.off", plan=plan),
                                              callback_data=RenewalSwitch(label=subscription.label, on=False).pack())])
        elif subscription.state is RenewalState.CANCELED and subscription.canceled_by_bot:
            rows.append([InlineKeyboardButton(text=t("stars.renewal.button.on", plan=plan),
                                              callback_data=RenewalSwitch(label=subscription.label, on=True).pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
