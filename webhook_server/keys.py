"""Typed application state: every AppKey of the web app, in one place."""

from typing import Any

from aiohttp import ClientSession, web
from redis import Redis

from billing.clock import Clock
from billing.ledger import Ledger
from billing.plans import Catalogue
from rq_access import RqQueues
from settings import Settings
from webhook_server.providers import ProviderRegistry

SETTINGS = web.AppKey("settings", Settings)
PLANS = web.AppKey("plans", Catalogue)
CLOCK = web.AppKey("clock", Clock)
DB_CLIENT = web.AppKey("db_client", Any)
REDIS = web.AppKey("redis", Redis)
QUEUES = web.AppKey("queues", RqQueues)
LEDGER = web.AppKey("ledger", Ledger)
HTTP = web.AppKey("http", ClientSession)
PROVIDERS = web.AppKey("providers", ProviderRegistry)
METRICS = web.AppKey("metrics", Any)  # webhook_server.metrics.Metrics
TRUSTED_PROXIES = web.AppKey("trusted_proxies", list)  # parsed TRUSTED_PROXIES networks
