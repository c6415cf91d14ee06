"""The donation page in headless Chromium against a running `ymds demo`: it works under its
Content-Security-Policy with no violation (our stylesheet only, no script), a suggested amount and a message
lead to the ordinary payment page for exactly that amount."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.e2e import test_browser as browser_tests
from tests.e2e.demo_process import DEADLINE_SECONDS, running_demo
from tests.e2e.test_browser import CHROMIUM
from tests.e2e.test_security_headers_browser import BUTTON_COLOUR, violations_of

browser = browser_tests.browser  # the fixture: headless Chromium
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's)")


async def test_a_donation_is_chosen_in_the_browser_and_reaches_the_payment_page(tmp_path, browser):
    async with running_demo(tmp_path, PLANS_FILE=str(ROOT / "plans.toml")) as demo:
        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        violations = violations_of(page)
        await page.goto(demo.donation_link)
        assert await page.eval_on_selector("#pick-RUB-30000", "b => getComputedStyle(b).backgroundColor") \
            == BUTTON_COLOUR, "the stylesheet loads"
        await page.fill("#donate-message", "Thanks from the browser")
        await page.click("#pick-RUB-30000")
        await page.wait_for_selector("form#pay-yoomoney")
        assert "/pay/inv_" in page.url
        assert "300" in await page.inner_text("#price")
        assert violations == [], violations
