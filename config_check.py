"""What `ymds check-config` adds to the settings' own validation: readable errors with an example of a good
value, warnings for test keys and unsafe choices in production, and whether MongoDB and Redis answer."""

from __future__ import annotations

import asyncio

import redis
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from billing.fiscal import RUSSIAN_FIELDS, UZBEK_FIELDS, fiscal_item, fiscal_shop, missing_fields
from billing.plans import Catalogue
from settings import Environment, Settings, redact_url

EXAMPLES: dict[str, str] = {
    "environment": "production",
    "log_format": "json",
    "admin_ids": "123456789,987654321",
    "admin_chat_id": "-1001234567890",
    "public_base_url": "https://pay.example.org",
    "link_ttl_seconds": "86400",
    "invoice_ttl_seconds": "86400",
    "mongodb_uri": "mongodb://127.0.0.1:27017",
    "redis_url": "redis://127.0.0.1:6379/0",
    "web_port": "8080",
    "tls_cert": "/etc/letsencrypt/live/pay.example.org/fullchain.pem",
    "tls_key": "/etc/letsencrypt/live/pay.example.org/privkey.pem",
    "trusted_proxies": "127.0.0.1",
    "max_body_bytes": "1048576",
    "web_header_timeout_seconds": "10",
    "web_body_timeout_seconds": "30",
    "web_max_slow_connections_per_ip": "32",
    "plans_file": "/opt/ymds/plans.toml",
    "max_retries": "3",
    "retry_intervals": "3600,86400,259200",
    "renewal_lead_seconds": "3600",
    "reminder_days": "3",
    "renewal_notice_days": "3",
    "scheduler_interval_seconds": "60",
    "reconcile_interval_seconds": "300",
    "reconcile_window_hours": "72",
    "job_max_retries": "5",
    "job_retry_intervals": "10,60,300,1800,7200",
    "konsol_timeout": "15",
    "konsol_base_url": "https://api-payments.konsol.pro",
    "konsol_webhook_ips": "84.201.153.160",
    "payout_min_amount": "10000",
    "payout_max_amount": "10000000",
    "donation_min": "RUB=10000,UZS=1000000",
    "donation_max": "RUB=10000000,UZS=1000000000",
    "donation_suggested": "RUB=10000/30000/100000,UZS=1000000/5000000",
}
MIN_ADMIN_TOKEN_LENGTH = 32
SECONDS_A_DAY = 86400
CHARGING_PROVIDERS = ("yookassa", "cloudpayments", "payme")  # those that charge saved methods at period end
CONNECT_TIMEOUT_SECONDS = 3


def explain(err: ValidationError) -> str:
    """Every invalid setting on its own line: which, what is wrong, and a good value where we have one."""
    lines = []
    for problem in err.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "settings"
        example = f" (e.g. {field.upper()}={EXAMPLES[field]})" if field in EXAMPLES else ""
        lines.append(f"{field.upper()}: {problem['msg']}{example}")
    return "\n".join(lines)


def production_warnings(settings: Settings) -> list[str]:
    """Choices that work but should not be made in production."""
    if settings.environment is not Environment.PRODUCTION:
        return []
    warnings = []
    if not settings.public_base_url.startswith("https://"):
        warnings.append("PUBLIC_BASE_URL: not https; providers and payers should reach us over HTTPS only")
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else ""
    if token and len(token) < MIN_ADMIN_TOKEN_LENGTH:
        warnings.append(f"ADMIN_API_TOKEN: shorter than {MIN_ADMIN_TOKEN_LENGTH} characters; "
                        "make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if settings.metrics_token is None:
        warnings.append("METRICS_TOKEN: unset; GET /metrics shows business figures to anyone who asks "
                        "(set it and give Prometheus the same Bearer token)")
    if settings.link_secret is None:
        warnings.append("LINK_SECRET: unset, derived from BOT_TOKEN; revoking the bot token breaks every open link")
    if settings.yookassa_secret_key and settings.yookassa_secret_key.get_secret_value().startswith("test_"):
        warnings.append("YOOKASSA_SECRET_KEY: a test key (test_...) in production; payments will not be real")
    if settings.cloudpayments_public_id and settings.cloudpayments_public_id.startswith("test_"):
        warnings.append("CLOUDPAYMENTS_PUBLIC_ID: a test site (test_...) in production; payments will not be real")
    if getattr(settings, "payme_test_mode", False):
        warnings.append("PAYME_TEST_MODE: on in production; the page sends payers to Payme's test checkout")
    if settings.konsol_api_token and settings.konsol_webhook_secret is None:
        warnings.append("KONSOL_WEBHOOK_SECRET: unset; konsol.pro webhooks are only re-fetched, never authenticated "
                        "(set it and give konsol.pro support the URL with ?token=, see the README)")
    charging = [name for name in CHARGING_PROVIDERS if settings.provider_enabled(name)]
    if settings.renewal_notice_days == 0 and charging:
        warnings.append(f"RENEWAL_NOTICE_DAYS: 0, so payers hear nothing before {', '.join(charging)} charges their "
                        "saved method; 376-FZ and the providers' terms ask for a notice with the amount and a way out")
    elif charging and settings.renewal_lead_seconds >= settings.renewal_notice_days * SECONDS_A_DAY:
        warnings.append(f"RENEWAL_LEAD_SECONDS: {settings.renewal_lead_seconds}, so saved methods are charged before "
                        f"the notice RENEWAL_NOTICE_DAYS={settings.renewal_notice_days} ahead of the period end would "
                        "go out; keep the lead shorter than the notice")
    for name, value in (("MONGODB_URI", settings.mongodb_uri), ("REDIS_URL", settings.redis_url)):
        if value == "memory://":
            warnings.append(f"{name}: memory:// in production; ymds web and ymds worker refuse it")
    return warnings


# (switch, provider, the item fields each plan's receipt needs, the shop's own settings it needs)
RECEIPT_NEEDS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("yookassa_receipts", "yookassa", RUSSIAN_FIELDS, ("receipt_tax_system_code",)),
    # CloudPayments' /kkt/receipt (the refunds' IncomeReturn) names the seller's INN
    ("cloudpayments_receipts", "cloudpayments", RUSSIAN_FIELDS, ("receipt_tax_system_code", "cloudpayments_inn")),
    # Payme's `detail` names no seller: Payme's cashbox is registered to the merchant's TIN already
    ("payme_receipts", "payme", UZBEK_FIELDS, ()),
    ("click_receipts", "click", UZBEK_FIELDS, ("receipt_seller_tin", "click_merchant_user_id")),
)
SHOP_DEFAULTS = {"vat_code": "RECEIPT_VAT_CODE", "ikpu": "RECEIPT_IKPU", "package_code": "RECEIPT_PACKAGE_CODE",
                 "vat_percent": "RECEIPT_VAT_PERCENT"}


def receipt_problems(settings: Settings, plans: Catalogue) -> list[str]:
    """What a provider with receipts on lacks to issue them: the shop's settings, and each plan's fields that
    neither its `receipt = {...}` in plans.toml nor the shop-wide default gives. Orders and donations take the
    defaults, so a field missing from them is named too."""
    problems = []
    shop = fiscal_shop(settings)
    for switch, provider, fields, shop_needs in RECEIPT_NEEDS:
        if not getattr(settings, switch) or not settings.provider_enabled(provider):
            continue
        missing = [name.upper() for name in shop_needs if getattr(settings, name) is None]
        if missing:
            problems.append(f"{switch.upper()}: the shop's receipts need {', '.join(missing)}")
        for plan in plans:
            for name in missing_fields(fiscal_item(plan.title, shop, plan.receipt), fields):
                problems.append(f"{switch.upper()}: plan {plan.name!r} has no receipt {name}: set receipt = "
                                f"{{{name} = ...}} for it in PLANS_FILE or {SHOP_DEFAULTS[name]} for every plan")
        defaults = missing_fields(fiscal_item("", shop), fields)
        if defaults:
            problems.append(f"{switch.upper()}: orders and donations take the shop's defaults and lack "
                            f"{', '.join(SHOP_DEFAULTS[name] for name in defaults)}")
    return problems


YOOMONEY_UNCONFIRMED = (
    "YOOMONEY_API_TOKEN: unset, so YooMoney payments cannot be confirmed: YooMoney no longer signs its "
    "notifications (no sha1_hash since May 2026), and an unsigned one pays only once the wallet API confirms it; "
    "until then every YooMoney payment is kept as unverified, unpaid (see the README's YooMoney section for how "
    "to issue the token)"
)


def yoomoney_confirmation(settings: Settings) -> tuple[list[str], list[str]]:
    """(errors, warnings) about confirming YooMoney payments: without the wallet API token, an error in
    production (payers would pay and get nothing), a warning in development."""
    token = settings.yoomoney_api_token.get_secret_value() if settings.yoomoney_api_token else ""
    if not settings.provider_enabled("yoomoney") or token:
        return [], []
    if settings.environment is Environment.PRODUCTION:
        return [YOOMONEY_UNCONFIRMED], []
    return [], [YOOMONEY_UNCONFIRMED]


async def unreachable_stores(settings: Settings) -> list[str]:
    """MongoDB and Redis that do not answer, each with the redacted address tried."""
    from motor.motor_asyncio import AsyncIOMotorClient

    from rq_access import connect

    problems = []
    if settings.mongodb_uri != "memory://":
        client = AsyncIOMotorClient(settings.mongodb_uri, serverSelectionTimeoutMS=CONNECT_TIMEOUT_SECONDS * 1000)
        try:
            await client.admin.command("ping")
        except PyMongoError as err:
            problems.append(f"MONGODB_URI: {redact_url(settings.mongodb_uri)} does not answer ({type(err).__name__})")
        finally:
            client.close()
    if settings.redis_url != "memory://":
        connection = connect(settings.redis_url)
        try:
            await asyncio.to_thread(connection.ping)
        except redis.RedisError as err:
            problems.append(f"REDIS_URL: {redact_url(settings.redis_url)} does not answer ({type(err).__name__})")
        finally:
            connection.close()
    return problems
