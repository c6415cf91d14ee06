"""Reconciliation: ask each provider that has an API for the payments whose notifications never reached us.

A provider gives up after its last delivery (YooMoney after about an hour, YooKassa after 24 hours), so an
outage, a wrong allowlist or a TLS error across that window would lose the payment. `ymds scheduler`
sweeps every RECONCILE_INTERVAL_SECONDS over the last RECONCILE_WINDOW_HOURS, and `ymds reconcile PROVIDER
--from --to` sweeps one period by hand. A payment found this way goes into the same ledger under the
provider's own operation id, so a late notification of it is a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from billing.errors import ProviderUnavailable
from billing.ledger import Ledger
from billing.providers.base import Outcome

log = logging.getLogger(__name__)

NEW_OUTCOMES = (Outcome.ACCEPTED, Outcome.EXTRA)


@dataclass(slots=True)
class ReconcileReport:
    provider: str
    asked: int = 0  # questions put to the provider's API (pages, payments, invoices)
    found: int = 0  # payments of our invoices that the provider reports
    recorded: int = 0  # of those, new to the ledger: their notification never reached us
    lines: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, line: str) -> None:
        """One payment the provider reported, as the ledger judged it."""
        self.found += 1
        if outcome in NEW_OUTCOMES:
            self.recorded += 1
        self.lines.append(f"{line}: {outcome.value}")

    def summary(self) -> str:
        return (f"{self.provider}: asked {self.asked}, found {self.found} payment(s), "
                f"{self.recorded} new to the ledger")


@runtime_checkable
class Reconciler(Protocol):
    name: str

    async def reconcile(self, start: datetime, end: datetime, *, ledger: Ledger, now: datetime) -> ReconcileReport:
        """Record every payment of our invoices that the provider holds for [start, end); raises
        ProviderUnavailable when the provider cannot be asked."""
        ...


def reconcilers(providers: Iterable[Any]) -> list[Reconciler]:
    """The providers that can be asked: those with a `reconcile` method whose credentials allow it."""
    return [provider for provider in providers
            if isinstance(provider, Reconciler) and getattr(provider, "reconcilable", True)]


async def sweep_once(asked: Iterable[Reconciler], ledger: Ledger, *, start: datetime, end: datetime,
                     now: datetime) -> list[ReconcileReport]:
    """Reconcile each provider over [start, end); one that cannot be asked now is logged and skipped (the
    next sweep asks again). A ledger failure (the database or Redis away) propagates."""
    reports = []
    for reconciler in asked:
        try:
            report = await reconciler.reconcile(start, end, ledger=ledger, now=now)
        except ProviderUnavailable as err:
            log.warning("%s reconciliation skipped this time: %s", reconciler.name, err)
            continue
        if report.recorded:
            log.warning("%s (notifications for them never arrived)", report.summary())
        reports.append(report)
    return reports


@dataclass(slots=True)
class Sweeper:
    """The scheduler's timer for sweep_once: due every `interval`, over the `window` before now."""

    asked: list[Reconciler]
    ledger: Ledger
    window: timedelta
    interval: timedelta
    last: datetime | None = None

    async def run_if_due(self, now: datetime) -> list[ReconcileReport] | None:
        if not self.asked or (self.last is not None and now - self.last < self.interval):
            return None
        reports = await sweep_once(self.asked, self.ledger, start=now - self.window, end=now, now=now)
        self.last = now
        return reports
