"""The admin side of payouts: the admin chat's Accept and Reject (Reject asks for the reason), and /balance.

Callback data are user-controlled, so every action checks ADMIN_IDS again. The first decision wins; a later
press is told who made it and the buttons go.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, User

from billing.clock import Clock
from billing.money import Money
from billing.payouts.claims import ClaimNotFound, accept, find_claim, notice_for, reject
from billing.providers.konsol import KonsolRejected, KonsolUnavailable
from bot.payouts import PayoutDesk
from bot.payouts_keyboards import ClaimDecision
from bot.payouts_texts import claim_summary
from bot.texts import Catalogue, Texts
from db.payouts import ClaimStatus, PayoutClaim
from settings import Settings

log = logging.getLogger(__name__)


class Rejecting(StatesGroup):
    reason = State()


async def decided(query: CallbackQuery, callback_data: ClaimDecision, state: FSMContext, t: Texts,
                  settings: Settings, catalogue: Catalogue, payout_desk: PayoutDesk, clock: Clock) -> None:
    admin = query.from_user  # an admin: the router's AdminOnly let the press through
    claim = await find_claim(callback_data.label)
    if claim is None:
        await query.answer(t("payout.step_passed"), show_alert=True)
        return
    if not callback_data.accept:
        if claim.status is not ClaimStatus.NEW:
            await _already(query, t, catalogue, settings, claim)
            return
        await state.set_state(Rejecting.reason)
        message_id = query.message.message_id if isinstance(query.message, Message) else None
        await state.update_data(label=claim.label, message_id=message_id)
        await reply_to(query, t("payout.admin.ask_reason", label=claim.label))
        await query.answer()
        return
    decision = await accept(claim.label, by=admin.id, by_name=admin_name(admin), now=clock(), queue=payout_desk.queue)
    if not decision.won:
        await _already(query, t, catalogue, settings, decision.claim)
        return
    await replace_text(query, decided_text(catalogue.texts(settings.admin_language), decision.claim))
    await query.answer(t("payout.admin.done"))


async def reason_given(message: Message, state: FSMContext, t: Texts, settings: Settings, catalogue: Catalogue,
                       payout_desk: PayoutDesk, clock: Clock, bot: Bot) -> None:
    admin = message.from_user
    data = await state.get_data()
    await state.clear()
    if admin is None or admin.id not in settings.admin_ids or not data.get("label"):
        return
    try:
        decision = await reject(data["label"], by=admin.id, by_name=admin_name(admin), reason=message.text or "",
                                now=clock(), queue=payout_desk.queue)
    except ClaimNotFound:
        await message.answer(t("payout.step_passed"))
        return
    claim = decision.claim
    if not decision.won:
        await message.answer(already_text(t, claim))
        return
    await message.answer(t("payout.admin.rejected", label=claim.label))
    if data.get("message_id"):
        try:
            await bot.edit_message_text(chat_id=message.chat.id, message_id=data["message_id"],
                                        text=decided_text(catalogue.texts(settings.admin_language), claim))
        except TelegramAPIError as err:
            log.info("the admin chat's claim message was not updated: %s", err)


async def balance(message: Message, t: Texts, settings: Settings, payout_desk: PayoutDesk) -> None:
    if message.from_user is None or message.from_user.id not in settings.admin_ids:
        await message.answer(t("admin.refused"))
        return
    if not payout_desk.enabled:
        await message.answer(t("payout.disabled"))
        return
    try:
        accounts = await payout_desk.balance()
    except (KonsolUnavailable, KonsolRejected) as err:
        log.warning("konsol.pro balance not read: %s", err)
        await message.answer(t("payout.balance.unavailable"))
        return
    if not accounts:
        await message.answer(t("payout.balance.none"))
        return
    lines = [t("payout.balance.line", account=account.id, amount=t.money(Money(account.balance, account.currency)))
             for account in accounts]
    await message.answer(t("payout.balance", lines="\n".join(lines)))


def decided_text(a: Texts, claim: PayoutClaim) -> str:
    """The claim's card in the admin chat once decided: who accepted it, or who rejected it and why."""
    name = claim.decided_by_name or ""
    line = (a("payout.admin.rejected_by", name=name, reason=claim.reject_reason or "")
            if claim.status is ClaimStatus.REJECTED else a("payout.admin.accepted_by", name=name))
    return f"{claim_summary(a, notice_for(claim, 'filed'))}\n{line}"


def already_text(t: Texts, claim: PayoutClaim) -> str:
    return t("payout.admin.already", status=t(f"payout.status.{claim.status.value}"),
             name=claim.decided_by_name or "—")


async def _already(query: CallbackQuery, t: Texts, catalogue: Catalogue, settings: Settings,
                   claim: PayoutClaim) -> None:
    """A second press (or a second admin): who decided, and the buttons go."""
    await query.answer(already_text(t, claim), show_alert=True)
    if claim.decided_by_name and claim.status is not ClaimStatus.NEW:
        await replace_text(query, decided_text(catalogue.texts(settings.admin_language), claim))


def admin_name(user: User) -> str:
    return f"@{user.username}" if user.username else user.full_name


async def reply_to(query: CallbackQuery, text: str) -> None:
    """A new message under the pressed one."""
    if isinstance(query.message, Message):
        await query.message.answer(text)


async def replace_text(query: CallbackQuery, text: str) -> None:
    """The pressed message's text replaced and its buttons removed; an unchanged message is fine."""
    if isinstance(query.message, Message):
        try:
            await query.message.edit_text(text)
        except TelegramAPIError as err:
            log.info("message not edited: %s", err)
