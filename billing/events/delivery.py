"""Delivering an outbound event: one POST per job, every attempt recorded, redeliveries on a growing schedule.

A job names the attempt it makes (`number` = the attempts recorded before it), and its record is a conditional
update on that count, so a job that runs twice records one attempt. Redeliveries are not RQ retries: a failed
attempt sets `next_attempt_at`, and the scheduler's tick (`due_deliveries`, on the injectable clock) enqueues
the next one when its time comes. After the last of EVENTS_RETRY_INTERVALS the event is given up and the admin
chat told once; `replay` starts a new series under the same event id.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from billing.clock import Clock, utc_now
from billing.errors import LedgerUnavailable
from billing.events.outlet import EventOutlet
from billing.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from billing.ports import EventNotSent, EventQueue, EventUndeliveredNotice, Notifier
from db.events import DeliveryAttempt, EventStatus, OutboundEvent

log = logging.getLogger(__name__)
BATCH = 500


def payload(event: OutboundEvent) -> bytes:
    """The body every attempt sends, byte for byte (the signature covers these bytes)."""
    document: dict[str, Any] = {"id": event.event_id, "type": event.type, "created": int(event.created.timestamp()),
                                "data": event.data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


async def deliver(event_id: str, number: int, *, outlet: EventOutlet, notifier: Notifier,
                  clock: Clock = utc_now) -> str:
    event = await OutboundEvent.find_one(OutboundEvent.event_id == event_id)
    if event is None:
        return "unknown"
    if event.status is EventStatus.GAVE_UP:
        await _tell_admins(event, notifier, clock())  # a run that stopped before the admins heard
        return "gave up"
    if event.status is not EventStatus.PENDING or len(event.attempts) != number:
        return "done before"  # delivered, or this attempt was made by an earlier run
    now = clock()
    timestamp = int(outlet.wall_clock())
    body = payload(event)
    headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event.event_id,
               SIGNATURE_HEADER: signature_header(outlet.secret, timestamp, body)}
    status: int | None = None
    try:
        status = await outlet.sender.post_event(outlet.url, body, headers)
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except EventNotSent as err:
        error = str(err) or type(err).__name__
    attempt = DeliveryAttempt(at=now, number=number, status=status, error=error)
    if not error:
        await _record(event, number, attempt, {"status": EventStatus.DELIVERED.value, "delivered_at": now,
                                               "next_attempt_at": None})
        log.info("event %s %s delivered (attempt %d)", event.event_id, event.type, number)
        return "delivered"
    failures = number + 1 - event.series_start
    if failures <= len(outlet.retry_intervals):
        next_at = now + timedelta(seconds=outlet.retry_intervals[failures - 1])
        await _record(event, number, attempt, {"next_attempt_at": next_at})
        log.warning("event %s %s not delivered (%s); tried again at %s", event.event_id, event.type, error,
                    next_at.isoformat())
        return "retry"
    if await _record(event, number, attempt, {"status": EventStatus.GAVE_UP.value, "gave_up_at": now,
                                              "next_attempt_at": None}):
        event.status, event.attempts = EventStatus.GAVE_UP, [*event.attempts, attempt]
        log.error("event %s %s given up after %d attempts (%s)", event.event_id, event.type, failures, error)
        await _tell_admins(event, notifier, now)
    return "gave up"


async def _record(event: OutboundEvent, number: int, attempt: DeliveryAttempt, changes: dict[str, Any]) -> bool:
    result = await OutboundEvent.get_motor_collection().update_one(
        {"_id": event.id, "status": EventStatus.PENDING.value, "attempts": {"$size": number}},
        {"$push": {"attempts": attempt.model_dump()}, "$set": changes},
    )
    return bool(result.modified_count == 1)


async def _tell_admins(event: OutboundEvent, notifier: Notifier, now: datetime) -> None:
    """Once per series: the notifier's own record keeps a repeated call from posting twice, and admin_told_at
    keeps a later run of the job from calling it at all."""
    if event.admin_told_at is not None:
        return
    last = event.attempts[-1] if event.attempts else None
    await notifier.event_undelivered(EventUndeliveredNotice(
        event_id=event.event_id, type=event.type, attempts=len(event.attempts) - event.series_start,
        error=last.error if last else "", replays=event.replays))
    await OutboundEvent.get_motor_collection().update_one(
        {"_id": event.id, "admin_told_at": None}, {"$set": {"admin_told_at": now}})


async def due_deliveries(now: datetime, queue: EventQueue) -> int:
    """The scheduler's step: queue the delivery of every pending event whose time has come (a redelivery, or a
    first delivery that could not be queued when it was recorded); the job id names the attempt, so a job
    already queued is not queued twice."""
    due = OutboundEvent.find({"status": EventStatus.PENDING.value, "next_attempt_at": {"$lte": now}}).limit(BATCH)
    count = 0
    async for event in due:
        try:
            await queue.enqueue_event_delivery(event.event_id, len(event.attempts))
        except LedgerUnavailable:
            log.warning("event deliveries not queued now; the next tick tries again")
            break
        count += 1
    return count


def _selection(since: datetime | None, event_id: str | None, failed_only: bool) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if event_id is not None:
        query["event_id"] = event_id
    if since is not None:
        query["created"] = {"$gte": since}
    if failed_only:
        query["status"] = EventStatus.GAVE_UP.value
    return query


async def listed(*, since: datetime | None = None, failed_only: bool = False, limit: int = BATCH
                 ) -> list[OutboundEvent]:
    return await OutboundEvent.find(_selection(since, None, failed_only)).sort("created").limit(limit).to_list()


async def replay(*, now: datetime, queue: EventQueue, since: datetime | None = None, event_id: str | None = None,
                 failed_only: bool = False) -> list[OutboundEvent]:
    """Send events again under their own ids (the receiver dedupes): each starts a new series of attempts, with
    the whole retry schedule and one more admin notice should it fail again. Returns the events queued."""
    replayed = []
    async for event in OutboundEvent.find(_selection(since, event_id, failed_only)).sort("created"):
        number = len(event.attempts)
        result = await OutboundEvent.get_motor_collection().update_one(
            {"_id": event.id, "attempts": {"$size": number}},
            {"$set": {"status": EventStatus.PENDING.value, "series_start": number, "next_attempt_at": now,
                      "gave_up_at": None, "admin_told_at": None}, "$inc": {"replays": 1}},
        )
        if result.modified_count != 1:
            continue  # an attempt is being recorded right now: that event is on its way already
        await queue.enqueue_event_delivery(event.event_id, number)
        replayed.append(event)
    return replayed
