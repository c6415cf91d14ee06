"""The renewal services of each process that needs them: the worker (renewal jobs), `ymds scheduler`, the demo."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis

from billing.clock import Clock
from billing.ledger import Ledger
from billing.providers.base import SavedMethodCharger
from billing.providers.stars import NAME as STARS
from billing.renewals import RenewalPolicy, RenewalServices
from bot.offers import link_issuer
from rq_access import RedisLease, RqQueues
from settings import Settings
from webhook_server.providers import ProviderRegistry

MIN_LEASE_SECONDS = 30
PROVIDER_TIMEOUT_SECONDS = 60  # CloudPayments may take long over a charge; an unknown outcome is looked up again


def renewal_policy(settings: Settings) -> RenewalPolicy:
    self_renewing = {STARS}  # Telegram renews Stars subscriptions itself
    return RenewalPolicy(retry_intervals=tuple(settings.retry_intervals), max_retries=settings.max_retries,
                         lead=timedelta(seconds=settings.renewal_lead_seconds), reminder_days=settings.reminder_days,
                         charge_notice_days=settings.renewal_notice_days, grace_days=settings.grace_days,
                         self_renewing=frozenset(self_renewing))


def renewal_services(settings: Settings, queues: RqQueues, providers: ProviderRegistry,
                     clock: Clock) -> RenewalServices:
    chargers = {provider.name: provider for provider in providers if isinstance(provider, SavedMethodCharger)}
    return RenewalServices(chargers=chargers, ledger=Ledger(queues, clock), queue=queues,
                           policy=renewal_policy(settings), links=link_issuer(settings))


def scheduler_lease(settings: Settings, connection: Redis) -> RedisLease:
    """The scheduler's lease outlives a few ticks, so a standby takes over soon after the holder dies."""
    return RedisLease(connection, ttl_seconds=max(3 * settings.scheduler_interval_seconds, MIN_LEASE_SECONDS))
