"""Builds the enabled providers from settings; the web app's one place that knows which exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from billing.providers.click import Click
from billing.providers.payme import Payme
from billing.providers.yoomoney import WalletClient, YooMoney
from settings import Settings
from webhook_server.http_transport import AiohttpTransport


@dataclass(slots=True)
class ProviderRegistry:
    providers: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any | None:
        return self.providers.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.providers.values())


def build_providers(settings: Settings, transport: AiohttpTransport) -> ProviderRegistry:
    registry = ProviderRegistry()
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
        assert settings.click_service_id and settings.click_merchant_id and settings.click_secret_key
        registry.providers["click"] = Click(
            service_id=settings.click_service_id,
            merchant_id=settings.click_merchant_id,
            secret_key=settings.click_secret_key.get_secret_value(),
            pay_url=settings.click_pay_url,
        )
    if settings.provider_enabled("payme"):
        assert settings.payme_merchant_id and settings.payme_key
        registry.providers["payme"] = Payme(
            merchant_id=settings.payme_merchant_id,
            key=settings.payme_key.get_secret_value(),
            checkout_url=settings.payme_checkout_url,
            sandbox=settings.payme_sandbox,
            account_field=settings.payme_account_field,
            cancel_after_perform=settings.payme_cancel_after_perform,
        )
    return registry
