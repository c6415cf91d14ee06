"""The payment page's CloudPayments button, the widget page behind it, and paying through the emulator's widget."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from billing.links import link_signature, signed_pay_url
from db import InvoiceStatus, Subscription
from db.cloudpayments import CloudPaymentsNotice, CloudPaymentsSubscription, CloudPaymentsWidgetOpening
from tests.cloudpayments_support import (  # noqa: F401 - fixtures
    CP_PUBLIC_ID,
    cp,
    cp_server,
    give_consent,
    invoice_of,
    link_fields,
    page_form,
    pay_fields,
    post,
    reconfigure,
    settings,
    widget_config,
    widget_page,
)
from tests.conftest import AUTH
from tests.helpers import new_invoice, path_of
from webhook_server.keys import SETTINGS


async def test_payment_page_offers_cloudpayments_with_the_signed_link(client):
    invoice = await new_invoice(client)
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    action, fields = page_form(page, "pay-cloudpayments")  # "pay once": the choice, then our widget page
    assert action.endswith(f"/pay/{invoice['label']}/choose")
    assert (fields["provider"], fields["choice"]) == ("cloudpayments", "once")
    for name, value in link_fields(invoice["pay_url"]).items():
        assert fields[name] == value


async def test_widget_page_opens_the_widget_for_the_invoice(client, cp_server):
    invoice = await new_invoice(client, user_id=71)
    response = await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))
    page = await response.text()
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert f'<script src="{cp_server[1]}/widget.js"></script>' in page
    config = widget_config(page)
    assert config["scheme"] == "charge" and config["language"] == "en-US"
    assert config["returnUrl"] == invoice["pay_url"] + "&returned=1"
    assert config["options"] == {
        "publicId": CP_PUBLIC_ID, "description": "1 month", "amount": Decimal("299.00"), "currency": "RUB",
        "invoiceId": invoice["label"], "accountId": "71", "data": {"label": invoice["label"]},
    }
    assert '"amount":299.00' in page, "the amount is an exact number literal"
    assert "XTR" not in page and "250" not in page, "Stars are paid inside the bot: no Stars price on a web page"
    [opening] = await CloudPaymentsWidgetOpening.find_all().to_list()
    assert opening.label == invoice["label"], "noted for the reconciliation"


async def test_each_opening_of_the_widget_moves_the_last_opening(client, clock):
    invoice = await new_invoice(client, user_id=80)
    first = clock.now
    assert (await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))).status == 200
    clock.now += timedelta(minutes=10)
    assert (await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))).status == 200
    [opening] = await CloudPaymentsWidgetOpening.find_all().to_list()
    assert (opening.first_opened_at, opening.last_opened_at) == (first, clock.now)
    window = await CloudPaymentsWidgetOpening.labels_opened(first + timedelta(minutes=5), clock.now, limit=10)
    assert window == [invoice["label"]], "opened before and after the window's start: still asked about"
    assert await CloudPaymentsWidgetOpening.labels_opened(clock.now + timedelta(seconds=1),
                                                          clock.now + timedelta(hours=1), limit=10) == []
    assert await CloudPaymentsWidgetOpening.labels_opened(first - timedelta(hours=1), first, limit=10) == []


async def test_widget_sets_up_a_subscription_only_for_plans_that_renew(client, clock):
    reconfigure(client, recurrent_plans=["month"], two_stage=True)
    month = await new_invoice(client, user_id=72)
    year = await new_invoice(client, user_id=72, plan="year")
    for consented in (month, year):  # the payer chose "pay and renew automatically" with CloudPayments
        await give_consent(consented["label"], clock())
    config = widget_config(await (await widget_page(client, month["label"], link_fields(month["pay_url"]))).text())
    assert config["options"]["data"]["CloudPayments"] == {"recurrent": {"interval": "Day", "period": 30}}
    assert config["scheme"] == "auth"
    config = widget_config(await (await widget_page(client, year["label"], link_fields(year["pay_url"]))).text())
    assert "CloudPayments" not in config["options"]["data"]


async def test_widget_page_speaks_the_links_language(client):
    invoice = await new_invoice(client, user_id=73)
    fields = link_fields(invoice["pay_url"])
    key = client.app[SETTINGS].link_key
    signed = {"exp": fields["exp"], "lang": "ru", "sig": link_signature(key, invoice["label"], int(fields["exp"]),
                                                                        "ru")}
    page = await (await widget_page(client, invoice["label"], signed)).text()
    assert widget_config(page)["language"] == "ru-RU" and 'lang="ru"' in page
    assert widget_config(page)["returnUrl"].endswith("&lang=ru&sig=" + signed["sig"] + "&returned=1")


async def test_widget_page_checks_the_link_like_the_payment_page(client, clock, settings):
    invoice = await new_invoice(client, user_id=74)
    fields = link_fields(invoice["pay_url"])
    for bad in ({**fields, "sig": "0" * 64}, {"exp": fields["exp"]}, {}, {**fields, "lang": "ru"}):
        assert (await widget_page(client, invoice["label"], bad)).status == 403, bad
    other = await new_invoice(client, user_id=75)
    assert (await widget_page(client, other["label"], fields)).status == 403
    url = signed_pay_url("http://shop.test", settings.link_key, "inv_missing", int(clock.now.timestamp()) + 60)
    assert (await widget_page(client, "inv_missing", link_fields(url))).status == 404
    clock.now += timedelta(days=2)
    assert (await widget_page(client, invoice["label"], fields)).status == 410


async def test_widget_page_of_a_paid_invoice_sends_the_payer_back_to_the_payment_page(client, worker):
    invoice = await new_invoice(client, user_id=76)
    assert await post(client, "pay", pay_fields(invoice["label"], 76)) == (200, {"code": 0})
    await worker.drain()
    response = await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))
    assert response.status == 303 and response.headers["Location"] == invoice["pay_url"]


async def test_paying_in_the_emulators_widget_activates_the_subscription(client, cp, cp_server, worker, clock):
    """The payer's path: our button → our widget page → the widget's Pay → Check and Pay reach our routes."""
    reconfigure(client, recurrent_plans=["month"])
    invoice = await new_invoice(client, user_id=77)
    await give_consent(invoice["label"], clock())
    config = widget_config(await (await widget_page(client, invoice["label"], link_fields(invoice["pay_url"]))).text())
    async with client.session.get(f"{cp_server[1]}/widget.js") as script:
        assert "window.cp" in await script.text()
    async with client.session.post(f"{cp_server[1]}/widget/pay", data={
            "scheme": config["scheme"], "outcome": "pay", "options": json.dumps(config["options"], default=str)
    }) as paid:
        result = await paid.json()
    assert result["success"] and paid.headers["Access-Control-Allow-Origin"] == "*"
    assert [(kind.value, reply.ok) for kind, reply in cp.replies] == [("check", True), ("pay", True),
                                                                      ("recurrent", True)]
    await worker.drain()
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PAID
    subscription = await Subscription.find_one(Subscription.user_id == 77)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    [cp_subscription] = await CloudPaymentsSubscription.find_all().to_list()
    assert cp_subscription.label == invoice["label"] and cp_subscription.status == "Active"

    clock.now += timedelta(days=30)
    await cp.renew(cp_subscription.subscription_id)
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 77)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_declining_in_the_widget_records_the_failure_and_keeps_the_invoice_payable(client, cp, worker):
    invoice = await new_invoice(client, user_id=78)
    result = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": 299, "currency": "RUB",
                                  "invoiceId": invoice["label"], "accountId": "78"}, outcome="decline")
    assert not result["success"]
    [failure] = await CloudPaymentsNotice.find_all().to_list()
    assert failure.kind == "fail" and failure.reason_code == 5051
    assert (await invoice_of(invoice["label"])).status is InvoiceStatus.PENDING


async def test_the_widget_declines_what_check_refuses(client, cp, worker):
    invoice = await new_invoice(client, user_id=79)
    result = await cp.pay_widget({"publicId": CP_PUBLIC_ID, "amount": "1.00", "currency": "RUB",
                                  "invoiceId": invoice["label"], "accountId": "79"})
    assert not result["success"] and "code 12" in result["reason"]
    assert [kind.value for kind, _ in cp.replies] == ["check"]
    response = await client.get(f"/api/invoices/{invoice['label']}", headers=AUTH)
    assert (await response.json())["status"] == "pending"
