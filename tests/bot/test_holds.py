"""A two-stage payment held for an admin: the admin chat gets it with a Confirm button, and pressing it captures
the payment through CloudPayments' API (its emulator) exactly as the admin API's confirm does."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from billing.errors import LedgerUnavailable, ProviderUnavailable
from billing.ledger import Ledger
from billing.providers.cloudpayments.protocol import Status
from bot.main import build_dispatcher
from bot.texts import catalogue
from db import InvoiceStatus, OperationStatus
from rq_access import RqQueues, connect
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, bot_settings
from tests.cloudpayments_support import CP_PUBLIC_ID, CP_SECRET, cp, cp_server, invoice_of  # noqa: F401 - fixtures
from tests.helpers import new_invoice, operations
from tests.webhook_server.test_cloudpayments_admin import widget_payment
from webhook_server.keys import LEDGER, QUEUES


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, cp_server):
    emulator_url = cp_server[1]
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], cloudpayments_public_id=CP_PUBLIC_ID,
                        cloudpayments_api_secret=CP_SECRET, cloudpayments_api_url=emulator_url,
                        cloudpayments_widget_url=emulator_url + "/widget.js", cloudpayments_test_mode=True)


def confirm_press(message: dict[str, Any], presser: int, update_id: int) -> dict[str, Any]:
    [[button]] = message["reply_markup"]["inline_keyboard"]
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": button["callback_data"], "message": message,
        "from": {"id": presser, "is_bot": False, "first_name": "Admin", "language_code": "en"}}}


def alerts(fake) -> list[str]:
    return [str(call.get("text")) for call in fake.sent("answerCallbackQuery")]


async def test_the_admin_chat_confirms_a_held_payment_with_its_button(client, cp, worker, dispatcher, bot, fake):
    invoice = await new_invoice(client, user_id=USER_ID)
    transaction = await widget_payment(cp, invoice["label"], USER_ID, scheme="auth")
    await worker.drain()
    [held] = [m for m in fake.bot_messages(ADMIN_CHAT_ID) if invoice["label"] in m["text"]]
    assert "held" in held["text"] and held["reply_markup"]["inline_keyboard"][0][0]["text"] == "Confirm"
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING

    await dispatcher.feed_raw_update(bot, confirm_press(held, USER_ID, 901))  # not an admin
    assert cp.transactions[transaction].status == Status.AUTHORIZED
    await dispatcher.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 902))
    assert cp.api_calls[-1][:2] == ("/payments/confirm", {"TransactionId": str(transaction), "Amount": "299.00"})
    await worker.drain()

    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED
    await dispatcher.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 903))
    refused, confirmed, again = alerts(fake)[-3:]
    assert refused == catalogue().texts("en")("admin.refused")
    assert confirmed.startswith("Confirmed") and again.startswith("Nothing")


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens here once the probe is closed: connection refused


async def test_an_outage_before_the_capture_fails_the_update_and_a_later_press_confirms(
        client, cp, worker, dispatcher, bot, fake, settings, plans, clock):
    """CloudPayments not answering, or a bot without its queue: the update fails (so Telegram delivers it again,
    or the polling retry takes it and then tells the admins) rather than being answered and forgotten; nothing
    was captured, and the next press confirms."""
    invoice = await new_invoice(client, user_id=USER_ID)
    transaction = await widget_payment(cp, invoice["label"], USER_ID, scheme="auth")
    await worker.drain()
    [held] = [m for m in fake.bot_messages(ADMIN_CHAT_ID) if invoice["label"] in m["text"]]
    answered = len(alerts(fake))

    unreachable = build_dispatcher(settings.model_copy(update={"cloudpayments_api_url": closed_port_url()}), plans,
                                   clock=clock, ledger=client.app[LEDGER], renewal_queue=client.app[QUEUES])
    with pytest.raises(ProviderUnavailable):
        await unreachable.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 911))
    without_queue = build_dispatcher(settings, plans, clock=clock, ledger=None, renewal_queue=client.app[QUEUES])
    with pytest.raises(LedgerUnavailable):
        await without_queue.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 912))
    assert len(alerts(fake)) == answered, "no answer that would acknowledge the update"
    assert cp.transactions[transaction].status == Status.AUTHORIZED
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING

    await dispatcher.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 913))
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    assert alerts(fake)[-1].startswith("Confirmed")


async def test_a_capture_the_queue_cannot_record_is_not_captured_again(client, cp, worker, dispatcher, bot, fake,
                                                                      settings, plans, clock):
    """The queue fails after CloudPayments captured the money: the admin is told it was captured and not to
    confirm again (its Confirm notification, or the sweep, applies it), and no second capture is sent."""
    invoice = await new_invoice(client, user_id=USER_ID)
    transaction = await widget_payment(cp, invoice["label"], USER_ID, scheme="auth")
    await worker.drain()
    [held] = [m for m in fake.bot_messages(ADMIN_CHAT_ID) if invoice["label"] in m["text"]]
    dead_queue = Ledger(RqQueues(connect(closed_port_url().replace("http", "redis") + "/0"), max_retries=0,
                                retry_intervals=[]), clock)
    broken = build_dispatcher(settings, plans, clock=clock, ledger=dead_queue, renewal_queue=client.app[QUEUES])
    await broken.feed_raw_update(bot, confirm_press(held, ADMIN_ID, 921))
    assert alerts(fake)[-1] == catalogue().texts("en")("hold.captured", label=invoice["label"])
    assert cp.transactions[transaction].status == Status.COMPLETED
    assert [call[0] for call in cp.api_calls].count("/payments/confirm") == 1
