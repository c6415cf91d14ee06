"""One invoice, one payment: the first recorded payment claims the invoice in the request that records it.

Money that arrives for a claimed invoice is `extra`: never applied, refunded through the provider where it
has a refund API, otherwise listed for a manual refund (admin chat, admin API, `ymds extras`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import ymds
from billing import claims, reconciliation
from billing.invoices import find_invoice, invoice_for
from billing.ledger import Ledger, check_payable, find_operation
from billing.money import Money
from billing.providers.base import EventKind, Outcome, VerifiedEvent
from db import ExtraRefund, InvoiceStatus, Operation, OperationStatus, Subscription, init_db
from tests.conftest import AUTH
from tests.helpers import new_invoice, notification, post_notification

UZS_PRICE = 3500000


def payment(provider: str, operation_id: str, label: str, minor: int = UZS_PRICE, currency: str = "UZS",
            kind: EventKind = EventKind.PAYMENT) -> VerifiedEvent:
    return VerifiedEvent(provider=provider, operation_id=operation_id, label=label, amount=Money(minor, currency),
                         kind=kind)


async def test_a_final_claim_is_kept_and_a_hold_lapses(client, clock):
    label = (await new_invoice(client))["label"]
    now = clock()
    assert await claims.claim(label, "click:1", now=now, until=now + timedelta(minutes=30))
    assert not await claims.claim(label, "payme:a", now=now), "a live hold keeps a final claim out"
    assert not await claims.claim(label, "payme:a", now=now, until=now + timedelta(hours=12))
    assert await claims.claim(label, "click:1", now=now), "the holder's own final claim upgrades its hold"
    later = now + timedelta(days=2)
    assert not await claims.claim(label, "payme:a", now=later), "a final claim never lapses"
    assert await claims.claim(label, "click:1", now=later, until=later + timedelta(minutes=1)), "still ours"
    invoice = await find_invoice(label)
    assert invoice is not None and invoice.claimed_by == "click:1" and invoice.claim_until is None, \
        "a hold by the same key never downgrades a final claim"
    assert not await claims.release(label, "payme:a")


async def test_a_lapsed_hold_may_be_taken_and_a_released_one_at_once(client, clock):
    label = (await new_invoice(client))["label"]
    now = clock()
    assert await claims.claim(label, "payme:tx1", now=now, until=now + timedelta(hours=12))
    assert await check_payable(label, Money(UZS_PRICE, "UZS"), now=now) is Outcome.ALREADY_PAID
    assert await check_payable(label, Money(UZS_PRICE, "UZS"), now=now, holder="payme:tx1") is None
    past = now + timedelta(hours=12, seconds=1)
    assert await check_payable(label, Money(UZS_PRICE, "UZS"), now=past) is None, "a lapsed hold holds nothing"
    assert await claims.claim(label, "click:7", now=past, until=past + timedelta(minutes=30))
    assert await claims.release(label, "click:7")
    assert await check_payable(label, Money(UZS_PRICE, "UZS"), now=past) is None
    assert await claims.claim(label, "payme:tx2", now=past, until=past + timedelta(hours=12))


async def test_a_recorded_payment_claims_the_invoice_before_any_worker_runs(client, queues, clock):
    label = (await new_invoice(client))["label"]
    assert await post_notification(client, notification(label)) == 200
    invoice = await find_invoice(label)
    assert invoice is not None and invoice.status is InvoiceStatus.PENDING, "no worker has run"
    assert invoice.claimed_by is not None and invoice.claimed_by.startswith("yoomoney:")
    assert await check_payable(label, Money(UZS_PRICE, "UZS"), now=clock()) is Outcome.ALREADY_PAID
    response = await client.get(f"/api/invoices/{label}", headers=AUTH)
    assert (await response.json())["claimed_by"] == invoice.claimed_by


async def test_a_second_payment_is_extra_never_applied_and_listed_for_a_manual_refund(client, worker, notifier,
                                                                                      clock):
    label = (await new_invoice(client))["label"]
    first, second = notification(label), notification(label)
    assert await post_notification(client, first) == 200
    assert await post_notification(client, second) == 200, "YooMoney must stop redelivering a recorded transfer"
    extra = await find_operation("yoomoney", second["operation_id"])
    assert extra is not None and extra.status is OperationStatus.EXTRA, "decided in the request, not by a worker"
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 42)
    assert subscription is not None and subscription.applied_operations == [f"yoomoney:{first['operation_id']}"]
    extra = await find_operation("yoomoney", second["operation_id"])
    assert extra is not None and extra.extra_refund is ExtraRefund.MANUAL, "YooMoney has no refund API"
    assert [(n.operation_id, n.refunded) for n in notifier.extras] == [(second["operation_id"], False)]

    assert await post_notification(client, second) == 200, "a redelivery of the extra"
    await worker.drain()
    assert len(notifier.extras) == 1, "the admin chat is told once"

    response = await client.get("/api/extras?refund=manual", headers=AUTH)
    listed = (await response.json())["extras"]
    assert [(e["operation_id"], e["amount"], e["refund"]) for e in listed] == [(second["operation_id"], 29900,
                                                                                 "manual")]
    done = await client.post(f"/api/extras/yoomoney/{second['operation_id']}/refunded", headers=AUTH)
    assert done.status == 200 and (await done.json())["refund"] == "refunded_by_hand"
    again = await client.post(f"/api/extras/yoomoney/{second['operation_id']}/refunded", headers=AUTH)
    assert again.status == 409
    assert (await client.post("/api/extras/yoomoney/nope/refunded", headers=AUTH)).status == 404
    assert (await client.get("/api/extras?refund=all", headers=AUTH)).status == 400
    assert (await (await client.get("/api/extras?refund=manual", headers=AUTH)).json())["extras"] == []


async def test_concurrent_payments_of_one_invoice_through_two_providers_accept_exactly_one(client, queues, worker):
    label = (await new_invoice(client))["label"]
    ledger = Ledger(queues)
    outcomes = await asyncio.gather(*(
        ledger.record(payment(provider, f"op-{n}", label))
        for n, provider in enumerate(["click", "payme", "click", "payme", "stars", "click"])
    ))
    assert sorted(outcomes).count(Outcome.ACCEPTED) == 1 and outcomes.count(Outcome.EXTRA) == 5
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 42)
    assert subscription is not None and len(subscription.applied_operations) == 1


async def test_a_crash_between_the_ledger_insert_and_the_claim_is_finished_by_the_worker(client, queues, worker,
                                                                                         monkeypatch):
    label = (await new_invoice(client))["label"]
    ledger = Ledger(queues)
    original = claims.claim

    async def crash(*args: object, **kwargs: object) -> bool:
        raise ConnectionError("process died after the insert")

    monkeypatch.setattr(claims, "claim", crash)
    try:
        await ledger.record(payment("click", "op-1", label))
    except ConnectionError:
        pass
    monkeypatch.setattr(claims, "claim", original)
    operation = await find_operation("click", "op-1")
    assert operation is not None and operation.status is OperationStatus.RECORDED
    assert await ledger.record(payment("payme", "op-2", label)) is Outcome.ACCEPTED, \
        "the unclaimed invoice goes to the next payment recorded"
    assert await ledger.record(payment("click", "op-1", label)) is Outcome.EXTRA, "the redelivery finds it taken"
    await worker.drain()
    invoice = await find_invoice(label)
    assert invoice is not None and invoice.paid_by == "payme:op-2"


async def test_an_unverified_notification_pays_only_once_confirmed(client, queues, worker):
    label = (await new_invoice(client))["label"]
    ledger = Ledger(queues)
    claimed = payment("yoomoney", "w-1", label, 29900, "RUB", kind=EventKind.UNVERIFIED)
    assert await ledger.record(claimed) is Outcome.UNVERIFIED
    assert await ledger.record(claimed) is Outcome.UNVERIFIED, "a redelivery is kept, still unverified"
    await worker.drain()
    invoice = await find_invoice(label)
    assert invoice is not None and invoice.status is InvoiceStatus.PENDING and invoice.claimed_by is None
    assert [op.operation_id for op in await ledger.unverified("yoomoney")] == ["w-1"]

    confirmed = payment("yoomoney", "w-1", label, 29900, "RUB")
    assert await ledger.record(confirmed) is Outcome.ACCEPTED, "the API's confirmation promotes the row"
    assert await ledger.record(claimed) is Outcome.DUPLICATE, "an unsigned redelivery changes nothing more"
    await worker.drain()
    invoice = await find_invoice(label)
    assert invoice is not None and invoice.status is InvoiceStatus.PAID and invoice.paid_by == "yoomoney:w-1"


async def test_an_unverified_notification_is_judged_on_what_the_api_confirms(client, queues, worker):
    label = (await new_invoice(client))["label"]
    ledger = Ledger(queues)
    assert await ledger.record(payment("yoomoney", "w-1", label, 29900, "RUB", kind=EventKind.UNVERIFIED)) \
        is Outcome.UNVERIFIED
    assert await ledger.record(payment("yoomoney", "w-1", label, 100, "RUB")) is Outcome.WRONG_AMOUNT
    operation = await find_operation("yoomoney", "w-1")
    assert operation is not None and operation.status is OperationStatus.REJECTED and operation.amount == 100

    assert await ledger.record(payment("yoomoney", "w-2", label, 29900, "RUB", kind=EventKind.UNVERIFIED)) \
        is Outcome.UNVERIFIED
    assert await ledger.dismiss("yoomoney", "w-2", "not_confirmed")
    assert not await ledger.dismiss("yoomoney", "w-2", "not_confirmed")
    await worker.drain()
    invoice = await find_invoice(label)
    assert invoice is not None and invoice.status is InvoiceStatus.PENDING and invoice.claimed_by is None


def test_ymds_extras_lists_the_manual_refunds_and_marks_one_done(monkeypatch, tmp_path, capsys):
    now = datetime(2026, 5, 20, tzinfo=UTC)

    async def seeded_db(uri: str, name: str) -> Any:
        client = await init_db("memory://", name)
        for operation_id, refund in (("111", ExtraRefund.MANUAL), ("222", ExtraRefund.REFUNDED)):
            await Operation(provider="yoomoney", operation_id=operation_id, label="inv_1", amount=29900,
                            currency="RUB", status=OperationStatus.EXTRA, extra_refund=refund,
                            extra_detail="the provider has no refund API" if refund is ExtraRefund.MANUAL else "",
                            recorded_at=now).insert()
        return client

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.invalid:27017")
    monkeypatch.setattr(reconciliation, "init_db", seeded_db)
    assert ymds.main(["extras", "--manual"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "yoomoney:111  inv_1  29900 RUB  manual  the provider has no refund API", "1 extra payment(s)"]
    assert ymds.main(["extras", "refunded", "yoomoney", "111"]) == 0
    assert capsys.readouterr().out.strip() == "yoomoney:111 marked refunded by hand"
    assert ymds.main(["extras", "refunded", "yoomoney", "222"]) == 1, "refunded through the API: not manual"
    assert ymds.main(["extras", "refunded", "yoomoney"]) == 2


async def test_a_claimed_invoice_is_not_handed_out_again_by_a_repeated_subscribe(client, plans, clock):
    plan = plans.get("month")
    first = await invoice_for(plan, 77, now=clock(), ttl_seconds=86400, min_remaining=timedelta(hours=1))
    again = await invoice_for(plan, 77, now=clock(), ttl_seconds=86400, min_remaining=timedelta(hours=1))
    assert again.label == first.label, "an unclaimed pending invoice is reused"
    assert await claims.claim(first.label, "payme:tx", now=clock(), until=clock() + timedelta(hours=12))
    fresh = await invoice_for(plan, 77, now=clock(), ttl_seconds=86400, min_remaining=timedelta(hours=1))
    assert fresh.label != first.label, "one a payment is under way for is not the link the user gets again"
