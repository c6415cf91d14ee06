"""The admin chat's Confirm button of a two-stage payment: the same confirm_hold the admin API calls, with the
providers built in this process over a short-lived HTTP session."""

from __future__ import annotations

import logging

import aiohttp
from aiogram.types import CallbackQuery

from billing.errors import InvoiceNotFound, LedgerUnavailable
from billing.holds import ConfirmUnsupported, NothingToConfirm, confirm_hold
from billing.ledger import Ledger
from billing.providers.base import ProviderRejected
from bot.keyboards import HoldConfirm
from bot.texts import Texts
from settings import Settings

log = logging.getLogger(__name__)
HTTP_TIMEOUT_SECONDS = 15


async def confirm_pressed(query: CallbackQuery, callback_data: HoldConfirm, t: Texts, settings: Settings,
                          ledger: Ledger | None) -> None:
    """An outage before the capture (no queue, the provider not answering) fails the update, as every outage in
    the bot does (bot/routers/fallback.py): Telegram delivers it again, or the polling retry takes it and then
    tells the admin chat. Once the provider has captured the money, a queue that fails to record it is no
    reason to capture again: the provider's own notification (or the sweep) applies the payment, and the admin
    is told so."""
    from webhook_server.http_transport import AiohttpTransport  # the web layer imports the bot: import late
    from webhook_server.providers import build_providers

    label = callback_data.label
    if ledger is None:
        raise LedgerUnavailable("the bot started without the queue: nothing to record a confirmed payment in")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)) as session:
        providers = build_providers(settings, AiohttpTransport(session)).providers
        try:
            await confirm_hold(label, providers=providers, ledger=ledger)
        except (NothingToConfirm, InvoiceNotFound):
            text = t("hold.nothing", label=label)
        except ConfirmUnsupported as err:
            text = t("hold.unsupported", provider=str(err))
        except ProviderRejected as err:
            text = t("hold.refused", error=str(err))
        except LedgerUnavailable as err:
            log.error("admin %s confirmed the held payment of %s at the provider, not recorded here: %s",
                      query.from_user.id, label, err)
            text = t("hold.captured", label=label)
        else:
            text = t("hold.confirmed", label=label)
            log.info("admin %s confirmed the held payment of %s", query.from_user.id, label)
    await query.answer(text, show_alert=True)
