"""/promo CODE [PLAN]: a discount code answers with a payment link at the discounted prices (a new invoice);
a gift code grants its days through the admin grant's road (billing/grants.py), once per user per code."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from billing.clock import Clock
from billing.errors import UnknownPlan
from billing.invoices import pay_link
from billing.ledger import Ledger
from billing.plans import Catalogue as Plans
from billing.promo import PromoInvalid, PromoRefused, discounted_invoice, find_code, redeem_gift
from bot.keyboards import plans_keyboard
from bot.offers import Offer
from bot.texts import Texts
from db.promo import PromoCode, PromoKind
from settings import Settings


def router() -> Router:
    router = Router(name="promo")
    router.message.register(promo_command, Command("promo"))
    return router


async def promo_command(message: Message, command: CommandObject, t: Texts, plans: Plans, ledger: Ledger,
                        settings: Settings, clock: Clock) -> None:
    assert message.from_user is not None
    parts = (command.args or "").split()
    if not 1 <= len(parts) <= 2:
        await message.answer(t("promo.usage"))
        return
    try:
        promo = await find_code(parts[0])
    except PromoInvalid:
        await message.answer(t("promo.invalid"))
        return
    if promo is None:
        await message.answer(t("promo.unknown"))
        return
    user_id, now = message.from_user.id, clock()
    try:
        if promo.kind is PromoKind.GIFT:
            await _gift(message, promo, user_id, t, plans, ledger, settings, clock)
            return
        names = promo.plans or plans.names()
        plan_name = parts[1] if len(parts) == 2 else (names[0] if len(names) == 1 else None)
        if plan_name is None:
            await message.answer(t("promo.choose_plan", code=promo.code, plans=", ".join(names)))
            return
        plan = plans.get(plan_name)
        invoice = await discounted_invoice(promo.code, plan, user_id, now=now,
                                           ttl_seconds=settings.invoice_ttl_seconds)
    except UnknownPlan:
        await message.answer(t("promo.wrong_plan"))
        return
    except PromoRefused as refused:
        await message.answer(t(f"promo.{refused.reason}"))
        return
    link = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                    ttl_seconds=settings.link_ttl_seconds, lang=t.language)
    await message.answer(t("promo.applied", code=promo.code, until=t.moment(invoice.expires_at)),
                         reply_markup=plans_keyboard([Offer(plan, link)], t))


async def _gift(message: Message, promo: PromoCode, user_id: int, t: Texts, plans: Plans, ledger: Ledger,
                settings: Settings, clock: Clock) -> None:
    plan = await redeem_gift(promo, user_id, plans, ledger, now=clock(), ttl_seconds=settings.invoice_ttl_seconds)
    await message.answer(t("promo.gifted", plan=t.plan_title(plan.title), days=promo.gift_days))
