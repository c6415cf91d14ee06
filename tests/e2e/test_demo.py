"""`ymds demo` as a person runs it: a real process, its printed link, the emulator's Pay button, the admin API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from billing.links import link_signature
from billing.money import Money
from billing.providers.yoomoney import build_notification
from tests.e2e.demo_process import CUSTOM, DEADLINE_SECONDS, YMDS, demo_env, running_demo
from webhook_server.demo import DEMO_USER_ID


class FormReader(HTMLParser):
    """The action and inputs of one form of the page, picked by its id."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.inside = values.get("id") == self.form_id
            if self.inside:
                self.action, self.method = values.get("action") or "", values.get("method") or ""
        if self.inside and tag == "input" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
    async with running_demo(tmp_path) as running:
        yield running.base, running.link, running.env


async def wait_for_active(session: aiohttp.ClientSession, base: str, user_id: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {CUSTOM['ADMIN_API_TOKEN']}"}
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with session.get(f"{base}/api/users/{user_id}/subscription", headers=headers) as response:
                if response.status == 200 and (body := await response.json())["status"] == "active":
                    return body
            await asyncio.sleep(0.05)  # polling the condition, bounded by the deadline above


async def test_demo_pays_its_printed_link_with_the_owners_settings(demo):
    base, link, env = demo
    label = urlsplit(link).path.rsplit("/", 1)[1]
    exp = re.search(r"exp=(\d+)", link).group(1)
    assert re.search(r"sig=([0-9a-f]+)", link).group(1) == link_signature(
        CUSTOM["LINK_SECRET"].encode(), label, int(exp)), "the link is signed with the owner's LINK_SECRET"

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/emulator/yoomoney/control/notifications", data={}) as control:
            assert await control.json() == {"drop": False, "sign": False}, \
                "the emulated wallet sends unsigned notifications, as YooMoney has since May 2026"
        async with session.get(link) as page:
            assert page.status == 200
            form = FormReader("pay-yoomoney")
            form.feed(await page.text())
        assert form.fields["sum"] == "99.00", "the owner's PLANS_FILE is served"
        async with session.post(form.action, data=form.fields) as emulator_page:
            assert emulator_page.status == 200
        pay_url = form.action.rsplit("/", 1)[0] + "/pay"
        async with session.post(pay_url, data=form.fields) as paid:
            assert paid.status == 200 and str(paid.url) == link + "&returned=1", "the payer comes back to our page"
            assert re.search("confirming|Paid", await paid.text())

        subscription = await wait_for_active(session, base, str(DEMO_USER_ID))
        assert subscription["plan"] == "week", "paid only once our server confirmed it through the wallet API"
        async with session.get(link) as page:
            assert "Paid" in await page.text()

        headers = {"Authorization": "Bearer demo-admin-token"}
        async with session.get(f"{base}/api/invoices/{label}", headers=headers) as denied:
            assert denied.status == 401, "the owner's ADMIN_API_TOKEN replaces the demo's"

        forged = build_notification("demo-yoomoney-secret", operation_id="999", paid=Money(9900, "RUB"), label=label)
        async with session.post(f"{base}/notify/yoomoney", data=forged) as response:
            assert response.status == 400, "only the owner's YooMoney secret is accepted"

    simulate = await asyncio.create_subprocess_exec(
        str(YMDS), "simulate", "yoomoney", "payment", "--invoice", label, "--url", base, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(simulate.communicate(), DEADLINE_SECONDS)
    assert simulate.returncode == 0, err.decode()
    assert "HTTP 200" in out.decode()


async def test_check_config_accepts_the_demo_environment(tmp_path):
    env = {**demo_env(tmp_path), "ENVIRONMENT": "development", "YOOMONEY_WALLET": "4100118000000000"}
    process = await asyncio.create_subprocess_exec(
        str(YMDS), "check-config", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)
    assert process.returncode == 0, err.decode()
    assert "enabled providers: yoomoney" in out.decode()
    assert CUSTOM["YOOMONEY_NOTIFICATION_SECRET"] not in out.decode() + err.decode()
