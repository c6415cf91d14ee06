"""Payouts end to end in the domain: the real RQ worker on the real Redis, konsol.pro's emulator over HTTP, its
webhooks into our app. A payout is created at most once, whatever fails; its outcome comes from konsol.pro."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from rq.registry import FailedJobRegistry

from billing.money import Money
from billing.payouts import PayoutServices
from billing.payouts.claims import accept, expire, new_draft, reject
from billing.payouts.settle import poll_delay
from billing.payouts.submit import STEPS
from db import Operation
from db.payouts import AttemptState, ClaimStatus, PayoutClaim, PayoutMethod
from settings import Settings
from tests.konsol_support import (  # noqa: F401
    AMOUNT,
    CARD,
    FAILING_CARD,
    PHONE,
    SBER,
    accepted_claim,
    cipher_for,
    filed_claim,
    konsol,
    konsol_server,
    settings,
    payouts,
    run_scheduled_now,
    scheduled,
    stored,
)
from tests.webhook_server.test_redis_faults import free_port
from webhook_server.payout_services import OwnSessionTransport, close_payout_services, payout_services


class Crash(RuntimeError):
    pass


@asynccontextmanager
async def services_with(worker: Any, settings: Settings, queues: Any, **changes: Any) -> AsyncIterator[PayoutServices]:
    """The worker's payout services built from changed settings (another konsol.pro address, timeout, key)."""
    services = payout_services(settings.model_copy(update=changes), queues, OwnSessionTransport(5))
    assert services is not None
    worker.runtime.payouts = services
    try:
        yield services
    finally:
        await close_payout_services(services)


def crash_before_sending(step: str) -> None:
    if step == "before_create_request":
        raise Crash(step)


def creates(emulator: Any) -> int:
    return sum(1 for method, path in emulator.calls if (method, path) == ("POST", "/api/v1/payments"))


def events(notifier: Any) -> list[str]:
    return [notice.event for notice in notifier.payouts]


async def test_an_accepted_claim_is_paid_through_konsol_and_everyone_is_told(client, worker, konsol, payouts, clock,
                                                                            notifier, queues):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    [payment] = konsol.created()
    assert payment["bank_details"] == {"card_number": CARD} and payment["amount"] == "1500.00"
    assert payment["purpose"] == f"Выплата по заявке {claim.label}"
    submitted = await stored(claim.label)
    assert submitted.status is ClaimStatus.SUBMITTED and submitted.konsol_id == payment["id"]
    assert submitted.card_encrypted is None, "erased once konsol.pro has the payout"
    assert submitted.card_mask == "220070******6412"
    assert [job.func_name for job in scheduled(queues)].count("billing.jobs.poll_payout") == 1

    assert await konsol.settle(payment["id"]) == [200]
    await worker.drain()

    paid = await stored(claim.label)
    assert paid.status is ClaimStatus.PAID and paid.konsol_status == "executed" and paid.settled_at == clock.now
    assert events(notifier) == ["filed", "accepted", "paid"]
    notice = notifier.payouts[-1]
    assert (notice.user_id, notice.amount, notice.destination) == (777, Money(AMOUNT, "RUB"), "•••• 6412")
    [operation] = await Operation.find({"provider": "konsol"}).to_list()
    assert operation.operation_id == f"{payment['id']}:executed" and operation.amount == AMOUNT


async def test_an_sbp_claim_pays_the_phone_at_the_chosen_bank(client, worker, konsol, payouts, clock):
    claim = await accepted_claim(client, clock.now, card=None, phone=PHONE, bank_id=SBER)
    await worker.drain()
    [payment] = konsol.created()
    assert payment["bank_details_kind"] == "fps"
    assert payment["bank_details"] == {"fps_mobile_phone": PHONE, "fps_bank_member_id": SBER}
    assert (await stored(claim.label)).method is PayoutMethod.FPS


async def test_konsol_down_at_accept_time_is_retried_then_failed_and_told(client, worker, settings, queues, clock,
                                                                        notifier):
    async with services_with(worker, settings, queues, konsol_base_url=f"http://127.0.0.1:{free_port()}"):
        claim = await accepted_claim(client, clock.now)
        await worker.drain()

    failed = await stored(claim.label)
    assert failed.status is ClaimStatus.FAILED and failed.job_runs == 4, "the first run and three retries"
    assert failed.failure_reason == "konsol.pro was unavailable; nothing was sent"
    assert failed.attempt_state is AttemptState.NOT_SENT and failed.card_encrypted is None
    assert events(notifier) == ["filed", "accepted", "failed"]
    assert len(FailedJobRegistry(queue=queues.fulfilment)) == 0, "the job ended the claim itself"


async def test_5xx_answers_are_retried_and_the_payout_is_made_once(client, worker, konsol, payouts, clock):
    konsol.fail_next("create", 503, "maintenance", times=2)
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    assert len(konsol.created()) == 1 and creates(konsol) == 3
    submitted = await stored(claim.label)
    assert submitted.status is ClaimStatus.SUBMITTED and submitted.attempts == 3


async def test_a_lost_answer_is_resolved_by_looking_the_payout_up_never_by_sending_again(client, worker, konsol,
                                                                                       payouts, clock):
    konsol.drop_next_create()
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    assert creates(konsol) == 1 and len(konsol.created()) == 1
    submitted = await stored(claim.label)
    assert submitted.status is ClaimStatus.SUBMITTED and submitted.konsol_id == konsol.created()[0]["id"]


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_around_the_request_never_sends_it_twice(step, client, worker, konsol, payouts, clock, notifier):
    crashes = []

    def crash_once(reached: str) -> None:
        if reached == step and not crashes:
            crashes.append(reached)
            raise Crash(reached)

    worker.runtime.checkpoint = crash_once
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    assert crashes == [step] and creates(konsol) == (1 if step == "after_create_request" else 0)
    settled = await stored(claim.label)
    if step == "after_create_request":
        assert settled.status is ClaimStatus.SUBMITTED and settled.konsol_id == konsol.created()[0]["id"]
    else:  # recorded as sent, never sent: still only looked up, then left to the admins
        assert settled.status is ClaimStatus.UNKNOWN and settled.job_runs == 4
        assert "alert:unknown" in events(notifier)


async def test_a_timed_out_request_is_looked_up_and_left_unknown_when_not_found(client, worker, konsol, settings,
                                                                              queues, clock, notifier):
    konsol.hang_next("create")
    async with services_with(worker, settings, queues, konsol_timeout=0.05):
        claim = await accepted_claim(client, clock.now)
        await worker.drain()
    konsol.release.set()

    unknown = await stored(claim.label)
    assert unknown.status is ClaimStatus.UNKNOWN and unknown.attempt_state is AttemptState.OUTCOME_UNKNOWN
    assert creates(konsol) == 1, "never created again"
    assert [path for method, path in konsol.calls if method == "GET"].count("/api/v1/payments") == 3
    assert events(notifier)[-1] == "alert:unknown" and unknown.card_encrypted is not None
    assert any(job.func_name == "billing.jobs.poll_payout" for job in scheduled(queues))


async def test_an_unknown_payout_that_appears_later_is_attached_by_polling(client, worker, konsol, payouts, clock,
                                                                         queues):
    worker.runtime.checkpoint = crash_before_sending
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.UNKNOWN
    worker.runtime.checkpoint = lambda step: None
    late = await payouts.konsol.create_payment({"amount": "1500.00", "purpose": f"Выплата по заявке {claim.label}",
                                                "services_list": [{"title": "x", "amount": "1500.00"}],
                                                "bank_details_kind": "card", "bank_details": {"card_number": CARD}})

    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    found = await stored(claim.label)
    assert found.status is ClaimStatus.SUBMITTED and found.konsol_id == late.id and found.card_encrypted is None


async def test_konsol_refusing_the_payout_fails_the_claim_at_once(client, worker, konsol, payouts, clock, notifier):
    konsol.fail_next("create", 422, "the card is blocked")
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    failed = await stored(claim.label)
    assert failed.status is ClaimStatus.FAILED and failed.failure_reason == "the card is blocked"
    assert failed.job_runs == 1 and creates(konsol) == 1 and failed.card_encrypted is None
    assert notifier.payouts[-1].event == "failed" and notifier.payouts[-1].reason == "the card is blocked"


async def test_polling_settles_a_payout_whose_webhooks_were_lost(client, worker, konsol, payouts, clock, queues,
                                                                notifier):
    claim = await accepted_claim(client, clock.now, card=FAILING_CARD)
    await worker.drain()
    [payment] = konsol.created()
    konsol.payments[payment["id"]].update(status="failed", error_message="card declined")

    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    failed = await stored(claim.label)
    assert failed.status is ClaimStatus.FAILED and failed.failure_reason == "card declined"
    assert events(notifier)[-1] == "failed"
    assert run_scheduled_now(queues, "poll_payout") == 0, "a settled payout is polled no more"


async def test_an_unsettled_payout_is_polled_again_then_given_up_after_a_week(client, worker, konsol, payouts, clock,
                                                                            queues, notifier):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.SUBMITTED
    assert [poll_delay(step) for step in range(5)] == [60, 300, 900, 3600, 3600]

    clock.now += timedelta(days=7, seconds=1)
    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    failed = await stored(claim.label)
    assert failed.status is ClaimStatus.FAILED and failed.failure_reason == "timeout"
    assert events(notifier)[-2:] == ["failed", "alert:timeout"] or events(notifier)[-2:] == ["alert:timeout", "failed"]
    assert run_scheduled_now(queues, "poll_payout") == 0


async def test_a_payee_not_bound_in_moi_nalog_waits_and_admins_are_told(client, worker, konsol, payouts, clock,
                                                                        notifier):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()

    assert await konsol.settle(payment["id"], "nalog_unbound") == [200]
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.NEEDS_ACTION
    assert events(notifier)[-1] == "alert:needs_action:nalog_unbound"

    assert await konsol.settle(payment["id"], "executed") == [200]
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.PAID


async def test_manual_confirmation_and_unknown_statuses_alert_the_admins_once(client, worker, konsol, payouts, clock,
                                                                             notifier):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    for status in ("manualpay", "manualpay", "refunded", "refunded"):
        await konsol.settle(payment["id"], status)
    await worker.drain()

    assert (await stored(claim.label)).status is ClaimStatus.SUBMITTED
    assert [e for e in events(notifier) if e.startswith("alert:")] == ["alert:manualpay", "alert:status:refunded"]


async def test_konsol_reporting_another_outcome_after_the_end_changes_nothing(client, worker, konsol, payouts, clock,
                                                                             notifier):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    await konsol.settle(payment["id"], "executed")
    await worker.drain()
    await konsol.settle(payment["id"], "failed")
    await worker.drain()

    assert (await stored(claim.label)).status is ClaimStatus.PAID
    assert events(notifier).count("paid") == 1 and "alert:conflict:failed" in events(notifier)


async def test_a_rejected_claim_erases_the_card_tells_the_user_and_cannot_be_accepted(client, worker, queues, clock,
                                                                                     notifier, konsol, payouts):
    claim = await filed_claim(client, clock.now)
    decision = await reject(claim.label, by=1001, by_name="@boss", reason=f"wrong card {CARD}", now=clock.now,
                            queue=queues)
    late = await accept(claim.label, by=1002, by_name="@other", now=clock.now, queue=queues)
    await worker.drain()

    assert decision.won and not late.won and late.claim.decided_by_name == "@boss"
    rejected = await stored(claim.label)
    assert rejected.status is ClaimStatus.REJECTED and rejected.card_encrypted is None
    assert CARD not in (rejected.reject_reason or "") and "220070******6412" in (rejected.reject_reason or "")
    assert events(notifier) == ["filed", "rejected"] and konsol.created() == []


async def test_concurrent_accepts_make_one_payout(client, worker, queues, clock, konsol, payouts):
    claim = await filed_claim(client, clock.now)
    decisions = await asyncio.gather(*(accept(claim.label, by=1000 + n, by_name=f"admin{n}", now=clock.now,
                                              queue=queues) for n in range(24)))
    await worker.drain()

    assert sum(decision.won for decision in decisions) == 1
    winner = next(decision.claim.decided_by_name for decision in decisions if decision.won)
    assert all(decision.claim.decided_by_name == winner for decision in decisions)
    assert len(konsol.created()) == 1 and creates(konsol) == 1


async def test_card_data_outlives_no_draft_hour_and_no_claim_week(client, worker, queues, clock, notifier):
    draft = await new_draft(user_id=5, first_name="A", last_name="B", language="en", amount=AMOUNT,
                            cipher=cipher_for(client), queue=queues, now=clock.now, card_number=CARD)
    waiting = await filed_claim(client, clock.now)
    assert await expire(draft.label, clock.now + timedelta(minutes=59), queues) == "draft kept"
    assert await expire(draft.label, clock.now + timedelta(hours=1), queues) == "draft deleted"
    assert await PayoutClaim.find_one({"label": draft.label}) is None

    assert await expire(waiting.label, clock.now + timedelta(days=6), queues) == "kept"
    assert await expire(waiting.label, clock.now + timedelta(days=7), queues) == "expired"
    await worker.drain()
    expired = await stored(waiting.label)
    assert expired.card_encrypted is None and events(notifier)[-1] == "expired"
    expiries = [job for job in scheduled(queues) if job.func_name.endswith("expire_payout_claim")]
    assert len(expiries) == 3, "one for each draft's hour, one for the filed claim's week"


async def test_a_card_that_can_no_longer_be_decrypted_fails_the_claim(client, worker, settings, queues, clock,
                                                                      konsol, notifier):
    async with services_with(worker, settings, queues, link_secret=SecretStr("a-rotated-link-secret")):
        claim = await accepted_claim(client, clock.now)
        await worker.drain()
    failed = await stored(claim.label)
    assert failed.status is ClaimStatus.FAILED and "unreadable" in (failed.failure_reason or "")
    assert konsol.created() == [] and events(notifier)[-1] == "failed"
