"""`ymds demo` with fiscal receipts on for YooKassa, CloudPayments, Payme and Click: the demo's emulators fiscalise
as configured and refuse what carries no valid receipt, so a payment and a refund that go through show that our
receipts were valid; the payment page asks for the buyer's contact where the receipt needs one, and the
receipt's link the Uzbek providers return is on the invoice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from tests.e2e.demo_process import DEADLINE_SECONDS, running_demo
from tests.e2e.test_cloudpayments_demo import widget_config
from tests.e2e.test_demo import FormReader, wait_for_active
from tests.e2e.test_yookassa_demo import ADMIN, wait_for_status
from tests.webhook_server.test_payme_methods import PaymeForm
from webhook_server.demo import DEMO_USER_ID

PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900, UZS = 3500000 }
receipt = { title = "Club access, 1 month", vat_code = 1 }
"""
RECEIPTS = {
    "YOOKASSA_RECEIPTS": "true", "RECEIPT_VAT_CODE": "1", "RECEIPT_TAX_SYSTEM_CODE": "2",
    "PAYME_RECEIPTS": "true", "RECEIPT_IKPU": "10305008002000000", "RECEIPT_PACKAGE_CODE": "1514296",
    "RECEIPT_VAT_PERCENT": "12", "CLOUDPAYMENTS_RECEIPTS": "true", "CLOUDPAYMENTS_INN": "7707083893",
    "CLICK_RECEIPTS": "true", "RECEIPT_SELLER_TIN": "310618348",
}
BUYER = "buyer@example.com"  # tests/contact_support.py's kind: an address the log guard knows


async def invoice_for(session: aiohttp.ClientSession, base: str, user_id: int) -> dict:
    async with session.post(f"{base}/api/invoices", json={"user_id": user_id, "plan": "month"},
                            headers=ADMIN) as made:
        assert made.status == 201
        return await made.json()


async def wait_for_receipt_link(session: aiohttp.ClientSession, base: str, label: str) -> str:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:  # the worker submits the receipt after the payment; each poll is a real round trip
            async with session.get(f"{base}/api/invoices/{label}", headers=ADMIN) as response:
                if link := (await response.json())["receipt_url"]:
                    return str(link)
            await asyncio.sleep(0.05)  # polling the condition, bounded by the deadline above


async def test_receipts_on_in_the_demo_pay_and_refund_through_fiscalising_emulators(tmp_path: Path):
    (tmp_path / "plans.toml").write_text(PLANS)
    async with running_demo(tmp_path, PLANS_FILE=str(tmp_path / "plans.toml"), **RECEIPTS) as demo, \
            aiohttp.ClientSession() as session:
        label = demo.link.split("/pay/", 1)[1].split("?", 1)[0]
        async with session.get(demo.link) as page:
            form = FormReader("pay-yookassa")
            form.feed(await page.text())
        assert "contact" in form.fields, "the page asks for the receipt's contact"
        async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as empty:
            assert empty.status == 303 and "contact-error" in empty.headers["Location"]
        form.fields["contact"] = BUYER
        async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as pressed:
            assert pressed.status == 303, await pressed.text()
            checkout = pressed.headers["Location"]
        async with session.post(checkout, data={"outcome": "pay"}) as back:
            assert back.status == 200
        await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        async with session.post(f"{demo.base}/api/invoices/{label}/refund", headers=ADMIN) as refunded:
            assert refunded.status == 202, await refunded.text()
        await wait_for_status(session, demo.base, label, "refunded")

        invoice = await invoice_for(session, demo.base, 6)  # CloudPayments: the receipt rides in the widget's data
        async with session.get(invoice["pay_url"]) as page:
            form = FormReader("pay-cloudpayments")
            form.feed(await page.text())
        form.fields["contact"] = BUYER
        async with session.post(urljoin(invoice["pay_url"], form.action), data=form.fields) as widget_page:
            assert widget_page.status == 200
            config = widget_config(await widget_page.text())
        receipt = config["options"]["data"]["CloudPayments"]["CustomerReceipt"]
        assert receipt["email"] == BUYER and receipt["Items"][0]["label"] == "Club access, 1 month"
        async with session.post(f"{demo.base}/emulator/cloudpayments/widget/pay", data={
                "scheme": config["scheme"], "outcome": "pay", "options": json.dumps(config["options"])}) as paid:
            assert (await paid.json())["success"]
        await wait_for_status(session, demo.base, invoice["label"], "paid")
        async with session.post(f"{demo.base}/api/invoices/{invoice['label']}/refund", headers=ADMIN) as refunded:
            assert refunded.status == 202, await refunded.text()  # the IncomeReturn receipt goes with it
        await wait_for_status(session, demo.base, invoice["label"], "refunded")

        invoice = await invoice_for(session, demo.base, 5)  # Payme: Check answers the receipt's detail
        async with session.get(invoice["pay_url"]) as page:
            reader = PaymeForm()
            reader.feed(await page.text())
        async with session.post(reader.action) as paid:
            assert paid.status == 200
        await wait_for_status(session, demo.base, invoice["label"], "paid")
        assert (await wait_for_receipt_link(session, demo.base, invoice["label"])).startswith("http")

        invoice = await invoice_for(session, demo.base, 7)  # Click: the items go to its fiscalisation API
        async with session.get(invoice["pay_url"]) as page:
            form = FormReader("pay-click")
            form.feed(await page.text())
        pay_page = form.action.split("?", 1)[0]
        async with session.post(pay_page, data={**form.fields, "outcome": "pay"}, allow_redirects=False) as paid:
            assert paid.status == 303, await paid.text()
        await wait_for_status(session, demo.base, invoice["label"], "paid")
        assert (await wait_for_receipt_link(session, demo.base, invoice["label"])).startswith("http")
