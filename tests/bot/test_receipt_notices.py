"""The fiscal receipt's link in Telegram: in the payment notice when it came in time, else in one short follow-up,
in the payer's language; and the admin chat hearing of a refused receipt. Payme's and Click's emulators over HTTP
→ our routes → a real RQ worker → the fake Bot API."""

from __future__ import annotations

import pytest

from db.users import remember_user
from tests.bot.conftest import ADMIN_CHAT_ID, USER_ID, bot_settings, last_text
from tests.helpers import new_invoice
from tests.payme_support import PAYME_CHECKOUT, PAYME_KEY, PAYME_MERCHANT, PRICE_MONTH_UZS, emulator_for
from tests.webhook_server.test_click_receipts import RECEIPTS as CLICK_RECEIPTS
from tests.webhook_server.test_click_reconcile import click_emulator as click_emulator
from tests.webhook_server.test_notify_click import CLICK, MONTH_UZS
from tests.webhook_server.test_payme_fiscal import FISCAL, QR, RECEIPTS
from webhook_server.emulators.click import MERCHANT_API


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, click_emulator):
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], payme_merchant_id=PAYME_MERCHANT,
                        payme_key=PAYME_KEY, payme_checkout_url=PAYME_CHECKOUT,
                        **{**RECEIPTS, **CLICK_RECEIPTS, **CLICK, "click_api_url": click_emulator[1] + MERCHANT_API})


async def test_the_payment_notice_carries_the_receipts_link(client, worker, fake, clock):
    await remember_user(USER_ID, "ru", chosen=True, now=clock.now)
    payme = emulator_for(client, clock, fiscal=True)
    invoice = await new_invoice(client, user_id=USER_ID)
    await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    text = last_text(fake, USER_ID)
    assert text.startswith("Оплата получена:") and "\nФискальный чек: https://ofd.soliq.uz/epi?" in text
    assert len(fake.sent(chat_id=USER_ID)) == 1


@pytest.mark.parametrize("language, expected", [
    ("uz", f"Toʻlovingizning fiskal cheki tayyor: {QR}"),
    ("en", f"The fiscal receipt of your payment is ready: {QR}"),
    ("ru", f"Фискальный чек вашей оплаты готов: {QR}"),
])
async def test_a_late_receipt_is_sent_once_in_the_payers_language(client, worker, fake, clock, language, expected):
    await remember_user(USER_ID, language, chosen=True, now=clock.now)
    payme = emulator_for(client, clock, fiscal=True, send_fiscal_data=False)
    invoice = await new_invoice(client, user_id=USER_ID)
    payme_id, _ = await payme.pay(client.session, invoice["label"], PRICE_MONTH_UZS)
    await worker.drain()
    for _ in range(2):
        await payme.call(client.session, "SetFiscalData", {"id": payme_id, "type": "PERFORM", "fiscal_data": FISCAL})
        await worker.drain()
    assert last_text(fake, USER_ID) == expected
    assert len(fake.sent(chat_id=USER_ID)) == 2, "the payment notice, then the link once"
    assert not last_text(fake, ADMIN_CHAT_ID).startswith("🧾")


async def test_clicks_refusal_reaches_the_admin_chat_once(client, worker, fake, click_emulator, clock):
    emulator, _ = click_emulator
    emulator.notify_base = str(client.make_url("/notify/click"))
    emulator.ofd.refuse = (-31, "SPIC not registered for this TIN")
    label = (await new_invoice(client, user_id=USER_ID))["label"]
    await emulator.caller(client.session).pay(label, MONTH_UZS)
    await worker.drain()
    [refusal] = [m["text"] for m in fake.bot_messages(ADMIN_CHAT_ID) if m["text"].startswith("🧾")]
    assert refusal.startswith(f"🧾 click refused the fiscal receipt of invoice {label}\nUser: {USER_ID}\n")
    assert "Error: -31 SPIC not registered for this TIN" in refusal
