"""The private chats a plan grants, through the real seams: a payment over our notification route, real RQ jobs,
the worker's notices and Bot API calls over HTTP to the fake Bot API, the scheduler's tick on the injected clock."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from billing import chat_access
from billing.chat_access import EXPIRED, grant_access
from billing.plans import Catalogue, load_plans
from billing.renewals.scheduler import tick
from bot.main import build_dispatcher
from bot.notifier import chats_for
from db.chats import ChatAccess, ChatAccessStatus
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, last_text, send
from tests.helpers import new_invoice, notification, post_notification
from webhook_server.keys import LEDGER, PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services

CHAT, OTHER_CHAT = -1001234567890, -1009876543210
LINK = re.compile(r"https://t\.me/\+\S+")
PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900 }
chats = [-1001234567890, -1009876543210]
"""


@pytest.fixture
def plans(tmp_path: Path) -> Catalogue:
    path = tmp_path / "plans.toml"
    path.write_text(PLANS, encoding="utf-8")
    return load_plans(path)


@pytest.fixture
def chats(fake, clock):
    fake.groups.clock = lambda: int(clock().timestamp())  # the fake's links expire on the test's clock
    fake.groups.add_chat(CHAT, "Members only")
    fake.groups.add_chat(OTHER_CHAT, "Members' channel", type_="channel")
    return fake.groups


@pytest.fixture
def chat_worker(worker, notifier):
    worker.runtime.chats = chats_for(notifier)
    return worker


async def pay(client, operation_id: str | None = None) -> dict:
    invoice = await new_invoice(client, user_id=USER_ID)
    assert await post_notification(client, notification(invoice["label"], operation_id=operation_id)) == 200
    return invoice


async def run_tick(client, clock, *, grace_days: int = 0) -> None:
    services = renewal_services(client.app[SETTINGS], client.app[QUEUES], client.app[PROVIDERS], clock)
    await tick(clock(), replace(services, policy=replace(services.policy, grace_days=grace_days)))


def links_in(text: str) -> list[str]:
    return LINK.findall(text)


async def test_a_paid_plan_gives_one_one_time_link_per_chat_recorded_per_user_and_chat(
        client, chat_worker, fake, chats, clock):
    await pay(client)
    await chat_worker.drain()

    links = links_in(last_text(fake, USER_ID))
    assert len(links) == 2
    created = fake.sent("createChatInviteLink")
    assert {int(params["chat_id"]) for params in created} == {CHAT, OTHER_CHAT}
    assert all(params["member_limit"] == "1" for params in created)
    assert all(0 < int(params["expire_date"]) - clock().timestamp() <= 86400 for params in created)
    rows = await ChatAccess.find(ChatAccess.user_id == USER_ID).to_list()
    assert {row.chat_id: row.invite_link for row in rows} == {
        int(params["chat_id"]): link for params, link in zip(created, links, strict=True)}
    assert chats.join(CHAT, USER_ID, links[0]) and not chats.join(CHAT, USER_ID + 1, links[0])


async def test_a_rerun_of_the_access_job_makes_no_second_link_for_the_same_period(
        client, chat_worker, fake, chats, notifier, plans, clock):
    await pay(client)
    await chat_worker.drain()
    [row, _] = await ChatAccess.find(ChatAccess.user_id == USER_ID).to_list()

    assert await grant_access(USER_ID, row.link_period, chats=chats_for(notifier), plans=plans, now=clock()) == 2
    assert len(fake.sent("createChatInviteLink")) == 2, "the recorded links are kept"
    assert len([m for m in fake.bot_messages(USER_ID) if links_in(m["text"])]) == 1, "and not sent again"
    assert await grant_access(USER_ID, row.link_period - 1, chats=chats_for(notifier), plans=plans,
                              now=clock()) == 0, "a job for another period gives nothing"


async def test_access_gives_fresh_links_to_a_subscriber_and_subscribe_to_anyone_else(
        client, chat_worker, fake, chats, dispatcher, bot):
    await send(dispatcher, bot, "/access")
    assert "/subscribe" in last_text(fake, USER_ID)

    await pay(client)
    await chat_worker.drain()
    first = links_in(last_text(fake, USER_ID))
    await send(dispatcher, bot, "/access")
    fresh = links_in(last_text(fake, USER_ID))
    assert len(fresh) == 2 and not set(fresh) & set(first)
    assert chats.join(OTHER_CHAT, USER_ID, fresh[1])


async def test_the_paid_user_joins_and_expiry_past_the_grace_removes_and_tells_them(
        client, chat_worker, fake, chats, clock, monkeypatch):
    """The issue's Done when: paid → link → joined through it → the period and GRACE_DAYS pass → the scheduler's
    tick → banned then unbanned in every chat of the plan, told why with /subscribe."""
    monkeypatch.setattr(chat_access, "BATCH", 1)  # the sweep pages through every row, not only the first page
    await pay(client)
    await chat_worker.drain()
    for chat_id, link in zip((CHAT, OTHER_CHAT), links_in(last_text(fake, USER_ID)), strict=True):
        assert chats.join(chat_id, USER_ID, link)

    clock.now += timedelta(days=31)
    await run_tick(client, clock, grace_days=2)
    await chat_worker.drain()
    assert chats.is_member(CHAT, USER_ID), "still within GRACE_DAYS"

    clock.now += timedelta(days=2)
    await run_tick(client, clock, grace_days=2)
    await chat_worker.drain()
    assert not chats.is_member(CHAT, USER_ID) and not chats.is_member(OTHER_CHAT, USER_ID)
    assert chats.status(CHAT, USER_ID) == "left", "unbanned after the ban: a later subscription can rejoin"
    assert [p["only_if_banned"] for p in fake.sent("unbanChatMember")] == ["true", "true"]
    removed = [m["text"] for m in fake.bot_messages(USER_ID) if "removed" in m["text"]]
    assert len(removed) == 2 and all("/subscribe" in text for text in removed)
    rows = await ChatAccess.find(ChatAccess.user_id == USER_ID).to_list()
    assert {(row.status, row.removal_reason) for row in rows} == {(ChatAccessStatus.REMOVED, EXPIRED)}

    await run_tick(client, clock, grace_days=2)
    await chat_worker.drain()
    assert len(fake.sent("banChatMember")) == 2, "recorded: the next sweep removes nobody twice"


async def test_a_renewed_subscriber_is_left_inside_and_given_a_link_only_where_they_are_not(
        client, chat_worker, fake, chats, clock):
    await pay(client)
    await chat_worker.drain()
    assert chats.join(CHAT, USER_ID, links_in(last_text(fake, USER_ID))[0])
    clock.now += timedelta(days=29)
    await pay(client)
    await chat_worker.drain()
    assert [int(p["chat_id"]) for p in fake.sent("createChatInviteLink")] == [CHAT, OTHER_CHAT, OTHER_CHAT]
    assert len(links_in(last_text(fake, USER_ID))) == 1

    clock.now += timedelta(days=2)
    await run_tick(client, clock)
    await chat_worker.drain()
    assert chats.is_member(CHAT, USER_ID) and fake.sent("banChatMember") == []


async def test_a_refund_removes_at_once_without_the_grace(client, chat_worker, fake, chats, queues):
    await pay(client, operation_id="9001")
    await chat_worker.drain()
    assert chats.join(CHAT, USER_ID, links_in(last_text(fake, USER_ID))[0])

    await queues.enqueue_reversal("yoomoney", "9001", "refund")
    await chat_worker.drain()
    assert not chats.is_member(CHAT, USER_ID)
    assert any("returned" in m["text"] for m in fake.bot_messages(USER_ID))


async def test_429_is_retried_and_a_chat_the_bot_lost_is_reported_to_the_admin_chat_once(
        client, chat_worker, fake, chats, clock, queues):
    await pay(client)
    await chat_worker.drain()
    chats.join(CHAT, USER_ID, links_in(last_text(fake, USER_ID))[0])
    chats.take_rights(OTHER_CHAT, kicked=True)
    fake.rate_limit("banChatMember", 5, chat_id=CHAT)

    clock.now += timedelta(days=31)
    await run_tick(client, clock)
    await chat_worker.drain()
    await run_tick(client, clock)
    await chat_worker.drain()

    assert not chats.is_member(CHAT, USER_ID), "the 429 was retried"
    assert len(fake.sent("banChatMember", chat_id=CHAT)) == 2
    alerts = [m["text"] for m in fake.bot_messages(ADMIN_CHAT_ID) if str(OTHER_CHAT) in m["text"]]
    assert len(alerts) == 1 and "kicked" in alerts[0]
    row = await ChatAccess.find_one(ChatAccess.user_id == USER_ID, ChatAccess.chat_id == OTHER_CHAT)
    assert row.status is ChatAccessStatus.INVITED, "not dropped: the next sweep tries again"


async def test_join_requests_of_subscribers_are_approved_and_others_declined_with_subscribe(
        client, chat_worker, fake, chats, settings, clock, bot, tmp_path):
    path = tmp_path / "join.toml"
    path.write_text(PLANS + "join_requests = true\n", encoding="utf-8")
    dispatcher = build_dispatcher(settings, load_plans(path), clock=clock, ledger=client.app[LEDGER],
                                  renewal_queue=client.app[QUEUES])
    stranger = USER_ID + 1
    await dispatcher.feed_raw_update(bot, await chats.request_join(fake, CHAT, stranger))
    assert chats.status(CHAT, stranger) == "left" and fake.sent("declineChatJoinRequest")
    assert "/subscribe" in last_text(fake, stranger)

    await pay(client)
    await chat_worker.drain()
    await dispatcher.feed_raw_update(bot, await chats.request_join(fake, CHAT, USER_ID))
    assert chats.is_member(CHAT, USER_ID)
    row = await ChatAccess.find_one(ChatAccess.user_id == USER_ID, ChatAccess.chat_id == CHAT)
    assert row.status is ChatAccessStatus.INVITED, "recorded, so the sweep removes them when access ends"

    clock.now += timedelta(days=31)
    await run_tick(client, clock)
    await chat_worker.drain()
    assert chats.status(CHAT, USER_ID) == "left"


async def test_chats_shows_admins_each_chat_and_the_rights_the_bot_lacks(fake, chats, dispatcher, bot):
    chats.take_rights(OTHER_CHAT, can_invite_users=True)
    await send(dispatcher, bot, "/chats", user_id=ADMIN_ID)
    ready, missing = last_text(fake, ADMIN_ID).splitlines()
    assert ready.startswith("✅ Members only (-1001234567890), plans month")
    assert str(OTHER_CHAT) in missing and "Ban users" in missing and "Invite" not in missing

    chats.take_rights(CHAT, kicked=True)
    await send(dispatcher, bot, "/chats", user_id=ADMIN_ID)
    assert "kicked" in last_text(fake, ADMIN_ID).splitlines()[0]

    await send(dispatcher, bot, "/chats")
    assert "Members only" not in last_text(fake, USER_ID), "for ADMIN_IDS only"


async def test_someone_joining_through_a_shared_link_is_removed_unless_whitelisted(
        client, chat_worker, fake, chats, dispatcher, bot):
    await pay(client)
    await chat_worker.drain()
    own, shared_link = links_in(last_text(fake, USER_ID))[0], (await bot.create_chat_invite_link(CHAT)).invite_link
    await dispatcher.feed_raw_update(bot, await chats.joins(fake, CHAT, USER_ID, own))
    stranger, friend = USER_ID + 1, USER_ID + 2
    await send(dispatcher, bot, f"/chats allow {friend} {CHAT}", user_id=ADMIN_ID)
    assert str(friend) in last_text(fake, ADMIN_ID)
    for user_id in (stranger, friend):
        await dispatcher.feed_raw_update(bot, await chats.joins(fake, CHAT, user_id, shared_link))
    await chat_worker.drain()

    assert chats.is_member(CHAT, USER_ID), "the subscriber stays"
    assert chats.status(CHAT, stranger) == "left" and "/subscribe" in last_text(fake, stranger)
    assert chats.is_member(CHAT, friend), "whitelisted"
    assert [int(p["user_id"]) for p in fake.sent("banChatMember")] == [stranger]


async def test_a_chat_without_the_right_to_invite_is_reported_and_the_other_links_still_go_out(
        client, chat_worker, fake, chats):
    chats.take_rights(OTHER_CHAT, can_restrict_members=True)
    await pay(client)
    await chat_worker.drain()

    assert len(links_in(last_text(fake, USER_ID))) == 1
    [alert] = [m["text"] for m in fake.bot_messages(ADMIN_CHAT_ID) if str(OTHER_CHAT) in m["text"]]
    assert "not enough rights" in alert


async def test_a_former_member_who_pays_again_rejoins_and_is_removed_and_told_again(client, chat_worker, fake, chats,
                                                                                   clock):
    for round_ in (1, 2):
        await pay(client)
        await chat_worker.drain()
        assert chats.join(CHAT, USER_ID, links_in(last_text(fake, USER_ID))[0]), f"round {round_}: joins"
        clock.now += timedelta(days=31)
        await run_tick(client, clock)
        await chat_worker.drain()
        assert chats.status(CHAT, USER_ID) == "left"
    removed = [m["text"] for m in fake.bot_messages(USER_ID) if "removed" in m["text"]]
    assert len(removed) == 4, "told for each chat, each time"


async def test_chats_import_keeps_the_members_already_inside_when_a_chat_is_first_managed(
        client, chat_worker, fake, chats, dispatcher, bot):
    inside = [USER_ID + 10, USER_ID + 11, USER_ID + 12]
    await send(dispatcher, bot, f"/chats import {CHAT} {inside[0]} {inside[1]}\n{inside[2]}", user_id=ADMIN_ID)
    assert "3" in last_text(fake, ADMIN_ID) and str(CHAT) in last_text(fake, ADMIN_ID)
    rows = await ChatAccess.find({"chat_id": CHAT}).to_list()
    assert sorted(row.user_id for row in rows) == inside
    assert {row.status for row in rows} == {ChatAccessStatus.WHITELISTED}
    for wrong in (f"/chats import {CHAT}", f"/chats import -100555 {inside[0]}", f"/chats import {CHAT} ann",
                  f"/chats import {CHAT} 0"):
        await send(dispatcher, bot, wrong, user_id=ADMIN_ID)
        assert last_text(fake, ADMIN_ID).startswith("Usage: /chats import"), wrong
    await send(dispatcher, bot, f"/chats import {CHAT} {USER_ID + 20}")  # not an admin: nothing
    assert await ChatAccess.find({"user_id": USER_ID + 20}).count() == 0

    link = (await bot.create_chat_invite_link(CHAT)).invite_link  # e.g. the chat's old shared link
    for user_id in (inside[0], USER_ID + 30):
        await dispatcher.feed_raw_update(bot, await chats.joins(fake, CHAT, user_id, link))
    await chat_worker.drain()
    assert chats.is_member(CHAT, inside[0]), "imported: kept"
    assert chats.status(CHAT, USER_ID + 30) == "left", "not imported, no subscription: removed"


TRIAL_PLANS = PLANS + "trial_days = 7\n"


async def test_a_trial_of_a_plan_with_chats_gives_the_same_links(client, fake, chats, tmp_path, settings, clock,
                                                                  bot):
    path = tmp_path / "trial.toml"
    path.write_text(TRIAL_PLANS, encoding="utf-8")
    dispatcher = build_dispatcher(settings, load_plans(path), clock=clock, ledger=client.app[LEDGER],
                                  renewal_queue=client.app[QUEUES])
    await send(dispatcher, bot, "/subscribe")
    message = fake.bot_messages(USER_ID)[-1]
    [data] = [button["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for button in row
              if button.get("callback_data", "").startswith("trial:")]
    await dispatcher.feed_raw_update(bot, {"update_id": 70, "callback_query": {
        "id": "cq70", "chat_instance": "1", "data": data, "message": message,
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}})
    links = links_in(last_text(fake, USER_ID))
    assert len(links) == 2 and chats.join(CHAT, USER_ID, links[0])
    assert await ChatAccess.find({"user_id": USER_ID}).count() == 2
