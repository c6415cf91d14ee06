"""POST /telegram/webhook: the bot served by the web app in webhook mode (WEBHOOK_MODE=true).

aiogram's request handler, with the secret-token header compared through our one constant-time
helper, a malformed body answered 400, and updates handled before the answer
(handle_in_background=False): a handler that meets an outage (the database, the queue, a provider) answers
503, one that crashes 500, and Telegram delivers the update again on any answer but 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

from billing import bounded_json
from billing.signing import secrets_equal
from bot.main import build_dispatcher, make_bot
from bot.middlewares import OUTAGES, RetryOutages
from webhook_server.keys import CLOCK, LEDGER, PLANS, QUEUES, SETTINGS

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TELEGRAM_BOT = web.AppKey("telegram_bot", Bot)
TELEGRAM_DISPATCHER = web.AppKey("telegram_dispatcher", Dispatcher)


class WebhookHandler(SimpleRequestHandler):
    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        """Telegram's secret token is ASCII (A-Z, a-z, 0-9, _ and -): other bytes are a wrong token."""
        return bool(self.secret_token) and telegram_secret_token.isascii() and secrets_equal(
            self.secret_token or "", telegram_secret_token)

    async def handle(self, request: web.Request) -> web.Response:
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            log.warning("telegram webhook call without the right secret token from %s", request.remote)
            return web.Response(status=401, text="Unauthorized")
        body = await request.read()  # over the app's body limit: 413 before anything is parsed
        try:
            update = Update.model_validate(bounded_json.loads(body, number=float), context={"bot": self.bot})
        except (ValueError, ValidationError):
            return web.Response(status=400, text="Bad Request")
        try:
            result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
                self.bot, update, **self.data)
        except OUTAGES as err:
            log.error("telegram update %s answered 503 for Telegram to deliver again: %s: %s", update.update_id,
                      type(err).__name__, err)
            return web.Response(status=503, text="Service Unavailable")
        return web.Response(body=self._build_response_writer(bot=self.bot, result=result))


def mount_bot(app: web.Application) -> None:
    """Called by create_app in webhook mode: the route, and the bot's lifetime as one cleanup context."""
    settings = app[SETTINGS]
    bot = make_bot(settings)
    dispatcher = build_dispatcher(settings, app[PLANS], clock=app[CLOCK])
    WebhookHandler(dispatcher=dispatcher, bot=bot, secret_token=settings.webhook_secret_token,
                   handle_in_background=False).register(app, path=WEBHOOK_PATH, name="telegram_webhook")
    app[TELEGRAM_BOT] = bot
    app[TELEGRAM_DISPATCHER] = dispatcher
    app.cleanup_ctx.append(telegram_ctx)


async def telegram_ctx(app: web.Application) -> AsyncIterator[None]:
    """After the database and the queue are up: the dispatcher's startup, and the webhook registered
    with Telegram (a failure there is logged: payments must not wait for Telegram)."""
    bot, dispatcher, settings = app[TELEGRAM_BOT], app[TELEGRAM_DISPATCHER], app[SETTINGS]
    dispatcher["ledger"] = app[LEDGER]
    dispatcher["renewal_queue"] = app[QUEUES]
    dispatcher["chat_queue"] = app[QUEUES]  # removals from the plans' chats (bot/routers/chats.py)
    await dispatcher.emit_startup(bot=bot, **dispatcher.workflow_data)
    try:
        await bot.set_webhook(f"{settings.public_base_url.rstrip('/')}{WEBHOOK_PATH}",
                              secret_token=settings.webhook_secret_token,
                              allowed_updates=dispatcher.resolve_used_update_types())
    except TelegramAPIError as err:
        log.error("could not register the webhook with Telegram: %s", err)
    yield
    await dispatcher.emit_shutdown(bot=bot, **dispatcher.workflow_data)
    await bot.session.close()


async def polling_ctx(app: web.Application) -> AsyncIterator[None]:
    """`ymds demo` with BOT_TOKEN: the bot long-polls TELEGRAM_API_URL inside the demo's process."""
    settings = app[SETTINGS]
    bot = make_bot(settings)
    dispatcher = build_dispatcher(settings, app[PLANS], clock=app[CLOCK], ledger=app[LEDGER],
                                  renewal_queue=app[QUEUES], retry_outages=RetryOutages())
    polling = asyncio.create_task(_poll(bot, dispatcher), name="ymds-bot-polling")
    yield
    with contextlib.suppress(RuntimeError):  # "Polling is not started": it never got that far
        await dispatcher.stop_polling()
    polling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await polling
    await bot.session.close()


async def _poll(bot: Bot, dispatcher: Dispatcher) -> None:
    try:
        await bot.delete_webhook()  # getUpdates answers 409 while a webhook is set
    except TelegramAPIError as err:
        log.error("the bot cannot reach the Bot API (%s); polling retries on its own", err)
    await dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False,
                                   allowed_updates=dispatcher.resolve_used_update_types())
