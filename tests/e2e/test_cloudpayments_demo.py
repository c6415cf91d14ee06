"""`ymds demo` paid by card through CloudPayments as a person would: the page's button, our widget page, the
emulator's widget; then a refund through the admin API, `ymds simulate cloudpayments`, and the same payment
made by headless Chromium running the page's real JavaScript."""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest

from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, YMDS, Demo, running_demo
from tests.e2e.test_demo import FormReader, wait_for_active
from webhook_server.demo import DEMO_USER_ID

ADMIN = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    async with running_demo(tmp_path) as running:
        yield running


def widget_config(page: str) -> dict:
    start = page.index('id="cloudpayments-config">') + len('id="cloudpayments-config">')
    return json.loads(page[start:page.index("</script>", start)])


async def wait_for(session: aiohttp.ClientSession, url: str, key: str, value: str) -> dict:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(url, headers=ADMIN) as response:
                body = await response.json()
                if body.get(key) == value:
                    return body
            await asyncio.sleep(0.05)  # polling the condition, bounded by the deadline above


async def new_invoice(session: aiohttp.ClientSession, base: str, user_id: int) -> dict:
    async with session.post(f"{base}/api/invoices", json={"user_id": user_id, "plan": "week"},
                            headers=ADMIN) as response:
        assert response.status == 201
        return await response.json()


async def test_demo_invoice_paid_in_the_cloudpayments_widget_then_refunded(demo: Demo):
    label = urlsplit(demo.link).path.rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as session:
        async with session.get(demo.link) as page:
            form = FormReader("pay-cloudpayments")
            form.feed(await page.text())
        # "pay once": the choice is fixed on the invoice at /choose, which answers with the widget's page
        assert form.action == f"/pay/{label}/choose"
        assert (form.fields["provider"], form.fields["choice"]) == ("cloudpayments", "once")
        async with session.post(urljoin(demo.link, form.action), data=form.fields) as widget_page:
            assert widget_page.status == 200
            page_text = await widget_page.text()
        config = widget_config(page_text)
        script = html.unescape(page_text.split('<script src="', 1)[1].split('"', 1)[0])
        assert script == f"{demo.base}/emulator/cloudpayments/widget.js"
        async with session.post(script.replace("widget.js", "widget/pay"), data={
                "scheme": config["scheme"], "outcome": "pay", "options": json.dumps(config["options"])}) as paid:
            assert (await paid.json())["success"]
        async with session.get(config["returnUrl"]) as back:
            assert back.status == 200

        subscription = await wait_for_active(session, demo.base, str(DEMO_USER_ID))
        assert subscription["plan"] == "week"
        invoice = await wait_for(session, f"{demo.base}/api/invoices/{label}", "status", "paid")
        assert invoice["provider"] == "cloudpayments" and invoice["paid_amount"] == 9900

        async with session.post(f"{demo.base}/api/invoices/{label}/refund", headers=ADMIN) as refund:
            assert refund.status == 202
        await wait_for(session, f"{demo.base}/api/invoices/{label}", "status", "refunded")
        await wait_for(session, f"{demo.base}/api/users/{DEMO_USER_ID}/subscription", "status", "expired")


@pytest.mark.parametrize("event", ["payment", "renewal", "refund"])
async def test_simulate_sends_signed_notifications_the_demo_accepts(demo: Demo, event: str):
    async with aiohttp.ClientSession() as session:
        invoice = await new_invoice(session, demo.base, 200)
        process = await asyncio.create_subprocess_exec(
            str(YMDS), "simulate", "cloudpayments", event, "--invoice", invoice["label"], "--url", demo.base,
            env=demo.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)
        assert process.returncode == 0, err.decode()
        assert "HTTP 200" in out.decode()
        expected = "refunded" if event == "refund" else "paid"
        await wait_for(session, f"{demo.base}/api/invoices/{invoice['label']}", "status", expected)


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium")
async def test_headless_chromium_pays_through_the_pages_javascript(demo: Demo, tmp_path: Path):
    """Our widget page's script opens the (emulated) widget, which pays; its onSuccess brings the payer back."""
    async with aiohttp.ClientSession() as session:
        invoice = await new_invoice(session, demo.base, 300)
        query = dict(part.split("=", 1) for part in urlsplit(invoice["pay_url"]).query.split("&"))
        inputs = "".join(f'<input type="hidden" name="{name}" value="{value}">' for name, value in query.items())
        start = tmp_path / "start.html"
        start.write_text(f'<form method="post" action="{demo.base}/pay/{invoice["label"]}/cloudpayments'
                         f'#emulator-autopay">{inputs}</form><script>document.forms[0].submit()</script>')
        browser = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000", "--dump-dom", start.as_uri(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(browser.communicate(), DEADLINE_SECONDS * 2)
        status = re.search(r'<p[^>]*id="status"[^>]*>([^<]*)</p>', dom.decode())
        assert status and re.search("confirming|Paid", status.group(1)), "the payer is back on the payment page"
        await wait_for(session, f"{demo.base}/api/invoices/{invoice['label']}", "status", "paid")
