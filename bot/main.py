"""The bot's assembly: the Bot over TELEGRAM_API_URL, the Dispatcher with its routers and middlewares,
and `ymds bot` (long polling). Webhook mode mounts the same Dispatcher on the web app instead
(webhook_server/views/telegram.py).

An outage under a handler fails the update in both modes: webhook mode answers 5xx (Telegram delivers it
again), polling retries it in-process (RetryOutages: aiogram confirms every fetched update) and tells the
admin chat when it still fails."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand

from billing.chat_ports import ChatQueue
from billing.clock import Clock, utc_now
from billing.events import outlet as events_outlet
from billing.ledger import Ledger
from billing.plans import Catalogue as Plans
from billing.ports import RenewalQueue
from bot.chats_check import warn_unready_chats
from bot.middlewares import ForgivingCallbackAnswers, LocaleMiddleware, RetryOutages
from bot.routers import (
    admin,
    chats,
    donate,
    fallback,
    payouts,
    privacy,
    promo,
    receipt_contact,
    renewals,
    stars,
    start,
    subscribe,
    trials,
)
from bot.routers.receipt_contact import email_menu
from bot.stars import stars_menu
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES, Catalogue, catalogue
from db import init_db
from rq_access import RqQueues, connect
from settings import ConfigError, Settings
from webhook_server.event_sender import event_outlet

log = logging.getLogger(__name__)
MENU = ("subscribe", "status", "cancel", "language", "donate")
PRIVACY_MENU = ("privacy", "deletedata")  # last, after the Stars commands: Telegram's Bot Developer Terms
DEFAULT_TIMEOUT_SECONDS = 60.0  # aiogram's; long polling adds its poll time to it


def make_bot(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Bot:
    """A Bot whose every call goes to TELEGRAM_API_URL (Telegram, or a local fake)."""
    if settings.bot_token is None:
        raise ConfigError("BOT_TOKEN: the bot needs its token from @BotFather")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url), timeout=timeout)
    session.middleware(ForgivingCallbackAnswers())
    return Bot(settings.bot_token.get_secret_value(), session=session)


def build_dispatcher(
    settings: Settings, plans: Plans, *, clock: Clock = utc_now, ledger: Ledger | None = None,
    texts: Catalogue | None = None, renewal_queue: RenewalQueue | None = None,
    retry_outages: RetryOutages | None = None,
) -> Dispatcher:
    """Handlers receive settings, plans, clock, ledger and the catalogue by name; `t` comes from the
    locale middleware. The ledger (for /grant) may be set later: `dp["ledger"] = ...`. Polling passes
    `retry_outages`; webhook mode leaves the retries to Telegram."""
    messages = texts or catalogue()
    chat_queue = renewal_queue if isinstance(renewal_queue, ChatQueue) else None  # removals from the plans' chats
    dp = Dispatcher(settings=settings, plans=plans, clock=clock, ledger=ledger, catalogue=messages,
                    renewal_queue=renewal_queue, chat_queue=chat_queue)
    if retry_outages is not None:
        dp.update.outer_middleware(retry_outages)  # inside aiogram's error middleware, around routing
    LocaleMiddleware(messages, clock).setup(dp)
    dp.include_router(stars.router(settings))  # Telegram Stars: payments, /renewal, /paysupport, /stars_refund
    dp.include_router(payouts.router(settings))  # /payout claims, the admin chat's Accept/Reject, /balance
    dp.include_routers(start.router(), subscribe.router(), chats.router(), trials.router(), promo.router(),
                       donate.router(),  # /donate: the donation page's link
                       renewals.router(), privacy.router(),  # /privacy, /deletedata
                       receipt_contact.router(),  # /email: where fiscal receipts go
                       admin.router(frozenset(settings.admin_ids)), fallback.router())
    dp.startup.register(set_commands)
    dp.startup.register(warn_unready_chats)  # a plan's chat where the bot cannot invite or ban, logged
    return dp


async def set_commands(bot: Bot, catalogue: Catalogue, settings: Settings, plans: Plans) -> None:
    """The command menu in each language (the default one in English). A failure only loses the menu."""
    try:
        for language in LANGUAGES:
            t = catalogue.texts(language)
            commands = [BotCommand(command=name, description=t(f"command.{name}"))
                        for name in (*MENU, *access_menu(plans), *email_menu(settings), *stars_menu(settings),
                                     *PRIVACY_MENU)]
            await bot.set_my_commands(commands, language_code=None if language == DEFAULT_LANGUAGE else language)
    except TelegramAPIError as err:
        log.warning("could not set the bot's command menu: %s", err)


def access_menu(plans: Plans) -> tuple[str, ...]:
    """/access is in the menu when some plan grants private chats."""
    return ("access",) if plans.managed_chats() else ()


async def run_polling(settings: Settings, plans: Plans) -> None:
    """`ymds bot`: long polling, with the database and the queue the handlers need."""
    client = await init_db(settings.mongodb_uri, settings.mongodb_db)
    connection = connect(settings.redis_url)
    queues = RqQueues(connection, max_retries=settings.job_max_retries, retry_intervals=settings.job_retry_intervals)
    bot = make_bot(settings)
    dp = build_dispatcher(settings, plans, ledger=Ledger(queues), renewal_queue=queues, retry_outages=RetryOutages())
    events_outlet.install(event_outlet(settings, queues))  # /cancel records subscription.canceled (billing/events)
    try:
        await bot.delete_webhook()  # getUpdates answers 409 while a webhook is set
        await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types())
    finally:
        events_outlet.uninstall()
        await bot.session.close()
        connection.close()
        client.close()
