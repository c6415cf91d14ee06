"""Builds the enabled providers from settings; the web app's one place that knows which exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    return registry
