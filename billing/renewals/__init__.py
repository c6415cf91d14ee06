"""Renewals: saved methods charged when a period ends, retried on a schedule, then expired.

- `scheduler.tick` (run by `ymds scheduler`, one instance at a time) opens a Renewal row for each
  subscription due within the lead time, enqueues the due attempts, reminds users who have nothing
  to renew with, and expires what ended.
- `attempt.run_renewal` (an RQ job) charges the saved method once per attempt and records a success
  through the same ledger as a first payment; a decline schedules the next retry or gives up.
- `cancel` turns auto-renewal off (and deletes the saved method at the provider) or on again.
- `notices` writes to users about reminders, declines and expiry, with a fresh signed link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from billing.chat_ports import ChatQueue
from billing.invoices import LinkIssuer
from billing.ledger import Ledger
from billing.ports import EventQueue, RenewalQueue
from billing.providers.base import SavedMethodCharger
from billing.refunds import RefundCheckQueue

PENDING_RECHECK = timedelta(minutes=5)  # a charge the provider has not decided is looked up again after this


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    retry_intervals: Sequence[int]  # seconds before each retry; the last repeats
    max_retries: int  # retries after the first charge
    lead: timedelta = timedelta(hours=1)  # charge this long before the period ends
    reminder_days: int = 3
    charge_notice_days: int = 3  # RENEWAL_NOTICE_DAYS: the notice before an automatic charge
    self_renewing: frozenset[str] = field(default_factory=frozenset)  # providers that renew by themselves
    grace_days: int = 0  # GRACE_DAYS: a former subscriber stays in the plan's chats this long (billing/chat_access.py)

    def delay_after(self, attempt: int) -> timedelta:
        """How long after the `attempt`-th declined charge (1-based) the next one runs."""
        index = min(attempt, len(self.retry_intervals)) - 1
        return timedelta(seconds=self.retry_intervals[index])

    def exhausted(self, attempts: int) -> bool:
        return attempts > self.max_retries


class SchedulerQueue(RenewalQueue, RefundCheckQueue, EventQueue, ChatQueue, Protocol):
    """What renewal jobs and the scheduler's tick enqueue: renewals, their notices, look-ups of pending refunds,
    deliveries of outbound events, removals from the plans' chats."""


@dataclass(frozen=True, slots=True)
class RenewalServices:
    """What renewal jobs and the scheduler need from their process."""

    chargers: Mapping[str, SavedMethodCharger]
    ledger: Ledger
    queue: SchedulerQueue
    policy: RenewalPolicy
    links: LinkIssuer
