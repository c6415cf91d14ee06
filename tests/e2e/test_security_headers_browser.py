"""The Content-Security-Policy in headless Chromium against a running `ymds demo`: the payment page and the
CloudPayments widget page work under it with no violation (our stylesheet and scripts load, the widget opens
and pays), while what it forbids is refused: an injected inline script, a call to a host the page does not
need, framing by another page."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from tests.e2e import test_browser as browser_tests
from tests.e2e.demo_process import DEADLINE_SECONDS, running_demo
from tests.e2e.test_browser import CHROMIUM, link_in

browser = browser_tests.browser  # the fixture: headless Chromium
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's)")

BUTTON_COLOUR = "rgb(90, 63, 214)"  # static/ymds.css
INJECT_INLINE = """() => {
  const script = document.createElement("script");
  script.textContent = "window.injected = true";
  document.body.appendChild(script);
  return window.injected === true;
}"""
VIOLATION_OF_FETCH = """(url) => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation", (event) => resolve(event.effectiveDirective), {once: true});
  fetch(url).catch(() => {});
})"""


def violations_of(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Console messages of the page about its Content-Security-Policy, as Chromium writes them."""
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text)
            if "Content Security Policy" in message.text else None)
    return found


async def test_the_pages_work_under_their_policy_and_it_refuses_the_rest(tmp_path, browser):
    async with running_demo(tmp_path, PLANS_FILE=str(ROOT / "plans.toml")) as demo:
        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        violations = violations_of(page)

        await page.goto(link_in(demo.link, "en"))
        assert await page.eval_on_selector("form#pay-payme button", "b => getComputedStyle(b).backgroundColor") \
            == BUTTON_COLOUR, "the stylesheet loads"
        await page.click("form#renew-payme button")  # "pay and renew automatically": the card form shows
        await page.wait_for_selector("#payme-card-start")
        assert await page.is_visible("#payme-card-start"), "the card binding's script ran"
        assert violations == [], violations

        assert await page.evaluate(INJECT_INLINE) is False, "an inline script does not run"
        assert await page.evaluate(VIOLATION_OF_FETCH, "http://203.0.113.9/steal") == "connect-src"
        violations.clear()

        await page.click("form#pay-cloudpayments button")  # our widget page opens the (emulated) widget
        await page.wait_for_selector("#emulator-widget")
        assert violations == [], violations
        assert await page.evaluate(INJECT_INLINE) is False
        violations.clear()
        await page.click("#emulator-pay")  # the widget's own call to its host, then back to our page
        await page.wait_for_url(re.compile(r"returned=1"))
        assert violations == [], violations


async def test_another_page_cannot_frame_the_payment_page(tmp_path, browser):
    async with running_demo(tmp_path, PLANS_FILE=str(ROOT / "plans.toml")) as demo:
        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        link = link_in(demo.link, "en")

        def refusal(message) -> bool:  # type: ignore[no-untyped-def]
            return "frame-ancestors" in message.text or "X-Frame-Options" in message.text

        async with page.expect_console_message(refusal), page.expect_response(link) as framed:
            await page.set_content(f'<iframe id="framed" src="{link}"></iframe>')
        assert (await framed.value).status == 200, "the page was served, and the browser kept it out of the frame"
        assert await page.frame_locator("#framed").locator("form#pay-payme").count() == 0
