"""/email: the e-mail or phone the fiscal receipts go to (billing/receipt_contact.py), saved for the payment page,
which offers it next time. `/email` alone shows the saved one, masked; the bot never repeats it in full."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from billing.clock import Clock
from billing.receipt_contact import (
    CONTACT_PROVIDERS,
    InvalidContact,
    contact_needed,
    mask,
    parse_contact,
    remember_contact,
    saved_contact,
)
from bot.texts import Texts
from settings import Settings


def router() -> Router:
    router = Router(name="receipt_contact")
    router.message.register(email, Command("email"), F.chat.type == "private")
    return router


def email_menu(settings: Settings) -> tuple[str, ...]:
    """/email in the command menu only where a receipt asks for the buyer's contact."""
    return ("email",) if any(contact_needed(settings, name) for name in CONTACT_PROVIDERS) else ()


async def email(message: Message, command: CommandObject, t: Texts, clock: Clock) -> None:
    assert message.from_user is not None
    user_id = message.from_user.id
    if not command.args:
        saved = await saved_contact(user_id)
        await message.answer(t("email.current", contact=mask(saved)) if saved else t("email.none"))
        return
    try:
        contact = parse_contact(command.args)
    except InvalidContact as refused:
        await message.answer(t(f"email.invalid.{refused.problem.value}"))
        return
    await remember_contact(user_id, contact, clock())
    await message.answer(t("email.saved", contact=mask(contact)))
