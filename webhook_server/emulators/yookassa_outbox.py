"""How the YooKassa emulator delivers notifications: once at the event, then again on its own clock
until the shop answers 200, for 24 hours from the event (reference §3), then never again.

YooKassa does not publish the intervals (reference §11, unconfirmed), so the emulator uses a growing
schedule of its own, documented here: 1, 2, 4, ... 128 minutes between attempts, then every 4 hours, and a
last attempt exactly 24 hours after the event (REDELIVERY_OFFSETS, counted from the event). Any answer but
200 counts as not delivered, as do a refused connection and a delivery the emulator was told to drop
(`drop`: the next N, or all until `stop_dropping`), which stands for an outage, a firewall or a TLS error
between YooKassa and the shop. Each notification carries the object as it was when its status changed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(hours=24)


def _offsets() -> tuple[timedelta, ...]:
    offsets, step, at = [], timedelta(minutes=1), timedelta(0)
    while at + step < GIVE_UP_AFTER:
        at += step
        offsets.append(at)
        step = min(step * 2, timedelta(hours=4))
    return (*offsets, GIVE_UP_AFTER)


REDELIVERY_OFFSETS = _offsets()  # 1m, 3m, 7m, ... 4h15m, 8h15m, ... 20h15m, 24h


@dataclass(slots=True, eq=False)  # one notification is one object, whatever its fields
class Notice:
    """One notification YooKassa owes the shop, until it is answered 200 or given up."""

    event: str
    object_id: str
    body: dict[str, Any]
    occurred_at: datetime
    attempts: int = 0  # deliveries tried, dropped ones included
    slot: int = 0  # index in REDELIVERY_OFFSETS of the next redelivery

    def next_at(self) -> datetime | None:
        """When the next redelivery is due; None once the schedule is spent."""
        return self.at(self.slot)

    def at(self, slot: int) -> datetime | None:
        return self.occurred_at + REDELIVERY_OFFSETS[slot] if slot < len(REDELIVERY_OFFSETS) else None


Send = Callable[[Notice], Awaitable[int | None]]  # the shop's HTTP status, None when it could not be reached


@dataclass(slots=True)
class Outbox:
    clock: Callable[[], datetime]
    send: Send
    waiting: list[Notice] = field(default_factory=list)  # not yet answered 200
    given_up: list[Notice] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (event, object id) of each dropped attempt
    _drop_all: bool = False
    _drop_next: int = 0

    def drop(self, times: int = 0) -> None:
        """Lose the next `times` delivery attempts (every attempt while 0) before they reach the shop."""
        if times < 0:
            raise ValueError("times is a count of deliveries, 0 for all of them")
        self._drop_all, self._drop_next = times == 0, times

    def stop_dropping(self) -> None:
        self._drop_all, self._drop_next = False, 0

    async def notify(self, event: str, object_id: str, body: dict[str, Any]) -> int | None:
        """A status changed: deliver now; keep it for redelivery unless the shop answered 200."""
        notice = Notice(event, object_id, body, self.clock())
        self.waiting.append(notice)
        return await self._attempt(notice)

    async def redeliver_due(self) -> int:
        """Deliver again every notification whose next attempt is due on the clock (one attempt each, at
        the latest slot passed); give up those whose 24 hours are over. Returns the attempts made."""
        now, made = self.clock(), 0
        for notice in list(self.waiting):
            due = notice.next_at()
            if due is None or now > notice.occurred_at + GIVE_UP_AFTER:
                self._give_up(notice)
                continue
            if due > now:
                continue
            while (following := notice.at(notice.slot + 1)) is not None and following <= now:
                notice.slot += 1  # slots the clock jumped over are not tried one by one
            notice.slot += 1
            made += 1
            await self._attempt(notice)
        return made

    async def _attempt(self, notice: Notice) -> int | None:
        notice.attempts += 1
        if self._drop_all or self._drop_next:
            self._drop_next = max(self._drop_next - 1, 0)
            self.dropped.append((notice.event, notice.object_id))
            status = None
        else:
            status = await self.send(notice)
        if status == 200 and notice in self.waiting:
            self.waiting.remove(notice)
        elif status != 200 and notice.next_at() is None:
            self._give_up(notice)
        return status

    def _give_up(self, notice: Notice) -> None:
        if notice in self.waiting:
            self.waiting.remove(notice)
            self.given_up.append(notice)
            log.info("yookassa emulator gave up %s for %s after %d attempt(s)", notice.event, notice.object_id,
                     notice.attempts)

