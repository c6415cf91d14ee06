"""`ymds demo`: the whole product in one process on embedded defaults, with provider emulators."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from billing.invoices import create_invoice, pay_link
from billing.plans import Catalogue
from bot.notifier import close_notifier, notifier_for
from settings import Environment, Settings
from webhook_server.app import create_app
from webhook_server.emulators import EMULATORS
from webhook_server.keys import CLOCK, PLANS, QUEUES, SETTINGS
from webhook_server.payout_services import close_payout_services, payout_services
from webhook_server.runner import InProcessWorker
from webhook_server.views.telegram import polling_ctx

log = logging.getLogger(__name__)

DEMO_USER_ID = 100000001
EMULATOR_ROOT = "/emulator"
WELCOME = web.AppKey("demo_welcome", str)


@dataclass(frozen=True, slots=True)
class DemoAddress:
    host: str
    port: int

    @property
    def local_base(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def demo_values(address: DemoAddress) -> dict[str, str]:
    """The values the demo fills in for settings the environment and .env leave unset.

    Fixed, not random, so that `ymds simulate` in another shell signs with the same secrets.
    """
    base = address.local_base
    values = {
        "environment": Environment.DEVELOPMENT.value,
        "public_base_url": base,
        "admin_api_token": "demo-admin-token",
        "link_secret": "demo-link-secret",
        "web_host": address.host,
        "web_port": str(address.port),
    }
    for name, emulator in EMULATORS.items():
        values.update(emulator.demo_values(base, f"{base}{EMULATOR_ROOT}/{name}"))
    return values


def with_demo_values(settings: Settings, address: DemoAddress) -> Settings:
    """Settings given in the environment or .env win; the demo fills only what is unset."""
    unset = {name: value for name, value in demo_values(address).items() if name not in settings.model_fields_set}
    return settings.model_validate({**settings.model_dump(), **unset})


def build_demo_app(settings: Settings, plans: Catalogue) -> web.Application:
    app = create_app(settings, plans=plans)
    local_base = DemoAddress(settings.web_host, settings.web_port).local_base
    for name, emulator in EMULATORS.items():
        emulator_app = emulator.demo_app(settings, local_base)
        if emulator_app is not None:
            app.add_subapp(f"{EMULATOR_ROOT}/{name}", emulator_app)
    app.cleanup_ctx.append(_worker_ctx)
    if settings.bot_token is not None and not settings.webhook_mode:
        app.cleanup_ctx.append(polling_ctx)  # the bot, long polling TELEGRAM_API_URL in this process
    app.on_startup.append(_prepare_welcome)
    return app


def print_welcome(app: web.Application) -> None:
    """Printed once the server listens, so the link works the moment it appears."""
    print(app[WELCOME], flush=True)


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    notifier = notifier_for(app[SETTINGS])  # Telegram when BOT_TOKEN is set
    payouts = payout_services(app[SETTINGS], app[QUEUES])  # against the konsol.pro emulator
    worker = InProcessWorker(app[QUEUES], asyncio.get_running_loop(), app[PLANS], notifier=notifier,
                             payouts=payouts)
    worker.start()
    yield
    await worker.stop()
    await close_notifier(notifier)
    await close_payout_services(payouts)


async def _prepare_welcome(app: web.Application) -> None:
    settings = app[SETTINGS]
    plans = app[PLANS]
    plan = next(iter(plans))
    now = app[CLOCK]()
    invoice = await create_invoice(plan, DEMO_USER_ID, now=now, ttl_seconds=settings.invoice_ttl_seconds)
    link = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                    ttl_seconds=settings.link_ttl_seconds)
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else "(unset)"
    bot = ("no BOT_TOKEN: running without the bot" if settings.bot_token is None
           else f"served at {settings.public_base_url}/telegram/webhook" if settings.webhook_mode
           else f"long polling {settings.telegram_api_url}; send it /subscribe")
    lines = [
        "",
        "open-ymds demo is running",
        f"  providers:     {', '.join(settings.enabled_providers) or 'none'}",
        f"  bot:           {bot}",
        f"  admin API:     {settings.public_base_url}/api (Authorization: Bearer {token})",
        f"  demo invoice:  {invoice.label} for user {DEMO_USER_ID}, plan {plan.name!r}",
        "",
        "Pay it: open this link, press the pay button, then 'Pay' on the emulator page:",
        f"  {link.url}",
        "Then check the subscription:",
        f"  curl -H 'Authorization: Bearer {token}' {settings.public_base_url}/api/users/{DEMO_USER_ID}/subscription",
        "",
    ]
    app[WELCOME] = "\n".join(lines)
