"""The admin dashboard's documents: one-time sign-in links, sessions and the audit of actions.

Tokens are stored as their SHA-256 only: a copy of the database does not sign anyone in. Expiry is checked in
every query (and a TTL index removes old rows), so an expired row is refused even before MongoDB deletes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from db.record import Record


class AdminLoginToken(Record):
    token_hash: str
    user_id: int
    expires_at: datetime
    used_at: datetime | None = None

    class Settings:
        name = "admin_login_tokens"
        indexes = [
            IndexModel([("token_hash", ASCENDING)], unique=True, name="token_unique"),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=86400, name="expire"),
        ]


class AdminSession(Record):
    session_hash: str
    user_id: int
    role: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    class Settings:
        name = "admin_sessions"
        indexes = [
            IndexModel([("session_hash", ASCENDING)], unique=True, name="session_unique"),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expire"),
        ]


class AdminAudit(Record):
    """Who did what to which object, written before the action's answer."""

    admin_id: int
    role: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime

    class Settings:
        name = "admin_audit"
        indexes = [
            IndexModel([("at", DESCENDING)], name="at"),
            IndexModel([("target", ASCENDING), ("at", DESCENDING)], name="target_at"),
        ]


ADMIN_DOCUMENTS: list[type[Record]] = [AdminLoginToken, AdminSession, AdminAudit]
