"""`ymds demo`: the whole product in one process on embedded defaults, with provider emulators."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType

from aiohttp import web

from billing.admin_access import issue_login_token
from billing.clock import Clock, ScaledClock, utc_now
from billing.donations import donation_url
from billing.invoices import create_invoice, pay_link
from billing.plans import Catalogue
from billing.renewals.scheduler import run_scheduler
from bot.notifier import chats_for, notifier_for
from settings import Environment, Settings
from webhook_server.app import create_app
from webhook_server.emulators import EMULATORS
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import CLOCK, HTTP, PLANS, PROVIDERS, QUEUES, SETTINGS
from webhook_server.payout_services import close_payout_services, payout_services
from webhook_server.renewal_services import renewal_services, scheduler_lease
from webhook_server.runner import InProcessWorker, sweeper_for
from webhook_server.views.telegram import polling_ctx

log = logging.getLogger(__name__)

DEMO_USER_ID = 100000001
DEMO_ADMIN_ID = 100000000
EMULATOR_ROOT = "/emulator"
WELCOME = web.AppKey("demo_welcome", str)
CLOCK_SPEED = web.AppKey("demo_clock_speed", float)
DAY = 86400
MAX_SCALED_SECONDS = 100 * 365 * DAY  # a link's lifetime at a fast clock, kept inside datetime's range


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
        "admin_ids": str(DEMO_ADMIN_ID),  # the dashboard's one-time sign-in link below is issued to it
        "metrics_token": "demo-metrics-token",
        "link_secret": "demo-link-secret",
        "web_host": address.host,
        "web_port": str(address.port),
        "scheduler_interval_seconds": "1",
        "log_format": "text",  # a console a person reads: one line an event, RQ's housekeeping quiet
        "reconcile_interval_seconds": "30",  # a notification the emulator dropped is found within half a minute
    }
    for name, emulator in EMULATORS.items():
        values.update(emulator.demo_values(base, f"{base}{EMULATOR_ROOT}/{name}"))
    return values


def with_demo_values(settings: Settings, address: DemoAddress) -> Settings:
    """Settings given in the environment or .env win; the demo fills only what is unset. WEB_HOST and WEB_PORT
    are where the demo listens (`--host`/`--port` win over them), so that its pages and warnings say so."""
    unset = {name: value for name, value in demo_values(address).items() if name not in settings.model_fields_set}
    listening = {"web_host": address.host, "web_port": address.port}
    return settings.model_validate({**settings.model_dump(), **unset, **listening})


def exposure_warning(host: str) -> str | None:
    """What the demo says when it listens beyond this machine: its emulators pay any invoice for anyone."""
    if _loopback(host):
        return None
    return (f"WARNING: the demo listens on {host or 'every address'}, not only on this machine. Its emulators "
            f"under {EMULATOR_ROOT}/ pay any invoice without a secret and its tokens are printed below: anyone "
            "who reaches this port can use them. Run it with --host 127.0.0.1 unless this network is yours alone; "
            "`ymds web` never serves the emulators.")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or "" (every address): it may well reach beyond this machine


def build_demo_app(settings: Settings, plans: Catalogue, *, clock_speed: float = 1.0) -> web.Application:
    """With `clock_speed` above 1 the service's clock runs that much faster; renewals are looked for early
    enough (three scheduler ticks ahead) that a period never lapses between two ticks, the notice before a
    charge comes at least three ticks before the charge (else the lead would swallow it), and links and
    invoices last as long in wall-clock time as they would at normal speed."""
    clock: Clock = utc_now
    if clock_speed != 1.0:
        clock = ScaledClock(clock_speed)
        lead = max(settings.renewal_lead_seconds, int(3 * settings.scheduler_interval_seconds * clock_speed))
        notice_days = settings.renewal_notice_days and max(settings.renewal_notice_days, math.ceil(2 * lead / DAY))
        settings = settings.model_copy(update={
            "renewal_lead_seconds": lead,
            "renewal_notice_days": notice_days,
            "link_ttl_seconds": _scaled(settings.link_ttl_seconds, clock_speed),
            "invoice_ttl_seconds": _scaled(settings.invoice_ttl_seconds, clock_speed),
        })
    app = create_app(settings, plans=plans, clock=clock)
    app[CLOCK_SPEED] = clock_speed
    local_base = DemoAddress(settings.web_host, settings.web_port).local_base
    for name, emulator in EMULATORS.items():
        emulator_app = emulator.demo_app(settings, local_base, **_emulator_clock(emulator, clock))
        if emulator_app is not None:
            app.add_subapp(f"{EMULATOR_ROOT}/{name}", emulator_app)
    app.cleanup_ctx.append(_worker_ctx)
    if settings.bot_token is not None and not settings.webhook_mode:
        app.cleanup_ctx.append(polling_ctx)  # the bot, long polling TELEGRAM_API_URL in this process
    app.on_startup.append(_prepare_welcome)
    warning = exposure_warning(settings.web_host)
    if warning is not None:
        log.warning("%s", warning)
    return app


def _emulator_clock(emulator: ModuleType, clock: Clock) -> dict[str, Clock]:
    """The demo's clock for an emulator that keeps one of its own (CloudPayments charges its subscriptions on
    it), so that at a fast clock the provider's schedule runs as fast as ours."""
    return {"clock": clock} if "clock" in inspect.signature(emulator.demo_app).parameters else {}


def _scaled(seconds: int, speed: float) -> int:
    return int(min(seconds * speed, MAX_SCALED_SECONDS))


def print_welcome(app: web.Application) -> None:
    """Printed once the server listens, so the link works the moment it appears."""
    print(app[WELCOME], flush=True)


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """The worker, and the renewal scheduler as `ymds scheduler` runs it, on this process's loop and stores."""
    settings = app[SETTINGS]
    notifier = notifier_for(settings, AiohttpTransport(app[HTTP]))  # Telegram when BOT_TOKEN is set
    payouts = payout_services(settings, app[QUEUES])  # against the konsol.pro emulator
    renewals = renewal_services(settings, app[QUEUES], app[PROVIDERS], app[CLOCK])
    worker = InProcessWorker(app[QUEUES], asyncio.get_running_loop(), app[PLANS], notifier=notifier,
                             payouts=payouts, renewals=renewals, clock=app[CLOCK], providers=app[PROVIDERS].providers,
                             chats=chats_for(notifier), grace_days=settings.grace_days)
    worker.start()
    stop = asyncio.Event()
    sweeper = sweeper_for(settings, app[QUEUES], app[PROVIDERS], app[CLOCK])
    sweeper.last = app[CLOCK]()  # the first sweep after one interval: the emulators listen only once we do
    scheduler = asyncio.create_task(run_scheduler(renewals, scheduler_lease(settings, app[QUEUES].connection),
                                                  app[CLOCK], interval=settings.scheduler_interval_seconds, stop=stop,
                                                  sweeper=sweeper))
    yield
    stop.set()
    await scheduler
    await worker.stop()
    await close_payout_services(payouts)


def _fast_clock_lines(settings: Settings, speed: float) -> list[str]:
    """What a fast clock lets a person watch: renewals charged, a refused one ending, a CloudPayments
    subscription cancelled from the bot."""
    base = settings.public_base_url
    recurrent = ", ".join(sorted(settings.cloudpayments_recurrent_plans))
    lines = [
        f"The clock runs {speed:g} times faster: choose 'Pay and renew automatically' with YooKassa, CloudPayments "
        "or Payme and the saved card is charged again when the period ends (see the log); 'Pay once' saves nothing "
        "and the subscription ends after a reminder.",
    ]
    if "yookassa" in settings.enabled_providers:
        lines += ["A refused renewal: after paying with YooKassa and 'Pay and renew automatically', switch the "
                  "shop's autopayments off; the next charge is refused (403 forbidden), the renewal stops, the user "
                  "is told and the subscription ends with its period:",
                  f"  curl -X POST -H 'Content-Type: application/json' -d '{{\"autopayments\": false}}' "
                  f"{base}{EMULATOR_ROOT}/yookassa/control/shop"]
    if "cloudpayments" in settings.enabled_providers:
        lines.append(
            f"A CloudPayments subscription (plans {recurrent}): pay with CloudPayments and 'Pay and renew "
            "automatically', then send /cancel to the bot and turn it off: the worker cancels it at CloudPayments "
            "(/subscriptions/cancel) and the bot says so." if recurrent and settings.bot_token is not None else
            "A CloudPayments subscription cancelled from the bot: run the demo with BOT_TOKEN, TELEGRAM_API_URL "
            "(e.g. `ymds fake-telegram`) and CLOUDPAYMENTS_RECURRENT_PLANS=<plan>.")
    return [*lines, ""]


async def _dashboard_lines(settings: Settings, now: datetime) -> list[str]:
    """The dashboard's address and a one-time sign-in link (10 minutes) for the first admin."""
    if not settings.admin_ids:
        return [f"  dashboard:     {settings.public_base_url}/admin (ADMIN_IDS is unset: nobody can sign in)"]
    token = await issue_login_token(settings.admin_ids[0], now)
    return [f"  dashboard:     {settings.public_base_url}/admin",
            f"    sign in as {settings.admin_ids[0]}: {settings.public_base_url}/admin/login/link/{token}"]


async def _prepare_welcome(app: web.Application) -> None:
    settings = app[SETTINGS]
    plans = app[PLANS]
    plan = next(iter(plans))
    now = app[CLOCK]()
    invoice = await create_invoice(plan, DEMO_USER_ID, now=now, ttl_seconds=settings.invoice_ttl_seconds)
    link = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                    ttl_seconds=settings.link_ttl_seconds)
    donate = donation_url(settings.public_base_url, settings.link_key, DEMO_USER_ID, now=now,
                          ttl_seconds=settings.link_ttl_seconds)
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else "(unset)"
    metrics = (f"(Authorization: Bearer {settings.metrics_token.get_secret_value()})" if settings.metrics_token
               else "(open: METRICS_TOKEN is unset)")
    warning = exposure_warning(settings.web_host)
    dashboard = await _dashboard_lines(settings, now)
    bot = ("no BOT_TOKEN: running without the bot" if settings.bot_token is None
           else f"served at {settings.public_base_url}/telegram/webhook" if settings.webhook_mode
           else f"long polling {settings.telegram_api_url}; send it /subscribe")
    lines = [
        "",
        *([warning, ""] if warning else []),
        "open-ymds demo is running",
        f"  providers:     {', '.join(settings.enabled_providers) or 'none'}",
        f"  bot:           {bot}",
        f"  admin API:     {settings.public_base_url}/api (Authorization: Bearer {token})",
        f"  metrics:       {settings.public_base_url}/metrics {metrics}",
        *dashboard,
        f"  demo invoice:  {invoice.label} for user {DEMO_USER_ID}, plan {plan.name!r}",
        "",
        "Pay it: open this link, press the pay button, then 'Pay' on the emulator page:",
        f"  {link.url}",
        "Or make a donation: open this link, pick or type an amount, then pay it the same way:",
        f"  {donate}",
        *(_fast_clock_lines(settings, app[CLOCK_SPEED]) if app[CLOCK_SPEED] != 1.0 else []),
        "Then check the subscription:",
        f"  curl -H 'Authorization: Bearer {token}' {settings.public_base_url}/api/users/{DEMO_USER_ID}/subscription",
        "",
    ]
    app[WELCOME] = "\n".join(lines)
