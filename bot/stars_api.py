"""billing's StarsApi over the bot's aiogram client: the Stars Bot API calls, their errors mapped to the
domain's (ProviderRejected when Telegram refuses, ProviderUnavailable when it cannot answer now)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import LabeledPrice

from billing.errors import ProviderUnavailable
from billing.providers.base import ProviderRejected
from billing.providers.stars.protocol import CURRENCY, AlreadyRefunded, StarsInvoice
from bot.stars_http import ALREADY_REFUNDED

log = logging.getLogger(__name__)
T = TypeVar("T")


class BotStarsApi:
    """StarsApi over one Bot whose lifetime the caller owns (the bot's handlers)."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def create_invoice_link(self, invoice: StarsInvoice) -> str:
        return await _call("createInvoiceLink", self._bot.create_invoice_link(
            title=invoice.title, description=invoice.description, payload=invoice.payload, currency=CURRENCY,
            prices=_prices(invoice), subscription_period=invoice.subscription_period))

    async def send_invoice(self, chat_id: int, invoice: StarsInvoice) -> None:
        await _call("sendInvoice", self._bot.send_invoice(
            chat_id=chat_id, title=invoice.title, description=invoice.description, payload=invoice.payload,
            currency=CURRENCY, prices=_prices(invoice)))

    async def refund(self, user_id: int, charge_id: str) -> None:
        await _call("refundStarPayment", self._bot.refund_star_payment(
            user_id=user_id, telegram_payment_charge_id=charge_id))

    async def edit_subscription(self, user_id: int, charge_id: str, *, canceled: bool) -> None:
        await _call("editUserStarSubscription", self._bot.edit_user_star_subscription(
            user_id=user_id, telegram_payment_charge_id=charge_id, is_canceled=canceled))

    async def transactions(self, offset: int, limit: int) -> list[Mapping[str, Any]]:
        page = await _call("getStarTransactions", self._bot.get_star_transactions(offset=offset, limit=limit))
        return [transaction.model_dump(mode="json", exclude_none=True) for transaction in page.transactions]


class OnDemandStarsApi:
    """StarsApi for `ymds reconcile stars`: a Bot made for each call and closed after it (nothing is left open
    when the command ends). The web, the worker and the scheduler use bot/stars_http.py, without aiogram."""

    def __init__(self, make_bot: Callable[[], Bot]) -> None:
        self._make_bot = make_bot

    @asynccontextmanager
    async def _api(self) -> AsyncIterator[BotStarsApi]:
        bot = self._make_bot()
        try:
            yield BotStarsApi(bot)
        finally:
            await bot.session.close()

    async def create_invoice_link(self, invoice: StarsInvoice) -> str:
        async with self._api() as api:
            return await api.create_invoice_link(invoice)

    async def send_invoice(self, chat_id: int, invoice: StarsInvoice) -> None:
        async with self._api() as api:
            await api.send_invoice(chat_id, invoice)

    async def refund(self, user_id: int, charge_id: str) -> None:
        async with self._api() as api:
            await api.refund(user_id, charge_id)

    async def edit_subscription(self, user_id: int, charge_id: str, *, canceled: bool) -> None:
        async with self._api() as api:
            await api.edit_subscription(user_id, charge_id, canceled=canceled)

    async def transactions(self, offset: int, limit: int) -> list[Mapping[str, Any]]:
        async with self._api() as api:
            return await api.transactions(offset, limit)


def _prices(invoice: StarsInvoice) -> list[LabeledPrice]:
    return [LabeledPrice(label=price["label"], amount=price["amount"]) for price in invoice.prices()]


async def _call(method: str, call: Awaitable[T]) -> T:
    """The error's text names the method and Telegram's description, never the URL (it holds the token)."""
    try:
        return await call
    except (TelegramRetryAfter, TelegramServerError, TelegramNetworkError) as err:
        raise ProviderUnavailable(f"{method}: {err.message}") from err
    except TelegramAPIError as err:
        if ALREADY_REFUNDED in err.message.upper():
            raise AlreadyRefunded(f"{method}: {err.message}") from err
        raise ProviderRejected(f"{method}: {err.message}") from err
    except (AiogramError, TimeoutError) as err:  # an answer aiogram could not read, or none in time
        raise ProviderUnavailable(f"{method}: {type(err).__name__}") from err
