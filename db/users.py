"""The bot's own state: each Telegram user's language, and which notices already reached whom."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from db.record import Record


class ReceiptContact(BaseModel):
    """Where a fiscal receipt is sent (54-FZ: an e-mail or a phone). Personal data: shown masked, never logged."""

    email: str | None = None
    phone: str | None = None  # digits with the country code, e.g. 79001234567


class BotUser(Record):
    """A Telegram user the bot has seen. Only what the bot needs: no names; the public @username (lower case)
    so that an admin can find the user on the dashboard; /deletedata deletes the whole record."""

    user_id: int
    username: str | None = None
    language: str | None = None
    language_chosen: bool = False  # set by /language: Telegram's language_code no longer overrides it
    blocked_at: datetime | None = None  # the user blocked the bot (403 on send); cleared when they write again
    receipt_contact: ReceiptContact | None = None  # the last contact given for receipts: prefilled next time
    created_at: datetime
    updated_at: datetime

    class Settings:
        name = "bot_users"
        indexes = [IndexModel([("user_id", ASCENDING)], unique=True, name="user_unique"),
                   IndexModel([("username", ASCENDING)], name="username", sparse=True)]


class SentNotice(Record):
    """One notice delivered (or given up on) to one recipient, so a retried job never sends it twice."""

    key: str  # e.g. "paid:inv_...:user"
    chat_id: int
    outcome: str  # "sent" or "blocked"
    at: datetime

    class Settings:
        name = "sent_notices"
        indexes = [IndexModel([("key", ASCENDING)], unique=True, name="key_unique")]


async def find_user(user_id: int) -> BotUser | None:
    return await BotUser.find_one(BotUser.user_id == user_id)


async def stored_language(user_id: int) -> str | None:
    user = await find_user(user_id)
    return user.language if user else None


def normal_username(username: str | None) -> str | None:
    return username.lstrip("@").lower() or None if username else None


async def remember_user(user_id: int, language: str, *, chosen: bool, now: datetime,
                        username: str | None = None) -> None:
    """Create or update the user. A language the user chose (/language) is only replaced by another choice."""
    collection = BotUser.get_motor_collection()
    await collection.update_one(
        {"user_id": user_id},
        {"$setOnInsert": {"user_id": user_id, "language": language, "language_chosen": chosen, "created_at": now},
         "$set": {"updated_at": now, "blocked_at": None, "username": normal_username(username)}},
        upsert=True,
    )
    update = {"language": language, "language_chosen": True} if chosen else {"language": language}
    where: dict[str, object] = {"user_id": user_id} if chosen else {"user_id": user_id, "language_chosen": False}
    await collection.update_one(where, {"$set": update})


async def remember_username(user_id: int, username: str | None, now: datetime) -> None:
    await BotUser.get_motor_collection().update_one(
        {"user_id": user_id}, {"$set": {"username": normal_username(username), "updated_at": now}})


async def find_by_username(username: str) -> BotUser | None:
    name = normal_username(username)
    return await BotUser.find_one({"username": name}) if name else None


async def mark_blocked(user_id: int, now: datetime) -> None:
    await BotUser.get_motor_collection().update_one(
        {"user_id": user_id, "blocked_at": None}, {"$set": {"blocked_at": now}}
    )


async def already_sent(key: str) -> bool:
    return await SentNotice.find_one(SentNotice.key == key) is not None


async def record_sent(key: str, chat_id: int, outcome: str, now: datetime) -> None:
    """Record a delivery; a second record of the same key (a concurrent rerun) changes nothing."""
    try:
        await SentNotice(key=key, chat_id=chat_id, outcome=outcome, at=now).insert()
    except DuplicateKeyError:
        pass
