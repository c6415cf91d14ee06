"""The Click provider built from settings (the web app's and the worker's provider registries). CLICK_RECEIPTS
submits receipts through the Merchant API, so it needs CLICK_MERCHANT_USER_ID (check-config says so)."""

from __future__ import annotations

from billing.fiscal import fiscal_shop
from billing.providers.base import HttpTransport
from billing.providers.click.merchant import MerchantApi
from billing.providers.click.provider import Click
from billing.providers.click.receipts import ClickReceipts
from settings import Settings


def click_from_settings(settings: Settings, transport: HttpTransport) -> Click:
    """Click from its settings; it can be asked (reconcile) only when CLICK_MERCHANT_USER_ID is set too."""
    assert settings.click_service_id and settings.click_merchant_id and settings.click_secret_key
    secret = settings.click_secret_key.get_secret_value()
    api = None
    if settings.click_merchant_user_id:
        api = MerchantApi(transport, settings.click_api_url, service_id=int(settings.click_service_id),
                          merchant_user_id=settings.click_merchant_user_id, secret=secret)
    receipts = ClickReceipts(api, fiscal_shop(settings)) if settings.click_receipts and api else None
    return Click(service_id=settings.click_service_id, merchant_id=settings.click_merchant_id, secret_key=secret,
                 pay_url=settings.click_pay_url, merchant_api=api, receipts=receipts)
