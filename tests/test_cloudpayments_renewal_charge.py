"""Renewal charges of a saved CloudPayments card token (SavedMethodCharger), through the app's own provider
and transport, over real HTTP to the CloudPayments emulator; the ledger and the RQ worker are the real ones."""

from __future__ import annotations

import uuid
from datetime import timedelta

import aiohttp
import pytest

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.ports import RenewalEvent
from billing.providers.base import ChargeStatus, Outcome, ProviderRejected, SavedMethodCharger
from billing.providers.cloudpayments import ApiClient, CloudPayments
from billing.providers.cloudpayments.protocol import Kind, basic_auth
from billing.renewals.scheduler import tick
from db import OperationStatus, Subscription
from db.cloudpayments import CloudPaymentsNotice
from db.renewals import Renewal, RenewalStatus
from tests.charge_support import RENEWAL_PRICE, Remembered, WorkerDied, charger, renewal
from tests.cloudpayments_support import (
    CP_PUBLIC_ID,
    CP_SECRET,
    cp,
    cp_server,
    give_consent,
    post,
    reconfigure,
    settings,
)
from tests.helpers import new_invoice, operations, paid_with_saved_method
from tests.webhook_server.test_redis_faults import free_port
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator, TokenDecline
from webhook_server.emulators.cloudpayments_wire import transaction_fields
from webhook_server.http_transport import AiohttpTransport
from webhook_server.keys import HTTP, LEDGER

__all__ = ["cp", "cp_server", "settings"]  # fixtures, imported for pytest

TOKEN = "tk_5f0c2b9d3e8a41c7b6d2e9f0"  # a card token issued by an earlier widget payment
FIRST_KEY = "renewal:sub-1:period-1:attempt-0"


def provider(client) -> CloudPayments:
    return charger(client, "cloudpayments")


@pytest.fixture
def emulator(cp_server: tuple[CloudPaymentsEmulator, str]) -> CloudPaymentsEmulator:
    """The emulator without notifications (tests that want them use `cp`), with TOKEN issued."""
    emulator, _ = cp_server
    emulator.tokens.add(TOKEN)
    return emulator


def reference_request_id(idempotency_key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"open-ymds:cloudpayments:charge:{idempotency_key}"))


def charge_calls(emulator: CloudPaymentsEmulator) -> list[tuple[str, dict[str, str], str]]:
    return [call for call in emulator.api_calls if call[0] == "/payments/tokens/charge"]


async def test_the_charge_is_a_scheduled_merchant_initiated_token_charge(client, emulator):
    invoice = await new_invoice(client, user_id=31)
    remembered = Remembered(seen=lambda transaction: emulator.transactions[int(transaction)].status)
    result = await provider(client).charge(renewal(invoice["label"], TOKEN, user_id=31), remembered)

    assert result.status is ChargeStatus.SUCCEEDED and emulator.charges == [int(result.operation_id)]
    assert remembered.ids == [result.operation_id] and remembered.seen_then == ["Completed"]
    assert [path for path, _, _ in emulator.api_calls] == ["/payments/find", "/payments/tokens/charge"]
    [(_, fields, request_id)] = charge_calls(emulator)
    assert fields == {"Amount": "299.00", "Currency": "RUB", "AccountId": "31", "Token": TOKEN,
                      "TrInitiatorCode": "0", "PaymentScheduled": "1", "InvoiceId": invoice["label"],
                      "Description": f"Renewal of invoice {invoice['label']}"}
    assert request_id == reference_request_id(FIRST_KEY)
    event = result.event
    assert (event.provider, event.operation_id, event.label, event.amount) == (
        "cloudpayments", result.operation_id, invoice["label"], RENEWAL_PRICE)
    assert (event.payment_token, event.payment_method) == (TOKEN, "Visa •••• 4242")
    assert event.occurred_at is not None


async def test_a_widget_token_renews_the_subscription(client, worker, cp, clock):
    first = await new_invoice(client, user_id=32)
    await give_consent(first["label"], clock())  # "pay and renew automatically": the token is kept
    paid = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": "299.00", "currency": "RUB",
                                "invoiceId": first["label"], "accountId": "32"})
    assert paid["success"]
    await worker.drain()
    saved = await Subscription.find_one(Subscription.user_id == 32)
    assert saved.payment_token == cp.transactions[paid["transactionId"]].token

    second = await new_invoice(client, user_id=32)
    result = await provider(client).charge(renewal(second["label"], saved.payment_token, user_id=32), Remembered())
    assert result.status is ChargeStatus.SUCCEEDED
    assert await client.app[LEDGER].record(result.event) is Outcome.DUPLICATE  # its Pay came first
    await worker.drain()
    renewed = await Subscription.find_one(Subscription.user_id == 32)
    assert renewed.current_period_end == clock.now + timedelta(days=60)
    assert renewed.payment_token == saved.payment_token


async def test_a_soft_decline_sends_fail_and_the_next_attempt_charges_again(client, cp):
    invoice = await new_invoice(client, user_id=33)
    cp.tokens.add(TOKEN)
    cp.decline_token(TOKEN, TokenDecline(5051, "InsufficientFunds"), times=1)
    charger = provider(client)

    declined = await charger.charge(renewal(invoice["label"], TOKEN, user_id=33), Remembered())
    assert (declined.status, declined.reason, declined.hard, declined.event) == (
        ChargeStatus.DECLINED, "InsufficientFunds (5051)", False, None)
    assert [(kind, reply.ok) for kind, reply in cp.replies] == [(Kind.FAIL, True)]
    notice = await CloudPaymentsNotice.find_one(CloudPaymentsNotice.transaction_id == declined.operation_id)
    assert (notice.kind, notice.reason_code) == ("fail", 5051)
    assert await operations() == []

    retried = await charger.charge(renewal(invoice["label"], TOKEN, key="attempt-1", user_id=33), Remembered())
    assert retried.status is ChargeStatus.SUCCEEDED and len(cp.charges) == 2


@pytest.mark.parametrize(("code", "reason", "hard"), [
    (5041, "LostCard", True), (5043, "StolenCard", True), (5054, "ExpiredCard", True),
    (5057, "TransactionNotPermitted", True), (5004, "PickUpCard", True),
    (5051, "InsufficientFunds", False), (5005, "DoNotHonor", False), (5091, "Timeout", False),
])
async def test_hard_declines_are_the_ones_no_retry_can_fix(client, emulator, code, reason, hard):
    invoice = await new_invoice(client)
    emulator.decline_token(TOKEN, TokenDecline(code, reason))
    result = await provider(client).charge(renewal(invoice["label"], TOKEN), Remembered())
    assert (result.status, result.reason, result.hard) == (ChargeStatus.DECLINED, f"{reason} ({code})", hard)
    assert result.operation_id == str(emulator.charges[0])


async def test_a_bank_asking_for_3_d_secure_is_a_hard_decline(client, emulator):
    invoice = await new_invoice(client)
    emulator.decline_token(TOKEN, TokenDecline(secure3d=True))
    remembered = Remembered()
    result = await provider(client).charge(renewal(invoice["label"], TOKEN), remembered)
    assert (result.status, result.reason, result.hard) == (ChargeStatus.DECLINED, "3-D Secure required", True)
    assert remembered.ids == [result.operation_id] == [str(emulator.charges[0])]


async def test_an_unknown_token_is_declined_for_good(client, emulator):
    invoice = await new_invoice(client)
    result = await provider(client).charge(renewal(invoice["label"], "tk_never_issued"), Remembered())
    assert (result.status, result.hard) == (ChargeStatus.DECLINED, True)


async def test_the_same_attempt_twice_charges_once_and_answers_the_same(client, emulator):
    invoice = await new_invoice(client)
    charger = provider(client)
    emulator.decline_token(TOKEN, TokenDecline(5051, "InsufficientFunds"), times=1)
    declined = await charger.charge(renewal(invoice["label"], TOKEN), Remembered())
    again = await charger.charge(renewal(invoice["label"], TOKEN), Remembered())  # the stored X-Request-ID answer
    assert again == declined and declined.status is ChargeStatus.DECLINED and len(emulator.charges) == 1

    paid = await charger.charge(renewal(invoice["label"], TOKEN, key="attempt-1"), Remembered())
    paid_again = await charger.charge(renewal(invoice["label"], TOKEN, key="attempt-1"), Remembered())
    assert paid_again == paid and paid.status is ChargeStatus.SUCCEEDED and len(emulator.charges) == 2


async def test_a_run_after_the_request_ids_hour_finds_the_money_taken(client, emulator):
    invoice = await new_invoice(client)
    charger = provider(client)
    dying = Remembered(seen=lambda transaction: int(transaction) in emulator.transactions, die=True)
    with pytest.raises(WorkerDied):
        await charger.charge(renewal(invoice["label"], TOKEN), dying)
    assert dying.seen_then == [True] and len(emulator.charges) == 1
    emulator.expire_request_ids()

    rerun = Remembered()
    result = await charger.charge(renewal(invoice["label"], TOKEN), rerun)
    assert (result.status, result.operation_id, rerun.ids) == (ChargeStatus.SUCCEEDED, dying.ids[0], dying.ids)
    assert len(emulator.charges) == 1


async def test_a_known_transaction_is_looked_up_not_charged_again(client, emulator):
    invoice, other = await new_invoice(client), await new_invoice(client)
    charger = provider(client)
    first = await charger.charge(renewal(invoice["label"], TOKEN), Remembered())
    rerun = Remembered()
    result = await charger.charge(renewal(invoice["label"], TOKEN, key="another",
                                          known_operation_id=first.operation_id), rerun)
    assert result == first and rerun.ids == [] and len(emulator.charges) == 1
    assert emulator.api_calls[-1][:2] == ("/payments/get", {"TransactionId": first.operation_id})

    with pytest.raises(ProviderRejected, match="no transaction"):
        await charger.charge(renewal(invoice["label"], TOKEN, known_operation_id="1234567"), Remembered())
    with pytest.raises(ProviderRejected, match="pays"):
        await charger.charge(renewal(other["label"], TOKEN, known_operation_id=first.operation_id), Remembered())
    assert len(emulator.charges) == 1


async def test_an_outage_leaves_the_outcome_unknown(client, emulator):
    invoice = await new_invoice(client)
    emulator.down = True
    remembered = Remembered()
    with pytest.raises(ProviderUnavailable):
        await provider(client).charge(renewal(invoice["label"], TOKEN), remembered)
    with pytest.raises(ProviderUnavailable):
        await charger_at(client, f"http://127.0.0.1:{free_port()}", CP_SECRET).charge(
            renewal(invoice["label"], TOKEN), remembered)
    assert remembered.ids == [] and emulator.charges == []


async def test_refused_requests_are_rejected(client, emulator, cp_server):
    invoice = await new_invoice(client)
    with pytest.raises(ProviderRejected, match="HTTP 401"):
        await charger_at(client, cp_server[1], "wrong-secret").charge(renewal(invoice["label"], TOKEN), Remembered())
    refused = await provider(client).charge(renewal(invoice["label"], TOKEN, amount=Money(0, "RUB")), Remembered())
    assert (refused.status, refused.hard, refused.operation_id) == (ChargeStatus.DECLINED, True, None)
    assert "Amount" in refused.reason  # Success false without a model: CloudPayments' Message, no retry fixes it
    with pytest.raises(ProviderRejected, match="RUB"):
        await provider(client).charge(renewal(invoice["label"], TOKEN, amount=Money(100, "USD")), Remembered())
    assert emulator.charges == []


async def test_a_test_payment_is_not_credited_when_test_mode_is_off(client, emulator):
    invoice = await new_invoice(client)
    live = reconfigure(client, test_mode=False)
    remembered = Remembered()
    with pytest.raises(ProviderRejected, match="test payment"):
        await live.charge(renewal(invoice["label"], TOKEN), remembered)
    assert remembered.ids == [str(emulator.charges[0])]


async def test_pay_notification_then_charge_event_records_one_operation(client, worker, cp, clock, notifier):
    invoice = await new_invoice(client, user_id=34)
    await give_consent(invoice["label"], clock())
    cp.tokens.add(TOKEN)
    result = await provider(client).charge(renewal(invoice["label"], TOKEN, user_id=34), Remembered())
    assert [(kind, reply.ok) for kind, reply in cp.replies] == [(Kind.PAY, True)]
    assert await client.app[LEDGER].record(result.event) is Outcome.DUPLICATE
    await worker.drain()
    await assert_renewed_once(34, result, clock, notifier)


async def test_charge_event_then_pay_notification_records_one_operation(client, worker, cp, clock, notifier):
    invoice = await new_invoice(client, user_id=35)
    await give_consent(invoice["label"], clock())
    cp.tokens.add(TOKEN)
    cp.deliver = False  # Pay is late: sent by hand below, as CloudPayments would send it
    result = await provider(client).charge(renewal(invoice["label"], TOKEN, user_id=35), Remembered())
    assert await client.app[LEDGER].record(result.event) is Outcome.ACCEPTED
    tx = cp.transactions[int(result.operation_id)]
    status, answer = await post(client, Kind.PAY, transaction_fields(
        transaction_id=tx.id, amount=tx.amount, label=tx.label, account_id=tx.account_id, token=tx.token))
    assert (status, answer) == (200, {"code": 0})
    await worker.drain()
    await assert_renewed_once(35, result, clock, notifier)


async def assert_renewed_once(user_id: int, result, clock, notifier) -> None:
    [operation] = await operations()
    assert (operation.operation_id, operation.status, operation.label, operation.amount) == (
        result.operation_id, OperationStatus.APPLIED, result.event.label, result.event.amount.minor)
    assert (operation.payment_token, operation.payment_method) == (TOKEN, result.event.payment_method)
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert subscription.payment_token == TOKEN and len(notifier.notices) == 1


def charger_at(client, api_url: str, secret: str) -> CloudPayments:
    return CloudPayments(public_id=CP_PUBLIC_ID, api_secret=secret, test_mode=True,
                         client=ApiClient(AiohttpTransport(client.app[HTTP]), api_url, CP_PUBLIC_ID, secret))


async def test_it_is_a_saved_method_charger_that_cannot_forget(client):
    charger = provider(client)
    assert isinstance(charger, SavedMethodCharger) and charger.charge_currency == "RUB"
    assert await charger.forget(TOKEN) is False


async def test_the_emulator_answers_a_repeated_request_id_from_its_store(emulator, cp_server):
    fields = {"Amount": "299.00", "Currency": "RUB", "AccountId": "42", "Token": TOKEN, "TrInitiatorCode": "0",
              "PaymentScheduled": "1", "InvoiceId": "inv-1"}

    async def charge(session: aiohttp.ClientSession, request_id: str) -> dict:
        headers = {"Authorization": basic_auth(CP_PUBLIC_ID, CP_SECRET), "X-Request-ID": request_id}
        async with session.post(f"{cp_server[1]}/payments/tokens/charge", data=fields, headers=headers) as response:
            assert response.status == 200
            return await response.json()

    async with aiohttp.ClientSession() as session:
        first = await charge(session, "rq-1")
        assert await charge(session, "rq-1") == first and len(emulator.charges) == 1
        second = await charge(session, "rq-2")
    assert first["Success"] and second["Success"]
    assert second["Model"]["TransactionId"] != first["Model"]["TransactionId"] and len(emulator.charges) == 2


async def test_the_emulators_decline_control_route(client, emulator, cp_server):
    invoice = await new_invoice(client)
    charger = provider(client)
    control = f"{cp_server[1]}/control/tokens/{TOKEN}/decline"

    async def outcomes(count: int, prefix: str) -> list[str]:
        results = [await charger.charge(renewal(invoice["label"], TOKEN, key=f"{prefix}-{n}"), Remembered())
                   for n in range(count)]
        return [result.reason or result.status.value for result in results]

    async with aiohttp.ClientSession() as session:
        async with session.post(control, json={"ReasonCode": 5054, "Reason": "ExpiredCard", "times": 2}) as response:
            assert response.status == 200
        assert await outcomes(2, "twice") == ["ExpiredCard (5054)"] * 2
        async with session.post(control, json={"secure3d": True}) as response:
            assert response.status == 200
        assert await outcomes(2, "always") == ["3-D Secure required"] * 2
        async with session.delete(control) as response:
            assert response.status == 200
        assert await outcomes(1, "allowed") == ["succeeded"]
        for bad in ({"ReasonCode": "5051"}, {"times": -1}, {"secure3d": "yes"}, ["ExpiredCard"]):
            async with session.post(control, json=bad) as response:
                assert response.status == 400
    assert len(emulator.charges) == 5


async def test_token_payments_turned_off_end_the_renewal_cleanly(client, worker, cp, clock, notifier):
    """Success false without a Model (token payments not enabled for the site): one attempt, no retries, the
    method dropped, the user told with a link to pay by hand, nothing left open (issue 17.1)."""
    cp.tokens.add(TOKEN)
    cp.token_payments = False
    subscription = await paid_with_saved_method(client, worker, 36, provider="cloudpayments", token=TOKEN,
                                                method="Visa •••• 4242")
    consent = {"at": clock(), "ip": "203.0.113.7", "text_version": "en-test", "provider": "cloudpayments",
               "amount": 29900, "currency": "RUB", "period_days": 30}
    await Subscription.get_motor_collection().update_one(
        {"user_id": 36}, {"$set": {"auto_renew": True, "renewal_consent": consent}})
    services = worker.runtime.renewals
    clock.now = subscription.current_period_end - timedelta(minutes=30)
    await tick(clock(), services)
    await worker.drain()
    [attempt] = await Renewal.find_all().to_list()
    assert (attempt.status, attempt.hard_decline, attempt.attempts) == (RenewalStatus.FAILED, True, 1)
    assert attempt.last_reason == "Token payments are not enabled for this site"
    stopped = await Subscription.find_one(Subscription.user_id == 36)
    assert stopped.payment_token is None and cp.charges == []
    assert [(notice.event, notice.pay_url is not None) for notice in notifier.renewals] == [
        (RenewalEvent.STOPPED, True)]
    calls = len(cp.api_calls)
    clock.now += timedelta(days=1)
    await tick(clock(), services)
    await worker.drain()
    assert len(cp.api_calls) == calls, "no attempt repeats"
