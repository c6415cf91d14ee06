"""Security headers through real HTTP: every answer refuses framing and sniffing, sends no referrer and no
Server version, and carries a Content-Security-Policy that allows only the scripts its page needs; the pages
themselves hold no inline script or style that such a policy would block. The provider emulators, which pay
any invoice without a secret, are mounted by `ymds demo` only, never by the app `ymds web` serves."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from billing.providers.payme.protocol import SANDBOX_API_URL
from settings import Settings
from tests.conftest import AUTH, REDIS_TEST_URL, YOOMONEY_API_TOKEN
from tests.consent_support import choose, page_forms
from tests.helpers import new_invoice, notification, path_of, post_notification
from tests.payme_support import payme_settings
from webhook_server.app import create_app
from webhook_server.demo import EMULATOR_ROOT, WELCOME, DemoAddress, build_demo_app, with_demo_values
from webhook_server.emulators import EMULATORS

WIDGET_URL = "https://widget.cloudpayments.ru/bundles/cloudpayments.js"
SCRIPT_TYPES = {"text/javascript", "application/javascript", "module", ""}


def policy(response: ClientResponse) -> dict[str, list[str]]:
    directives = [part.split() for part in response.headers["Content-Security-Policy"].split(";") if part.strip()]
    return {words[0]: words[1:] for words in directives}


def assert_guarded(response: ClientResponse) -> None:
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = policy(response)
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert "'unsafe-eval'" not in sum(csp.values(), [])
    assert "'unsafe-inline'" not in csp.get("script-src", [])
    assert not re.search(r"\d|python|aiohttp", headers.get("Server", ""), re.I), headers.get("Server")


class Page(HTMLParser):
    """What a page would need a policy for: its scripts, styles, inline handlers."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.scripts: list[str] = []  # src of each external script
        self.inline_scripts = 0
        self.inline_styles = 0
        self.stylesheets: list[str] = []
        self._in_inline_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.inline_styles += tag == "style" or "style" in values
        self.inline_scripts += any(name.startswith("on") for name in values)
        if tag == "link" and values.get("rel") == "stylesheet":
            self.stylesheets.append(values["href"] or "")
        if tag == "script":
            if values.get("src"):
                self.scripts.append(values["src"] or "")
            elif (values.get("type") or "").lower() in SCRIPT_TYPES:
                self._in_inline_script = True  # type=application/json is data, which no policy runs

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


async def assert_loads_under_its_policy(client: TestClient, response: ClientResponse) -> Page:
    """Every script and stylesheet of the page is allowed by the page's own policy, and ours are served."""
    csp = policy(response)
    page = Page(await response.text())
    assert page.inline_scripts == 0 and page.inline_styles == 0
    for src in page.scripts:
        parts = urlsplit(src)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"
        assert origin in csp.get("script-src", []), (src, csp)
        if origin == "'self'":
            served = await client.get(src)
            assert served.status == 200 and served.content_type == "application/javascript", src
    for href in page.stylesheets:
        assert not urlsplit(href).netloc and "'self'" in csp["style-src"]
        served = await client.get(href)
        assert served.status == 200 and served.content_type == "text/css", href
    return page


@pytest.fixture
def settings(yoomoney_emulator):  # type: ignore[no-untyped-def]
    """YooMoney, Payme (with its card binding) and CloudPayments with the real widget's address: the page
    only names the widget, nothing here fetches it."""
    _, yoomoney_url = yoomoney_emulator
    return payme_settings(yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url,
                          payme_sandbox=True, cloudpayments_public_id="pk_test_0", cloudpayments_api_secret="s",
                          cloudpayments_widget_url=WIDGET_URL, cloudpayments_test_mode=True)


def link_fields(pay_url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(pay_url).query).items()}


async def test_the_payment_page_allows_our_script_and_paymes_api_only(client):
    invoice = await new_invoice(client)
    assert (await choose(client, invoice, "payme"))[0] == 303  # the card form shows under the renewal consent
    response = await client.get(path_of(invoice["pay_url"]))
    assert response.status == 200
    assert_guarded(response)
    csp = policy(response)
    assert csp["script-src"] == ["'self'"]
    sandbox = urlsplit(SANDBOX_API_URL)
    assert csp["connect-src"] == [f"{sandbox.scheme}://{sandbox.netloc}"], "where the card binding's script calls"
    assert "frame-src" not in csp
    page = await assert_loads_under_its_policy(client, response)
    assert page.scripts == ["/static/payme_card.js"]
    assert f'"apiUrl": "{SANDBOX_API_URL}"' in await response.text()


async def test_the_widget_page_opened_by_the_payers_choice_has_the_widgets_policy(client):
    """The page's "pay once" and "pay and renew" with CloudPayments post to /choose, which serves the widget
    page itself: its policy must let the widget load there too."""
    invoice = await new_invoice(client)
    forms = await page_forms(client, invoice)
    for form_id in ("pay-cloudpayments", "renew-cloudpayments"):
        form = forms[form_id]
        response = await client.post(form["action"], data=form["fields"])
        assert response.status == 200 and urlsplit(str(response.url)).path.endswith("/choose"), form_id
        csp = policy(response)
        assert csp["script-src"] == ["'self'", "https://widget.cloudpayments.ru"], form_id
        page = await assert_loads_under_its_policy(client, response)
        assert page.scripts == [WIDGET_URL, "/static/cloudpayments.js"], form_id


async def test_the_widget_page_allows_the_widget_and_our_script(client):
    invoice = await new_invoice(client)
    response = await client.post(f"/pay/{invoice['label']}/cloudpayments", data=link_fields(invoice["pay_url"]))
    assert response.status == 200
    assert_guarded(response)
    csp = policy(response)
    assert csp["script-src"] == ["'self'", "https://widget.cloudpayments.ru"]
    assert csp["frame-src"] == ["https://widget.cloudpayments.ru", "https://*.cloudpayments.ru"]
    page = await assert_loads_under_its_policy(client, response)
    assert page.scripts == [WIDGET_URL, "/static/cloudpayments.js"]


async def test_pages_without_a_script_allow_none(client):
    invoice = await new_invoice(client)
    renewal = await client.get(path_of(invoice["pay_url"]).replace("?", "/renewal?", 1))
    bad_link = await client.get(f"/pay/{invoice['label']}?exp=1&sig=00")
    unknown = await client.get("/no/such/page")
    for response in (renewal, bad_link, unknown):
        assert_guarded(response)
        assert "script-src" not in policy(response), "default-src 'none' covers scripts"
        page = await assert_loads_under_its_policy(client, response)
        assert page.scripts == [] and page.stylesheets == ["/static/ymds.css"]
    assert (renewal.status, bad_link.status, unknown.status) == (200, 403, 404)


async def test_every_kind_of_answer_carries_the_headers(client, worker):
    invoice = await new_invoice(client)
    await post_notification(client, notification(invoice["label"]))
    await worker.drain()
    answers = [
        await client.get("/healthz"),
        await client.get(f"/api/invoices/{invoice['label']}", headers=AUTH),
        await client.get("/api/invoices/x"),  # 401
        await client.post("/notify/yoomoney", data=notification(invoice["label"])),
        await client.post("/notify/payme", json={}),  # Payme's own JSON error
        await client.get("/static/ymds.css"),
        await client.get("/static/../settings.py"),
        await client.post(f"/pay/{invoice['label']}/cloudpayments", data=link_fields(invoice["pay_url"]),
                          allow_redirects=False),  # paid now: a redirect to the page
        await client.get("/metrics"),
    ]
    assert [answer.status for answer in answers] == [200, 200, 401, 200, 200, 200, 404, 303, 200]
    for answer in answers:
        assert_guarded(answer)


async def test_a_page_a_view_gave_its_own_referrer_policy_keeps_it(client):
    """The payment page set no-referrer itself before; the headers add to a view's, never replace them."""
    invoice = await new_invoice(client)
    response = await client.get(path_of(invoice["pay_url"]))
    assert response.headers.getall("Referrer-Policy") == ["no-referrer"]
    assert len(response.headers.getall("Content-Security-Policy")) == 1


async def test_an_answer_aiohttp_writes_itself_names_no_version(client):
    """A malformed request never reaches a route; aiohttp answers it, and names no version either."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nNot A Header\r\n\r\n")
    await writer.drain()
    answer = (await reader.read()).decode("latin-1")
    writer.close()
    head = answer.split("\r\n\r\n", 1)[0]
    assert head.startswith("HTTP/1.") and " 400 " in head.splitlines()[0]
    server = [line for line in head.splitlines() if line.lower().startswith("server:")]
    assert all(not re.search(r"\d|python|aiohttp", line, re.I) for line in server), server


def emulator_paths() -> list[str]:
    return [f"{EMULATOR_ROOT}/{name}{tail}" for name in EMULATORS for tail in ("", "/", "/widget.js", "/api")]


def test_the_web_app_has_no_emulator_route(settings, plans):
    app = create_app(settings, plans=plans)
    canonicals = [resource.canonical for resource in app.router.resources()]
    assert not [path for path in canonicals if path.startswith(EMULATOR_ROOT)], canonicals
    demo = build_demo_app(with_demo_values(Settings(_env_file=None, mongodb_uri="memory://", redis_url=REDIS_TEST_URL),
                                           DemoAddress("127.0.0.1", 8080)), plans)
    mounted = {resource.canonical for resource in demo.router.resources()}
    emulators = ("yoomoney", "yookassa", "cloudpayments", "payme", "click")
    assert {f"{EMULATOR_ROOT}/{name}" for name in emulators} <= mounted


async def test_the_web_app_answers_404_for_every_emulator_path(client):
    for path in emulator_paths():
        for method in ("GET", "POST"):
            response = await client.request(method, path)
            assert response.status == 404, (method, path)


@pytest.fixture
async def demo_on(request, settings, plans, redis_conn) -> AsyncIterator[web.Application]:  # type: ignore[no-untyped-def]
    """The demo app with WEB_HOST as given (it listens on loopback here whatever it says)."""
    demo_settings = with_demo_values(settings, DemoAddress(request.param, 8080))
    app = build_demo_app(demo_settings, plans)
    async with TestClient(TestServer(app)):
        yield app


@pytest.mark.parametrize("demo_on", ["0.0.0.0", "::", "192.0.2.10", "pay.example.org"], indirect=True)
async def test_the_demo_warns_when_it_listens_beyond_loopback(demo_on):
    welcome = demo_on[WELCOME]
    warning = welcome.index("WARNING")
    assert warning < welcome.index("open-ymds demo is running"), "the warning comes first"
    assert f"{EMULATOR_ROOT}/" in welcome and "--host 127.0.0.1" in welcome


@pytest.mark.parametrize("demo_on", ["127.0.0.1", "localhost", "::1"], indirect=True)
async def test_the_demo_on_loopback_does_not_warn(demo_on):
    assert "WARNING" not in demo_on[WELCOME]
    assert "/metrics (Authorization: Bearer " in demo_on[WELCOME]
