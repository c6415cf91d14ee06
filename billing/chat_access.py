"""The private channels and groups a plan grants (plans.toml `chats`): links in, removal out, the sweep.

- After a payment's notice, `grant_access` gives the user one link per chat of their plan (a one-time invite
  link, or a join-request link for `join_requests` plans), recorded per (user, chat) before it is sent; a re-run
  for the same period keeps the recorded link. `/access` asks `fresh_links` for new ones.
- `remove_access` takes a user out of one chat once they have no access: past GRACE_DAYS after the end, at
  once after a refund. Ban then unban, so a later subscription can rejoin; the user is told, once.
- `sweep_chats` (each scheduler tick) finds every recorded member without access and enqueues their removal,
  so a missed update or a restart never leaves a former subscriber inside.
A chat where the bot lost its rights is reported to the admin chat (once a day per chat) and the removal job fails,
so the next sweep sends it round again; Telegram's 429 (ChatBusy) propagates, and RQ retries the job (then the
sweep, once RQ's retries are spent).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from billing.chat_ports import AccessGranted, AccessRemoved, ChatAdmin, ChatQueue
from billing.errors import ChatUnmanageable, UnknownPlan
from billing.plans import Catalogue, Plan
from billing.renewals.periods import period_ms
from billing.subscriptions import get_subscription, is_active
from db import Subscription
from db.chats import ChatAccess, ChatAccessStatus

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(days=1)
EXPIRED, REFUNDED, UNPAID = "expired", "refunded", "unpaid"
BATCH = 500


def keeps_access(subscription: Subscription | None, now: datetime, *, grace: timedelta) -> bool:
    """Access to the chats: an active subscription, or one that ended less than `grace` ago."""
    if subscription is None:
        return False
    return is_active(subscription, now) or subscription.current_period_end + grace > now


async def granted_plan(user_id: int, plans: Catalogue, now: datetime) -> Plan | None:
    """The plan of the user's active subscription when it grants chats."""
    subscription = await get_subscription(user_id)
    if subscription is None or not is_active(subscription, now):
        return None
    try:
        plan = plans.get(subscription.plan)
    except UnknownPlan:
        return None
    return plan if plan.chats else None


async def grant_access(user_id: int, period: int, *, chats: ChatAdmin, plans: Catalogue, now: datetime) -> int:
    """Links to every chat of the user's plan for the period ending at `period` (Unix ms), sent once; how many."""
    subscription = await get_subscription(user_id)
    plan = await granted_plan(user_id, plans, now)
    if plan is None or subscription is None or period_ms(subscription.current_period_end) != period:
        return 0  # no access now, or a later period has its own job
    links = await _links(user_id, plan, chats, now, period=period)
    if links:
        await chats.access_granted(AccessGranted(user_id, plan.title, tuple(links), key=f"chat-access:{user_id}:"
                                                                                          f"{period}"))
    return len(links)


async def fresh_links(user_id: int, *, chats: ChatAdmin, plans: Catalogue,
                      now: datetime) -> tuple[Plan, list[str]] | None:
    """/access: new links to every chat of the user's plan; None without an active subscription that has chats."""
    plan = await granted_plan(user_id, plans, now)
    if plan is None:
        return None
    return plan, await _links(user_id, plan, chats, now, period=None)


async def _links(user_id: int, plan: Plan, chats: ChatAdmin, now: datetime, *, period: int | None) -> list[str]:
    links = []
    for chat_id in plan.chats:
        row = await _row(user_id, chat_id, plan.name)
        given = row.invite_link is not None and row.status is ChatAccessStatus.INVITED
        if period is not None and given and row.link_period == period:
            links.append(row.invite_link or "")  # a re-run of the same period's job: the link already given
            continue
        try:
            if period is not None and given and await chats.has_member(chat_id, user_id):
                continue  # a renewal of a member already inside: no new link to send
            link = await chats.invite_link(chat_id, user_id, expire_at=now + LINK_LIFETIME,
                                           join_request=plan.join_requests)
        except ChatUnmanageable as err:
            await report_unmanageable(chats, err, now)
            continue
        changes = {"invite_link": link, "link_period": period if period is not None else row.link_period,
                   "status": ChatAccessStatus.INVITED.value, "invited_at": now, "plan": plan.name}
        await ChatAccess.get_motor_collection().update_one({"_id": row.id}, {"$set": changes})
        links.append(link)
    return links


async def admit(user_id: int, chat_id: int, plan: str, now: datetime) -> None:
    """Record a member the bot let in by approving their join request, so the sweep follows them."""
    row = await _row(user_id, chat_id, plan)
    await ChatAccess.get_motor_collection().update_one(
        {"_id": row.id}, {"$set": {"status": ChatAccessStatus.INVITED.value, "invited_at": now, "plan": plan}})


async def remove_access(user_id: int, chat_id: int, reason: str, *, chats: ChatAdmin, plans: Catalogue,
                        now: datetime, grace: timedelta) -> bool:
    """Take the user out of the chat unless they have access again; True when removed now. Safe to repeat: the
    ban and unban change nothing a second time, the notice is keyed, the row leaves `invited` last."""
    row = await ChatAccess.find_one(ChatAccess.user_id == user_id, ChatAccess.chat_id == chat_id)
    if row is None or row.status is not ChatAccessStatus.INVITED:
        return False
    subscription = await get_subscription(user_id)
    if reason == UNPAID:
        plan = await granted_plan(user_id, plans, now)
        if plan is not None and chat_id in plan.chats:
            await admit(user_id, chat_id, plan.name, now)  # subscribed since joining: followed as a subscriber
            return False
    elif keeps_access(subscription, now, grace=grace if reason == EXPIRED else timedelta(0)):
        return False
    try:
        await chats.remove_member(chat_id, user_id)
    except ChatUnmanageable as err:
        await report_unmanageable(chats, err, now)
        raise  # the job fails, the row stays `invited`: the next sweep sends the job round again
    await chats.access_removed(AccessRemoved(user_id, plans.title(row.plan), reason,
                                             key=f"chat-removed:{user_id}:{chat_id}:{_since(row)}"))
    result = await ChatAccess.get_motor_collection().update_one(
        {"_id": row.id, "status": ChatAccessStatus.INVITED.value},
        {"$set": {"status": ChatAccessStatus.REMOVED.value, "removed_at": now, "removal_reason": reason}})
    log.info("user %s removed from chat %s (%s)", user_id, chat_id, reason)
    return result.modified_count == 1


async def member_joined(user_id: int, chat_id: int, *, plans: Catalogue, now: datetime, queue: ChatQueue) -> str:
    """Someone joined a managed chat (a `chat_member` update): a subscriber whose plan grants it is recorded, a
    whitelisted member left alone, anyone else (a link shared by a subscriber) recorded and queued for removal."""
    row = await ChatAccess.find_one(ChatAccess.user_id == user_id, ChatAccess.chat_id == chat_id)
    if row is not None and row.status is ChatAccessStatus.WHITELISTED:
        return "whitelisted"
    plan = await granted_plan(user_id, plans, now)
    if plan is not None and chat_id in plan.chats:
        await admit(user_id, chat_id, plan.name, now)
        return "admitted"
    row = await _row(user_id, chat_id, row.plan if row is not None else "")
    await ChatAccess.get_motor_collection().update_one(
        {"_id": row.id}, {"$set": {"status": ChatAccessStatus.INVITED.value, "invited_at": now}})
    await queue.schedule_chat_removal(user_id, chat_id, UNPAID, period_ms(now))
    log.warning("user %s joined chat %s without a subscription: queued for removal", user_id, chat_id)
    return "removing"


async def whitelist(user_id: int, chat_id: int, now: datetime) -> None:
    """An admin's `/chats allow`: the member stays in the chat whatever their subscription."""
    row = await _row(user_id, chat_id, "")
    await ChatAccess.get_motor_collection().update_one(
        {"_id": row.id}, {"$set": {"status": ChatAccessStatus.WHITELISTED.value, "invited_at": now}})


async def remove_after_refund(user_id: int, queue: ChatQueue) -> int:
    """A refund or reversal: every chat the user was let into is queued for removal now (without the grace);
    the removal job leaves them in when another paid period still runs."""
    count = 0
    async for row in ChatAccess.find(ChatAccess.user_id == user_id,
                                     ChatAccess.status == ChatAccessStatus.INVITED):
        queue.enqueue_chat_removal(user_id, row.chat_id, REFUNDED, _since(row))
        count += 1
    return count


async def sweep_chats(now: datetime, *, grace: timedelta, queue: ChatQueue) -> int:
    """Every recorded member without access, queued for removal; how many. All of them each tick, a page of
    rows and one query for their subscriptions at a time."""
    count, after = 0, None
    while True:
        query: dict[str, object] = {"status": ChatAccessStatus.INVITED.value}
        if after is not None:
            query["_id"] = {"$gt": after}
        rows = await ChatAccess.find(query).sort("_id").limit(BATCH).to_list()
        if not rows:
            return count
        users = list({row.user_id for row in rows})
        found = await Subscription.find({"user_id": {"$in": users}}).to_list()
        subscriptions = {subscription.user_id: subscription for subscription in found}
        for row in rows:
            if not keeps_access(subscriptions.get(row.user_id), now, grace=grace):
                await queue.schedule_chat_removal(row.user_id, row.chat_id, EXPIRED, _since(row))
                count += 1
        after = rows[-1].id


async def report_unmanageable(chats: ChatAdmin, err: ChatUnmanageable, now: datetime) -> None:
    log.error("the bot cannot act in chat %s: %s", err.chat_id, err.problem)
    await chats.chat_unmanageable(err.chat_id, err.problem, key=f"chat-unmanageable:{err.chat_id}:{now.date()}")


def _since(row: ChatAccess) -> int:
    return period_ms(row.invited_at) if row.invited_at is not None else 0


async def _row(user_id: int, chat_id: int, plan: str) -> ChatAccess:
    """The (user, chat) row, made first if there is none: the unique index keeps one however many jobs race."""
    await ChatAccess.get_motor_collection().update_one(
        {"user_id": user_id, "chat_id": chat_id},
        {"$setOnInsert": {"plan": plan, "status": ChatAccessStatus.INVITED.value, "invite_link": None,
                          "link_period": None, "invited_at": None, "removed_at": None, "removal_reason": None}},
        upsert=True)
    row = await ChatAccess.find_one(ChatAccess.user_id == user_id, ChatAccess.chat_id == chat_id)
    assert row is not None
    return row
