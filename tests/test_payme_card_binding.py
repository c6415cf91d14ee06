"""The payment page's Payme card binding: the form on the page, and POST /pay/{label}/payme/card, which charges
the invoice once with the card the browser bound at Payme and saves the card on the subscription."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from billing.plans import Catalogue, load_plans
from db import Invoice, InvoiceStatus, Operation, Subscription
from db.payme import PaymeCardPayment, PaymeState, PaymeTransaction
from tests import payme_subscribe_support
from tests.helpers import Forms, new_invoice, notification, path_of, post_notification
from tests.payme_subscribe_support import (
    SANDBOX_CARD_MASKED,
    PaymeApi,
    bind_card,
)
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT
from webhook_server.emulators.payme import new_payme_id
from webhook_server.emulators.payme_subscribe import INSUFFICIENT_FUNDS_CARD

PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900, UZS = 3500000 }

[plans.week]
title = "1 week"
period_days = 7
prices = { RUB = 9900 }
"""

payme_api = payme_subscribe_support.payme_api  # fixtures: Payme enabled, its Subscribe API at the emulator
settings = payme_subscribe_support.settings


@pytest.fixture
def plans(tmp_path: Path) -> Catalogue:
    path = tmp_path / "plans.toml"
    path.write_text(PLANS)
    return load_plans(path)


def link_fields(pay_url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(pay_url).query).items()}


async def choose_payme_renewal(client, invoice: dict) -> None:  # type: ignore[no-untyped-def]
    """The payer's "pay and renew automatically" with Payme, which the card form needs, while the page offers it."""
    response = await client.get(path_of(invoice["pay_url"]))
    forms = Forms()
    forms.feed(await response.text())
    form = forms.forms.get("renew-payme")
    if response.status == 200 and form is not None:
        chosen = await client.post(form["action"], data=form["fields"], allow_redirects=False)
        assert chosen.status == 303 and chosen.headers["Location"].endswith("#payme-card")


async def post_card(client, invoice: dict, token: str, **changed: str):  # type: ignore[no-untyped-def]
    await choose_payme_renewal(client, invoice)
    fields = {**link_fields(invoice["pay_url"]), "token": token, **changed}
    return await client.post(f"/pay/{invoice['label']}/payme/card", data=fields, allow_redirects=False)


async def stored(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice


def card_config(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="payme-card-config">(.*?)</script>', page, re.S)
    assert found, "the page has no card binding"
    return json.loads(found.group(1))


async def test_the_page_offers_card_binding_for_a_uzs_invoice(client, payme_api: PaymeApi):
    invoice = await new_invoice(client, plan="month")
    await choose_payme_renewal(client, invoice)
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    config = card_config(page)
    assert config["apiUrl"] == payme_api.url and config["merchantId"] == PAYME_MERCHANT
    assert config["texts"]["code_sent"].count("{phone}") == 1
    assert PAYME_KEY not in page and PAYME_KEY.split("#")[1] not in page, "the KEY never reaches the browser"
    forms = Forms()
    forms.feed(page)
    post = forms.forms["pay-payme-card"]
    assert post["method"] == "post" and post["action"] == f"http://shop.test/pay/{invoice['label']}/payme/card"
    assert post["fields"] == {**link_fields(invoice["pay_url"]), "token": ""}
    assert forms.forms["payme-card-start"]["fields"] == {}, "card inputs have no name: they are never submitted"
    assert forms.forms["payme-card-start"]["action"] is None

    rub_only = await new_invoice(client, plan="week")
    page = await (await client.get(path_of(rub_only["pay_url"]))).text()
    assert 'id="payme-card"' not in page
    token = await bind_card(client.session, payme_api.url)
    assert (await post_card(client, rub_only, token)).status == 404
    assert "receipts.create" not in payme_api.subscribe.methods


async def test_a_bad_or_expired_link_is_refused_and_nothing_happens(client, payme_api: PaymeApi, clock):
    invoice = await new_invoice(client)
    token = await bind_card(client.session, payme_api.url)
    before = list(payme_api.subscribe.methods)
    forged = await post_card(client, invoice, token, sig="0" * 64)
    assert forged.status == 403 and "not valid" in await forged.text()
    unsigned = await client.post(f"/pay/{invoice['label']}/payme/card", data={"token": token})
    assert unsigned.status == 403
    other = await new_invoice(client, user_id=77)
    swapped = await client.post(f"/pay/{other['label']}/payme/card",
                                data={**link_fields(invoice["pay_url"]), "token": token})
    assert swapped.status == 403
    clock.now = clock.now.replace(year=clock.now.year + 1)
    expired = await post_card(client, invoice, token)
    assert expired.status == 410

    assert payme_api.subscribe.methods == before, "Payme was not called"
    assert await PaymeCardPayment.find_all().count() == 0 and await Operation.find_all().count() == 0
    assert (await stored(invoice["label"])).status is InvoiceStatus.PENDING


async def test_a_verified_card_pays_the_invoice_once_and_is_saved_for_renewals(client, payme_api: PaymeApi, worker):
    invoice = await new_invoice(client, user_id=42)
    token = await bind_card(client.session, payme_api.url)
    paid = await post_card(client, invoice, token)
    assert paid.status == 303 and paid.headers["Location"] == invoice["pay_url"] + "&returned=1"

    replayed = await post_card(client, invoice, token)  # before the worker ran: the receipt is looked up
    assert replayed.status == 303 and replayed.headers["Location"].endswith("&returned=1")
    assert await worker.drain()

    [receipt] = payme_api.subscribe.paid_receipts()
    assert payme_api.subscribe.methods.count("receipts.pay") == 1 and len(payme_api.subscribe.receipts) == 1
    [operation] = await Operation.find_all().to_list()
    assert (operation.provider, operation.operation_id, operation.label) == ("payme", receipt["_id"], invoice["label"])
    assert (await stored(invoice["label"])).status is InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 42)
    assert subscription is not None
    assert (subscription.payment_provider, subscription.payment_token, subscription.payment_method) == (
        "payme", token, SANDBOX_CARD_MASKED)

    after = await post_card(client, invoice, token)
    assert after.status == 303 and after.headers["Location"] == invoice["pay_url"], "paid: back to the page"
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    assert 'id="status"' in page and 'class="ok"' in page and 'id="payme-card"' not in page
    assert len(payme_api.subscribe.paid_receipts()) == 1 and payme_api.subscribe.methods.count("receipts.pay") == 1


async def test_a_declined_card_shows_why_and_the_invoice_stays_pending(client, payme_api: PaymeApi, worker):
    invoice = await new_invoice(client, user_id=43)
    poor = await bind_card(client.session, payme_api.url, INSUFFICIENT_FUNDS_CARD, expire="1230")
    declined = await post_card(client, invoice, poor)
    page = await declined.text()
    assert declined.status == 402
    assert "The card was declined" in page and "-31630" in page and "Check the card" in page
    assert f'href="{invoice["pay_url"].replace("&", "&amp;")}"' in page
    await worker.drain()
    assert (await stored(invoice["label"])).status is InvoiceStatus.PENDING
    assert await Operation.find_all().count() == 0 and await Subscription.find_one(Subscription.user_id == 43) is None

    good = await bind_card(client.session, payme_api.url)
    paid = await post_card(client, invoice, good)
    assert paid.status == 303
    await worker.drain()
    assert (await stored(invoice["label"])).status is InvoiceStatus.PAID
    assert len(payme_api.subscribe.receipts) == 1, "the declined receipt is the one paid with the next card"
    assert len(payme_api.subscribe.paid_receipts()) == 1


async def test_an_invoice_another_provider_has_just_paid_is_refused_before_any_charge(client, payme_api: PaymeApi,
                                                                                     worker):
    invoice = await new_invoice(client)
    token = await bind_card(client.session, payme_api.url)
    assert await post_notification(client, notification(invoice["label"])) == 200  # no worker has run
    before = list(payme_api.subscribe.methods)

    refused = await post_card(client, invoice, token)
    assert refused.status == 303 and refused.headers["Location"] == invoice["pay_url"], "back to the page"
    assert payme_api.subscribe.methods == before, "not even cards.check: nothing was charged"
    await worker.drain()
    assert [op.provider for op in await Operation.find_all().to_list()] == ["yoomoney"]
    assert await PaymeCardPayment.find_all().count() == 0


async def test_an_invoice_a_waiting_payme_transaction_holds_is_refused(client, payme_api: PaymeApi):
    invoice = await new_invoice(client)
    payme_api.emulator.notify_url = str(client.make_url("/notify/payme"))
    created = await payme_api.emulator.create(client.session, new_payme_id(), invoice["label"], 3500000)
    assert created.result["state"] == 1
    token = await bind_card(client.session, payme_api.url)

    refused = await post_card(client, invoice, token)
    assert refused.status == 303 and refused.headers["Location"] == invoice["pay_url"]
    assert payme_api.subscribe.receipts == {} and "cards.check" not in payme_api.subscribe.methods


async def test_a_card_that_cannot_renew_is_refused_before_any_receipt(client, payme_api: PaymeApi):
    invoice = await new_invoice(client)
    unverified = await bind_card(client.session, payme_api.url, verify=False)
    refused = await post_card(client, invoice, unverified)
    assert refused.status == 402 and "cannot be used for automatic payments" in await refused.text()
    assert payme_api.subscribe.receipts == {}
    assert (await stored(invoice["label"])).status is InvoiceStatus.PENDING


async def test_a_missing_or_malformed_token_is_400(client, payme_api: PaymeApi):
    invoice = await new_invoice(client)
    fields = link_fields(invoice["pay_url"])
    for data in (fields, {**fields, "token": ""}, {**fields, "token": "x" * 2000}, {**fields, "token": "a\nb"}):
        response = await client.post(f"/pay/{invoice['label']}/payme/card", data=data)
        assert response.status == 400
    assert payme_api.subscribe.methods == []


async def test_two_presses_at_once_pay_one_receipt(client, payme_api: PaymeApi, worker):
    invoice = await new_invoice(client)
    token = await bind_card(client.session, payme_api.url)
    answers = await asyncio.gather(*(post_card(client, invoice, token) for _ in range(3)))
    assert {answer.status for answer in answers} <= {303, 409} and 303 in {answer.status for answer in answers}
    await worker.drain()
    assert len(payme_api.subscribe.paid_receipts()) == 1
    assert (await stored(invoice["label"])).status is InvoiceStatus.PAID


async def test_merchant_api_and_receipt_record_one_operation(client, payme_api: PaymeApi, worker):
    """Payme may run Check/Create/Perform on /notify/payme for the receipt's order (reference §5.3): the
    receipt's payment is then one operation, and the card is still saved."""
    payme_api.emulator.notify_url = str(client.make_url("/notify/payme"))
    payme_api.subscribe.merchant_hook = payme_api.emulator.perform_receipt
    invoice = await new_invoice(client, user_id=44)
    token = await bind_card(client.session, payme_api.url)
    paid = await post_card(client, invoice, token)
    assert paid.status == 303
    await worker.drain()

    [receipt] = payme_api.subscribe.paid_receipts()
    [transaction] = await PaymeTransaction.find_all().to_list()
    assert transaction.payme_id == receipt["_id"] and transaction.state is PaymeState.PERFORMED
    assert [call.method for call in payme_api.emulator.calls] == [
        "CheckPerformTransaction", "CreateTransaction", "PerformTransaction"]
    [operation] = await Operation.find_all().to_list()
    assert operation.operation_id == receipt["_id"] and operation.payment_token == token
    subscription = await Subscription.find_one(Subscription.user_id == 44)
    assert subscription is not None and subscription.payment_token == token
    assert (await stored(invoice["label"])).status is InvoiceStatus.PAID
