"""The one-tap cancel under the notice of a coming charge: the same RenewalChoice the /cancel question uses,
so pressing it runs bot/routers/renewals.py's handler (auto-renewal off, the saved method removed)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.routers.renewals import TURN_OFF, RenewalChoice
from bot.texts import Texts


def cancel_renewal_keyboard(t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text=t("renewal.upcoming.cancel"), callback_data=RenewalChoice(action=TURN_OFF).pack())]])
