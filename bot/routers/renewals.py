"""/cancel: the user turns automatic renewal off, after a confirm button (a callback data factory).

Whatever renews the subscription by itself (billing.subscriptions.renews_automatically) is offered: a method of
ours saved under consent, or a CloudPayments subscription bound to it, which the worker then cancels at
CloudPayments (/subscriptions/cancel) and the user hears when it is done."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from billing.clock import Clock
from billing.plans import Catalogue as Plans
from billing.ports import RenewalQueue
from billing.renewals.cancel import NoSubscription, set_auto_renew
from billing.subscriptions import get_subscription, is_active, renewal_left_over, renews_automatically
from bot.notice_keyboards import RENEWAL_CHOICE, TURN_OFF
from bot.texts import Texts, mask_method

KEEP = "keep"


class RenewalChoice(CallbackData, prefix=RENEWAL_CHOICE):
    """The answer to /cancel's question: turn automatic renewal off, or keep it."""

    action: str


def router() -> Router:
    router = Router(name="renewals")
    router.message.register(cancel_command, Command("cancel"))
    router.callback_query.register(choice_pressed, RenewalChoice.filter())
    return router


async def cancel_command(message: Message, t: Texts, plans: Plans, clock: Clock) -> None:
    assert message.from_user is not None
    subscription = await get_subscription(message.from_user.id)
    if subscription is None or not is_active(subscription, clock()) or not (
            renews_automatically(subscription) or renewal_left_over(subscription)):
        await message.answer(t("cancel.none"))
        return
    until = t.moment(subscription.current_period_end)
    if not renews_automatically(subscription):
        await message.answer(t("cancel.already_off", until=until))
        return
    method = (mask_method(subscription.payment_method) if subscription.payment_method
              else t("cancel.saved_method"))
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=t("cancel.yes"), callback_data=RenewalChoice(action=TURN_OFF).pack()),
        InlineKeyboardButton(text=t("cancel.no"), callback_data=RenewalChoice(action=KEEP).pack()),
    ]])
    await message.answer(t("cancel.confirm", plan=t.plan_title(plans.title(subscription.plan)), method=method,
                           until=until), reply_markup=keyboard)


async def choice_pressed(query: CallbackQuery, callback_data: RenewalChoice, t: Texts, clock: Clock,
                         renewal_queue: RenewalQueue | None) -> None:
    if callback_data.action != TURN_OFF:
        await _reply(query, t("cancel.kept"))
        return
    if renewal_queue is None:
        raise RuntimeError("the bot runs without its queue; cannot turn automatic renewal off")
    try:
        subscription = await set_auto_renew(query.from_user.id, False, queue=renewal_queue, now=clock())
    except NoSubscription:
        await _reply(query, t("cancel.none"))
        return
    done = "cancel.done.cloudpayments" if subscription.cloudpayments_subscription_id else "cancel.done"
    await _reply(query, t(done, until=t.moment(subscription.current_period_end)))


async def _reply(query: CallbackQuery, text: str) -> None:
    """Answer the press and replace the question, so its buttons cannot be pressed again."""
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text)
    elif query.bot is not None:  # the question is too old for Telegram to hand back: answer in a new message
        await query.bot.send_message(query.from_user.id, text)
