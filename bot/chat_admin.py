"""The domain's ChatAdmin over aiogram: invite links, ban then unban, membership; Telegram's errors mapped to
ChatUnmanageable (the bot lost its rights: not worth retrying) and ChatBusy (429: the job retries)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Protocol, TypeVar

from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter

from billing.chat_ports import AccessGranted, AccessRemoved
from billing.errors import ChatBusy, ChatUnmanageable

T = TypeVar("T")
NO_RIGHTS = ("not enough rights", "chat not found", "chat_admin_required", "have no rights")
IN_CHAT = (ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER,
           ChatMemberStatus.RESTRICTED)


class ChatNotices(Protocol):
    """The notices about chats, sent by the worker's TelegramNotifier (bot/notifier.py)."""

    async def chat_access_granted(self, notice: AccessGranted) -> None: ...

    async def chat_access_removed(self, notice: AccessRemoved) -> None: ...

    async def chat_unmanageable(self, chat_id: int, problem: str, key: str) -> None: ...


class TelegramChats:
    """`notifier` sends the notices (the worker); the bot's own handlers only make links and need none."""

    def __init__(self, bot: Bot, notifier: ChatNotices | None = None) -> None:
        self._bot = bot
        self._notifier = notifier

    async def invite_link(self, chat_id: int, user_id: int, *, expire_at: datetime, join_request: bool) -> str:
        name = f"user {user_id}"
        if join_request:
            link = await _call(chat_id, self._bot.create_chat_invite_link(
                chat_id, name=name, expire_date=expire_at, creates_join_request=True))
        else:
            link = await _call(chat_id, self._bot.create_chat_invite_link(
                chat_id, name=name, expire_date=expire_at, member_limit=1))
        return link.invite_link

    async def remove_member(self, chat_id: int, user_id: int) -> None:
        try:
            await _call(chat_id, self._bot.ban_chat_member(chat_id, user_id))
        except TelegramBadRequest as err:
            if "user not found" not in err.message.lower():
                raise  # a user Telegram does not know is in no chat: nothing to remove
            return
        await _call(chat_id, self._bot.unban_chat_member(chat_id, user_id, only_if_banned=True))

    async def has_member(self, chat_id: int, user_id: int) -> bool:
        member = await _call(chat_id, self._bot.get_chat_member(chat_id, user_id))
        return member.status in IN_CHAT

    async def access_granted(self, notice: AccessGranted) -> None:
        if self._notifier is not None:
            await self._notifier.chat_access_granted(notice)

    async def access_removed(self, notice: AccessRemoved) -> None:
        if self._notifier is not None:
            await self._notifier.chat_access_removed(notice)

    async def chat_unmanageable(self, chat_id: int, problem: str, key: str) -> None:
        if self._notifier is not None:
            await self._notifier.chat_unmanageable(chat_id, problem, key)


async def _call(chat_id: int, call: Awaitable[T]) -> T:
    try:
        return await call
    except TelegramRetryAfter as err:
        raise ChatBusy(f"chat {chat_id}: Telegram asks to wait {err.retry_after} s") from err
    except TelegramForbiddenError as err:
        raise ChatUnmanageable(chat_id, err.message) from err
    except TelegramBadRequest as err:
        if any(marker in err.message.lower() for marker in NO_RIGHTS):
            raise ChatUnmanageable(chat_id, err.message) from err
        raise

