"""/payout: a claim in a short dialogue (amount; card, or phone and SBP bank; confirmation), /cancel at any
step; with the admin chat's Accept and Reject and /balance (bot/payouts_admin.py) on the same router.

The full card number never enters the FSM storage: it goes encrypted straight into a draft claim, and the
user's message that held it is deleted (best effort). Callback data carry labels and choices only; the admin
chat's Accept, Reject and resolution buttons pass AdminOnly, and the admin's typed replies are checked against
ADMIN_IDS in their handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from billing.clock import Clock
from billing.money import Money
from billing.payouts.cards import (
    is_russian_mobile,
    looks_like_card,
    normalize_card,
    normalize_phone,
    parse_amount_input,
)
from billing.payouts.claims import confirm, destination, discard_draft, new_draft
from billing.providers.konsol import Bank
from bot.middlewares import AdminOnly
from bot.payouts import PayoutDesk, search_banks
from bot.payouts_admin import Rejecting, balance, decided, reason_given, replace_text, reply_to
from bot.payouts_keyboards import (
    BANKS_PER_PAGE,
    BankChosen,
    BankPage,
    ClaimConfirmed,
    ClaimDecision,
    ClaimResolution,
    PayoutMethodChosen,
    banks_keyboard,
    confirm_keyboard,
    methods_keyboard,
)
from bot.payouts_resolve import Attaching, konsol_id_given, resolution_pressed
from bot.texts import Texts
from db.payouts import PayoutClaim
from settings import Settings

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Claim(StatesGroup):
    amount = State()
    method = State()
    card = State()
    phone = State()
    bank = State()
    confirm = State()


class DeskMiddleware(BaseMiddleware):
    """Hands the router's PayoutDesk to its handlers as `payout_desk`."""

    def __init__(self, desk: PayoutDesk) -> None:
        self._desk = desk

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        data["payout_desk"] = self._desk
        return await handler(event, data)


def router(settings: Settings) -> Router:
    desk = PayoutDesk(settings)
    router = Router(name="payouts")
    for observer in (router.message, router.callback_query):
        observer.outer_middleware(DeskMiddleware(desk))
    router.shutdown.register(desk.close)
    text = F.text & ~F.text.startswith("/")
    router.message.register(start, Command("payout"), F.chat.type == "private")
    router.message.register(cancel, Command("cancel"), StateFilter(Claim, Rejecting, Attaching))  # else: renewal
    router.message.register(balance, Command("balance"))
    router.message.register(amount_given, Claim.amount, text)
    router.message.register(card_given, Claim.card, text)
    router.message.register(phone_given, Claim.phone, text)
    router.message.register(bank_search, Claim.bank, text)
    router.message.register(use_buttons, StateFilter(Claim.method, Claim.confirm), text)
    router.message.register(send_text, StateFilter(Claim), ~F.text)
    router.message.register(reason_given, Rejecting.reason, text)
    router.message.register(konsol_id_given, Attaching.konsol_id, text)
    router.callback_query.register(method_chosen, Claim.method,
                                   PayoutMethodChosen.filter(F.method.in_({"card", "fps"})))
    router.callback_query.register(bank_page, Claim.bank, BankPage.filter())
    router.callback_query.register(bank_chosen, Claim.bank, BankChosen.filter())
    router.callback_query.register(confirmed, ClaimConfirmed.filter())
    decisions = Router(name="payout-decisions")  # the admin chat's buttons: ADMIN_IDS only (AdminOnly)
    decisions.callback_query.middleware(AdminOnly(frozenset(settings.admin_ids)))
    decisions.callback_query.register(decided, ClaimDecision.filter())
    decisions.callback_query.register(resolution_pressed, ClaimResolution.filter())
    router.include_router(decisions)
    router.callback_query.register(step_passed, or_f(PayoutMethodChosen.filter(), BankPage.filter(),
                                                     BankChosen.filter()))
    return router


# ---- the user's dialogue --------------------------------------------------------------------------

async def start(message: Message, state: FSMContext, t: Texts, payout_desk: PayoutDesk, settings: Settings) -> None:
    if not payout_desk.enabled:
        await message.answer(t("payout.disabled"))
        return
    await _drop_draft(message, state)
    await state.clear()
    await state.set_state(Claim.amount)
    await message.answer(t("payout.ask_amount", min=t.money(Money(settings.payout_min_amount, "RUB")),
                           max=t.money(Money(settings.payout_max_amount, "RUB"))))


async def cancel(message: Message, state: FSMContext, t: Texts) -> None:
    current, data = await state.get_state(), await state.get_data()
    await state.clear()
    if current in (Rejecting.reason.state, Attaching.konsol_id.state):
        await message.answer(t("payout.admin.reject_kept", label=data.get("label", "")))
        return
    await _drop_draft(message, state, data)
    await message.answer(t("payout.cancelled"))


async def amount_given(message: Message, state: FSMContext, t: Texts, settings: Settings) -> None:
    kopecks = parse_amount_input(message.text or "")
    if kopecks is None:
        await message.answer(t("payout.bad_amount"))
        return
    if not settings.payout_min_amount <= kopecks <= settings.payout_max_amount:
        await message.answer(t("payout.amount_limits", min=t.money(Money(settings.payout_min_amount, "RUB")),
                               max=t.money(Money(settings.payout_max_amount, "RUB"))))
        return
    await state.update_data(amount=kopecks)
    await state.set_state(Claim.method)
    await message.answer(t("payout.ask_method", amount=t.money(Money(kopecks, "RUB"))),
                         reply_markup=methods_keyboard(t))


async def method_chosen(query: CallbackQuery, callback_data: PayoutMethodChosen, state: FSMContext,
                        t: Texts) -> None:
    await _drop_keyboard(query)
    card = callback_data.method == "card"
    await state.set_state(Claim.card if card else Claim.phone)
    await reply_to(query, t("payout.ask_card" if card else "payout.ask_phone"))
    await query.answer()


async def card_given(message: Message, state: FSMContext, t: Texts, payout_desk: PayoutDesk, clock: Clock) -> None:
    text = message.text or ""
    if looks_like_card(text):
        await _delete(message)
    number = normalize_card(text)
    if number is None:
        await message.answer(t("payout.bad_card"))
        return
    claim = await _draft(message, state, t, payout_desk, clock, card_number=number)
    await _ask_confirmation(message, state, t, claim)


async def phone_given(message: Message, state: FSMContext, t: Texts, payout_desk: PayoutDesk, clock: Clock) -> None:
    phone = normalize_phone(message.text or "")
    if phone is None:
        await message.answer(t("payout.bad_phone"))
        return
    if not is_russian_mobile(phone):
        await message.answer(t("payout.phone_not_russian"))
        return
    await state.update_data(phone=phone)
    await state.set_state(Claim.bank)
    banks = await payout_desk.banks(clock())
    await message.answer(t("payout.ask_bank"), reply_markup=banks_keyboard(banks, 0, t))


async def bank_page(query: CallbackQuery, callback_data: BankPage, t: Texts, payout_desk: PayoutDesk,
                    clock: Clock) -> None:
    banks = await payout_desk.banks(clock())
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=banks_keyboard(banks, callback_data.page, t))
        except TelegramAPIError as err:
            log.info("bank list page not shown: %s", err)
    await query.answer()


async def bank_search(message: Message, t: Texts, payout_desk: PayoutDesk, clock: Clock) -> None:
    query = (message.text or "").strip()[:64]
    found = search_banks(await payout_desk.banks(clock()), query)
    if not found:
        await message.answer(t("payout.no_bank_match", query=query),
                             reply_markup=banks_keyboard(await payout_desk.banks(clock()), 0, t))
        return
    await message.answer(t("payout.ask_bank"), reply_markup=banks_keyboard(found[:BANKS_PER_PAGE], 0, t))


async def bank_chosen(query: CallbackQuery, callback_data: BankChosen, state: FSMContext, t: Texts,
                      payout_desk: PayoutDesk, clock: Clock) -> None:
    bank = next((bank for bank in await payout_desk.banks(clock()) if bank.id == callback_data.bank_id), None)
    phone = (await state.get_data()).get("phone")
    if bank is None or not isinstance(query.message, Message) or not phone:
        await query.answer(t("payout.step_passed"), show_alert=True)
        return
    await _drop_keyboard(query)
    claim = await _draft(query.message, state, t, payout_desk, clock, user=query.from_user, phone=phone, bank=bank)
    await _ask_confirmation(query.message, state, t, claim)
    await query.answer()


async def confirmed(query: CallbackQuery, callback_data: ClaimConfirmed, state: FSMContext, t: Texts,
                    payout_desk: PayoutDesk, clock: Clock) -> None:
    user_id = query.from_user.id
    if callback_data.ok:
        claim = await confirm(callback_data.label, user_id, clock(), payout_desk.queue)
        if claim is None:
            await query.answer(t("payout.claim_gone"), show_alert=True)
            return
        text = t("payout.filed", label=claim.label)
    else:
        await discard_draft(callback_data.label, user_id)
        text = t("payout.cancelled")
    if (await state.get_data()).get("label") == callback_data.label:
        await state.clear()
    await replace_text(query, text)
    await query.answer()


async def use_buttons(message: Message, t: Texts) -> None:
    await message.answer(t("payout.use_buttons"))


async def send_text(message: Message, t: Texts) -> None:
    await message.answer(t("payout.send_text"))


async def step_passed(query: CallbackQuery, t: Texts) -> None:
    await query.answer(t("payout.step_passed"), show_alert=True)


# ---- helpers ---------------------------------------------------------------------------------------

async def _draft(message: Message, state: FSMContext, t: Texts, desk: PayoutDesk, clock: Clock, *,
                 user: User | None = None, card_number: str | None = None, phone: str | None = None,
                 bank: Bank | None = None) -> PayoutClaim:
    payee = user or message.from_user
    assert payee is not None
    data = await state.get_data()
    await _drop_draft(message, state, data)
    return await new_draft(user_id=payee.id, first_name=payee.first_name, last_name=payee.last_name or "",
                           language=t.language, amount=int(data["amount"]), cipher=desk.cipher, queue=desk.queue,
                           now=clock(), card_number=card_number, phone=phone, bank_id=bank.id if bank else None,
                           bank_name=bank.name if bank else None)


async def _ask_confirmation(message: Message, state: FSMContext, t: Texts, claim: PayoutClaim) -> None:
    await state.update_data(label=claim.label)
    await state.set_state(Claim.confirm)
    await message.answer(t("payout.confirm", amount=t.money(Money(claim.amount, claim.currency)),
                           destination=destination(claim)), reply_markup=confirm_keyboard(claim.label, t))


async def _drop_draft(message: Message, state: FSMContext, data: dict[str, Any] | None = None) -> None:
    """A dialogue left or restarted leaves no draft (and no encrypted card) behind."""
    label = (data if data is not None else await state.get_data()).get("label")
    if label and message.chat.id > 0:
        await discard_draft(label, message.chat.id)


async def _drop_keyboard(query: CallbackQuery) -> None:
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=None)
        except TelegramAPIError as err:
            log.info("keyboard not removed: %s", err)


async def _delete(message: Message) -> None:
    """Best effort: the message that held a card number leaves the chat."""
    try:
        await message.delete()
    except TelegramAPIError as err:
        log.warning("the message with a card number could not be deleted: %s", err)
