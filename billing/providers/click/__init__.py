"""Click (click.uz): the my.click.uz payment link, the SHOP-API callbacks Prepare and Complete, and the
Merchant API's payment status for reconciliation.

Everything open-ymds knows about Click lives in this package: `protocol` (the wire format and signature),
`merchant` (the Merchant API client), `provider` (the handlers and reconciliation), `fiscal` (the
fiscalisation API's wire format) and `receipts` (one fiscal receipt per payment, submitted once).
"""

from billing.providers.click.merchant import ClickPayment, MerchantApi
from billing.providers.click.protocol import (
    CURRENCY,
    NAME,
    PAY_URL,
    REQUIRED_FIELDS,
    Action,
    ClickError,
    ClickRequest,
    Malformed,
    Reply,
    answer,
    build_request,
    click_amount,
    merchant_auth,
    operation_id,
    parse_amount,
    parse_body,
    read_request,
    sign,
)
from billing.providers.click.provider import HOLD, STEPS, Click, click_days, hold_key

__all__ = [
    "CURRENCY", "HOLD", "NAME", "PAY_URL", "REQUIRED_FIELDS", "STEPS", "Action", "Click", "ClickError",
    "ClickPayment", "ClickRequest", "Malformed", "MerchantApi", "Reply", "answer", "build_request", "click_amount",
    "click_days", "hold_key", "merchant_auth", "operation_id", "parse_amount", "parse_body", "read_request", "sign",
]
