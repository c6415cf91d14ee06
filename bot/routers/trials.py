"""The trial button under /subscribe's plans, for a user who never took a trial; pressing it starts the trial."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from billing.clock import Clock
from billing.errors import UnknownPlan
from billing.plans import Catalogue as Plans
from billing.trials import start_trial, trial_used
from bot.routers.chats import links_text
from bot.texts import Texts
from settings import Settings


class TrialChosen(CallbackData, prefix="trial"):
    plan: str


def router() -> Router:
    router = Router(name="trials")
    router.callback_query.register(trial_pressed, TrialChosen.filter())
    return router


async def with_trial_buttons(keyboard: InlineKeyboardMarkup, user_id: int, t: Texts,
                             plans: Plans) -> InlineKeyboardMarkup:
    """One button per plan with trial_days, added only while the user has not used their trial."""
    with_trial = [plan for plan in plans if plan.trial_days is not None]
    if not with_trial or await trial_used(user_id):
        return keyboard
    rows = [[InlineKeyboardButton(text=t("trial.button", title=t.plan_title(plan.title), days=plan.trial_days),
                                  callback_data=TrialChosen(plan=plan.name).pack())] for plan in with_trial]
    return InlineKeyboardMarkup(inline_keyboard=[*keyboard.inline_keyboard, *rows])


async def trial_pressed(query: CallbackQuery, callback_data: TrialChosen, t: Texts, plans: Plans,
                        clock: Clock, settings: Settings) -> None:
    try:
        plan = plans.get(callback_data.plan)
        started = await start_trial(plan, query.from_user.id, now=clock())
    except UnknownPlan:  # the plan (or its trial) was removed from plans.toml after the button was sent
        await query.answer(t("trial.unavailable"), show_alert=True)
        return
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if started.subscription is None:
        await query.message.answer(t("trial.used"))
        return
    await query.message.answer(t("trial.started", plan=t.plan_title(plan.title),
                                 until=t.moment(started.subscription.current_period_end)))
    if plan.chats:  # the same access as a paid period: the links to the plan's chats
        text = await links_text(query.from_user.id, t, plans, clock, settings)
        if text:
            await query.message.answer(text)
