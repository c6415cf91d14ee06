"""All configuration of open-ymds: one `Settings` object, built once per process by the entry point."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from billing.money import ORDER_LIMITS

# Credentials that together enable a provider; all set → enabled, none set → disabled,
# some set → a configuration error naming the missing ones.
PROVIDER_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "yoomoney": ("yoomoney_wallet", "yoomoney_notification_secret"),
    "yookassa": ("yookassa_shop_id", "yookassa_secret_key"),
    "cloudpayments": ("cloudpayments_public_id", "cloudpayments_api_secret"),
    "payme": ("payme_merchant_id", "payme_key"),
    "click": ("click_service_id", "click_merchant_id", "click_secret_key"),  # + CLICK_MERCHANT_USER_ID to reconcile
    "konsol": ("konsol_api_token",),
    "telegram_stars": ("bot_token",),  # and STARS_ENABLED=true: Stars are paid to the bot itself
}
# Providers whose notification route and payment-page data exist in this release.
IMPLEMENTED_PROVIDERS = frozenset({
    "yoomoney", "click", "payme", "cloudpayments", "telegram_stars", "yookassa", "konsol",
})

URL_SETTINGS = (
    "public_base_url",
    "telegram_api_url",
    "yoomoney_api_url",
    "yoomoney_quickpay_url",
    "yookassa_api_url",
    "cloudpayments_api_url",
    "cloudpayments_widget_url",
    "payme_api_url",
    "payme_checkout_url",
    "click_api_url",
    "click_pay_url",
    "konsol_base_url",
)


# Where YooKassa sends notifications from (its documentation, "Notifications"); YOOKASSA_NOTIFY_IPS's default.
YOOKASSA_PUBLISHED_IPS = (
    "185.71.76.0/27", "185.71.77.0/27", "77.75.153.0/25", "77.75.156.11", "77.75.156.35", "77.75.154.128/25",
    "2a02:5180::/32",
)


# outbound events: the delays before each redelivery (1m, 5m, 30m, 2h, 6h, 24h), then the admin chat is told
EVENTS_RETRY_INTERVALS = (60, 300, 1800, 7200, 21600, 86400)
MIN_EVENTS_SECRET_CHARS = 32
MAX_POLICY_CHARS = 3500  # a privacy policy's text fits one Telegram message (4096) with the bot's own lines


class Environment(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_admin_roles(value: str | None) -> str | None:
    """Empty (as .env.example leaves it) is unset: every ADMIN_IDS entry is an owner."""
    if value is None or not value.strip():
        return None
    for entry in filter(None, (part.strip() for part in value.split(","))):
        user_id, _, role = entry.partition(":")
        if not user_id.strip().isdigit() or role.strip() not in ("owner", "support"):
            raise ValueError(f"entry {entry!r}: expected telegram_id:owner or telegram_id:support")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Environment.PRODUCTION
    # json: one JSON object a line (systemd, log shippers); text: one readable line an event; auto: text on a
    # terminal, JSON otherwise
    log_format: Literal["auto", "json", "text"] = "auto"

    bot_token: SecretStr | None = None
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    admin_chat_id: int | None = None
    admin_api_token: SecretStr | None = None
    # Dashboard roles over ADMIN_IDS (each an owner by default): "123:owner,456:support" (billing/admin_access.py)
    admin_roles: Annotated[str | None, AfterValidator(_check_admin_roles)] = None
    # Bearer token GET /metrics asks for (401 otherwise); unset leaves /metrics open, which check-config warns of
    metrics_token: Annotated[SecretStr | None, BeforeValidator(lambda v: None if isinstance(v, str) and not v.strip()
                                                               else v)] = None
    public_base_url: str = "http://127.0.0.1:8080"
    link_secret: SecretStr | None = None
    link_ttl_seconds: int = Field(default=86400, gt=0)
    invoice_ttl_seconds: int = Field(default=86400, gt=0)

    mongodb_uri: str = "memory://"
    mongodb_db: str = "ymds"
    redis_url: str = "memory://"

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    # `ymds web` processes sharing WEB_PORT (SO_REUSEPORT, Linux): webhook_server/web_processes.py
    web_processes: int = Field(default=1, ge=1, le=64)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    # Slow clients (webhook_server/slow_clients.py): a request's headers must arrive within
    # WEB_HEADER_TIMEOUT_SECONDS of its first byte, its body within WEB_BODY_TIMEOUT_SECONDS after them, and one
    # client address (an IPv6 /64) may hold WEB_MAX_SLOW_CONNECTIONS_PER_IP connections still sending a request.
    web_header_timeout_seconds: float = Field(default=10, gt=0, le=3600)
    web_body_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    web_max_slow_connections_per_ip: int = Field(default=32, gt=0)

    plans_file: Path = Path("plans.toml")
    # Renewals: a declined charge of a saved method is tried again MAX_RETRIES times, after the delays
    # RETRY_INTERVALS (seconds; the last repeats); access is kept (past_due) until the last retry fails.
    max_retries: int = Field(default=3, ge=0)
    retry_intervals: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [3600, 86400, 259200])
    renewal_lead_seconds: int = Field(default=3600, ge=0)  # charge this long before the period ends
    reminder_days: int = Field(default=3, ge=0)  # remind users without a saved method this many days ahead
    renewal_notice_days: int = Field(default=3, ge=0)  # tell of every automatic charge this many days ahead; 0: never
    scheduler_interval_seconds: float = Field(default=60, gt=0)
    # Private chats a plan grants (plans.toml `chats`): a member stays this many days after the subscription ended
    grace_days: int = Field(default=0, ge=0, le=365)
    # `ymds scheduler` asks each provider with an API for the payments of this window, this often
    reconcile_interval_seconds: float = Field(default=300, gt=0)
    reconcile_window_hours: int = Field(default=72, gt=0, le=24 * 90)
    # RQ jobs: a job that raised is retried JOB_MAX_RETRIES times after JOB_RETRY_INTERVALS (seconds)
    job_max_retries: int = Field(default=5, ge=0)
    job_retry_intervals: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [10, 60, 300, 1800, 7200])

    yoomoney_wallet: str | None = None
    yoomoney_notification_secret: SecretStr | None = None
    yoomoney_api_token: SecretStr | None = None
    yoomoney_api_url: str = "https://yoomoney.ru"
    yoomoney_quickpay_url: str = "https://yoomoney.ru/quickpay/confirm"

    yookassa_shop_id: str | None = None
    yookassa_secret_key: SecretStr | None = None
    yookassa_api_url: str = "https://api.yookassa.ru/v3"
    yookassa_notify_ips: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(YOOKASSA_PUBLISHED_IPS))
    yookassa_test_mode: bool = False
    yookassa_save_payment_method: bool = False
    cloudpayments_public_id: str | None = None
    cloudpayments_api_secret: SecretStr | None = None
    cloudpayments_api_url: str = "https://api.cloudpayments.ru"
    cloudpayments_widget_url: str = "https://widget.cloudpayments.ru/bundles/cloudpayments.js"
    cloudpayments_two_stage: bool = False
    cloudpayments_test_mode: bool | None = None  # unset: accept test payments only in development
    cloudpayments_recurrent_plans: Annotated[list[str], NoDecode] = Field(default_factory=list)
    payme_merchant_id: str | None = None
    payme_key: SecretStr | None = None
    payme_api_url: str = "https://checkout.paycom.uz/api"
    payme_checkout_url: str = "https://checkout.paycom.uz"
    payme_sandbox: bool = False
    payme_account_field: str = Field(default="order_id", pattern=r"^[A-Za-z0-9_]{1,64}$")
    payme_cancel_after_perform: bool = True
    click_service_id: str | None = None
    click_merchant_id: str | None = None
    click_secret_key: SecretStr | None = None
    click_merchant_user_id: str | None = None
    click_api_url: str = "https://api.click.uz/v2/merchant"
    click_pay_url: str = "https://my.click.uz/services/pay"
    payme_receipts: bool = False  # Payme fiscalises: CheckPerformTransaction answers the receipt's detail
    click_receipts: bool = False  # each Click payment's receipt is submitted through ofd_data (needs the Merchant API)
    receipt_ikpu: str | None = Field(default=None, pattern=r"^[0-9]{17}$")  # the IKPU (SPIC) of the plans
    receipt_package_code: str | None = Field(default=None, min_length=1, max_length=20)
    receipt_vat_percent: int | None = Field(default=None, ge=0, le=100)
    receipt_seller_tin: str | None = Field(default=None, pattern=r"^([0-9]{9}|[0-9]{14})$")  # TIN or PINFL
    yookassa_receipts: bool = False  # 54-FZ: every YooKassa payment, renewal charge and refund carries a receipt
    cloudpayments_receipts: bool = False  # 54-FZ: CloudPayments' online kassa issues a receipt for each payment
    receipt_vat_code: int | None = Field(default=None, ge=1, le=12)  # Russian receipts: YooKassa's vat_code
    receipt_tax_system_code: int | None = Field(default=None, ge=1, le=6)  # Russian receipts: the shop's СНО
    cloudpayments_inn: str | None = Field(default=None, pattern=r"^([0-9]{10}|[0-9]{12})$")  # the kassa's INN
    konsol_api_token: SecretStr | None = None
    konsol_base_url: str = "https://api-payments.konsol.pro"
    konsol_timeout: float = Field(default=15.0, gt=0)
    konsol_webhook_secret: SecretStr | None = None
    konsol_webhook_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    payout_min_amount: int = Field(default=10000, gt=0)  # kopecks
    payout_max_amount: int = Field(default=10_000_000, gt=0)  # kopecks

    # /donate (billing/donations.py): per currency, in minor units, "RUB=10000,UZS=1000000"; the suggested amounts
    # are buttons on the page, "RUB=10000/30000/100000,UZS=..."; a currency without both limits takes no donations
    donation_min: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"RUB": 10000, "UZS": 1000000})
    donation_max: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"RUB": 10000000, "UZS": 1000000000})
    donation_suggested: Annotated[dict[str, list[int]], NoDecode] = Field(
        default_factory=lambda: {"RUB": [10000, 30000, 100000], "UZS": [1000000, 5000000, 10000000]})

    # outbound events to the owner's own systems (billing/events): unset EVENTS_URL records and sends nothing
    events_url: str | None = None
    events_secret: SecretStr | None = None
    events_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    events_retry_intervals: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: list(EVENTS_RETRY_INTERVALS))

    telegram_api_url: str = "https://api.telegram.org"
    webhook_mode: bool = False
    webhook_secret: SecretStr | None = None
    admin_language: Literal["ru", "en", "uz"] = "en"
    stars_enabled: bool = False
    stars_support_contact: str | None = None
    # /privacy (Telegram's Bot Developer Terms): the owner's privacy policy, a link and/or its text per language
    privacy_policy_url: str | None = None
    privacy_policy_ru: str | None = Field(default=None, max_length=MAX_POLICY_CHARS)
    privacy_policy_en: str | None = Field(default=None, max_length=MAX_POLICY_CHARS)
    privacy_policy_uz: str | None = Field(default=None, max_length=MAX_POLICY_CHARS)

    @field_validator("admin_ids", "trusted_proxies", "retry_intervals", "job_retry_intervals",
                     "cloudpayments_recurrent_plans", "events_retry_intervals", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator(
        "bot_token", "admin_api_token", "link_secret", "yoomoney_wallet", "yoomoney_notification_secret",
        "yoomoney_api_token", "yookassa_shop_id", "yookassa_secret_key", "cloudpayments_public_id",
        "cloudpayments_api_secret", "cloudpayments_test_mode", "payme_merchant_id", "payme_key", "click_service_id",
        "click_merchant_id", "click_secret_key", "click_merchant_user_id", "konsol_api_token",
        "konsol_webhook_secret", "admin_chat_id", "tls_cert", "tls_key", "webhook_secret", "stars_support_contact",
        "receipt_ikpu", "receipt_package_code", "receipt_vat_percent", "receipt_seller_tin",
        "receipt_vat_code", "receipt_tax_system_code", "cloudpayments_inn", "events_url", "events_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("privacy_policy_url", "privacy_policy_ru", "privacy_policy_en", "privacy_policy_uz",
                     mode="before")
    @classmethod
    def _policy_unset_when_blank(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def privacy_policy(self, language: str) -> str | None:
        """The policy's text in `language` (PRIVACY_POLICY_RU, _EN, _UZ), None when that one is unset."""
        text = getattr(self, f"privacy_policy_{language}", None)
        return text.strip() if isinstance(text, str) else None

    @field_validator("donation_min", "donation_max", "donation_suggested", mode="before")
    @classmethod
    def _per_currency(cls, value: Any, info: ValidationInfo) -> Any:
        """"RUB=10000,UZS=1000000" (or, suggested, "RUB=10000/30000"); the ranges are checked by check-config."""
        if not isinstance(value, str):
            return value
        entries: dict[str, Any] = {}
        for entry in _split_csv(value):
            currency, _, amounts = entry.partition("=")
            numbers = [part.strip() for part in amounts.split("/")]
            digits = all(part.isascii() and part.isdigit() and len(part) < 16 for part in numbers)
            if not currency.strip() or not digits:
                raise ValueError(f"{entry!r}: give CURRENCY=minor units, e.g. RUB=10000")
            values = [int(part) for part in numbers]
            entries[currency.strip().upper()] = values if info.field_name == "donation_suggested" else values[0]
        return entries

    @field_validator("yookassa_notify_ips", mode="before")
    @classmethod
    def _yookassa_networks(cls, value: Any) -> Any:
        """Addresses or networks; an empty list would refuse every genuine notification, so it is an error."""
        entries = _split_csv(value)
        if isinstance(entries, list):
            if not entries:
                raise ValueError("empty; keep YooKassa's published list (the default) or name the sender")
            for entry in entries:
                ipaddress.ip_network(str(entry).strip(), strict=False)  # ValueError names the bad entry
        return entries

    @field_validator("konsol_webhook_ips", mode="before")
    @classmethod
    def _konsol_networks(cls, value: Any) -> Any:
        entries = _split_csv(value)
        for entry in entries if isinstance(entries, list) else []:
            ipaddress.ip_network(str(entry).strip(), strict=False)  # ValueError names the bad entry
        return entries

    @field_validator("payout_max_amount")
    @classmethod
    def _payout_limits(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("payout_min_amount", 0):
            raise ValueError("below PAYOUT_MIN_AMOUNT")
        return value

    @property
    def link_key(self) -> bytes:
        """Key for signed payment links: LINK_SECRET, or one derived from BOT_TOKEN."""
        if self.link_secret is not None:
            return self.link_secret.get_secret_value().encode()
        if self.bot_token is not None:
            token = self.bot_token.get_secret_value().encode()
            return hmac.new(token, b"open-ymds/link-secret/v1", hashlib.sha256).digest()
        raise ConfigError("LINK_SECRET: not set, and no BOT_TOKEN to derive it from")

    def secret_values(self) -> list[str]:
        """Every secret setting's value, for the log masker."""
        values = [getattr(self, name).get_secret_value() for name, field in type(self).model_fields.items()
                  if field.annotation in (SecretStr, SecretStr | None) and getattr(self, name) is not None]
        return [*values, self.link_key.hex()] if self.link_secret or self.bot_token else values

    @property
    def webhook_secret_token(self) -> str:
        """X-Telegram-Bot-Api-Secret-Token of webhook mode: WEBHOOK_SECRET, or hex HMAC-SHA256 of
        "telegram-webhook" keyed by BOT_TOKEN (a token holds ':', which Telegram does not allow there)."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        if self.bot_token is not None:
            return hmac.new(self.bot_token.get_secret_value().encode(), b"telegram-webhook", hashlib.sha256).hexdigest()
        raise ConfigError("WEBHOOK_SECRET: not set, and no BOT_TOKEN to derive it from")

    def provider_enabled(self, name: str) -> bool:
        if name == "telegram_stars" and not self.stars_enabled:
            return False
        return all(getattr(self, field) is not None for field in PROVIDER_CREDENTIALS[name])

    @property
    def enabled_providers(self) -> list[str]:
        return [name for name in PROVIDER_CREDENTIALS if self.provider_enabled(name)]

    def validate_for_run(self) -> list[str]:
        """Check what a running service needs. Raises ConfigError naming the bad setting; returns warnings."""
        warnings: list[str] = []
        if self.environment is Environment.PRODUCTION and self.admin_api_token is None:
            raise ConfigError("ADMIN_API_TOKEN: required in production (the admin API would be open)")
        for name in URL_SETTINGS:
            _check_url(name, getattr(self, name))
        _check_url_scheme("mongodb_uri", self.mongodb_uri, ("mongodb", "mongodb+srv", "memory"))
        _check_url_scheme("redis_url", self.redis_url, ("redis", "rediss", "unix", "memory"))
        self.link_key  # noqa: B018 - raises ConfigError when no key can be had
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS_CERT and TLS_KEY: set both or neither")
        if self.web_processes > 1 and self.web_port == 0:
            raise ConfigError("WEB_PROCESSES: processes share one port; WEB_PORT=0 would give each its own")
        for name, fields in PROVIDER_CREDENTIALS.items():
            missing = [field.upper() for field in fields if getattr(self, field) is None]
            if 0 < len(missing) < len(fields):
                raise ConfigError(
                    f"{', '.join(missing)}: {name} is half configured; set all of its credentials or none")
            if not missing and name not in IMPLEMENTED_PROVIDERS:
                warnings.append(f"{name}: credentials set, but this release does not handle {name} yet")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(
                    f"TRUSTED_PROXIES: {entry!r} is not an IP address or network (e.g. 127.0.0.1,10.0.0.0/8)"
                ) from None
        if self.stars_enabled and self.bot_token is None and self.environment is Environment.PRODUCTION:
            warnings.append("STARS_ENABLED: Telegram Stars are paid inside the bot; without BOT_TOKEN they stay off")
        if self.webhook_mode and self.bot_token is None:
            raise ConfigError("WEBHOOK_MODE: the bot needs BOT_TOKEN to be served by the web server")
        if self.webhook_secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", self.webhook_secret.get_secret_value()):
            raise ConfigError("WEBHOOK_SECRET: 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        if self.privacy_policy_url is not None:
            _check_url("privacy_policy_url", self.privacy_policy_url)
        policy = self.privacy_policy_url or self.privacy_policy_ru or self.privacy_policy_en or self.privacy_policy_uz
        if self.bot_token is not None and self.environment is Environment.PRODUCTION and policy is None:
            warnings.append("PRIVACY_POLICY_URL, PRIVACY_POLICY_RU/_EN/_UZ: none set; Telegram's Bot Developer Terms "
                            "require a bot that takes payments to publish its privacy policy (/privacy)")
        if self.bot_token is not None and "." not in (urlsplit(self.public_base_url).hostname or ""):
            warnings.append("PUBLIC_BASE_URL: Telegram refuses the bot's payment buttons to a host without a dot "
                            "(localhost); use the server's public name")
        for name in ("retry_intervals", "job_retry_intervals"):
            intervals = getattr(self, name)
            if len(intervals) == 0 or any(seconds < 0 for seconds in intervals):
                raise ConfigError(f"{name.upper()}: give at least one interval in seconds, none negative")
        _check_donations(self.donation_min, self.donation_max, self.donation_suggested)
        for name in ("click_service_id", "click_merchant_id", "click_merchant_user_id"):
            value = getattr(self, name)
            if value is not None and not (value.isascii() and value.isdigit()):
                raise ConfigError(f"{name.upper()}: must be the number Click issued")
        self._check_events()
        return warnings

    def _check_events(self) -> None:
        """EVENTS_URL and EVENTS_SECRET go together; the secret is long enough to key HMAC-SHA256, and in
        production the events (payments, refunds, payouts) travel over HTTPS only."""
        if (self.events_url is None) != (self.events_secret is None):
            raise ConfigError("EVENTS_URL and EVENTS_SECRET: set both or neither")
        if self.events_url is None or self.events_secret is None:
            return
        _check_url("events_url", self.events_url)
        if self.environment is Environment.PRODUCTION and not self.events_url.startswith("https://"):
            raise ConfigError("EVENTS_URL: must be https:// in production (the events carry payments)")
        if len(self.events_secret.get_secret_value()) < MIN_EVENTS_SECRET_CHARS:
            raise ConfigError(f"EVENTS_SECRET: at least {MIN_EVENTS_SECRET_CHARS} characters "
                              "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        if not self.events_retry_intervals or any(seconds <= 0 for seconds in self.events_retry_intervals):
            raise ConfigError("EVENTS_RETRY_INTERVALS: give at least one interval in seconds, each above 0")

def _check_donations(low: dict[str, int], high: dict[str, int], suggested: dict[str, list[int]]) -> None:
    """DONATION_MIN ≤ DONATION_MAX within what an order may be (billing.orders.ORDER_LIMITS), the same currencies
    in both, and every suggested amount between them."""
    if set(low) != set(high):
        raise ConfigError("DONATION_MIN, DONATION_MAX: name the same currencies in both")
    for currency, minimum in low.items():
        if currency not in ORDER_LIMITS:
            raise ConfigError(f"DONATION_MIN: {currency} is not one of {', '.join(ORDER_LIMITS)}")
        floor, ceiling = ORDER_LIMITS[currency]
        if not floor <= minimum <= high[currency] <= ceiling:
            raise ConfigError(f"DONATION_MIN, DONATION_MAX: {currency} needs {floor} <= min <= max <= {ceiling} "
                              "(minor units)")
    for currency, amounts in suggested.items():
        if currency not in low or any(not low[currency] <= amount <= high[currency] for amount in amounts):
            raise ConfigError(f"DONATION_SUGGESTED: every {currency} amount must lie between DONATION_MIN and "
                              "DONATION_MAX")


def _check_url(name: str, value: str) -> None:
    _check_url_scheme(name, value, ("http", "https"))


def _check_url_scheme(name: str, value: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or (parts.scheme not in ("memory", "unix") and not parts.netloc):
        raise ConfigError(
            f"{name.upper()}: {redact_url(value)!r} is not a valid URL (expected {' or '.join(schemes)}://...)"
        )


def redact_url(value: str) -> str:
    """The URL without its password, fit for messages and logs."""
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()

