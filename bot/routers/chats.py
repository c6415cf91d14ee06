"""The private chats a plan grants: /access (fresh one-time links), the join requests of `join_requests` chats,
and the `chat_member` updates of someone joining."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import JOIN_TRANSITION, ChatMemberUpdatedFilter, Command
from aiogram.types import ChatJoinRequest, ChatMemberUpdated, Message

from billing.chat_access import admit, fresh_links, granted_plan, member_joined as joined
from billing.chat_ports import ChatQueue
from billing.clock import Clock
from billing.errors import ChatBusy
from billing.plans import Catalogue as Plans
from bot.bot_api import bot_api_for
from bot.chat_admin import TelegramChats
from bot.notifier import SEND_TIMEOUT_SECONDS
from bot.texts import Texts
from settings import Settings
from webhook_server.payout_services import OwnSessionTransport

log = logging.getLogger(__name__)


def router() -> Router:
    router = Router(name="chats")
    router.message.register(access, Command("access"))
    router.chat_join_request.register(join_request)
    router.chat_member.register(member_joined, ChatMemberUpdatedFilter(member_status_changed=JOIN_TRANSITION))
    return router


async def access(message: Message, t: Texts, plans: Plans, clock: Clock, settings: Settings) -> None:
    assert message.from_user is not None
    await message.answer(await links_text(message.from_user.id, t, plans, clock, settings) or t("access.none"))


async def links_text(user_id: int, t: Texts, plans: Plans, clock: Clock, settings: Settings) -> str | None:
    """Fresh one-time links to the chats of the user's active plan (for /access, and when a trial starts); None
    when no active plan grants chats."""
    transport = OwnSessionTransport(SEND_TIMEOUT_SECONDS)  # the worker's ChatAdmin, on a session for this command
    api = bot_api_for(settings, transport)
    assert api is not None, "the bot runs with BOT_TOKEN"
    try:
        granted = await fresh_links(user_id, chats=TelegramChats(api), plans=plans, now=clock())
    except ChatBusy:
        return str(t("access.unavailable"))
    finally:
        await transport.close()
    if granted is None:
        return None
    plan, links = granted
    if not links:  # the bot cannot invite in any of the plan's chats (logged; the worker tells the admin chat)
        return str(t("access.unavailable"))
    return str(t("access.links", plan=t.plan_title(plan.title), links="\n".join(links)))


async def member_joined(event: ChatMemberUpdated, plans: Plans, clock: Clock,
                        chat_queue: ChatQueue | None = None) -> None:
    """Someone joined a managed chat: a subscriber is recorded, anyone else (a shared link) removed by a job,
    unless an admin whitelisted them (`/chats allow`). Admins and bots are left alone."""
    member = event.new_chat_member
    if event.chat.id not in plans.managed_chats() or member.user.is_bot or \
            member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.CREATOR):
        return
    if chat_queue is None:
        log.warning("user %s joined chat %s; no queue to check them against subscriptions", member.user.id,
                    event.chat.id)
        return
    await joined(member.user.id, event.chat.id, plans=plans, now=clock(), queue=chat_queue)


async def join_request(request: ChatJoinRequest, t: Texts, plans: Plans, clock: Clock, bot: Bot) -> None:
    """A subscriber whose plan grants this chat is approved and recorded (the sweep follows them); anyone else is
    declined and offered /subscribe in a private message (user_chat_id, valid for a while after the request)."""
    user_id, chat_id = request.from_user.id, request.chat.id
    plan = await granted_plan(user_id, plans, clock())
    if plan is not None and chat_id in plan.chats:
        await admit(user_id, chat_id, plan.name, clock())
        await request.approve()
        log.info("join request of user %s to chat %s approved (%s)", user_id, chat_id, plan.name)
        return
    await request.decline()
    try:
        await bot.send_message(request.user_chat_id, t("join.declined"))
    except TelegramAPIError as err:  # the decline stands; the message is a courtesy
        log.warning("could not tell user %s why their join request was declined: %s", user_id, err.message)
