"""`ymds reconcile PROVIDER` for the providers we can ask, and `ymds extras`: one-shot commands against the
configured MongoDB and Redis, with the same provider objects the services build."""

from __future__ import annotations

from datetime import datetime

from billing.clock import utc_now
from billing.events.delivery import listed, replay
from billing.extras import extra_json, extras, mark_refunded_by_hand
from billing.ledger import Ledger
from billing.reconciliation import parse_period, with_database
from billing.sweep import reconcilers, sweep_once
from settings import ConfigError, Settings
from webhook_server.payout_services import OwnSessionTransport
from webhook_server.providers import build_providers
from webhook_server.renewal_services import PROVIDER_TIMEOUT_SECONDS
from webhook_server.runner import queues_for


def reconcile_with(settings: Settings, provider: str, start_text: str, end_text: str) -> tuple[int, list[str]]:
    """Ask `provider` for the payments of the period and record what the ledger lacks: exit status 0 when
    nothing was missing, 1 when payments were recorded now, and the lines to print."""
    start, end = parse_period(start_text, end_text)
    if settings.redis_url == "memory://":
        raise ConfigError("REDIS_URL: memory:// lives inside one process; point it at the Redis the workers use")

    async def work() -> tuple[int, list[str]]:
        transport = OwnSessionTransport(PROVIDER_TIMEOUT_SECONDS)
        try:
            asked = [r for r in reconcilers(build_providers(settings, transport)) if r.name == provider]
            if not asked:
                raise ConfigError(f"{provider} is not enabled, or its API credentials are unset: it cannot be asked")
            ledger = Ledger(queues_for(settings), utc_now)
            reports = await sweep_once(asked, ledger, start=start, end=end, now=utc_now())
        finally:
            await transport.close()
        if not reports:
            raise ConfigError(f"{provider} could not be asked now (see the log); try again")
        report = reports[0]
        return (1 if report.recorded else 0), [*report.lines, report.summary()]

    return with_database(settings, work)


def list_extras(settings: Settings, *, manual_only: bool) -> list[str]:
    async def work() -> list[str]:
        found = [extra_json(operation) for operation in await extras(manual_only=manual_only)]
        lines = [f"{e['provider']}:{e['operation_id']}  {e['label']}  {e['amount']} {e['currency']}  "
                 f"{e['refund']}  {e['detail'] or ''}".rstrip() for e in found]
        return [*lines, f"{len(found)} extra payment(s)"]

    return with_database(settings, work)


def extra_refunded(settings: Settings, provider: str, operation_id: str, *, by: str) -> bool:
    async def work() -> bool:
        now: datetime = utc_now()
        return await mark_refunded_by_hand(provider, operation_id, by=by, now=now) is not None

    return with_database(settings, work)


def replay_events(settings: Settings, *, since: datetime | None, event_id: str | None, failed_only: bool
                  ) -> list[str]:
    """`ymds events replay`: queue the chosen events for delivery again, under their own ids."""
    if settings.redis_url == "memory://":
        raise ConfigError("REDIS_URL: memory:// lives inside one process; point it at the Redis the workers use")

    async def work() -> list[str]:
        replayed = await replay(now=utc_now(), queue=queues_for(settings), since=since, event_id=event_id,
                                failed_only=failed_only)
        lines = [f"queued {event.event_id}  {event.type}  {event.created.isoformat()}  was {event.status.value} "
                 f"after {len(event.attempts)} attempt(s)" for event in replayed]
        return [*lines, f"{len(replayed)} event(s) queued for delivery"]

    return with_database(settings, work)


def list_events(settings: Settings, *, since: datetime | None, failed_only: bool) -> list[str]:
    """`ymds events`: the events recorded, oldest first, with their delivery status."""
    async def work() -> list[str]:
        found = await listed(since=since, failed_only=failed_only)
        lines = [f"{event.event_id}  {event.type}  {event.created.isoformat()}  {event.status.value}  "
                 f"{len(event.attempts)} attempt(s)" for event in found]
        return [*lines, f"{len(found)} event(s)"]

    return with_database(settings, work)
