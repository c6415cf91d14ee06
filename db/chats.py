"""Access to the private chats a plan grants: one row per (user, chat), the invite link given and the removal."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pymongo import ASCENDING, IndexModel

from db.record import Record


class ChatAccessStatus(StrEnum):
    INVITED = "invited"  # a link was given (or a join request approved): the user may be inside
    REMOVED = "removed"  # banned then unbanned after the subscription ended: out, and free to rejoin later
    WHITELISTED = "whitelisted"  # an admin's `/chats allow`: never removed, whatever their subscription


class ChatAccess(Record):
    """Written before any Bot API call about the pair; the unique index makes a re-run find it instead of adding one.
    `link_period` is the subscription period (its end, Unix ms) the link was made for: a re-run job for the same
    period keeps the link; a renewal or /access makes a fresh one."""

    user_id: int
    chat_id: int
    plan: str
    status: ChatAccessStatus = ChatAccessStatus.INVITED
    invite_link: str | None = None
    link_period: int | None = None
    invited_at: datetime | None = None
    removed_at: datetime | None = None
    removal_reason: str | None = None

    class Settings:
        name = "chat_access"
        indexes = [
            IndexModel([("user_id", ASCENDING), ("chat_id", ASCENDING)], unique=True, name="user_chat_unique"),
            IndexModel([("status", ASCENDING), ("chat_id", ASCENDING)], name="status_chat"),
        ]


CHAT_DOCUMENTS: list[type[Record]] = [ChatAccess]
