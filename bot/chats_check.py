"""What the bot can do in each chat a plan grants: the rights it needs (invite users, ban users) and what Telegram
says; for the admins' /chats and the bot's check at start."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberAdministrator, ChatMemberOwner

from billing.plans import Catalogue as Plans

log = logging.getLogger(__name__)
NEEDED = ("can_invite_users", "can_restrict_members")


@dataclass(frozen=True, slots=True)
class ChatCheck:
    chat_id: int
    title: str  # the chat's title, or "" when Telegram would not say
    plans: tuple[str, ...]
    missing: tuple[str, ...]  # the rights the bot lacks there; every right when it is no admin
    error: str = ""  # Telegram's refusal (the bot was removed, the chat is gone)

    @property
    def ready(self) -> bool:
        return not self.missing and not self.error


async def check_chat(bot: Bot, chat_id: int, plans: tuple[str, ...]) -> ChatCheck:
    try:
        chat = await bot.get_chat(chat_id)
        me = await bot.get_chat_member(chat_id, bot.id)
    except TelegramAPIError as err:
        return ChatCheck(chat_id, "", plans, NEEDED, error=err.message)
    if isinstance(me, ChatMemberOwner):
        return ChatCheck(chat_id, chat.title or "", plans, ())
    if not isinstance(me, ChatMemberAdministrator):
        return ChatCheck(chat_id, chat.title or "", plans, NEEDED)
    return ChatCheck(chat_id, chat.title or "", plans, tuple(right for right in NEEDED if not getattr(me, right)))


async def check_chats(bot: Bot, plans: Plans) -> list[ChatCheck]:
    return [await check_chat(bot, chat_id, tuple(plan.name for plan in granting))
            for chat_id, granting in plans.managed_chats().items()]


async def warn_unready_chats(bot: Bot, plans: Plans) -> None:
    """At start: a chat where the bot cannot invite or ban is logged (the admins see it with /chats)."""
    for check in await check_chats(bot, plans):
        if not check.ready:
            log.warning("chat %s (plans %s): the bot lacks %s %s", check.chat_id, ", ".join(check.plans),
                        ", ".join(check.missing), check.error)
