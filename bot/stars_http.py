"""billing's StarsApi over bot/bot_api.py, for the processes that run no bot (refunds, reconciliation); the bot's
handlers keep bot/stars_api.py over their aiogram Bot. Errors map as there: ProviderRejected when Telegram
refuses, AlreadyRefunded for a second refund, ProviderUnavailable when it cannot answer now (429, 5xx, network)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.errors import ProviderUnavailable
from billing.providers.base import ProviderRejected
from billing.providers.stars.protocol import CURRENCY, AlreadyRefunded, StarsInvoice
from bot.bot_api import BotApi, BotApiError, BotApiRetryAfter, BotApiServerError, BotApiUnreachable

ALREADY_REFUNDED = "ALREADY_REFUNDED"  # MTProto's CHARGE_ALREADY_REFUNDED; the Bot API's wording is unconfirmed


class HttpStarsApi:
    def __init__(self, api: BotApi) -> None:
        self._api = api

    async def create_invoice_link(self, invoice: StarsInvoice) -> str:
        params = {**_invoice(invoice)}
        if invoice.subscription_period is not None:
            params["subscription_period"] = invoice.subscription_period
        link = await self._call("createInvoiceLink", params)
        if not isinstance(link, str):
            raise ProviderUnavailable("createInvoiceLink: the answer holds no link")
        return link

    async def send_invoice(self, chat_id: int, invoice: StarsInvoice) -> None:
        await self._call("sendInvoice", {"chat_id": chat_id, **_invoice(invoice)})

    async def refund(self, user_id: int, charge_id: str) -> None:
        await self._call("refundStarPayment", {"user_id": user_id, "telegram_payment_charge_id": charge_id})

    async def edit_subscription(self, user_id: int, charge_id: str, *, canceled: bool) -> None:
        await self._call("editUserStarSubscription", {
            "user_id": user_id, "telegram_payment_charge_id": charge_id, "is_canceled": canceled})

    async def transactions(self, offset: int, limit: int) -> list[Mapping[str, Any]]:
        page = await self._call("getStarTransactions", {"offset": offset, "limit": limit})
        transactions = page.get("transactions") if isinstance(page, dict) else None
        if not isinstance(transactions, list):
            raise ProviderUnavailable("getStarTransactions: the answer holds no transactions")
        return [transaction for transaction in transactions if isinstance(transaction, dict)]

    async def _call(self, method: str, params: Mapping[str, Any]) -> Any:
        try:
            return await self._api.call(method, params)
        except (BotApiRetryAfter, BotApiServerError, BotApiUnreachable) as err:
            raise ProviderUnavailable(str(err)) from err
        except BotApiError as err:
            if ALREADY_REFUNDED in err.description.upper():
                raise AlreadyRefunded(str(err)) from err
            raise ProviderRejected(str(err)) from err


def _invoice(invoice: StarsInvoice) -> dict[str, Any]:
    return {"title": invoice.title, "description": invoice.description, "payload": invoice.payload,
            "currency": CURRENCY, "prices": invoice.prices()}
