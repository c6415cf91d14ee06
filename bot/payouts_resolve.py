"""The admin chat's buttons under a payout alert that needs a person (billing/payouts/resolve.py): attach
konsol.pro's payment id (the bot asks for it), mark the claim failed, send it again. Failing and sending
again first show the warning that the payout must not exist at konsol.pro and take effect only on the
confirming press. Every press is checked against ADMIN_IDS again; the decision records who made it.
"""

from __future__ import annotations

import logging

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from billing.clock import Clock
from billing.payouts.claims import ClaimNotFound, find_claim
from billing.payouts.resolve import Resolved, Result, attach_payment_id, mark_failed, resend
from bot.payouts import PayoutDesk
from bot.payouts_admin import admin_name, reply_to
from bot.payouts_keyboards import ClaimResolution, confirm_resolution_keyboard
from bot.texts import Texts
from db.payouts import ClaimStatus
from settings import Settings

log = logging.getLogger(__name__)


class Attaching(StatesGroup):
    konsol_id = State()


async def resolution_pressed(query: CallbackQuery, callback_data: ClaimResolution, state: FSMContext, t: Texts,
                             settings: Settings, payout_desk: PayoutDesk, clock: Clock) -> None:
    admin = query.from_user  # an admin: the router's AdminOnly let the press through
    claim = await find_claim(callback_data.label)
    if claim is None or payout_desk.konsol is None:
        await query.answer(t("payout.step_passed"), show_alert=True)
        return
    action, label = callback_data.action, claim.label
    if action == "attach":
        await state.set_state(Attaching.konsol_id)
        await state.update_data(label=label)
        await reply_to(query, t("payout.resolve.ask_id", label=label))
        await query.answer()
        return
    if action not in ("fail", "resend"):
        await query.answer(t("payout.step_passed"), show_alert=True)
        return
    nothing_was_made = action == "resend" and claim.status is ClaimStatus.ACCEPTED  # credentials refused
    if not (callback_data.confirm or nothing_was_made):
        if isinstance(query.message, Message):
            await query.message.answer(t(f"payout.resolve.{action}.warning", label=label),
                                       reply_markup=confirm_resolution_keyboard(label, action, t))
        await query.answer()
        return
    if action == "fail":
        resolved = await mark_failed(label, by=admin.id, by_name=admin_name(admin), reason="",
                                     konsol=payout_desk.konsol, queue=payout_desk.queue, clock=clock)
    else:
        resolved = await resend(label, by=admin.id, by_name=admin_name(admin), queue=payout_desk.queue, clock=clock)
    await reply_to(query, outcome_text(t, resolved))
    await query.answer()


async def konsol_id_given(message: Message, state: FSMContext, t: Texts, settings: Settings,
                          payout_desk: PayoutDesk, clock: Clock) -> None:
    admin, data = message.from_user, await state.get_data()
    await state.clear()
    if admin is None or admin.id not in settings.admin_ids or not data.get("label") or payout_desk.konsol is None:
        return
    konsol_id = (message.text or "").strip()
    if not konsol_id or len(konsol_id) > 64 or not konsol_id.replace("-", "").replace("_", "").isalnum():
        await message.answer(t("payout.resolve.bad_id"))
        return
    try:
        resolved = await attach_payment_id(data["label"], konsol_id, by=admin.id, by_name=admin_name(admin),
                                           konsol=payout_desk.konsol, queue=payout_desk.queue, clock=clock)
    except ClaimNotFound:
        await message.answer(t("payout.step_passed"))
        return
    await message.answer(outcome_text(t, resolved))


def outcome_text(t: Texts, resolved: Resolved) -> str:
    claim = resolved.claim
    if resolved.result is Result.DONE:
        last = claim.decisions[-1].by_name if claim.decisions else "—"
        return t("payout.resolve.done", label=claim.label, status=claim.status.value, name=last)
    return t(f"payout.resolve.{resolved.result.value}", label=claim.label, status=claim.status.value,
             detail=resolved.detail or "—")
