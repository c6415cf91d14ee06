"""The buyer's e-mail or phone for the receipt on the payment page, over HTTP to our app with YooKassa and
CloudPayments receipts on (their emulators behind): asked only on their forms, checked, fixed on the invoice and
remembered on the user before the provider's page opens, offered masked next time; a refused contact, a forged
link or a tampered consent changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from db import Invoice
from db.users import BotUser, ReceiptContact
from tests.cloudpayments_support import cloudpayments_settings, cp_server
from tests.consent_support import choose, page_forms
from tests.contact_support import EMAIL, EMAIL_MASKED, OTHER_EMAIL, RU_PHONE, RU_PHONE_DIGITS, RU_PHONE_MASKED
from tests.helpers import new_invoice, path_of
from tests.yookassa_support import YOOMONEY_API_TOKEN, yookassa, yookassa_emulator, yookassa_settings
from webhook_server.emulators.yookassa import YooKassaEmulator

__all__ = ["cp_server", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

RECEIPTS = {"yookassa_receipts": True, "cloudpayments_receipts": True, "receipt_vat_code": 1,
            "receipt_tax_system_code": 1}
CONTACT_FORMS = ("pay-yookassa", "renew-yookassa", "pay-cloudpayments", "renew-cloudpayments")


@pytest.fixture
def settings(request, yoomoney_emulator, yookassa_emulator, cp_server):
    receipts = RECEIPTS if getattr(request, "param", True) else {}
    return cloudpayments_settings(cp_server[1], yoomoney_api_token=YOOMONEY_API_TOKEN,
                                  yoomoney_api_url=yoomoney_emulator[1],
                                  **yookassa_settings(yookassa_emulator[1] + "/v3"), **receipts)


async def stored(label: str) -> tuple[ReceiptContact | None, ReceiptContact | None]:
    """The contact on the invoice, and the one remembered for its user."""
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    user = await BotUser.find_one(BotUser.user_id == invoice.user_id)
    return invoice.receipt_contact, user.receipt_contact if user else None


def payments(emulator: YooKassaEmulator) -> int:
    return sum(1 for method, path, _, _ in emulator.requests if (method, path) == ("POST", "/v3/payments"))


async def page_text(client: TestClient, url: str) -> str:
    response = await client.get(path_of(url))
    assert response.status == 200
    return await response.text()


async def test_the_contact_is_asked_on_the_receipt_providers_forms_only(client):
    invoice = await new_invoice(client)
    forms = await page_forms(client, invoice)
    for form_id in CONTACT_FORMS:
        assert forms[form_id]["fields"]["contact"] == "", form_id
    assert "contact" not in forms["pay-yoomoney"]["fields"], "YooMoney issues no receipt here"
    html = await page_text(client, invoice["pay_url"])
    assert 'id="contact-pay-yookassa"' in html and " required>" in html, "nothing saved yet: the field is required"
    assert "E-mail or phone for the receipt" in html


@pytest.mark.parametrize("settings", [False], indirect=True)
async def test_without_receipts_no_contact_is_asked_nor_kept(client, yookassa):
    invoice = await new_invoice(client)
    forms = await page_forms(client, invoice)
    assert all("contact" not in forms[form_id]["fields"] for form_id in CONTACT_FORMS)
    status, _ = await choose(client, invoice, "yookassa", renew=False, changes={"contact": EMAIL})
    assert status == 303 and payments(yookassa) == 1
    assert await stored(invoice["label"]) == (None, None)


async def test_an_email_is_fixed_on_the_invoice_and_remembered_before_yookassa_opens(client, yookassa):
    invoice = await new_invoice(client)
    status, location = await choose(client, invoice, "yookassa", renew=False, changes={"contact": f" {EMAIL} "})
    assert status == 303 and location.startswith(yookassa.checkout_base) and payments(yookassa) == 1
    assert await stored(invoice["label"]) == (ReceiptContact(email=EMAIL), ReceiptContact(email=EMAIL))

    second = await new_invoice(client)
    html = await page_text(client, second["pay_url"])
    assert f"Leave it empty to send the receipt to {EMAIL_MASKED}." in html
    assert f'placeholder="{EMAIL_MASKED}"' in html and " required>" not in html
    assert EMAIL not in html, "the saved contact is only ever shown masked"
    status, _ = await choose(client, second, "yookassa", renew=False)
    assert status == 303 and payments(yookassa) == 2
    assert await stored(second["label"]) == (ReceiptContact(email=EMAIL), ReceiptContact(email=EMAIL))


async def test_a_phone_on_cloudpayments_renew_is_kept_and_replaces_the_saved_one(client):
    first = await new_invoice(client)
    assert (await choose(client, first, "yookassa", renew=False, changes={"contact": OTHER_EMAIL}))[0] == 303
    invoice = await new_invoice(client)
    response = await client.post((form := (await page_forms(client, invoice))["renew-cloudpayments"])["action"],
                                 data={**form["fields"], "contact": RU_PHONE}, allow_redirects=False)
    assert response.status == 200, "the widget page"
    assert await stored(invoice["label"]) == (ReceiptContact(phone=RU_PHONE_DIGITS),) * 2
    assert await stored(first["label"]) == (ReceiptContact(email=OTHER_EMAIL), ReceiptContact(phone=RU_PHONE_DIGITS))
    assert RU_PHONE_MASKED in await page_text(client, (await new_invoice(client))["pay_url"])


@pytest.mark.parametrize(("typed", "problem", "sentence"), [
    ("ivan@example", "email", "That is not an e-mail address"),
    ("+7 900 12", "phone", "neither an e-mail address nor a phone"),
    ("+1 202 555 0100", "phone", "neither an e-mail address nor a phone"),
    ("", "missing", "Give an e-mail or a phone for the receipt"),
])
async def test_a_refused_contact_goes_back_to_the_page_and_changes_nothing(client, yookassa, typed, problem,
                                                                           sentence):
    invoice = await new_invoice(client)
    for provider, renew in (("yookassa", False), ("cloudpayments", True)):
        status, location = await choose(client, invoice, provider, renew=renew, changes={"contact": typed})
        assert status == 303 and f"contact={problem}" in location and location.endswith("#contact-error")
        assert sentence in await page_text(client, location)
        assert await stored(invoice["label"]) == (None, None)
        fixed = await Invoice.find_one(Invoice.label == invoice["label"])
        assert fixed is not None and fixed.auto_renew_consent is None, "the choice is not recorded either"
    assert payments(yookassa) == 0


@pytest.mark.parametrize("changes", [
    {"sig": "0" * 64}, {"exp": "9999999999"}, {"consent_sig": "0" * 64}, {"version": "en-0000"},
], ids=["forged-link", "extended-expiry", "forged-consent", "other-terms"])
async def test_a_forged_or_tampered_post_is_refused_and_keeps_no_contact(client, yookassa, changes):
    invoice = await new_invoice(client)
    status, _ = await choose(client, invoice, "yookassa", renew=True, changes={"contact": EMAIL, **changes})
    assert status == 403
    assert await stored(invoice["label"]) == (None, None)
    assert payments(yookassa) == 0


async def test_a_forged_refusal_mark_only_shows_a_sentence(client):
    invoice = await new_invoice(client)
    forged: dict[str, Any] = {"contact": "<script>"}
    html = await page_text(client, invoice["pay_url"] + "&" + "&".join(f"{k}={v}" for k, v in forged.items()))
    assert 'id="contact-error"' not in html and "<script>" not in html
