"""The port through which the domain acts in the private chats a plan grants (implemented over aiogram in
bot/chat_admin.py), and the notices it sends about them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class AccessGranted:
    user_id: int
    plan_title: str
    links: tuple[str, ...]  # one per chat: a one-time invite link, or a join-request link the bot approves
    key: str  # the notice is sent once per key (the user and the period, or the /access request)


@dataclass(frozen=True, slots=True)
class AccessRemoved:
    user_id: int
    plan_title: str
    reason: str  # "expired", "refunded" or "unpaid" (joined without a subscription)
    key: str


class ChatAdmin(Protocol):
    async def invite_link(self, chat_id: int, user_id: int, *, expire_at: datetime, join_request: bool) -> str:
        """A new invite link for one user: member_limit=1 (or a join-request link) that expires at `expire_at`.
        Raises ChatUnmanageable (the bot lost its rights) or ChatBusy (429: retry later)."""
        ...

    async def remove_member(self, chat_id: int, user_id: int) -> None:
        """Ban then unban (only_if_banned): the user is out and may join again through a later link. Raises
        ChatUnmanageable or ChatBusy."""
        ...

    async def has_member(self, chat_id: int, user_id: int) -> bool:
        """Whether the user is in the chat now (getChatMember)."""
        ...

    async def access_granted(self, notice: AccessGranted) -> None:
        """Send the user their links, once per notice key."""
        ...

    async def access_removed(self, notice: AccessRemoved) -> None:
        """Tell the user why they were removed, with /subscribe, once per notice key."""
        ...

    async def chat_unmanageable(self, chat_id: int, problem: str, key: str) -> None:
        """Tell the admin chat that the bot cannot act in a chat, once per key."""
        ...


@runtime_checkable
class ChatQueue(Protocol):
    def enqueue_chat_access(self, user_id: int, period_end: int) -> None:
        """Give the user links to the chats of their plan for the period ending at `period_end` (Unix ms); the
        job id names the period, so a repeated enqueue is harmless (called from inside a worker job)."""
        ...

    def enqueue_chat_removal(self, user_id: int, chat_id: int, reason: str, since: int) -> None:
        """Remove the user from the chat and tell them why; idempotent (called from inside a worker job). `since`
        (when they were let in, Unix ms) names the job with the reason: one removal per admission."""
        ...

    async def schedule_chat_removal(self, user_id: int, chat_id: int, reason: str, since: int) -> None:
        """enqueue_chat_removal from the scheduler's event loop, without blocking it; raises LedgerUnavailable."""
        ...
