"""The web app factory: settings, templates, resources (cleanup contexts), middlewares, routes, security headers.

The provider emulators (`/emulator/*`, which pay any invoice without a secret) are never part of this app: only
`ymds demo` mounts them (webhook_server/demo.py), so `ymds web` cannot serve them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from billing.clock import Clock, utc_now
from billing.events import outlet as events_outlet
from billing.exports import major_units
from billing.ledger import Ledger
from billing.plans import Catalogue, load_plans
from bot.texts import catalogue
from db import init_db
from rq_access import RqQueues, connect
from settings import Settings
from webhook_server import security_headers
from webhook_server.admin import views as admin_views
from webhook_server.client_ip import parse_networks
from webhook_server.event_sender import close_outlet, event_outlet
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import (
    CLOCK,
    DB_CLIENT,
    HTTP,
    LEDGER,
    METRICS,
    PLANS,
    PROVIDERS,
    QUEUES,
    REDIS,
    SETTINGS,
    TRUSTED_PROXIES,
)
from webhook_server.metrics import Metrics, metrics_middleware
from webhook_server.middlewares import error_middleware, request_id_middleware
from webhook_server.providers import build_providers
from webhook_server.routes import ROUTES
from webhook_server.sweeper import sweeper_ctx
from webhook_server.views.api import admin_auth

TEMPLATES = Path(__file__).parent / "templates"
HTTP_TIMEOUT_SECONDS = 15


def create_app(settings: Settings, *, plans: Catalogue | None = None, clock: Clock = utc_now) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware, error_middleware, admin_auth],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[PLANS] = plans if plans is not None else load_plans(settings.plans_file)
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[TRUSTED_PROXIES] = parse_networks(settings.trusted_proxies)
    templates = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    templates.globals["t"] = catalogue().texts(None)  # a view passes `t` in the page's language; this is the default
    templates.filters["money"] = major_units  # minor units as "1234.50", never through a float
    app.cleanup_ctx.extend([mongo_ctx, redis_ctx, events_ctx, http_ctx, sweeper_ctx])
    app[admin_views.LIMITER] = admin_views.LoginLimiter()
    app.add_routes(ROUTES)
    security_headers.install(app)  # headers on every answer; /static/ for the pages' stylesheet and scripts
    if settings.webhook_mode:
        from webhook_server.views.telegram import mount_bot  # aiogram: only where the bot runs (issue 20)

        mount_bot(app)  # POST /telegram/webhook
    return app


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = await init_db(settings.mongodb_uri, settings.mongodb_db)
    app[DB_CLIENT] = client
    yield
    client.close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    connection = connect(settings.redis_url)
    queues = RqQueues(connection, max_retries=settings.job_max_retries, retry_intervals=settings.job_retry_intervals)
    app[REDIS] = connection
    app[QUEUES] = queues
    app[LEDGER] = Ledger(queues, app[CLOCK])
    yield
    connection.close()


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbound events of this process (billing/events), when EVENTS_URL is set; the demo's and the tests'
    in-process worker delivers through the same outlet."""
    outlet = event_outlet(app[SETTINGS], app[QUEUES])
    events_outlet.install(outlet)
    yield
    events_outlet.uninstall()
    await close_outlet(outlet)


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)) as session:
        app[HTTP] = session
        app[PROVIDERS] = build_providers(app[SETTINGS], AiohttpTransport(session), app[PLANS])
        yield
