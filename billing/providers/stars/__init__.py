"""Telegram Stars (currency XTR): payments inside the bot, one-time invoices and 30-day subscriptions.

Everything open-ymds knows about Stars lives in this package: `protocol` (invoice limits, reading
updates and Star transactions, the Bot API calls as a small interface), `payments` (pre-checkout
answers, charges recorded in the ledger, renewals, refunds, renewal state), and here the provider
object the web app holds for `POST /api/invoices/{label}/refund`. Stars have no notification route
and no payment-page form: the bot's update handlers are where payments arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.clock import Clock, utc_now
from billing.money import Money
from billing.providers.base import RefundUnsupported
from billing.providers.stars.payments import refund_charge
from billing.providers.stars.protocol import CURRENCY, NAME, StarsApi

__all__ = ["CURRENCY", "NAME", "TelegramStars"]


class TelegramStars:
    """The Stars provider of the web app: refunds through refundStarPayment over the bot's client."""

    name = NAME

    def __init__(self, api: StarsApi, *, clock: Clock = utc_now) -> None:
        self._api = api
        self._clock = clock

    def page_form(self, *, label: str, amounts: Mapping[str, int], title: str, success_url: str) -> Any:
        """Stars are paid inside Telegram, never on the web payment page."""
        return None

    async def refund(self, *, operation_id: str, amount: Money, label: str) -> None:
        """All the Stars of the charge back to its payer (Telegram refunds in full only), and the renewal of
        its subscription stopped. Raises ProviderRejected or ProviderUnavailable; a second refund is fine."""
        if amount.currency != CURRENCY:
            raise RefundUnsupported(f"{NAME} refunds only {CURRENCY} charges")
        await refund_charge(self._api, operation_id, label=label, now=self._clock())
