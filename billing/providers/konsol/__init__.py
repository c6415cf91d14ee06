"""konsol.pro (Консоль.Про): payouts to contractors by card or by SBP (phone + bank).

Everything open-ymds knows about konsol.pro lives in this package: `protocol` (amounts, statuses, webhook
authenticity and answers, API objects, masking) and `client` (the Payments API client and its errors).
Most of the Payments API is known from public integration code only, not from an official page; what is
open-ymds's own choice is said where it is made.
"""

from billing.providers.konsol.client import (
    KonsolAuthFailed,
    KonsolClient,
    KonsolNotFound,
    KonsolNotSent,
    KonsolOutcomeUnknown,
    KonsolRejected,
    KonsolServerError,
    KonsolUnavailable,
)
from billing.providers.konsol.protocol import (
    CURRENCY,
    FALLBACK_BANKS,
    FINAL_STATES,
    MAX_WEBHOOK_BYTES,
    NAME,
    SIGNATURE_HEADER,
    TOKEN_PARAMETER,
    WEBHOOK_IP,
    Account,
    Bank,
    KonsolPayment,
    PayoutState,
    WebhookAnswer,
    WebhookHint,
    WebhookTooLarge,
    answer_for,
    claim_label,
    format_amount,
    mask_card,
    mask_phone,
    parse_amount,
    parse_balance,
    parse_banks,
    parse_payment,
    payment_request,
    payout_state,
    read_webhook,
    scrub,
    sign_webhook,
    url_token,
    webhook_answer,
    webhook_body,
    webhook_url,
)

__all__ = [
    "CURRENCY", "FALLBACK_BANKS", "FINAL_STATES", "MAX_WEBHOOK_BYTES", "NAME", "SIGNATURE_HEADER", "TOKEN_PARAMETER",
    "WEBHOOK_IP", "Account", "Bank", "KonsolAuthFailed", "KonsolClient", "KonsolNotFound", "KonsolNotSent",
    "KonsolOutcomeUnknown", "KonsolPayment", "KonsolRejected", "KonsolServerError", "KonsolUnavailable",
    "PayoutState", "WebhookAnswer", "WebhookHint", "WebhookTooLarge", "answer_for", "claim_label", "format_amount",
    "mask_card", "mask_phone", "parse_amount", "parse_balance", "parse_banks", "parse_payment", "payment_request",
    "payout_state", "read_webhook", "scrub", "sign_webhook", "url_token", "webhook_answer", "webhook_body",
    "webhook_url",
]
