"""Outbound events end to end: the real app and RQ worker on the real Redis, a real HTTP receiver that checks the
signature with the README's snippet, the scheduler's tick on an injected clock for the redeliveries."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from beanie import init_beanie
from rq.job import Job
from rq.registry import FailedJobRegistry

import ymds
from billing import jobs, reconciliation
from billing.fulfilment import STEPS
from billing.renewals.scheduler import tick
from db.events import EventStatus, OutboundEvent
from db.models import DOCUMENT_MODELS
from tests.billing.test_fulfilment import crash_at
from tests.events.conftest import EVENTS_SECRET, RETRIES
from tests.events.receiver import readme_verifier
from tests.helpers import new_invoice, notification, post_notification
from webhook_server.keys import DB_CLIENT, SETTINGS


async def pay_month(client: Any, worker: Any, user_id: int, operation_id: str = "") -> dict[str, Any]:
    invoice = await new_invoice(client, user_id=user_id)
    fields = notification(invoice["label"], operation_id=operation_id or None)
    assert await post_notification(client, fields) == 200
    await worker.drain()
    return invoice


async def stored() -> list[OutboundEvent]:
    return await OutboundEvent.find_all().sort("created").to_list()


async def next_attempts(clock: Any, worker: Any) -> None:
    """Move the clock to the earliest due redelivery, then run the scheduler's tick and the worker."""
    due = [event.next_attempt_at for event in await stored() if event.next_attempt_at is not None]
    clock.now = min(due)
    assert worker.runtime.renewals is not None
    await tick(clock.now, worker.runtime.renewals)
    await worker.drain()


async def test_a_paid_plan_sends_payment_succeeded_and_subscription_activated_signed(client, worker, receiver,
                                                                                     clock):
    invoice = await pay_month(client, worker, 501, "op-501")

    assert receiver.types() == ["payment.succeeded", "subscription.activated"]
    assert all(got.verified and got.answered == 200 for got in receiver.got)
    payment, activated = (got.event for got in receiver.got)
    assert payment["data"] | {"paid_at": None} == {
        "invoice": invoice["label"], "kind": "plan", "user_id": 501, "provider": "yoomoney",
        "operation_id": "op-501", "amount": 29900, "currency": "RUB", "paid_at": None, "plan": "month",
        "order_id": None, "metadata": None, "description": None, "message": None}
    assert activated["data"]["current_period_end"] == (clock.now + timedelta(days=30)).isoformat()
    assert activated["data"]["plan"] == "month" and activated["data"]["status"] == "active"
    assert payment["id"].startswith("evt_") and payment["id"] != activated["id"]
    assert receiver.got[0].event_id_header == payment["id"]
    assert payment["created"] == int(clock.now.timestamp())
    assert [event.status for event in await stored()] == [EventStatus.DELIVERED] * 2
    [attempt] = (await stored())[0].attempts
    assert (attempt.number, attempt.status, attempt.error) == (0, 200, "")


@pytest.mark.parametrize("step", STEPS)
async def test_a_fulfilment_crash_at_any_step_then_rerun_sends_each_event_once(step, client, worker, queues,
                                                                               receiver):
    invoice = await new_invoice(client, user_id=502)
    fields = notification(invoice["label"])
    assert await post_notification(client, fields) == 200
    worker.runtime.checkpoint = crash_at(step)
    await worker.drain()
    failed = FailedJobRegistry(queue=queues.fulfilment)
    assert len(failed) == 1

    worker.runtime.checkpoint = lambda reached: None
    Job.fetch(failed.get_job_ids()[0], connection=queues.connection).requeue()
    await worker.drain()
    assert await post_notification(client, fields) == 200, "the provider redelivers too"
    await worker.drain()

    assert sorted(receiver.types()) == ["payment.succeeded", "subscription.activated"]
    assert len({got.event["id"] for got in receiver.got}) == 2
    assert len(await stored()) == 2


async def test_the_fulfilment_job_run_twice_records_and_sends_nothing_new(client, worker, receiver):
    invoice = await pay_month(client, worker, 503, "op-503")
    await asyncio.to_thread(jobs.fulfil_payment, "yoomoney", "op-503", invoice["label"])  # as RQ would run it again
    await worker.drain()
    assert len(receiver.got) == 2 and len(await stored()) == 2


async def test_a_500_is_recorded_and_the_event_delivered_on_the_scheduled_retry(client, worker, receiver, clock):
    receiver.answers = [500]
    paid_at = clock.now
    await pay_month(client, worker, 504)
    first, second = await stored()
    assert first.status is EventStatus.PENDING and second.status is EventStatus.DELIVERED
    [failed] = first.attempts
    assert (failed.at, failed.status, failed.error) == (paid_at, 500, "HTTP 500")
    assert first.next_attempt_at == paid_at + timedelta(seconds=RETRIES[0])

    clock.now = first.next_attempt_at - timedelta(seconds=1)
    await tick(clock.now, worker.runtime.renewals)
    await worker.drain()
    assert len(receiver.got) == 2, "nothing is sent before its time"

    await next_attempts(clock, worker)
    first = (await stored())[0]
    assert first.status is EventStatus.DELIVERED and first.delivered_at == clock.now
    assert [(a.number, a.status) for a in first.attempts] == [(0, 500), (1, 200)]
    resent = [got for got in receiver.got if got.event["id"] == first.event_id]
    assert len(resent) == 2 and resent[0].body == resent[1].body, "the same event, byte for byte"
    assert all(got.verified for got in resent), "each attempt signed with the time it was sent"
    await next_attempts_if_any(clock, worker)
    assert len(receiver.got) == 3


async def next_attempts_if_any(clock: Any, worker: Any) -> None:
    clock.now += timedelta(days=2)
    await tick(clock.now, worker.runtime.renewals)
    await worker.drain()


async def test_a_receiver_down_past_the_last_delay_is_given_up_and_the_admins_told_once(
        client, worker, receiver_server, clock, notifier):
    receiver, server = receiver_server
    await server.close()  # nothing listens at EVENTS_URL any more: every attempt is refused
    await pay_month(client, worker, 505)
    for _ in range(len(RETRIES)):
        await next_attempts(clock, worker)

    events = await stored()
    assert [event.status for event in events] == [EventStatus.GAVE_UP] * 2
    for event in events:
        assert [a.number for a in event.attempts] == [0, 1, 2, 3]
        assert all(a.status is None and "ClientConnectorError" in a.error for a in event.attempts)
        assert "/hooks" not in event.attempts[0].error, "the URL's path stays out of the record"
        assert event.admin_told_at is not None and event.next_attempt_at is None
    assert sorted(n.event_id for n in notifier.undelivered_events) == sorted(e.event_id for e in events)
    assert {n.attempts for n in notifier.undelivered_events} == {1 + len(RETRIES)}

    await next_attempts_if_any(clock, worker)
    for event in events:  # the last delivery job run again (RQ after a crash) sends and tells nothing twice
        assert await asyncio.to_thread(jobs.deliver_event, event.event_id, len(event.attempts) - 1) == "gave up"
    assert len(notifier.undelivered_events) == 2 and receiver.got == []


async def test_a_receiver_with_another_secret_refuses_every_request(client, worker, receiver, clock):
    receiver.secret = "not-the-secret-" + "0" * 32
    await pay_month(client, worker, 506)
    assert len(receiver.got) == 2 and not any(got.verified for got in receiver.got)
    assert {a.status for event in await stored() for a in event.attempts} == {400}
    assert {event.status for event in await stored()} == {EventStatus.PENDING}, "kept for a retry"


async def test_the_signature_covers_the_body_and_the_timestamp(client, worker, receiver, clock):
    clock.now += timedelta(days=1)  # the service's clock (the demo's --clock-speed) is not the receiver's
    before = int(time.time())
    await pay_month(client, worker, 507)
    verify = readme_verifier()
    got = receiver.got[0]
    assert got.verified, "signed with the wall clock the receiver checks against"
    timestamp = int(got.signature.split(",")[0].removeprefix("t="))
    assert before <= timestamp <= int(time.time())
    assert verify(EVENTS_SECRET, got.signature, got.body, now=timestamp)
    tampered = got.body.replace(b"29900", b"99")
    assert tampered != got.body and not verify(EVENTS_SECRET, got.signature, tampered, now=timestamp)
    moved = got.signature.replace(f"t={timestamp}", f"t={timestamp + 1}")
    assert not verify(EVENTS_SECRET, moved, got.body, now=timestamp)
    assert not verify(EVENTS_SECRET, got.signature, got.body, now=timestamp + 301), "an old request is refused"
    assert json.loads(got.body)["type"] == "payment.succeeded"


class _Unclosed:
    def __init__(self, client: Any) -> None:
        self._client = client

    def close(self) -> None:
        return None


async def test_ymds_events_replay_sends_the_given_up_events_again_under_their_ids(
        client, worker, receiver, clock, notifier, monkeypatch, tmp_path, capsys):
    receiver.answers = [503] * (2 * (1 + len(RETRIES)))
    await pay_month(client, worker, 508)
    for _ in range(len(RETRIES)):
        await next_attempts(clock, worker)
    given_up = await stored()
    assert {event.status for event in given_up} == {EventStatus.GAVE_UP}

    app_db = client.app[DB_CLIENT]

    async def command_db(uri: str, name: str) -> Any:
        await init_beanie(database=app_db[name], document_models=DOCUMENT_MODELS)
        return _Unclosed(app_db)

    settings = client.app[SETTINGS]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.invalid:27017")
    monkeypatch.setenv("MONGODB_DB", settings.mongodb_db)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setattr(reconciliation, "init_db", command_db)
    assert await asyncio.to_thread(ymds.main, ["events", "replay", "--failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 event(s) queued for delivery"
    assert [line.split()[1] for line in lines[:-1]] == [event.event_id for event in given_up]
    assert all("was gave_up after 4 attempt(s)" in line for line in lines[:-1])

    await worker.drain()
    replayed = await stored()
    assert {event.status for event in replayed} == {EventStatus.DELIVERED}
    assert all(event.replays == 1 and len(event.attempts) == 5 for event in replayed)
    delivered = [got.event["id"] for got in receiver.got if got.answered == 200]
    assert sorted(delivered) == sorted(event.event_id for event in given_up), "the same ids: the receiver dedupes"

    assert await asyncio.to_thread(ymds.main, ["events", "replay", "--failed"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 event(s) queued for delivery"]
    assert await asyncio.to_thread(ymds.main, ["events", "replay", "--event", given_up[0].event_id]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 event(s) queued for delivery"
    await worker.drain()
    assert [got.event["id"] for got in receiver.got if got.answered == 200].count(given_up[0].event_id) == 2
    assert len(notifier.undelivered_events) == 2, "told once per give-up"

    assert await asyncio.to_thread(ymds.main, ["events", "replay", "--event", "evt_missing"]) == 1
    assert "no event evt_missing to send again (`ymds events` lists them)" in capsys.readouterr().err
    assert await asyncio.to_thread(ymds.main, ["events"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[-1] == "2 event(s)" and all(" delivered  " in line for line in listed[:-1])
    assert listed[0].endswith("6 attempt(s)")

