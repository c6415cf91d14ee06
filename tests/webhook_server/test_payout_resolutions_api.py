"""The admin API's resolutions of payout claims (attach, fail, resend under /api/payouts/{label}/) over real HTTP, with
konsol.pro's emulator: auth, unknown claims, wrong states, malformed bodies, the confirmation, a lookup that fails,
the deadline past which the admins decide, and concurrent decisions of which exactly one wins."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from billing.payouts.claims import accept
from db.payouts import ClaimStatus
from tests.konsol_support import (  # noqa: F401
    accepted_claim,
    konsol,
    konsol_server,
    payouts,
    run_scheduled_now,
    settings,
    stored,
)
from tests.webhook_server.test_payouts_api import call

ACTIONS = ("attach", "fail", "resend")


@pytest.fixture
async def unknown(client, worker, konsol, payouts, clock) -> tuple[str, str]:
    """A claim konsol.pro made the payout of and answered 502: (claim label, konsol.pro's payment id)."""
    konsol.fail_after_create(502)
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.UNKNOWN
    [payment] = konsol.created()
    return claim.label, payment["id"]


def post(client: Any, label: str, action: str, body: Any = None, **options: Any) -> Any:
    return call(client, "POST", f"/api/payouts/{label}/{action}", {} if body is None else body, **options)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}])
async def test_every_resolution_needs_the_admin_token(client, unknown, action, headers):
    label, payment_id = unknown
    status, body = await post(client, label, action, {"konsol_id": payment_id, "confirm": True}, headers=headers)
    assert (status, body["error"]) == (401, "unauthorized")
    assert (await stored(label)).status is ClaimStatus.UNKNOWN


@pytest.mark.parametrize("action", ACTIONS)
async def test_an_unknown_claim_label_is_404(client, unknown, action):
    status, body = await post(client, "po_missing", action, {"konsol_id": unknown[1], "confirm": True})
    assert (status, body["error"]) == (404, "payout_not_found")


@pytest.mark.parametrize(("action", "body"), [
    ("attach", b"{broken"), ("attach", b"[]"), ("attach", {}), ("attach", {"konsol_id": 5}),
    ("attach", {"konsol_id": "a b"}), ("attach", {"konsol_id": "x" * 65}), ("attach", {"konsol_id": "../x"}),
    ("fail", b"{broken"), ("fail", {"confirm": True, "reason": 7}), ("fail", {"confirm": True, "reason": "x" * 301}),
    ("resend", b"[1]"), ("resend", {"confirm": True, "admin": ["x"]}),
])
async def test_malformed_bodies_are_400_and_change_nothing(client, unknown, konsol, action, body):
    status, answer = await post(client, unknown[0], action, body)
    assert (status, answer["error"]) == (400, "bad_request"), body
    claim = await stored(unknown[0])
    assert claim.status is ClaimStatus.UNKNOWN and claim.decisions == [] and len(konsol.created()) == 1


@pytest.mark.parametrize("action", ["fail", "resend"])
@pytest.mark.parametrize("body", [{}, {"confirm": False}, {"confirm": "yes"}, {"confirm": 1}])
async def test_fail_and_resend_need_the_confirmation_and_say_why(client, unknown, konsol, action, body):
    status, answer = await post(client, unknown[0], action, body)
    assert (status, answer["error"]) == (428, "confirmation_required")
    assert "does not exist at konsol.pro" in answer["message"] and "paid twice" in answer["message"]
    assert (await stored(unknown[0])).status is ClaimStatus.UNKNOWN and len(konsol.created()) == 1


async def test_attach_checks_the_id_at_konsol_and_records_who(client, worker, unknown, konsol, notifier):
    label, payment_id = unknown
    status, body = await post(client, label, "attach", {"konsol_id": "00000000-0000-0000-0000-000000000000"})
    assert (status, body["error"]) == (422, "konsol_payment_not_found")
    konsol.payments[payment_id]["amount"] = "1.00"
    status, body = await post(client, label, "attach", {"konsol_id": payment_id})
    assert (status, body["error"]) == (422, "amount_mismatch")
    konsol.payments[payment_id]["amount"] = "1500.00"

    status, body = await post(client, label, "attach", {"konsol_id": payment_id, "admin": "Olga"})
    assert (status, body["status"], body["konsol_id"]) == (200, "submitted", payment_id)
    assert [(d["action"], d["by"], d["konsol_id"]) for d in body["decisions"]] == [
        ("attach", "admin API (Olga)", payment_id)]
    status, body = await post(client, label, "attach", {"konsol_id": payment_id})
    assert (status, body["error"]) == (409, "wrong_state")
    assert await konsol.settle(payment_id) == [200]
    await worker.drain()
    assert (await stored(label)).status is ClaimStatus.PAID


async def test_an_id_another_claim_holds_is_refused(client, worker, unknown, konsol, payouts, clock):
    other = await accepted_claim(client, clock.now, user_id=778)
    await worker.drain()
    taken = (await stored(other.label)).konsol_id
    konsol.payments[taken]["amount"] = "1500.00"
    status, body = await post(client, unknown[0], "attach", {"konsol_id": taken})
    assert (status, body["error"]) == (409, "id_taken")
    assert (await stored(unknown[0])).status is ClaimStatus.UNKNOWN


@pytest.mark.parametrize("failure", [500, 503, 403])
async def test_a_failing_lookup_keeps_the_id_and_checks_it_later_never_creating(client, worker, unknown, konsol,
                                                                                queues, failure):
    label, payment_id = unknown
    konsol.fail_next("get", failure)
    status, body = await post(client, label, "attach", {"konsol_id": payment_id})
    assert (status, body["status"], body["candidate_id"]) == (202, "unknown", payment_id)

    konsol.fail_next("get", failure)  # the first check fails too: the next one is scheduled
    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    waiting = await stored(label)
    assert waiting.status is ClaimStatus.UNKNOWN and waiting.candidate_id == payment_id

    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    found = await stored(label)
    assert found.status is ClaimStatus.SUBMITTED and found.konsol_id == payment_id and found.candidate_id is None
    assert [d.action.value for d in found.decisions] == ["attach"]


async def test_fail_with_the_confirmation_tells_the_user_to_file_again(client, worker, unknown, notifier, konsol):
    status, body = await post(client, unknown[0], "fail", {"confirm": True, "reason": "not in the cabinet"})
    assert (status, body["status"]) == (200, "failed")
    assert [(d["action"], d["by"], d["note"]) for d in body["decisions"]] == [("fail", "admin API",
                                                                               "not in the cabinet")]
    await worker.drain()
    assert notifier.payouts[-1].event == "failed"
    for action in ACTIONS:
        status, body = await post(client, unknown[0], action, {"konsol_id": unknown[1], "confirm": True})
        assert (status, body["error"]) == (409, "wrong_state"), action


async def test_resend_with_the_confirmation_makes_one_new_payout(client, worker, unknown, konsol):
    status, body = await post(client, unknown[0], "resend", {"confirm": True})
    assert (status, body["status"], body["rounds"]) == (200, "accepted", 1)
    await worker.drain()
    assert len(konsol.created()) == 2 and (await stored(unknown[0])).status is ClaimStatus.SUBMITTED


@pytest.mark.parametrize("pair", [("fail", "resend"), ("fail", "fail"), ("resend", "resend"), ("attach", "fail"),
                                  ("attach", "attach")])
async def test_concurrent_decisions_exactly_one_wins(client, worker, unknown, konsol, pair):
    label, payment_id = unknown
    answers = await asyncio.gather(*(post(client, label, action, {"konsol_id": payment_id, "confirm": True})
                                     for action in pair * 6))
    await worker.drain()
    assert sorted(status for status, _ in answers) == [200] + [409] * 11
    claim = await stored(label)
    assert len(claim.decisions) == 1 and len(konsol.created()) == (2 if claim.rounds else 1)


async def test_a_claim_konsol_may_still_pay_is_not_failed_until_cancelled_there(client, worker, konsol, payouts,
                                                                                 clock, queues, notifier):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    clock.now += timedelta(days=8)
    assert run_scheduled_now(queues, "poll_payout") == 1
    await worker.drain()
    assert notifier.payouts[-1].event == "alert:overdue", "past the deadline the admins decide"

    status, body = await post(client, claim.label, "fail", {"confirm": True})
    assert (status, body["error"]) == (409, "still_payable") and "cabinet" in body["message"]
    konsol.fail_next("get", 503)
    assert (await post(client, claim.label, "fail", {"confirm": True}))[0] == 503
    konsol.payments[payment["id"]]["status"] = "cancelled_by_company"  # cancelled in the cabinet
    status, body = await post(client, claim.label, "fail", {"confirm": True})
    assert (status, body["status"]) == (200, "failed")
    await worker.drain()
    assert notifier.payouts[-1].event in ("failed", "alert:overdue") and "failed" in [
        n.event for n in notifier.payouts]


async def test_fail_of_a_claim_konsol_already_settled_applies_konsols_word(client, worker, konsol, payouts, clock):
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    [payment] = konsol.created()
    konsol.payments[payment["id"]]["status"] = "executed"
    status, body = await post(client, claim.label, "fail", {"confirm": True})
    assert (status, body["status"]) == (200, "paid"), "konsol.pro paid it: the claim is paid, not failed"


async def test_resend_of_a_claim_waiting_after_refused_credentials(client, worker, konsol, payouts, clock, queues):
    konsol.fail_next("create", 403, "Access denied")
    claim = await accepted_claim(client, clock.now)
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.ACCEPTED
    decision = await accept(claim.label, by=1, by_name="x", now=clock.now, queue=queues)
    assert not decision.won
    status, body = await post(client, claim.label, "resend", {"confirm": True})
    assert status == 200
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.SUBMITTED and len(konsol.created()) == 1
