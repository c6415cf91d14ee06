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
from billing.payouts.resolve import Result, resend
from billing.payouts.settle import poll_delay
from billing.payouts.submit import STEPS
from db import Operation, OperationStatus
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
    payouts,
    run_scheduled_now,
    scheduled,
    settings,
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
    assert operation.status is OperationStatus.PAYOUT, "finished when written: no sweep takes it for a payment"


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
    assert failed.attempts == 4, "each run sent it: nothing could have reached konsol.pro"
    assert failed.failure_reason == "konsol.pro was unavailable; nothing was sent"
    assert failed.attempt_state is AttemptState.NOT_SENT and failed.card_encrypted is None
    assert events(notifier) == ["filed", "accepted", "failed"]
    assert len(FailedJobRegistry(queue=queues.fulfilment)) == 0, "the job ended the claim itself"


def alerts(notifier: Any) -> list[str]:
    """The admin alerts by kind ("alert:unknown" for "alert:unknown:1", the kind of the first attempt)."""
    return [":".join(event.split(":")[:2]) for event in events(notifier) if event.startswith("alert:")]


def polls(queues: Any) -> int:
    return sum(1 for job in scheduled(queues) if job.func_name == "billing.jobs.poll_payout")


async def assert_left_unknown(claim_label: str, konsol: Any, notifier: Any, queues: Any) -> None:
    """The claim waits for the admins: unknown, never sent again, the card kept for a resend, no lookup."""
    unknown = await stored(claim_label)
    assert unknown.status is ClaimStatus.UNKNOWN and unknown.attempt_state is AttemptState.OUTCOME_UNKNOWN
    assert creates(konsol) == 1 and unknown.job_runs == 1, "never sent again, not even by RQ's retries"
    assert unknown.card_encrypted is not None and unknown.konsol_id is None
    assert alerts(notifier) == ["alert:unknown"] and polls(queues) == 0
    assert [method for method, _ in konsol.calls] == ["POST"], "konsol.pro offers no search to rely on"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_after_konsol_made_the_payout_leaves_the_claim_unknown(status, client, worker, konsol,
                                                                            payouts, clock, notifier, queues):
    konsol.fail_after_create(status, "Bad Gateway")
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    assert len(konsol.created()) == 1, "the payout exists; only its answer was lost"
    await assert_left_unknown(claim.label, konsol, notifier, queues)


@pytest.mark.parametrize("status", [404, 405, 409, 302, 202])
async def test_a_status_we_do_not_know_leaves_the_claim_unknown(status, client, worker, konsol, payouts, clock,
                                                               notifier, queues):
    konsol.fail_next("create", status, "something else")
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    await assert_left_unknown(claim.label, konsol, notifier, queues)


async def test_a_dropped_connection_leaves_the_claim_unknown(client, worker, konsol, payouts, clock, notifier,
                                                             queues):
    konsol.drop_next_create()
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    assert len(konsol.created()) == 1
    await assert_left_unknown(claim.label, konsol, notifier, queues)


async def test_a_request_past_konsol_timeout_leaves_the_claim_unknown(client, worker, konsol, settings, queues,
                                                                      clock, notifier):
    konsol.hang_next("create")  # made, and never answered: only our timeout ends the wait
    async with services_with(worker, settings, queues, konsol_timeout=0.2):
        claim = await accepted_claim(client, clock.now)
        await worker.drain()
    konsol.release.set()
    assert len(konsol.created()) == 1
    await assert_left_unknown(claim.label, konsol, notifier, queues)


async def test_429_is_sent_again_and_the_payout_is_made_once(client, worker, konsol, payouts, clock, queues):
    konsol.fail_next("create", 429, "too many requests", times=2)
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    assert len(konsol.created()) == 1 and creates(konsol) == 3
    submitted = await stored(claim.label)
    assert submitted.status is ClaimStatus.SUBMITTED and submitted.attempts == 3 and submitted.job_runs == 3


async def test_refused_credentials_alert_the_admins_and_keep_the_claim_to_be_sent_again(client, worker, konsol,
                                                                                         payouts, clock, notifier,
                                                                                         queues):
    konsol.fail_next("create", 401, "Access denied")
    claim = await accepted_claim(client, clock.now)
    await worker.drain()

    waiting = await stored(claim.label)
    assert waiting.status is ClaimStatus.ACCEPTED and waiting.attempt_state is AttemptState.NOT_SENT
    assert waiting.card_encrypted is not None and konsol.created() == [] and waiting.job_runs == 1
    [alert] = [notice for notice in notifier.payouts if notice.event.startswith("alert:config")]
    assert "KONSOL_API_TOKEN" in alert.reason and "401" in alert.reason
    assert "failed" not in events(notifier), "the user is not told anything failed"

    decided = await resend(claim.label, by=1001, by_name="@boss", queue=queues, clock=clock)
    await worker.drain()
    assert decided.result is Result.DONE
    sent = await stored(claim.label)
    assert sent.status is ClaimStatus.SUBMITTED and len(konsol.created()) == 1 and sent.rounds == 1
    assert [(d.action.value, d.by_name) for d in sent.decisions] == [("resend", "@boss")]


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
    assert settled.status is ClaimStatus.UNKNOWN and settled.job_runs == 1, "the rerun found an attempt in flight"
    assert alerts(notifier) == ["alert:unknown"]


async def test_the_webhook_of_a_payout_whose_answer_was_lost_attaches_the_unknown_claim(client, worker, konsol,
                                                                                        payouts, clock, notifier):
    konsol.fail_after_create(504)
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()

    assert await konsol.settle(payment["id"]) == [200], "konsol.pro's own record names the claim in its purpose"
    await worker.drain()
    paid = await stored(claim.label)
    assert paid.status is ClaimStatus.PAID and paid.konsol_id == payment["id"] and paid.card_encrypted is None
    assert events(notifier)[-1] == "paid" and creates(konsol) == 1


async def test_a_webhook_naming_an_unknown_claim_for_another_amount_attaches_nothing(client, worker, konsol,
                                                                                    payouts, clock):
    konsol.fail_after_create(502)
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    konsol.payments[payment["id"]]["amount"] = "1.00"

    assert await konsol.settle(payment["id"]) == [404]
    assert (await stored(claim.label)).status is ClaimStatus.UNKNOWN


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


async def test_a_payout_konsol_settles_days_later_is_polled_with_growing_intervals_and_never_given_up(
    client, worker, konsol, payouts, clock, queues, notifier
):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    konsol.schedule(payment["id"], "executed", timedelta(days=12))  # waits for the payee's tax registration
    assert [poll_delay(step) for step in range(9)] == [60, 300, 900, 3600, 10800, 21600, 43200, 86400, 86400]

    for step in range(20):
        clock.now += timedelta(seconds=poll_delay(step))
        konsol.clock.now += timedelta(seconds=poll_delay(step))
        assert run_scheduled_now(queues, "poll_payout") == 1, f"look {step} was scheduled"
        await worker.drain()
        if (await stored(claim.label)).status is ClaimStatus.PAID:
            break
    paid = await stored(claim.label)
    assert paid.status is ClaimStatus.PAID and step > 10, "paid on the day konsol.pro paid it"
    assert alerts(notifier) == ["alert:overdue"], "the admins were told once, past the deadline"
    assert "failed" not in events(notifier) and events(notifier)[-1] == "paid"
    assert polls(queues) == 0


async def test_a_failing_lookup_changes_nothing_but_the_time_of_the_next(client, worker, konsol, payouts, clock,
                                                                        queues):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    for status in (500, 403, 404):
        konsol.fail_next("get", status)
        assert run_scheduled_now(queues, "poll_payout") == 1
        await worker.drain()
        assert (await stored(claim.label)).status is ClaimStatus.SUBMITTED and polls(queues) == 1


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
