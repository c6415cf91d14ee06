"""POST /api/invoices/{label}/refund: through the provider's refund API, then reversed once in the ledger."""

from __future__ import annotations

from datetime import timedelta

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.providers.base import ProviderRejected
from db import Invoice, InvoiceStatus, Subscription
from tests.conftest import AUTH
from tests.helpers import new_invoice, notification, post_notification
from webhook_server.keys import PROVIDERS


class RefundingYooMoney:
    """The YooMoney provider with a refund API, as CloudPayments and YooKassa have one; records its calls."""

    def __init__(self, real, failure: Exception | None = None) -> None:
        self._real = real
        self.failure = failure
        self.calls: list[tuple[str, Money, str]] = []

    def __getattr__(self, name):  # everything else is the real provider
        return getattr(self._real, name)

    async def refund(self, *, operation_id: str, amount: Money, label: str) -> None:
        self.calls.append((operation_id, amount, label))
        if self.failure:
            raise self.failure


async def paid(client, worker, user_id: int) -> str:
    invoice = await new_invoice(client, user_id=user_id)
    await post_notification(client, notification(invoice["label"], operation_id=f"r{user_id}"))
    await worker.drain()
    return invoice["label"]


async def test_refund_calls_the_provider_then_takes_the_period_back(client, worker, clock, notifier):
    label = await paid(client, worker, 81)
    provider = RefundingYooMoney(client.app[PROVIDERS].providers["yoomoney"])
    client.app[PROVIDERS].providers["yoomoney"] = provider

    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 202 and (await response.json())["refund"] == "requested"
    await worker.drain()

    assert provider.calls == [("r81", Money(29900, "RUB"), label)]
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.REFUNDED
    assert (await Subscription.find_one(Subscription.user_id == 81)).current_period_end == clock.now
    again = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert again.status == 409 and (await again.json())["error"] == "not_paid"
    assert len(notifier.reversals) == 1


async def test_provider_without_a_refund_api_gets_409_and_nothing_changes(client, worker, clock):
    label = await paid(client, worker, 82)
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 409 and (await response.json())["error"] == "refund_not_supported"
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 82)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_provider_refusal_or_outage_changes_nothing(client, worker):
    label = await paid(client, worker, 83)
    real = client.app[PROVIDERS].providers["yoomoney"]
    for failure, status in ((ProviderRejected("amount exceeds"), 502), (ProviderUnavailable("timeout"), 503)):
        client.app[PROVIDERS].providers["yoomoney"] = RefundingYooMoney(real, failure)
        response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
        assert response.status == status
        await worker.drain()
        assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID


async def test_refund_of_unknown_or_unpaid_invoices_and_without_token(client):
    assert (await client.post("/api/invoices/inv_none/refund", headers=AUTH)).status == 404
    pending = await new_invoice(client)
    response = await client.post(f"/api/invoices/{pending['label']}/refund", headers=AUTH)
    assert response.status == 409
    assert (await client.post(f"/api/invoices/{pending['label']}/refund")).status == 401


async def test_queue_down_after_the_provider_refunded_answers_503(
    client, worker, monkeypatch
):
    from billing.errors import LedgerUnavailable
    from webhook_server.keys import QUEUES

    label = await paid(client, worker, 84)
    client.app[PROVIDERS].providers["yoomoney"] = RefundingYooMoney(client.app[PROVIDERS].providers["yoomoney"])

    async def queue_down(*args: str) -> None:
        raise LedgerUnavailable("redis: ConnectionError")

    monkeypatch.setattr(client.app[QUEUES], "enqueue_reversal", queue_down)
    response = await client.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 503 and (await response.json())["error"] == "unavailable"
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
