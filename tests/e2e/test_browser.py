"""The payment page in headless Chromium, driven against a running `ymds demo` the way a payer uses it, with
YooKassa's and CloudPayments' receipts on, so their buttons ask for the buyer's e-mail or phone.

Screenshots land in tests/e2e/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from billing.links import signed_pay_url
from tests.conftest import ROOT
from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, running_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
LANGUAGES = ("en", "ru", "uz")
RECEIPTS = {"YOOKASSA_RECEIPTS": "true", "CLOUDPAYMENTS_RECEIPTS": "true", "RECEIPT_VAT_CODE": "1",
            "RECEIPT_TAX_SYSTEM_CODE": "1"}
BUYER_EMAIL = "ivan.petrov@example.com"  # tests/contact_support.py: never logged
# Chromium on a closed network: no background traffic, no sandbox (the tests run as root).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's)")
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is in the [test] extra")


def link_in(link: str, lang: str) -> str:
    """The demo's printed link, signed again with a page language (the owner's LINK_SECRET)."""
    parts = urlsplit(link)
    label = parts.path.rsplit("/", 1)[1]
    exp = int(parse_qs(parts.query)["exp"][0])
    return signed_pay_url(f"{parts.scheme}://{parts.netloc}", CUSTOM["LINK_SECRET"].encode(), label, exp, lang)


@pytest.fixture
async def browser():
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def test_a_payer_pays_in_the_browser_in_every_language(tmp_path, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_demo(tmp_path, PLANS_FILE=str(ROOT / "plans.toml"), **RECEIPTS) as demo:
        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        texts = {}
        for lang in LANGUAGES:
            response = await page.goto(link_in(demo.link, lang))
            assert response is not None and response.status == 200
            assert await page.get_attribute("html", "lang") == lang
            texts[lang] = await page.inner_text("body")
            for provider in ("yoomoney", "payme", "click"):
                action = await page.get_attribute(f"form#pay-{provider}", "action")
                assert action is not None and action.startswith(f"{demo.base}/emulator/{provider}"), provider
            for provider in ("yookassa", "cloudpayments"):  # our choice route (pay once), behind the same signed link
                action = await page.get_attribute(f"form#pay-{provider}", "action")
                assert action is not None and action.endswith("/choose"), provider
                assert await page.get_attribute(f"form#renew-{provider}", "action") == action
            await page.screenshot(path=ARTIFACTS / f"pay-{lang}.png", full_page=True)
        assert len(set(texts.values())) == len(LANGUAGES), "each language shows its own texts"

        for provider in ("payme", "click"):  # no buyer contact: their receipts carry none
            await page.goto(link_in(demo.link, "en"))
            assert await page.query_selector(f"form#pay-{provider} input[name=contact]") is None, provider
            await page.click(f"form#pay-{provider} button")
            await page.wait_for_url(re.compile(re.escape(f"{demo.base}/emulator/{provider}")))
            await page.screenshot(path=ARTIFACTS / f"emulator-{provider}.png", full_page=True)

        page_url = link_in(demo.link, "en")
        await page.goto(page_url)  # YooKassa via our route, which fixes the contact and creates the payment
        await page.click("form#pay-yookassa button")  # empty: the browser asks for the required contact first
        assert page.url == page_url
        assert not await page.eval_on_selector("#contact-pay-yookassa", "field => field.validity.valid")
        await page.fill("#contact-pay-yookassa", "ivan@example")
        assert not await page.eval_on_selector("#contact-pay-yookassa", "field => field.validity.valid")
        await page.fill("#contact-pay-yookassa", BUYER_EMAIL)
        await page.screenshot(path=ARTIFACTS / "contact-yookassa.png", full_page=True)
        await page.click("form#pay-yookassa button")
        await page.wait_for_url(re.compile(re.escape(f"{demo.base}/emulator/yookassa")))
        await page.screenshot(path=ARTIFACTS / "emulator-yookassa.png", full_page=True)

        await page.goto(link_in(demo.link, "en"))  # the contact is remembered and offered masked
        saved = await page.inner_text("form#pay-cloudpayments .contact-saved")
        assert "i***@example.com" in saved and BUYER_EMAIL not in await page.content()
        assert await page.get_attribute("#contact-pay-cloudpayments", "required") is None
        async with page.expect_request(re.compile(re.escape(f"{demo.base}/emulator/cloudpayments/widget.js"))):
            await page.click("form#pay-cloudpayments button")  # left empty: the saved contact; the widget loads
        await page.screenshot(path=ARTIFACTS / "widget-cloudpayments.png", full_page=True)

        await page.goto(link_in(demo.link, "en"))
        await page.click("form#pay-yoomoney button")
        await page.wait_for_url(re.compile(re.escape(f"{demo.base}/emulator/yoomoney")))
        await page.screenshot(path=ARTIFACTS / "emulator-yoomoney.png", full_page=True)
        await page.click("#emulator-pay")
        await page.wait_for_url(re.compile(r"returned=1"))
        await page.wait_for_selector("#status.ok")  # the page refreshes itself until the worker has applied it
        await page.screenshot(path=ARTIFACTS / "paid.png", full_page=True)
        assert "form" not in (await page.content()).split("<body", 1)[1].lower()

        tampered = re.sub(r"sig=[0-9a-f]{8}", "sig=00000000", demo.link)
        response = await page.goto(tampered)
        assert response is not None and response.status == 403
        await page.screenshot(path=ARTIFACTS / "tampered.png", full_page=True)
