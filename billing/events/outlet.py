"""Recording an event where its state change happens (`emit`), and the process's events settings (`EventOutlet`).

Each process that changes state (`ymds web`, `bot`, `worker`, `scheduler`, the demo) installs its outlet when
EVENTS_URL is set; with none installed `emit` records nothing, which is what an unset EVENTS_URL means.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from billing.errors import LedgerUnavailable
from billing.events import EventType
from billing.events.signing import event_id
from billing.ports import EventQueue, EventSender
from db.events import EventStatus, OutboundEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventOutlet:
    url: str
    secret: str  # EVENTS_SECRET; never logged
    retry_intervals: Sequence[int]  # seconds before each redelivery; after the last failure, the admins are told
    queue: EventQueue
    sender: EventSender
    # the signature's timestamp: the wall clock the receiver compares it with, never the service's (injectable,
    # and scaled by the demo's --clock-speed) clock that schedules the attempts
    wall_clock: Callable[[], float] = time.time

    def __repr__(self) -> str:  # the secret stays out of tracebacks and logs
        return f"EventOutlet(url=<set>, retries={len(self.retry_intervals)})"


_installed: list[EventOutlet] = []


def install(outlet: EventOutlet | None) -> None:
    _installed[:] = [outlet] if outlet is not None else []


def uninstall() -> None:
    _installed.clear()


def installed() -> EventOutlet | None:
    return _installed[0] if _installed else None


async def emit(type_: EventType, cause: str, data: Mapping[str, Any], *, now: datetime) -> str | None:
    """Record the event of a state change once per `cause`, then queue its first delivery; returns its id (None
    when events are off). Call it in the step that made the change, or right after: running it again records
    nothing new and queues the first delivery again only while none was made. A queue that cannot take it now
    is not an error: the scheduler's tick sends every event whose time has come."""
    outlet = installed()
    if outlet is None:
        return None
    id_ = event_id(type_.value, cause)
    event = OutboundEvent(event_id=id_, type=type_.value, created=now, data=json_safe(data), next_attempt_at=now)
    try:
        await event.insert()
        log.info("event %s %s recorded", id_, type_.value)
    except DuplicateKeyError:
        existing = await OutboundEvent.find_one(OutboundEvent.event_id == id_)
        if existing is None or existing.status is not EventStatus.PENDING or existing.attempts:
            return id_
    try:
        await outlet.queue.enqueue_event_delivery(id_, 0)
    except LedgerUnavailable as err:
        log.warning("event %s: delivery not queued now (%s); the scheduler's tick sends it", id_, err)
    return id_


def json_safe(value: Any) -> Any:
    """Datetimes as ISO 8601 UTC strings, everything else as JSON takes it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
