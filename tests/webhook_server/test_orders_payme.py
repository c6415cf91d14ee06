"""An order and a donation paid through Payme's Merchant API (the emulator's Check, Create, Perform), each
compared exactly with the invoice; Payme takes a payment back in full only, so a partial refund is refused."""

from __future__ import annotations

from urllib.parse import urlsplit

from billing.donations import donation_url
from db import Invoice, InvoiceKind, InvoiceStatus, Subscription
from tests.conftest import AUTH
from tests.helpers import Forms, path_of
from tests.payme_support import payme, settings
from tests.webhook_server.test_orders_api import post_order

__all__ = ["payme", "settings"]  # fixtures, imported for pytest

WRONG_AMOUNT = -31001


async def test_an_order_is_paid_through_payme_for_its_exact_amount_once(client, worker, payme, notifier):
    status, made = await post_order(client, {"user_id": 95, "amounts": {"UZS": 12345600},
                                             "description": "Delivery", "order_id": "pm-1"})
    assert status == 201
    _, answers = await payme.pay(client.session, made["label"], 12345500)
    assert [answer.code for answer in answers] == [WRONG_AMOUNT]
    payme_id, answers = await payme.pay(client.session, made["label"], 12345600)
    assert all(answer.result for answer in answers), [answer.body for answer in answers]
    await worker.drain()
    invoice = await Invoice.find_one(Invoice.label == made["label"])
    assert (invoice.status, invoice.provider, invoice.paid_amount) == (InvoiceStatus.PAID, "payme", 12345600)
    assert await Subscription.find_one(Subscription.user_id == 95) is None
    _, again = await payme.pay(client.session, made["label"], 12345600)
    assert again[0].result is None and again[0].code is not None, "one invoice, one payment"
    assert [(notice.kind, notice.order_id) for notice in notifier.notices] == [("order", "pm-1")]

    response = await client.post(f"/api/invoices/{made['label']}/refund", json={"amount": 100000}, headers=AUTH)
    body = await response.json()
    assert (response.status, body["error"]) == (409, "partial_refund_not_supported")
    assert "in full only" in body["message"]
    assert (await Invoice.find_one(Invoice.label == made["label"])).refunded_amount == 0


async def test_a_donation_is_chosen_on_the_page_and_paid_through_payme(client, worker, payme, settings, clock,
                                                                      notifier):
    url = donation_url(settings.public_base_url, settings.link_key, 96, now=clock.now, ttl_seconds=600, lang="uz")
    page = await client.get(path_of(url))
    text = await page.text()
    assert page.status == 200 and 'value="UZS:5000000"' in text and "Xayriya" in text
    forms = Forms()
    forms.feed(text)
    chosen = await client.post("/donate", data={**forms.forms["donate"]["fields"], "pick": "custom",
                                                "amount": "25000", "currency": "UZS", "message": "Rahmat!"},
                               allow_redirects=False)
    assert chosen.status == 303
    label = urlsplit(chosen.headers["Location"]).path.rsplit("/", 1)[1]
    invoice = await Invoice.find_one(Invoice.label == label)
    assert (invoice.kind, invoice.amounts) == (InvoiceKind.DONATION, {"UZS": 2500000})
    pay_page = await (await client.get(path_of(chosen.headers["Location"]))).text()
    assert 'id="pay-payme"' in pay_page and "choice-renew" not in pay_page

    _, answers = await payme.pay(client.session, label, 2500001)
    assert [answer.code for answer in answers] == [WRONG_AMOUNT]
    _, answers = await payme.pay(client.session, label, 2500000)
    assert all(answer.result for answer in answers)
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
    assert [(notice.kind, notice.message) for notice in notifier.notices] == [("donation", "Rahmat!")]
