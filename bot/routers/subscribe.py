"""/subscribe (one signed payment link per plan) and /status (the user's subscription)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import Message

from billing.clock import Clock
from billing.plans import Catalogue as Plans
from billing.subscriptions import get_subscription, is_active
from bot.keyboards import plans_keyboard
from bot.offers import offers_for
from bot.routers.trials import with_trial_buttons
from bot.stars import stars_buttons
from bot.texts import Texts, mask_method
from settings import Settings


def router() -> Router:
    router = Router(name="subscribe")
    router.message.register(subscribe, Command("subscribe"))
    router.message.register(status, Command("status"))
    return router


async def subscribe(message: Message, t: Texts, settings: Settings, plans: Plans, clock: Clock, bot: Bot) -> None:
    assert message.from_user is not None
    offers = await offers_for(message.from_user.id, t.language, settings=settings, plans=plans, now=clock())
    until = datetime.fromtimestamp(min(offer.link.expires_at for offer in offers), UTC)
    stars = await stars_buttons(bot, offers, t, settings=settings, plans=plans, now=clock())  # when STARS_ENABLED
    keyboard = await with_trial_buttons(plans_keyboard(offers, t, stars), message.from_user.id, t, plans)
    await message.answer(t("subscribe.choose", until=t.moment(until)), reply_markup=keyboard)


async def status(message: Message, t: Texts, plans: Plans, clock: Clock) -> None:
    assert message.from_user is not None
    subscription = await get_subscription(message.from_user.id)
    if subscription is None:
        await message.answer(t("status.none"))
        return
    plan = t.plan_title(plans.title(subscription.plan))
    until = t.moment(subscription.current_period_end)
    if not is_active(subscription, clock()):
        await message.answer(t("status.expired", plan=plan, until=until))
        return
    lines = [t("status.active", plan=plan, until=until)]
    if subscription.payment_method:
        lines.append(t("status.method", method=mask_method(subscription.payment_method)))
    await message.answer("\n".join(lines))

