"""Renewal charges of a saved YooKassa method with YOOKASSA_RECEIPTS on, through the scheduler, the real RQ worker,
the YooKassa emulator as a fiscalizing shop, and the fake Bot API: the charge carries the receipt to the user's
contact; without one YooKassa is not asked, the renewal stops for the period keeping the method, and the user
(with a link to pay by hand) and the admin chat are told once."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from billing.renewals import RenewalServices
from db import Invoice, SubscriptionStatus
from db.renewals import RenewalStatus
from db.users import ReceiptContact
from settings import Settings
from tests.bot.conftest import ADMIN_CHAT_ID, BOT_TOKEN
from tests.conftest import YOOMONEY_API_TOKEN, FrozenClock, make_settings
from tests.helpers import give_receipt_contact
from tests.renewals.test_refused_charges import (
    USER,
    Shops,
    charge_calls,
    current,
    fake,
    fake_telegram,
    nearly_due,
    notifier,
    paid_operations,
    services,
    shops,
    subscribed,
    the_renewal,
)
from tests.yookassa_support import yookassa_settings
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.emulators.yoomoney import YooMoneyEmulator
from webhook_server.runner import InProcessWorker

__all__ = ["fake", "fake_telegram", "notifier", "services", "shops"]  # fixtures, imported for pytest

EMAIL = "renewer@example.com"


@pytest.fixture
def settings(yoomoney_emulator: tuple[YooMoneyEmulator, str], shops: Shops,
             fake_telegram: tuple[FakeTelegram, str]) -> Settings:
    shops.yookassa.rules.receipts_required = True
    return make_settings(
        yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_emulator[1],
        **yookassa_settings(shops.urls["yookassa"] + "/v3", yookassa_receipts=True, receipt_vat_code=1,
                            receipt_tax_system_code=2),
        max_retries=3, retry_intervals=[3600, 86400, 259200],
        bot_token=BOT_TOKEN, telegram_api_url=fake_telegram[1], admin_chat_id=ADMIN_CHAT_ID,
    )


async def test_a_renewal_charge_carries_the_receipt_to_the_users_contact(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
    fake: FakeTelegram,
) -> None:
    subscription = await subscribed(client, worker, shops, "yookassa")
    await give_receipt_contact(USER, ReceiptContact(email=EMAIL))
    await nearly_due(clock, services, worker, fake, subscription.current_period_end)

    renewal = await the_renewal()
    assert renewal.status is RenewalStatus.PAID
    [(kind, payment_id, receipt)] = shops.yookassa.receipts
    assert (kind, payment_id) == ("payment", renewal.operation_id)
    assert receipt == {"customer": {"email": EMAIL}, "tax_system_code": 2, "items": [{
        "description": "1 month", "quantity": "1.00", "amount": {"value": "299.00", "currency": "RUB"},
        "vat_code": 1, "payment_subject": "service", "payment_mode": "full_payment"}]}
    invoice = await Invoice.find_one(Invoice.label == renewal.label)
    assert invoice.receipt_contact == ReceiptContact(email=EMAIL), "fixed on the renewal's invoice for every try"
    assert (await current()).current_period_end > subscription.current_period_end


async def test_without_a_contact_the_renewal_stops_before_yookassa_is_asked_and_is_told_once(
    client: TestClient, worker: InProcessWorker, clock: FrozenClock, services: RenewalServices, shops: Shops,
    fake: FakeTelegram,
) -> None:
    subscription = await subscribed(client, worker, shops, "yookassa")
    told = await nearly_due(clock, services, worker, fake, subscription.current_period_end)

    renewal = await the_renewal()
    assert (renewal.status, renewal.hard_decline, renewal.attempts) == (RenewalStatus.FAILED, True, 1)
    assert "fiscal receipt" in (renewal.last_reason or "")
    assert charge_calls(shops, "yookassa") == 0 and await paid_operations("yookassa") == []
    stopped = await current()
    assert stopped.status is SubscriptionStatus.ACTIVE and stopped.payment_token is not None, "the method stays"
    [user_notice] = told.user()
    assert "/pay/" in user_notice
    [admin_notice] = told.admin()
    assert "fiscal receipt" in admin_notice
