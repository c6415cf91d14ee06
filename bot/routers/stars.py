"""Telegram Stars in the bot: pre-checkout answers, payments recorded in the ledger, renewals, refunds,
the user's auto-renewal switch (/renewal), /paysupport and the admin's /stars_refund.

The payment handlers are always registered, so a renewal of a subscription sold earlier is recorded
even after STARS_ENABLED is turned off; selling (the one-time invoice button, /paysupport) only when
it is on. A payment that could not be recorded raises the outage (LedgerUnavailable, PyMongoError), which no
error handler takes: webhook mode answers 503 and Telegram delivers the update again.
"""

from __future__ import annotations

import logging
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import BotSubscriptionUpdated, CallbackQuery, Message, PreCheckoutQuery
from pymongo.errors import PyMongoError

from billing.clock import Clock
from billing.errors import ProviderUnavailable
from billing.extras import refunded_elsewhere
from billing.invoices import find_invoice
from billing.ledger import Ledger, find_operation
from billing.money import Money
from billing.plans import Catalogue as Plans
from billing.providers.base import NotificationRejected, Outcome, ProviderRejected
from billing.providers.stars import NAME, TelegramStars
from billing.providers.stars.payments import (
    CannotResume,
    NoSuchStarsSubscription,
    pre_checkout_refusal,
    record_payment,
    refund_charge,
    renewal_state_changed,
    reverse_refunded,
    set_renewal,
    user_subscriptions,
)
from billing.providers.stars.protocol import (
    NotSellable,
    Refusal,
    StarsPayment,
    read_payment,
    read_pre_checkout,
    read_refund,
    stars_price,
)
from bot.middlewares import AdminOnly
from bot.stars import reversal_queue, stars_invoice
from bot.stars_api import BotStarsApi
from bot.stars_keyboards import RenewalSwitch, StarsBuy, renewal_keyboard
from bot.stars_support import paysupport
from bot.texts import Texts
from db import InvoiceStatus, Operation, OperationStatus
from db.stars import RenewalState, StarsSubscription
from settings import Settings

log = logging.getLogger(__name__)
REJECTED = (Outcome.UNKNOWN_LABEL, Outcome.WRONG_AMOUNT, Outcome.WRONG_CURRENCY)


def router(settings: Settings) -> Router:
    router = Router(name="stars")
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(paid, F.successful_payment)
    router.message.register(refunded, F.refunded_payment)
    router.subscription.register(renewal_state)
    router.message.register(renewal_menu, Command("renewal"))
    router.callback_query.register(renewal_switched, RenewalSwitch.filter())
    if settings.stars_enabled:
        router.callback_query.register(buy_once, StarsBuy.filter())
        router.message.register(paysupport, Command("paysupport"))
    admin = Router(name="stars-admin")
    admin.message.middleware(AdminOnly(frozenset(settings.admin_ids)))
    admin.message.register(admin_refund, Command("stars_refund"))
    router.include_router(admin)
    return router


async def pre_checkout(query: PreCheckoutQuery, t: Texts, settings: Settings, clock: Clock) -> None:
    """Answered here, within Telegram's 10 seconds (a database read, never a job)."""
    try:
        refusal = await pre_checkout_refusal(read_pre_checkout(query.model_dump(), payer_id=query.from_user.id),
                                             now=clock(), selling=settings.stars_enabled)
    except NotificationRejected:
        refusal = Refusal.NOT_FOUND
    except PyMongoError as err:
        log.error("pre-checkout %s answered 'try again': database %s", query.id, type(err).__name__)
        refusal = Refusal.UNAVAILABLE
    if refusal is None:
        await query.answer(ok=True)
        return
    log.info("pre-checkout for %r refused: %s", query.invoice_payload, refusal.value)
    await query.answer(ok=False, error_message=t(f"stars.refused.{refusal.value}"))


async def paid(message: Message, t: Texts, ledger: Ledger, settings: Settings, clock: Clock, bot: Bot) -> None:
    assert message.successful_payment is not None and message.from_user is not None
    try:
        payment = read_payment(message.successful_payment.model_dump(), payer_id=message.from_user.id,
                               date=message.date)
    except NotificationRejected as err:
        log.warning("a successful_payment that is not ours to record: %s", err.detail)
        return
    recorded = await record_payment(ledger, payment, now=clock(), ttl_seconds=settings.invoice_ttl_seconds)
    if recorded.extra:
        if recorded.outcome is Outcome.EXTRA:  # not again on a redelivery, once it is reversed
            await _refund_extra(message, t, settings, bot, payment, now=clock())
    elif recorded.outcome in REJECTED:
        await message.answer(t("stars.paid.rejected", stars=payment.amount))
    elif recorded.outcome is Outcome.ACCEPTED and payment.first_recurring:
        await message.answer(t("stars.paid.subscription", stars=payment.amount))


async def _refund_extra(message: Message, t: Texts, settings: Settings, bot: Bot, payment: StarsPayment, *,
                        now: datetime) -> None:
    """A second payment of an invoice already paid (a forwarded invoice, a double tap): give it back. Telegram
    refusing or failing the refund leaves it to the settle job (which tries again, or lists it for a refund by
    hand); an outage after the refund fails the update, and its redelivery finds the refund done."""
    try:
        await refund_charge(BotStarsApi(bot), payment.charge_id, label=payment.payload, now=now)
    except (ProviderRejected, ProviderUnavailable) as err:
        log.error("%s:%s paid invoice %s a second time and could not be refunded: %s", NAME, payment.charge_id,
                  payment.payload, err)
        await message.answer(t("stars.paid.rejected", stars=payment.amount))
        return
    await refunded_elsewhere(NAME, payment.charge_id)
    async with reversal_queue(settings) as queue:
        await queue.enqueue_reversal(NAME, payment.charge_id, "paid an invoice already paid; refunded")
    await message.answer(t("stars.paid.extra", stars=payment.amount))


async def refunded(message: Message, settings: Settings) -> None:
    """Telegram's note that a charge was refunded (by us or otherwise): reversed in the ledger, once."""
    assert message.refunded_payment is not None
    try:
        refund = read_refund(message.refunded_payment.model_dump())
    except NotificationRejected as err:
        log.warning("a refunded_payment that is not ours: %s", err.detail)
        return
    async with reversal_queue(settings) as queue:  # an outage fails the update: Telegram delivers it again
        await reverse_refunded(refund, queue)


async def renewal_state(update: BotSubscriptionUpdated, t: Texts, plans: Plans, clock: Clock, bot: Bot) -> None:
    """The user turned renewal off or on in Telegram, or Telegram could not charge the renewal."""
    changed = await renewal_state_changed(update.invoice_payload, update.user.id, update.state, now=clock())
    if changed is None:
        return
    text = t(f"stars.state.{changed.state.value}", plan=t.plan_title(plans.title(changed.plan)),
             until=_until(t, changed))
    try:
        await bot.send_message(update.user.id, text)
    except TelegramAPIError as err:
        log.warning("could not tell user %s about their Stars renewal: %s", update.user.id, err.message)


def _until(t: Texts, subscription: StarsSubscription) -> str:
    return t.moment(subscription.expires_at) if subscription.expires_at else t("stars.renewal.end_unknown")


async def renewal_menu(message: Message, t: Texts, plans: Plans) -> None:
    assert message.from_user is not None
    subscriptions = await user_subscriptions(message.from_user.id)
    if not subscriptions:
        await message.answer(t("stars.renewal.none"))
        return
    titled = [(t.plan_title(plans.title(subscription.plan)), subscription) for subscription in subscriptions]
    lines = [t(f"stars.renewal.{subscription.state.value}", plan=plan, stars=subscription.amount,
               until=_until(t, subscription)) for plan, subscription in titled]
    await message.answer("\n".join(lines), reply_markup=renewal_keyboard(t, titled))


async def renewal_switched(query: CallbackQuery, callback_data: RenewalSwitch, t: Texts, plans: Plans,
                           clock: Clock, bot: Bot) -> None:
    try:
        subscription = await set_renewal(BotStarsApi(bot), user_id=query.from_user.id, label=callback_data.label,
                                         on=callback_data.on, now=clock())
    except NoSuchStarsSubscription:
        await query.answer(t("stars.renewal.not_yours"), show_alert=True)
        return
    except CannotResume:
        await query.answer(t("stars.renewal.cannot_resume"), show_alert=True)
        return
    except (ProviderRejected, ProviderUnavailable) as err:
        log.warning("editUserStarSubscription for %s failed: %s", callback_data.label, err)
        await query.answer(t("stars.renewal.error"), show_alert=True)
        return
    key = "stars.renewal.done.on" if subscription.state is RenewalState.ACTIVE else "stars.renewal.done.off"
    text = t(key, plan=t.plan_title(plans.title(subscription.plan)), until=_until(t, subscription))
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=renewal_keyboard(
            t, [(t.plan_title(plans.title(subscription.plan)), subscription)]))
    await query.answer()


async def buy_once(query: CallbackQuery, callback_data: StarsBuy, t: Texts, plans: Plans, clock: Clock,
                   bot: Bot) -> None:
    """The one-time Stars invoice of one of the user's own pending invoices, sent into the chat."""
    invoice = await find_invoice(callback_data.label)
    if (invoice is None or invoice.user_id != query.from_user.id or invoice.status is not InvoiceStatus.PENDING
            or invoice.expires_at <= clock() or stars_price(invoice.amounts) is None):
        await query.answer(t("stars.buy.unavailable"), show_alert=True)
        return
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    try:
        await BotStarsApi(bot).send_invoice(chat_id, stars_invoice(invoice, t, plans, subscription=False))
    except (NotSellable, ProviderRejected, ProviderUnavailable) as err:
        log.warning("sendInvoice for %s failed: %s", invoice.label, err)
        await query.answer(t("stars.buy.failed"), show_alert=True)
        return
    await query.answer()


async def admin_refund(message: Message, command: CommandObject, t: Texts, settings: Settings, clock: Clock,
                       bot: Bot) -> None:
    """/stars_refund LABEL (the charge that paid the invoice) or CHARGE_ID (any Stars charge, e.g. a second
    payment of a paid invoice): the Stars back to the payer, then the period taken back in the ledger."""
    target = (command.args or "").strip()
    if not target or " " in target:
        await message.answer(t("stars.admin.refund.usage"))
        return
    operation = await _refundable(target, t)
    if isinstance(operation, str):
        await message.answer(operation)
        return
    try:
        await TelegramStars(BotStarsApi(bot), clock=clock).refund(
            operation_id=operation.operation_id, amount=Money(operation.amount, operation.currency),
            label=operation.label)
    except ProviderRejected as err:
        await message.answer(t("stars.admin.refund.failed", error=str(err)))
        return
    except ProviderUnavailable:
        await message.answer(t("stars.admin.refund.unavailable"))
        return
    async with reversal_queue(settings) as queue:
        await queue.enqueue_reversal(NAME, operation.operation_id, "refunded by an admin in the bot")
    await message.answer(t("stars.admin.refund.done", label=operation.label, stars=operation.amount))


async def _refundable(target: str, t: Texts) -> Operation | str:
    """The Stars operation an invoice label or a charge id names, or why there is none to refund."""
    invoice = await find_invoice(target)
    if invoice is not None:
        provider, _, charge_id = (invoice.paid_by or "").partition(":")
        if invoice.status is not InvoiceStatus.PAID or provider != NAME:
            return t("stars.admin.refund.not_stars", label=target,
                     status=t(f"invoice.status.{invoice.status.value}"))
        target = charge_id
    operation = await find_operation(NAME, target)
    if operation is None or operation.status is OperationStatus.REVERSED:
        return t("stars.admin.refund.not_found", label=target)
    return operation
