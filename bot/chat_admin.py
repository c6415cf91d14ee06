"""The domain's ChatAdmin over the Bot API client (bot/bot_api.py, no aiogram: the worker runs it): invite links,
ban then unban, membership; Telegram's errors mapped to ChatUnmanageable (the bot lost its rights: not worth
retrying) and ChatBusy (429: the job retries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from billing.chat_ports import AccessGranted, AccessRemoved
from billing.errors import ChatBusy, ChatUnmanageable
from bot.bot_api import BotApi, BotApiBadRequest, BotApiForbidden, BotApiRetryAfter

NO_RIGHTS = ("not enough rights", "chat not found", "chat_admin_required", "have no rights")
IN_CHAT = ("creator", "administrator", "member", "restricted")  # ChatMember.status of someone inside


class ChatNotices(Protocol):
    """The notices about chats, sent by the worker's TelegramNotifier (bot/notifier.py)."""

    async def chat_access_granted(self, notice: AccessGranted) -> None: ...

    async def chat_access_removed(self, notice: AccessRemoved) -> None: ...

    async def chat_unmanageable(self, chat_id: int, problem: str, key: str) -> None: ...


class TelegramChats:
    """`notifier` sends the notices (the worker); the bot's own handlers only make links and need none."""

    def __init__(self, api: BotApi, notifier: ChatNotices | None = None) -> None:
        self._api = api
        self._notifier = notifier

    async def invite_link(self, chat_id: int, user_id: int, *, expire_at: datetime, join_request: bool) -> str:
        params: dict[str, Any] = {"chat_id": chat_id, "name": f"user {user_id}",
                                  "expire_date": int(expire_at.timestamp())}
        if join_request:
            params["creates_join_request"] = True
        else:
            params["member_limit"] = 1
        link = await self._call(chat_id, "createChatInviteLink", params)
        return str(link["invite_link"])

    async def remove_member(self, chat_id: int, user_id: int) -> None:
        try:
            await self._call(chat_id, "banChatMember", {"chat_id": chat_id, "user_id": user_id})
        except BotApiBadRequest as err:
            if "user not found" not in err.description.lower():
                raise  # a user Telegram does not know is in no chat: nothing to remove
            return
        await self._call(chat_id, "unbanChatMember", {"chat_id": chat_id, "user_id": user_id, "only_if_banned": True})

    async def has_member(self, chat_id: int, user_id: int) -> bool:
        member = await self._call(chat_id, "getChatMember", {"chat_id": chat_id, "user_id": user_id})
        return member.get("status") in IN_CHAT

    async def access_granted(self, notice: AccessGranted) -> None:
        if self._notifier is not None:
            await self._notifier.chat_access_granted(notice)

    async def access_removed(self, notice: AccessRemoved) -> None:
        if self._notifier is not None:
            await self._notifier.chat_access_removed(notice)

    async def chat_unmanageable(self, chat_id: int, problem: str, key: str) -> None:
        if self._notifier is not None:
            await self._notifier.chat_unmanageable(chat_id, problem, key)

    async def _call(self, chat_id: int, method: str, params: dict[str, Any]) -> Any:
        try:
            return await self._api.call(method, params)
        except BotApiRetryAfter as err:
            raise ChatBusy(f"chat {chat_id}: Telegram asks to wait {err.retry_after} s") from err
        except BotApiForbidden as err:
            raise ChatUnmanageable(chat_id, err.description) from err
        except BotApiBadRequest as err:
            if any(marker in err.description.lower() for marker in NO_RIGHTS):
                raise ChatUnmanageable(chat_id, err.description) from err
            raise
