"""The fake Bot API's channels and supergroups behave as the Bot API documents them, seen through aiogram over
HTTP: one-time invite links, ban then unban, join requests, the bot's rights, and Telegram's errors."""

from __future__ import annotations

import aiohttp
import pytest
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import ChatMemberAdministrator

from tests.bot.conftest import BOT_TOKEN, USER_ID

CHAT = -1001234567890
OTHER_USER = 778
BOT_ID = int(BOT_TOKEN.split(":")[0])


@pytest.fixture
def chat(fake):
    fake.groups.clock = lambda: 1_800_000_000
    return fake.groups.add_chat(CHAT, "Members only")


async def test_a_link_with_member_limit_one_admits_one_user_then_nobody(fake, bot, chat):
    link = await bot.create_chat_invite_link(CHAT, member_limit=1, expire_date=1_800_086_400)

    assert link.member_limit == 1 and link.expire_date.timestamp() == 1_800_086_400 and not link.creates_join_request
    assert fake.groups.join(CHAT, USER_ID, link.invite_link)
    assert not fake.groups.join(CHAT, OTHER_USER, link.invite_link)
    member = await bot.get_chat_member(CHAT, USER_ID)
    assert member.status == ChatMemberStatus.MEMBER
    assert (await bot.get_chat_member(CHAT, OTHER_USER)).status == ChatMemberStatus.LEFT


async def test_an_expired_or_revoked_link_admits_nobody(fake, bot, chat):
    expired = await bot.create_chat_invite_link(CHAT, member_limit=1, expire_date=1_800_000_000)
    revoked = await bot.create_chat_invite_link(CHAT, member_limit=1)
    await bot.revoke_chat_invite_link(CHAT, revoked.invite_link)

    assert not fake.groups.join(CHAT, USER_ID, expired.invite_link)
    assert not fake.groups.join(CHAT, USER_ID, revoked.invite_link)
    assert not fake.groups.join(CHAT, USER_ID, "https://t.me/+forged")


async def test_a_join_request_link_cannot_have_a_member_limit(bot, chat):
    with pytest.raises(TelegramBadRequest, match="member limit"):
        await bot.create_chat_invite_link(CHAT, member_limit=1, creates_join_request=True)
    with pytest.raises(TelegramBadRequest, match="member limit"):
        await bot.create_chat_invite_link(CHAT, member_limit=0)


async def test_ban_removes_and_keeps_out_until_unban_lets_them_join_again(fake, bot, chat):
    first = await bot.create_chat_invite_link(CHAT, member_limit=1)
    fake.groups.join(CHAT, USER_ID, first.invite_link)

    assert await bot.ban_chat_member(CHAT, USER_ID)
    assert fake.groups.status(CHAT, USER_ID) == "kicked"
    second = await bot.create_chat_invite_link(CHAT, member_limit=1)
    assert not fake.groups.join(CHAT, USER_ID, second.invite_link)

    assert await bot.unban_chat_member(CHAT, USER_ID, only_if_banned=True)
    assert fake.groups.status(CHAT, USER_ID) == "left"
    assert fake.groups.join(CHAT, USER_ID, second.invite_link)


async def test_unban_only_if_banned_leaves_a_member_in_and_without_it_removes_them(fake, bot):
    fake.groups.add_chat(CHAT, members=(USER_ID,))

    await bot.unban_chat_member(CHAT, USER_ID, only_if_banned=True)
    assert fake.groups.is_member(CHAT, USER_ID)
    await bot.unban_chat_member(CHAT, USER_ID)
    assert fake.groups.status(CHAT, USER_ID) == "left"


async def test_join_request_is_an_update_the_bot_approves_or_declines(fake, bot, chat):
    update = await fake.groups.request_join(fake, CHAT, USER_ID)
    await fake.groups.request_join(fake, CHAT, OTHER_USER)

    assert update["chat_join_request"]["chat"]["id"] == CHAT
    assert update["chat_join_request"]["from"]["id"] == USER_ID
    assert await bot.approve_chat_join_request(CHAT, USER_ID)
    assert await bot.decline_chat_join_request(CHAT, OTHER_USER)
    assert fake.groups.is_member(CHAT, USER_ID) and fake.groups.status(CHAT, OTHER_USER) == "left"
    with pytest.raises(TelegramBadRequest, match="HIDE_REQUESTER_MISSING"):
        await bot.approve_chat_join_request(CHAT, OTHER_USER)


async def test_the_bot_sees_its_own_rights_in_the_chat(fake, bot):
    fake.groups.add_chat(CHAT, "Channel", type_="channel", can_restrict_members=False)

    me = await bot.get_chat_member(CHAT, BOT_ID)
    assert isinstance(me, ChatMemberAdministrator) and me.can_invite_users and not me.can_restrict_members
    admins = await bot.get_chat_administrators(CHAT)
    assert {admin.user.id for admin in admins} == {42, BOT_ID}
    info = await bot.get_chat(CHAT)
    assert info.type == "channel" and info.title == "Channel"


async def test_without_the_right_the_bot_is_refused_and_once_removed_it_is_forbidden(fake, bot, chat):
    fake.groups.take_rights(CHAT, can_invite_users=True)
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.ban_chat_member(CHAT, USER_ID)
    await bot.create_chat_invite_link(CHAT, member_limit=1)

    fake.groups.take_rights(CHAT, kicked=True)
    with pytest.raises(TelegramForbiddenError, match="kicked"):
        await bot.create_chat_invite_link(CHAT, member_limit=1)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(-100999)


async def test_errors_on_demand_rate_limit_and_unknown_user(fake, bot, chat):
    fake.rate_limit("banChatMember", 7, chat_id=CHAT)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.ban_chat_member(CHAT, USER_ID)
    assert info.value.retry_after == 7
    assert await bot.ban_chat_member(CHAT, USER_ID)
    with pytest.raises(TelegramBadRequest, match="user not found"):
        await bot.unban_chat_member(CHAT, 0)


async def test_a_person_joins_over_http_and_sees_the_members(fake_telegram, bot):
    fake, url = fake_telegram
    fake.groups.add_chat(CHAT)
    link = await bot.create_chat_invite_link(CHAT, member_limit=1)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/fake/join", json={"chat_id": CHAT, "user_id": USER_ID,
                                                         "link": link.invite_link}) as joined:
            assert joined.status == 200 and (await joined.json())["joined"] is True
        async with session.post(f"{url}/fake/join", data={"chat_id": str(CHAT), "user_id": str(OTHER_USER),
                                                         "link": link.invite_link}) as refused:
            assert refused.status == 403
        async with session.get(f"{url}/fake/members") as members:
            assert await members.json() == {str(CHAT): {str(USER_ID): "member"}}
