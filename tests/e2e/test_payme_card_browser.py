"""The payment page's Payme card binding in headless Chromium against a running `ymds demo`: the page's own
script binds the card at the (emulated) Payme Subscribe API, the SMS code step, then our server charges the
invoice with the token alone and the subscription becomes active.

Screenshots land in tests/e2e/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from tests.e2e import test_browser as browser_tests
from tests.e2e.demo_process import DEADLINE_SECONDS, running_demo
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, link_in

CARD = "8600069195406311"

browser = browser_tests.browser  # the fixture: headless Chromium
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's)")


async def test_a_payer_binds_a_card_and_pays_with_it(tmp_path, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_demo(tmp_path, PLANS_FILE=str(ROOT / "plans.toml")) as demo:
        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        to_our_server: list[str] = []
        page.on("request", lambda request: to_our_server.append(f"{request.url} {request.post_data or ''}")
                if request.url.startswith(f"{demo.base}/pay/") else None)

        await page.goto(link_in(demo.link, "en"))
        await page.click("form#renew-payme button")  # "pay and renew automatically": then the card form shows
        await page.wait_for_selector("#payme-card-number")
        await page.fill("#payme-card-number", "8600 0691 9540 6311")
        await page.fill("#payme-card-expire", "03/99")
        await page.click("#payme-card-start button")
        await page.wait_for_selector("#payme-card-verify", state="visible")
        assert "99890*****31" in await page.inner_text("#payme-card-phone")

        await page.fill("#payme-card-code", "123456")
        await page.click("#payme-card-verify button")
        await page.wait_for_selector("#payme-card-error:not(:empty)")  # no eval: the page's CSP forbids it
        assert "Wrong SMS code" in await page.inner_text("#payme-card-error")
        await page.screenshot(path=ARTIFACTS / "payme-card-code.png", full_page=True)

        await page.fill("#payme-card-code", "666666")
        await page.click("#payme-card-verify button")
        await page.wait_for_url(re.compile(r"returned=1"))
        await page.wait_for_selector("#status.ok")  # the page refreshes itself until the worker has applied it
        await page.screenshot(path=ARTIFACTS / "payme-card-paid.png", full_page=True)

        posted = [line for line in to_our_server if "/payme/card" in line]
        assert len(posted) == 1 and "token=" in posted[0]
        assert all(CARD not in line for line in to_our_server), "the card number went to Payme only"
