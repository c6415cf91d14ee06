"""Helpers for the CloudPayments subscription tests: a consented invoice paid through our widget page and the
emulator's widget (Check, Pay, Recurrent over HTTP), the worker's fulfilment, and the scheduler's tick that
binds the local subscription."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from billing.renewals import RenewalServices
from billing.renewals.scheduler import tick
from db import Subscription
from tests.cloudpayments_support import give_consent, open_widget
from tests.conftest import FrozenClock
from tests.helpers import new_invoice
from webhook_server.emulators.cloudpayments import CloudPaymentsEmulator
from webhook_server.keys import PROVIDERS, QUEUES, SETTINGS
from webhook_server.renewal_services import renewal_services
from webhook_server.runner import InProcessWorker


@dataclass
class Subscribed:
    label: str
    subscription_id: str
    first_transaction: int
    local: Subscription


def services_of(client: TestClient, clock: FrozenClock) -> RenewalServices:
    app = client.app
    return renewal_services(app[SETTINGS], app[QUEUES], app[PROVIDERS], clock)


async def consented_invoice(client: TestClient, user_id: int, clock: FrozenClock, *, provider: str = "cloudpayments",
                            consent: bool = True) -> dict[str, Any]:
    """An invoice whose payer chose "pay and renew automatically" with `provider` (or "pay once")."""
    invoice = await new_invoice(client, user_id=user_id)
    await give_consent(invoice["label"], clock() if consent else None, provider)
    return invoice


async def pay_in_widget(client: TestClient, cp: CloudPaymentsEmulator, invoice: dict[str, Any]) -> dict[str, Any]:
    """The payer opens our widget page and pays in the emulator's widget; the widget's result."""
    config = await open_widget(client, invoice)
    paid = await cp.pay_widget(config["options"], config["scheme"])
    assert paid["success"], paid
    return paid


async def subscribed(client: TestClient, cp: CloudPaymentsEmulator, worker: InProcessWorker, clock: FrozenClock,
                     user_id: int) -> Subscribed:
    """A consented first payment that set up a CloudPayments subscription, applied and bound by a tick."""
    cp.clock = clock
    invoice = await consented_invoice(client, user_id, clock)
    paid = await pay_in_widget(client, cp, invoice)
    subscription_id = cp.transactions[paid["transactionId"]].subscription_id
    assert subscription_id.startswith("sc_")
    await worker.drain()
    await tick(clock(), services_of(client, clock))
    local = await Subscription.find_one(Subscription.user_id == user_id)
    assert local is not None and local.cloudpayments_subscription_id == subscription_id
    return Subscribed(invoice["label"], subscription_id, paid["transactionId"], local)
