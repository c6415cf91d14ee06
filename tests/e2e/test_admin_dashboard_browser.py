"""The admin dashboard in headless Chromium against a running `ymds demo`: the printed one-time link signs the
admin in, they find the user who paid, see the payment and refund it from the page. Screenshots land in
tests/e2e/artifacts/."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import aiohttp

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, running_demo
from tests.e2e.test_browser import ARTIFACTS, LANGUAGES, browser, pytestmark
from tests.e2e.test_demo import FormReader, wait_for_active
from tests.e2e.test_yookassa_demo import wait_for_status
from webhook_server.demo import DEMO_USER_ID

__all__ = ["browser", "pytestmark"]  # the fixture, and the skip without Chromium


async def pay_with_yookassa(session: aiohttp.ClientSession, link: str) -> None:
    async with session.get(link) as page:
        form = FormReader("pay-yookassa")
        form.feed(await page.text())
    async with session.post(urljoin(link, form.action), data=form.fields, allow_redirects=False) as pressed:
        checkout = pressed.headers["Location"]
    async with session.post(checkout, data={"outcome": "pay"}) as back:
        assert back.status == 200


def sign_in_link(printed: list[str]) -> str:
    [link] = [match.group(1) for line in printed if (match := re.search(r"(http://\S+/admin/login/link/\S+)", line))]
    return link


async def test_an_admin_signs_in_finds_the_user_and_refunds_their_payment(tmp_path, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_demo(tmp_path) as demo, aiohttp.ClientSession() as session:
        label = demo.link.split("/pay/", 1)[1].split("?", 1)[0]
        assert any(f"{demo.base}/admin" in line for line in demo.printed), "the demo prints the dashboard"
        await pay_with_yookassa(session, demo.link)
        await wait_for_active(session, demo.base, str(DEMO_USER_ID))

        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        response = await page.goto(f"{demo.base}/admin")
        assert response is not None and page.url == f"{demo.base}/admin/login", "no session: the sign-in page"
        await page.goto(sign_in_link(demo.printed))
        await page.click("#sign-in")
        await page.wait_for_url(f"{demo.base}/admin")
        texts = {}
        for lang in LANGUAGES:
            await page.goto(f"{demo.base}/admin?lang={lang}")
            assert await page.get_attribute("html", "lang") == lang
            texts[lang] = await page.inner_text("body")
            await page.screenshot(path=ARTIFACTS / f"admin-overview-{lang}.png", full_page=True)
        assert len(set(texts.values())) == len(LANGUAGES), "each language shows its own texts"

        await page.goto(f"{demo.base}/admin/users?lang=en")
        await page.fill("#q", str(DEMO_USER_ID))
        await page.click("#find")
        await page.wait_for_url(f"{demo.base}/admin/users/{DEMO_USER_ID}")
        assert label in await page.inner_text("#user-payments") and "99.00 RUB" in await page.inner_text("body")
        await page.screenshot(path=ARTIFACTS / "admin-user.png", full_page=True)
        await page.click(f"a[href='/admin/invoices/{label}/refund']")
        await page.screenshot(path=ARTIFACTS / "admin-refund-confirm.png", full_page=True)
        await page.click("#confirm")
        assert await page.inner_text("#message") in ("Refund requested", "Refund pending")
        await wait_for_status(session, demo.base, label, "refunded")
        await page.click("#back")
        assert "refunded" in await page.inner_text("#invoices")
        await page.screenshot(path=ARTIFACTS / "admin-refunded.png", full_page=True)


PAGES = ["", "/payments", "/invoices", "/users", f"/users/{DEMO_USER_ID}", "/dunning", "/payouts", "/promo", "/jobs",
         "/exports"]


async def test_every_page_in_each_language_a_grant_and_a_forged_form(tmp_path, browser):
    """Each page opens in each language (screenshots), a grant from the subscriber's page extends their
    subscription once, and a form whose CSRF token was changed in the page is refused and changes nothing."""
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_demo(tmp_path) as demo, aiohttp.ClientSession() as session:
        page = await browser.new_page()
        page.set_default_timeout(DEADLINE_SECONDS * 1000)
        await page.goto(sign_in_link(demo.printed))
        await page.click("#sign-in")
        await page.wait_for_url(f"{demo.base}/admin")
        for lang in LANGUAGES:
            for path in PAGES:
                response = await page.goto(f"{demo.base}/admin{path}?lang={lang}")
                assert response is not None and response.status == 200, (path, lang)
                assert await page.get_attribute("html", "lang") == lang
                name = path.strip("/").replace("/", "-") or "overview-empty"
                await page.screenshot(path=ARTIFACTS / f"admin-{name}-{lang}.png", full_page=True)

        await page.goto(f"{demo.base}/admin/users/{DEMO_USER_ID}?lang=en")
        await page.select_option("#grant select[name=plan]", "week")
        await page.click("#grant button")
        await page.wait_for_url(re.compile(r".*/grant\?plan=week"))
        await page.evaluate("document.querySelector('form[action$=\"/grant\"] input[name=csrf]').value = 'forged'")
        async with page.expect_response(lambda answer: answer.request.method == "POST") as forged:
            await page.click("#confirm")
        assert (await forged.value).status == 403
        async with session.get(f"{demo.base}/api/users/{DEMO_USER_ID}/subscription",
                               headers={"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}) as answer:
            assert answer.status == 404, "the forged form granted nothing"

        await page.goto(f"{demo.base}/admin/users/{DEMO_USER_ID}/grant?plan=week&lang=en")
        await page.screenshot(path=ARTIFACTS / "admin-grant-confirm.png", full_page=True)
        await page.click("#confirm")
        assert "Granted: week, 7 days." in await page.inner_text("#message")
        await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        await page.click("#back")
        assert "week" in await page.inner_text("#subscription")
        await page.screenshot(path=ARTIFACTS / "admin-granted.png", full_page=True)
