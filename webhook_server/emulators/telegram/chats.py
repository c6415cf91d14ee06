"""Channels and supergroups in the fake Bot API: who is a member of which chat, invite links, bans, join requests.

Written from core.telegram.org/bots/api (createChatInviteLink, banChatMember, unbanChatMember,
approveChatJoinRequest, declineChatJoinRequest, getChat, getChatMember, getChatAdministrators):
- an invite link with `member_limit` admits that many users, then no more; one past `expire_date` admits
  nobody; `creates_join_request` links cannot have a member limit, and joining through one sends the bot a
  `chat_join_request` update instead of making a member;
- banChatMember removes a member and keeps them out (status "kicked"); unbanChatMember lets them join again,
  and without `only_if_banned` it also removes a member who was not banned;
- the bot acts only where it is an administrator with the right for the act (can_invite_users,
  can_restrict_members): otherwise 400 "not enough rights"; removed from the chat, 403.
Tests set chats up with `add_chat`, move users with `join` / `request_join`, and read `status`; a person joins
through `POST /fake/join` and sees who is where at `GET /fake/members` (`ymds fake-telegram --chat -100...`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from webhook_server.emulators.telegram import FakeTelegram

Method = Callable[[dict[str, Any], int], Awaitable[Any]]
MAX_MEMBER_LIMIT = 99999
OWNER_ID = 42  # the chat's creator, a person
IN_CHAT = ("creator", "administrator", "member", "restricted")


def _error(status: int, description: str) -> Exception:
    from webhook_server.emulators.telegram import ApiError  # the package imports this module

    return ApiError(status, description)


@dataclass(slots=True)
class FakeLink:
    invite_link: str
    member_limit: int | None
    expire_date: int | None
    creates_join_request: bool
    name: str | None
    used: int = 0
    revoked: bool = False


@dataclass(slots=True)
class FakeChat:
    id: int
    title: str
    type: str = "supergroup"  # or "channel"
    bot_status: str = "administrator"  # "member", "left" or "kicked" once the owner took the bot's rights away
    can_invite_users: bool = True
    can_restrict_members: bool = True
    members: dict[int, str] = field(default_factory=dict)  # user id → status: member, kicked, left, ...
    links: dict[str, FakeLink] = field(default_factory=dict)
    join_requests: set[int] = field(default_factory=set)  # users whose request waits for the bot


@dataclass(slots=True)
class FakeChats:
    chats: dict[int, FakeChat] = field(default_factory=dict)
    clock: Callable[[], int] = field(default=lambda: int(time.time()))  # the fake's own clock, for expire_date

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/fake/join", self.join_view), web.get("/fake/members", self.members_view)]

    async def join_view(self, request: web.Request) -> web.Response:
        """A person opens an invite link: form or JSON chat_id, user_id, link; 403 when the link admits nobody."""
        form = await request.json() if request.content_type == "application/json" else dict(await request.post())
        chat_id, user_id = _int(form.get("chat_id")), _int(form.get("user_id"))
        if chat_id not in self.chats or user_id is None:
            return web.json_response({"joined": False, "error": "unknown chat_id or user_id"}, status=400)
        joined = self.join(chat_id, user_id, str(form.get("link") or ""))
        return web.json_response({"joined": joined}, status=200 if joined else 403)

    async def members_view(self, request: web.Request) -> web.Response:
        """Who is in each chat, and who was banned: {chat_id: {user_id: status}}."""
        return web.json_response({str(chat.id): {str(user): status for user, status in chat.members.items()}
                                  for chat in self.chats.values()})

    def methods(self, fake: FakeTelegram) -> dict[str, Method]:
        return {
            "createchatinvitelink": self._create_link, "revokechatinvitelink": self._revoke_link,
            "banchatmember": self._ban, "unbanchatmember": self._unban,
            "approvechatjoinrequest": partial(self._decide, True),
            "declinechatjoinrequest": partial(self._decide, False),
            "getchat": self._get_chat, "getchatmember": self._get_member,
            "getchatadministrators": self._get_administrators,
        }

    # ---- for tests ----------------------------------------------------------------------------

    def add_chat(self, chat_id: int, title: str = "Private", *, type_: str = "supergroup",
                 members: tuple[int, ...] = (), can_invite_users: bool = True,
                 can_restrict_members: bool = True) -> FakeChat:
        chat = FakeChat(chat_id, title, type_, can_invite_users=can_invite_users,
                        can_restrict_members=can_restrict_members, members=dict.fromkeys(members, "member"))
        self.chats[chat_id] = chat
        return chat

    def status(self, chat_id: int, user_id: int) -> str:
        """The user's status in the chat as getChatMember reports it: member, kicked, left, ..."""
        return self.chats[chat_id].members.get(user_id, "left")

    def is_member(self, chat_id: int, user_id: int) -> bool:
        return self.status(chat_id, user_id) in IN_CHAT

    def join(self, chat_id: int, user_id: int, link: str) -> bool:
        """The user opens an invite link: True when it made them a member (the link's use is counted)."""
        chat = self.chats[chat_id]
        invite = chat.links.get(link)
        if invite is None or invite.revoked or invite.creates_join_request or not self._usable(invite):
            return False
        if chat.members.get(user_id) == "kicked":
            return False
        if self.is_member(chat_id, user_id):
            return True
        invite.used += 1
        chat.members[user_id] = "member"
        return True

    async def joins(self, fake: FakeTelegram, chat_id: int, user_id: int, link: str) -> dict[str, Any] | None:
        """`join`, and when it made a member the `chat_member` update Telegram sends an admin bot (it names the
        link used); None when the link admitted nobody."""
        chat = self.chats[chat_id]
        before = chat.members.get(user_id, "left")
        if not self.join(chat_id, user_id, link) or before in IN_CHAT:
            return None
        invite = chat.links[link]
        return await fake.queue_update({"chat_member": {
            "chat": self._chat_object(chat), "from": _person(user_id), "date": self.clock(),
            "old_chat_member": {"status": before, "user": _person(user_id), **({"until_date": 0}
                                                                               if before == "kicked" else {})},
            "new_chat_member": {"status": "member", "user": _person(user_id)},
            "invite_link": {**self._link_object(invite, 0), "creator": {"id": OWNER_ID, "is_bot": False,
                                                                        "first_name": "Owner"}}}})

    async def request_join(self, fake: FakeTelegram, chat_id: int, user_id: int, *, first_name: str = "Ivan",
                           language_code: str = "en") -> dict[str, Any]:
        """The user asks to join a chat that admits by request: the bot gets a chat_join_request update."""
        chat = self.chats[chat_id]
        chat.join_requests.add(user_id)
        user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        return await fake.queue_update({"chat_join_request": {
            "chat": self._chat_object(chat), "from": user, "user_chat_id": user_id, "date": self.clock()}})

    def take_rights(self, chat_id: int, *, can_invite_users: bool = False, can_restrict_members: bool = False,
                    kicked: bool = False) -> None:
        """The owner takes the bot's rights away, or removes the bot from the chat (`kicked`)."""
        chat = self.chats[chat_id]
        chat.can_invite_users, chat.can_restrict_members = can_invite_users, can_restrict_members
        if kicked:
            chat.bot_status = "kicked"

    # ---- Bot API methods ----------------------------------------------------------------------

    async def _create_link(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        chat = self._chat_for(params, right="can_invite_users")
        limit = _int(params.get("member_limit"))
        joins_by_request = _bool(params.get("creates_join_request"))
        if limit is not None and not 1 <= limit <= MAX_MEMBER_LIMIT:
            raise _error(400, "Bad Request: invalid member limit specified")
        if limit is not None and joins_by_request:
            raise _error(400, "Bad Request: member limit can't be specified for links requiring administrator "
                              "approval")
        link = FakeLink(f"https://t.me/+{secrets.token_urlsafe(12)}", limit, _int(params.get("expire_date")),
                        joins_by_request, params.get("name"))
        chat.links[link.invite_link] = link
        return self._link_object(link, bot_id)

    async def _revoke_link(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        chat = self._chat_for(params, right="can_invite_users")
        link = chat.links.get(str(params.get("invite_link")))
        if link is None:
            raise _error(400, "Bad Request: INVITE_HASH_EXPIRED")
        link.revoked = True
        return self._link_object(link, bot_id)

    async def _ban(self, params: dict[str, Any], bot_id: int) -> bool:
        chat = self._chat_for(params, right="can_restrict_members")
        user_id = self._user(chat, params)
        if chat.members.get(user_id) in ("creator", "administrator"):
            raise _error(400, "Bad Request: user is an administrator of the chat")
        chat.members[user_id] = "kicked"
        return True

    async def _unban(self, params: dict[str, Any], bot_id: int) -> bool:
        chat = self._chat_for(params, right="can_restrict_members")
        user_id = self._user(chat, params)
        status = chat.members.get(user_id, "left")
        if status == "kicked" or (status in ("member", "restricted") and not _bool(params.get("only_if_banned"))):
            chat.members[user_id] = "left"
        return True

    async def _decide(self, approve: bool, params: dict[str, Any], bot_id: int) -> bool:
        chat = self._chat_for(params, right="can_invite_users")
        user_id = self._user(chat, params)
        if user_id not in chat.join_requests:
            raise _error(400, "Bad Request: HIDE_REQUESTER_MISSING")
        chat.join_requests.discard(user_id)
        if approve:
            chat.members[user_id] = "member"
        return True

    async def _get_chat(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        chat = self._chat_for(params)
        return {**self._chat_object(chat), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                                        "premium_subscription": False, "gifts_from_channels": False}}

    async def _get_member(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        chat = self._chat_for(params)
        user_id = _int(params.get("user_id"))
        if user_id == bot_id:
            return self._bot_member(chat, bot_id)
        user_id = self._user(chat, params)
        if user_id == OWNER_ID:
            return {"status": "creator", "user": _person(user_id), "is_anonymous": False}
        status = chat.members.get(user_id, "left")
        member: dict[str, Any] = {"status": status, "user": _person(user_id)}
        if status == "kicked":
            member["until_date"] = 0
        return member

    async def _get_administrators(self, params: dict[str, Any], bot_id: int) -> list[dict[str, Any]]:
        chat = self._chat_for(params)
        admins = [{"status": "creator", "user": _person(OWNER_ID), "is_anonymous": False}]
        if chat.bot_status == "administrator":
            admins.append(self._bot_member(chat, bot_id))
        return admins

    # ---- helpers ------------------------------------------------------------------------------

    def _chat_for(self, params: dict[str, Any], *, right: str | None = None) -> FakeChat:
        chat = self.chats.get(_int(params.get("chat_id")) or 0)
        if chat is None:
            raise _error(400, "Bad Request: chat not found")
        if chat.bot_status == "kicked":
            raise _error(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        if right is not None and (chat.bot_status != "administrator" or not getattr(chat, right)):
            raise _error(400, "Bad Request: not enough rights to " + (
                "manage chat invite link" if right == "can_invite_users" else "restrict/unrestrict chat member"))
        return chat

    def _user(self, chat: FakeChat, params: dict[str, Any]) -> int:
        user_id = _int(params.get("user_id"))
        if user_id is None or user_id <= 0:
            raise _error(400, "Bad Request: user not found")
        return user_id

    def _usable(self, link: FakeLink) -> bool:
        if link.expire_date is not None and link.expire_date <= self.clock():
            return False
        return link.member_limit is None or link.used < link.member_limit

    def _chat_object(self, chat: FakeChat) -> dict[str, Any]:
        return {"id": chat.id, "type": chat.type, "title": chat.title}

    def _bot_member(self, chat: FakeChat, bot_id: int) -> dict[str, Any]:
        bot = {"id": bot_id, "is_bot": True, "first_name": "YMDS"}
        if chat.bot_status != "administrator":
            return {"status": chat.bot_status, "user": bot, **({"until_date": 0} if chat.bot_status == "kicked"
                                                                 else {})}
        rights = dict.fromkeys(("can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                                "can_promote_members", "can_change_info", "can_post_stories", "can_edit_stories",
                                "can_delete_stories", "can_send_welcome_messages", "is_anonymous"), False)
        return {"status": "administrator", "user": bot, "can_be_edited": False, **rights, "can_manage_chat": True,
                "can_invite_users": chat.can_invite_users, "can_restrict_members": chat.can_restrict_members}

    def _link_object(self, link: FakeLink, bot_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = {"invite_link": link.invite_link,
                                  "creator": {"id": bot_id, "is_bot": True, "first_name": "YMDS"},
                                  "creates_join_request": link.creates_join_request, "is_primary": False,
                                  "is_revoked": link.revoked}
        for name in ("member_limit", "expire_date", "name"):
            if getattr(link, name) is not None:
                answer[name] = getattr(link, name)
        return answer


def _person(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Ivan"}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
