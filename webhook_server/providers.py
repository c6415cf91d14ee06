"""Builds the enabled providers from settings; the web app's one place that knows which exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from billing.fiscal import fiscal_shop
from billing.fiscal_ru import RussianReceipts
from billing.networks import parse_networks
from billing.plans import Catalogue, load_plans
from billing.providers.click.config import click_from_settings
from billing.providers.cloudpayments import ApiClient as CloudPaymentsApi, CloudPayments, accepts_test_payments
from billing.providers.payme import Payme
from billing.providers.stars import NAME as STARS, TelegramStars
from billing.providers.yookassa import YooKassa
from billing.providers.yoomoney import WalletClient, YooMoney
from bot.main import make_bot
from bot.stars_api import OnDemandStarsApi
from settings import Environment, Settings
from webhook_server.http_transport import AiohttpTransport


@dataclass(slots=True)
class ProviderRegistry:
    providers: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any | None:
        return self.providers.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.providers.values())


def build_providers(settings: Settings, transport: AiohttpTransport,
                    plans: Catalogue | None = None) -> ProviderRegistry:
    """`plans` names the receipts' items (read from PLANS_FILE when not given and a Russian receipt needs them)."""
    registry = ProviderRegistry()

    def russian_receipts(switch: bool) -> RussianReceipts | None:
        return RussianReceipts(plans or load_plans(settings.plans_file), fiscal_shop(settings)) if switch else None

    if settings.provider_enabled("yoomoney"):
        assert settings.yoomoney_wallet and settings.yoomoney_notification_secret
        client = (
            WalletClient(transport, settings.yoomoney_api_url, settings.yoomoney_api_token.get_secret_value())
            if settings.yoomoney_api_token
            else None
        )
        registry.providers["yoomoney"] = YooMoney(
            wallet=settings.yoomoney_wallet,
            notification_secret=settings.yoomoney_notification_secret.get_secret_value(),
            quickpay_url=settings.yoomoney_quickpay_url,
            wallet_client=client,
        )
    if settings.provider_enabled("click"):
        registry.providers["click"] = click_from_settings(settings, transport)
    if settings.provider_enabled("payme"):
        assert settings.payme_merchant_id and settings.payme_key
        registry.providers["payme"] = Payme(
            merchant_id=settings.payme_merchant_id,
            key=settings.payme_key.get_secret_value(),
            checkout_url=settings.payme_checkout_url,
            sandbox=settings.payme_sandbox,
            account_field=settings.payme_account_field,
            cancel_after_perform=settings.payme_cancel_after_perform,
            transport=transport,  # the Subscribe API: saved cards, renewals, the page's card binding
            api_url=settings.payme_api_url,
            fiscal_shop=fiscal_shop(settings) if settings.payme_receipts else None,
        )
    if settings.provider_enabled("cloudpayments"):
        assert settings.cloudpayments_public_id and settings.cloudpayments_api_secret
        cp_secret = settings.cloudpayments_api_secret.get_secret_value()
        registry.providers["cloudpayments"] = CloudPayments(
            public_id=settings.cloudpayments_public_id,
            api_secret=cp_secret,
            client=CloudPaymentsApi(transport, settings.cloudpayments_api_url, settings.cloudpayments_public_id,
                                    cp_secret),
            widget_url=settings.cloudpayments_widget_url,
            two_stage=settings.cloudpayments_two_stage,
            test_mode=accepts_test_payments(settings.cloudpayments_test_mode,
                                            settings.environment is Environment.DEVELOPMENT),
            recurrent_plans=frozenset(settings.cloudpayments_recurrent_plans),
            receipts=russian_receipts(settings.cloudpayments_receipts),
            seller_inn=settings.cloudpayments_inn,
        )
    if settings.provider_enabled("yookassa"):
        assert settings.yookassa_shop_id and settings.yookassa_secret_key
        registry.providers["yookassa"] = YooKassa(
            shop_id=settings.yookassa_shop_id,
            secret_key=settings.yookassa_secret_key.get_secret_value(),
            api_url=settings.yookassa_api_url,
            transport=transport,
            notify_networks=parse_networks(settings.yookassa_notify_ips),
            test_mode=settings.yookassa_test_mode,
            save_payment_method=settings.yookassa_save_payment_method,
            receipts=russian_receipts(settings.yookassa_receipts),
        )
    if settings.bot_token is not None:  # refunds of Stars charges, also of those sold before STARS_ENABLED went off
        registry.providers[STARS] = TelegramStars(OnDemandStarsApi(partial(make_bot, settings)))
    return registry
