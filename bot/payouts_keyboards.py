"""The payout dialogue's and the admin chat's inline keyboards, with their typed callback data."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from billing.providers.konsol import Bank
from bot.notice_keyboards import CLAIM_DECISION, CLAIM_RESOLUTION
from bot.texts import Texts

BANKS_PER_PAGE = 8


class PayoutMethodChosen(CallbackData, prefix="pomethod"):
    method: str  # "card" or "fps"


class BankPage(CallbackData, prefix="pobanks"):
    page: int


class BankChosen(CallbackData, prefix="pobank"):
    bank_id: str


class ClaimConfirmed(CallbackData, prefix="poconfirm"):
    label: str
    ok: bool


class ClaimDecision(CallbackData, prefix=CLAIM_DECISION):
    label: str
    accept: bool


def methods_keyboard(t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [InlineKeyboardButton(text=t("payout.method.card"), callback_data=PayoutMethodChosen(method="card").pack())],
        [InlineKeyboardButton(text=t("payout.method.fps"), callback_data=PayoutMethodChosen(method="fps").pack())],
    ])


def banks_keyboard(banks: list[Bank], page: int, t: Texts) -> InlineKeyboardMarkup:
    """One page of banks, two a row, and the arrows to the other pages."""
    pages = max(1, -(-len(banks) // BANKS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = banks[page * BANKS_PER_PAGE:(page + 1) * BANKS_PER_PAGE]
    buttons = [InlineKeyboardButton(text=bank.name, callback_data=BankChosen(bank_id=bank.id).pack())
               for bank in shown]
    rows = [buttons[index:index + 2] for index in range(0, len(buttons), 2)]
    arrows = []
    if page > 0:
        arrows.append(InlineKeyboardButton(text="◀", callback_data=BankPage(page=page - 1).pack()))
    if page + 1 < pages:
        arrows.append(InlineKeyboardButton(text=t("payout.banks.more"), callback_data=BankPage(page=page + 1).pack()))
    if arrows:
        rows.append(arrows)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def confirm_keyboard(label: str, t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("payout.confirm.yes"), callback_data=ClaimConfirmed(label=label, ok=True).pack()),
        InlineKeyboardButton(text=t("payout.confirm.no"), callback_data=ClaimConfirmed(label=label, ok=False).pack()),
    ]])


class ClaimResolution(CallbackData, prefix=CLAIM_RESOLUTION):
    """An admin's resolution of a claim the machine cannot settle; `confirm` marks the second press, after the
    warning that the payout must not exist at konsol.pro."""

    label: str
    action: str  # "attach", "fail" or "resend" (db.payouts.Resolution)
    confirm: bool = False


def confirm_resolution_keyboard(label: str, action: str, t: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text=t(f"payout.resolve.{action}.confirm"),
        callback_data=ClaimResolution(label=label, action=action, confirm=True).pack())]])
