"""Prometheus metrics: counters the web process keeps, and gauges read from MongoDB and Redis at each scrape.

The worker runs in other processes, so what it does (queue depth, failed jobs, fulfilment latency, active
subscriptions) is read from the shared stores when /metrics is scraped, not counted in memory.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from rq.registry import FailedJobRegistry

from billing.subscriptions import count_with_access
from db import Operation
from db.payouts import PayoutClaim
from webhook_server.keys import CLOCK, METRICS, QUEUES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOTIFY_OUTCOME = web.RequestKey("notify_outcome", str)
LATENCY_WINDOW = timedelta(hours=1)
LATENCY_SAMPLE_LIMIT = 10_000


class Metrics:
    """The web process's own counters, in a registry of the app's (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.notifications = Counter(
            "ymds_notifications", "Provider notifications received, by provider and outcome",
            ["provider", "outcome"], registry=self.registry,
        )


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    parts = request.path.split("/")
    if len(parts) > 2 and parts[1] == "notify" and request.method == "POST":
        outcome = request.get(NOTIFY_OUTCOME) or f"http_{response.status}"
        request.app[METRICS].notifications.labels(parts[2], outcome).inc()
    return response


@dataclass(slots=True, eq=False)
class Snapshot:
    """Gauges read from the stores for one scrape."""

    families: list[Metric] = field(default_factory=list)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def metrics_view(request: web.Request) -> web.Response:
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
