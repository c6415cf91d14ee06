"""Prometheus metrics: counters the web process keeps, and gauges read from MongoDB and Redis at each scrape.

The worker runs in other processes, so what it does (queue depth, failed jobs, fulfilment latency, active
subscriptions) is read from the shared stores when /metrics is scraped, not counted in memory.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from pydantic import SecretStr
from rq.registry import FailedJobRegistry

from billing.signing import secrets_equal
from billing.subscriptions import count_with_access
from db import Operation
from db.payouts import PayoutClaim
from webhook_server.keys import CLOCK, METRICS, QUEUES, SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOTIFY_OUTCOME = web.RequestKey("notify_outcome", str)
LATENCY_WINDOW = timedelta(hours=1)
LATENCY_SAMPLE_LIMIT = 10_000
NOTIFY_PREFIX = "/notify/"
OTHER = "other"  # the label of anything outside the fixed set: an unknown provider path, an unexpected outcome
OUTCOME_NAME = re.compile(r"[a-z0-9_]{1,48}")
MAX_OUTCOMES_PER_PROVIDER = 64  # far above what any provider module names; a guard, never reached in practice


class Metrics:
    """The web process's own counters, in a registry of the app's (no global state).

    Every label value comes from a fixed set, so that no request can add a series: the provider is one of
    the route table's /notify/<provider> names or `other`, and the outcome is one of the names our views
    give (request[NOTIFY_OUTCOME], or http_<status> when a view gave none), at most
    MAX_OUTCOMES_PER_PROVIDER of them per provider, anything past that `other`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.notifications = Counter(
            "ymds_notifications", "Provider notifications received, by provider and outcome",
            ["provider", "outcome"], registry=self.registry,
        )
        self._providers: frozenset[str] | None = None
        self._outcomes: dict[str, set[str]] = {}

    def count_notification(self, router: web.UrlDispatcher, path: str, outcome: str) -> None:
        provider = path[len(NOTIFY_PREFIX):].split("/", 1)[0]
        if provider not in self._known_providers(router):
            provider, outcome = OTHER, OTHER
        self.notifications.labels(provider, self._bounded_outcome(provider, outcome)).inc()

    def _known_providers(self, router: web.UrlDispatcher) -> frozenset[str]:
        """The /notify/<provider> names of the route table, read once the app serves (routes are fixed then)."""
        if self._providers is None:
            self._providers = notify_providers(router)
        return self._providers

    def _bounded_outcome(self, provider: str, outcome: str) -> str:
        seen = self._outcomes.setdefault(provider, set())
        if outcome in seen:
            return outcome
        if not OUTCOME_NAME.fullmatch(outcome) or len(seen) >= MAX_OUTCOMES_PER_PROVIDER:
            return OTHER
        seen.add(outcome)
        return outcome


def notify_providers(router: web.UrlDispatcher) -> frozenset[str]:
    """The providers with a route of their own under /notify/ (the first path segment after it)."""
    names = set()
    for resource in router.resources():
        canonical = resource.canonical
        if canonical.startswith(NOTIFY_PREFIX):
            name = canonical[len(NOTIFY_PREFIX):].split("/", 1)[0]
            if name and "{" not in name:
                names.add(name)
    return frozenset(names)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith(NOTIFY_PREFIX) and request.method == "POST":
        outcome = request.get(NOTIFY_OUTCOME) or f"http_{response.status}"
        request.app[METRICS].count_notification(request.app.router, request.path, outcome)
    return response


def bearer_matches(request: web.Request, token: SecretStr) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time; a header that is not printable ASCII is
    refused before the comparison (it cannot be the token, and must not turn into a 500)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given.isascii() or not given.isprintable():
        return False
    return secrets_equal(token.get_secret_value(), given)


def metrics_refused(request: web.Request) -> web.Response | None:
    """A 401 when METRICS_TOKEN is set and the request does not carry it; None when it may see /metrics."""
    token = request.app[SETTINGS].metrics_token
    if token is None or bearer_matches(request, token):
        return None
    return web.Response(status=401, text="missing or wrong Bearer token\n",
                        headers={"WWW-Authenticate": 'Bearer realm="ymds-metrics"'})


@dataclass(slots=True, eq=False)
class Snapshot:
    """Gauges read from the stores for one scrape."""

    families: list[Metric] = field(default_factory=list)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def metrics_view(request: web.Request) -> web.Response:
    refused = metrics_refused(request)
    if refused is not None:
        return refused
    snapshot = Snapshot(await _read_gauges(request.app))
    scrape = CollectorRegistry()
    scrape.register(snapshot)  # type: ignore[arg-type]
    body = generate_latest(request.app[METRICS].registry) + generate_latest(scrape)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _read_gauges(app: web.Application) -> list[Metric]:
    now = app[CLOCK]()
    queues = app[QUEUES]

    def queue_figures() -> list[tuple[str, int, int]]:
        return [(queue.name, len(queue), FailedJobRegistry(queue=queue).count)
                for queue in (queues.fulfilment, queues.notices)]

    figures = await asyncio.to_thread(queue_figures)
    depth = GaugeMetricFamily("ymds_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
    failed = GaugeMetricFamily("ymds_failed_jobs", "Jobs in each queue's failed-job registry", labels=["queue"])
    for name, waiting, failures in figures:
        depth.add_metric([name], waiting)
        failed.add_metric([name], failures)

    active = await count_with_access(now)
    subscriptions = GaugeMetricFamily("ymds_active_subscriptions", "Subscriptions active now", value=active)

    recent = await Operation.find(Operation.applied_at >= now - LATENCY_WINDOW).limit(LATENCY_SAMPLE_LIMIT).to_list()
    delays = sorted((op.applied_at - op.recorded_at).total_seconds() for op in recent if op.applied_at)
    latency = GaugeMetricFamily(
        "ymds_fulfilment_latency_seconds",
        "Seconds from a notification recorded to its payment applied, over the last hour",
        labels=["quantile"],
    )
    for quantile, value in _quantiles(delays).items():
        latency.add_metric([quantile], value)
    applied = GaugeMetricFamily("ymds_fulfilments_last_hour", "Payments applied in the last hour", value=len(delays))
    payouts = GaugeMetricFamily("ymds_payouts", "Payout claims (konsol.pro) in each status", labels=["status"])
    for row in await PayoutClaim.get_motor_collection().aggregate(
            [{"$group": {"_id": "$status", "count": {"$sum": 1}}}]).to_list(None):
        payouts.add_metric([str(row["_id"])], row["count"])
    return [depth, failed, subscriptions, latency, applied, payouts]


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"0.5": values[0], "0.99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"0.5": cuts[49], "0.99": cuts[98]}
