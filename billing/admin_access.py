"""Who may use the admin dashboard, and how they prove it: Telegram Login Widget data, one-time sign-in links,
server-side sessions with a CSRF token each. No aiohttp here: the web layer only carries cookies and forms.

Roles (ADMIN_ROLES, e.g. `123:owner,456:support`): every id in ADMIN_IDS is an owner unless ADMIN_ROLES names
another role for it. `owner` may do everything; `support` may view, refund and grant.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from pymongo import ReturnDocument

from billing.signing import secrets_equal
from db.admin import AdminAudit, AdminLoginToken, AdminSession

LOGIN_LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)
WIDGET_MAX_AGE = timedelta(days=1)  # Telegram: check auth_date to refuse outdated data


class Role(StrEnum):
    OWNER = "owner"
    SUPPORT = "support"


SUPPORT_ACTIONS = frozenset({"view", "refund", "grant"})


def may(role: Role | str, action: str) -> bool:
    return role == Role.OWNER or (role == Role.SUPPORT and action in SUPPORT_ACTIONS)


def parse_roles(admin_ids: list[int], spec: str | None) -> dict[int, Role]:
    """`123:owner,456:support` over the ADMIN_IDS default of owner; ValueError on a malformed entry."""
    roles = dict.fromkeys(admin_ids, Role.OWNER)
    for entry in filter(None, (part.strip() for part in (spec or "").split(","))):
        user_id, _, role = entry.partition(":")
        if not user_id.strip().isdigit():
            raise ValueError(f"ADMIN_ROLES entry {entry!r}: expected telegram_id:role")
        roles[int(user_id)] = Role(role.strip())
    return roles


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_widget_login(data: Mapping[str, str], bot_token: str, now: datetime) -> int | None:
    """The Telegram id the Login Widget vouches for, or None. As core.telegram.org/widgets/login specifies: the
    hash is HMAC-SHA256 of the data-check-string (every field but `hash`, `key=value`, sorted, joined by \\n),
    keyed by SHA256(bot_token); auth_date must be recent."""
    given = data.get("hash", "")
    check_string = "\n".join(f"{key}={data[key]}" for key in sorted(data) if key != "hash")
    secret = hashlib.sha256(bot_token.encode()).digest()
    expected = hmac.new(secret, check_string.encode(), hashlib.sha256).hexdigest()
    if not given.isascii() or not secrets_equal(expected, given):
        return None
    auth_date, user_id = data.get("auth_date", ""), data.get("id", "")
    if not auth_date.isdigit() or not user_id.isdigit():
        return None
    age = now.timestamp() - int(auth_date)
    if not -60 <= age <= WIDGET_MAX_AGE.total_seconds():
        return None
    return int(user_id)


async def issue_login_token(user_id: int, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    await AdminLoginToken(token_hash=_digest(token), user_id=user_id, expires_at=now + LOGIN_LINK_TTL).insert()
    return token


async def redeem_login_token(token: str, now: datetime) -> int | None:
    """The user the link was issued to, once: a conditional update marks it used, so two clicks sign in once."""
    collection = AdminLoginToken.get_motor_collection()
    row = await collection.find_one_and_update(
        {"token_hash": _digest(token), "used_at": None, "expires_at": {"$gt": now}},
        {"$set": {"used_at": now}}, return_document=ReturnDocument.AFTER)
    return int(row["user_id"]) if row else None


async def open_session(user_id: int, role: Role, now: datetime) -> str:
    session_id = secrets.token_urlsafe(32)
    await AdminSession(session_hash=_digest(session_id), user_id=user_id, role=role.value,
                       csrf_token=secrets.token_urlsafe(32), created_at=now, expires_at=now + SESSION_TTL).insert()
    return session_id


async def find_session(session_id: str, now: datetime) -> AdminSession | None:
    return await AdminSession.find_one({"session_hash": _digest(session_id), "expires_at": {"$gt": now}})


async def close_session(session_id: str) -> None:
    await AdminSession.find({"session_hash": _digest(session_id)}).delete()


async def audit(session: AdminSession, action: str, target: str, outcome: str, now: datetime,
                **detail: str) -> None:
    await AdminAudit(admin_id=session.user_id, role=session.role, action=action, target=target, outcome=outcome,
                     detail=dict(detail), at=now).insert()
