"""`ymds demo` with fiscal receipts on for YooKassa and Payme: the demo's emulators fiscalise as configured and
refuse what carries no valid receipt, so a payment and a refund that go through show that our receipts were
valid; the payment page asks for the buyer's contact where the receipt needs one."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from tests.e2e.demo_process import running_demo
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
    "RECEIPT_VAT_PERCENT": "12",
}


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
        form.fields["contact"] = "buyer@example.com"
        async with session.post(urljoin(demo.link, form.action), data=form.fields, allow_redirects=False) as pressed:
            assert pressed.status == 303, await pressed.text()
            checkout = pressed.headers["Location"]
        async with session.post(checkout, data={"outcome": "pay"}) as back:
            assert back.status == 200
        await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        async with session.post(f"{demo.base}/api/invoices/{label}/refund", headers=ADMIN) as refunded:
            assert refunded.status == 202, await refunded.text()
        await wait_for_status(session, demo.base, label, "refunded")

        async with session.post(f"{demo.base}/api/invoices", json={"user_id": 5, "plan": "month"},
                                headers=ADMIN) as made:
            invoice = await made.json()
        async with session.get(invoice["pay_url"]) as page:
            reader = PaymeForm()
            reader.feed(await page.text())
        async with session.post(reader.action) as paid:
            assert paid.status == 200
        await wait_for_status(session, demo.base, invoice["label"], "paid")
