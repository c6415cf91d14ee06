"""/paysupport, which Telegram requires of bots that sell for Stars: how to reach the owner, in the user's
language, and a payment dispute (`/paysupport <what happened>`) passed to the admin chat with the
user's latest Stars charges, so the owner can find the payment and refund it (/stars_refund)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject
from aiogram.types import Message

from billing.providers.stars.payments import recent_charges
from bot.texts import Catalogue, Texts
from settings import Settings

log = logging.getLogger(__name__)
MAX_DISPUTE_CHARS = 3000  # the admin's message stays under Telegram's 4096 with the charges listed


async def paysupport(message: Message, command: CommandObject, t: Texts, settings: Settings, catalogue: Catalogue,
                     bot: Bot) -> None:
    assert message.from_user is not None
    contact = (settings.stars_support_contact or "").strip()
    reach = [t("stars.paysupport.contact", contact=contact)] if contact else []
    dispute = (command.args or "").strip()
    if not dispute:
        await message.answer("\n\n".join([t("stars.paysupport"), *reach]))
        return
    if settings.admin_chat_id is None:
        await message.answer("\n\n".join(reach or [t("stars.paysupport.nobody")]))
        return
    try:
        await bot.send_message(settings.admin_chat_id, await _for_admins(message, dispute, settings, catalogue))
    except TelegramAPIError as err:
        log.error("a /paysupport message of user %s did not reach the admin chat: %s", message.from_user.id,
                  err.message)
        await message.answer("\n\n".join([t("stars.paysupport.failed"), *reach]))
        return
    await message.answer("\n\n".join([t("stars.paysupport.sent"), *reach]))


async def _for_admins(message: Message, dispute: str, settings: Settings, catalogue: Catalogue) -> str:
    assert message.from_user is not None
    a = catalogue.texts(settings.admin_language)
    user = message.from_user
    who = f"{user.id} (@{user.username})" if user.username else str(user.id)
    charges = [a("stars.paysupport.admin.charge", when=a.moment(charge.paid_at), stars=charge.amount,
                 label=charge.label, charge_id=charge.charge_id) for charge in await recent_charges(user.id)]
    return "\n".join([a("stars.paysupport.admin", user=who, text=dispute[:MAX_DISPUTE_CHARS]),
                      *(charges or [a("stars.paysupport.admin.none")])])
