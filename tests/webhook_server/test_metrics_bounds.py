"""GET /metrics stays bounded whatever is sent to /notify/: every label value comes from a fixed set (the
route table's providers and `other`; the outcomes our views name, capped per provider), so no request adds
a series. Before, each request to /notify/<anything> added one for good (2,000 made /metrics 28.5 MB)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import new_invoice, notification, post_notification
from webhook_server.app import create_app
from webhook_server.metrics import MAX_OUTCOMES_PER_PROVIDER, NOTIFY_OUTCOME, OTHER, notify_providers
from webhook_server.routes import ROUTES

HOSTILE_REQUESTS = 2000
CONCURRENCY = 50
KNOWN = frozenset({"yoomoney", "yookassa", "cloudpayments", "payme", "click", "konsol"})


def notification_series(text: str) -> dict[tuple[str, str], float]:
    return {(sample.labels["provider"], sample.labels["outcome"]): sample.value
            for family in text_string_to_metric_families(text) if family.name == "ymds_notifications"
            for sample in family.samples if sample.name == "ymds_notifications_total"}


async def scrape_text(client) -> str:  # type: ignore[no-untyped-def]
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


async def send_all(client, paths: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    """POST each path (a little at a time, as many clients would), with a body, and read each answer."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(path: str) -> int:
        async with gate:
            response = await client.post(path, data={"x": secrets.token_hex(4)})
            await response.read()
            return response.status

    return await asyncio.gather(*(one(path) for path in paths))


def hostile_paths(count: int) -> list[str]:
    """Random providers, random kinds under real providers, deep and odd paths: each one new."""
    shapes = [
        lambda tag: f"/notify/{tag}",
        lambda tag: f"/notify/{tag}/{tag}",
        lambda tag: f"/notify/cloudpayments/{tag}",
        lambda tag: f"/notify/click/{tag}",
        lambda tag: f"/notify/yoomoney/{tag}",
        lambda tag: f"/notify/%F0%9F%92%B8{tag}",
        lambda tag: f"/notify/{tag.upper()}_{'a' * 60}",
    ]
    return [shapes[n % len(shapes)](secrets.token_hex(8)) for n in range(count)]


def test_the_known_providers_are_read_from_the_route_table():
    app = web.Application()
    app.add_routes(ROUTES)
    assert notify_providers(app.router) == KNOWN


async def test_random_notify_paths_leave_the_series_bounded(client):
    invoice = await new_invoice(client, user_id=81)
    assert await post_notification(client, notification(invoice["label"])) == 200
    before = notification_series(await scrape_text(client))
    assert before == {("yoomoney", "accepted"): 1}

    statuses = await send_all(client, hostile_paths(HOSTILE_REQUESTS))
    assert set(statuses) <= {404, 405}, "no random path is served"

    text = await scrape_text(client)
    series = notification_series(text)
    assert {provider for provider, _ in series} <= KNOWN | {OTHER}
    assert sum(series.values()) == HOSTILE_REQUESTS + 1, "every request is still counted"
    assert len(series) <= 6, series  # other, and each real provider's http_404 / http_405
    assert len(text) < 16_000, f"/metrics is {len(text)} bytes after {HOSTILE_REQUESTS} hostile requests"
    for path in ("/notify/nobody", "/notify/🚀", "/notify/" + "b" * 4000):
        await send_all(client, [path])
    assert len(notification_series(await scrape_text(client))) == len(series), "a new path adds no series"


async def test_outcome_names_are_capped_per_provider(echo_client):
    """A guard for views to come: however many outcome names a view gives, one provider has at most
    MAX_OUTCOMES_PER_PROVIDER series (past them, and for a name that is no plain word, `other`)."""
    names = [f"made_up_{n}" for n in range(MAX_OUTCOMES_PER_PROVIDER + 40)] + ["Not A Name", "ü" * 5]
    for name in names:
        status = await post_with_outcome(echo_client, name)
        assert status == 200
    series = notification_series(await scrape_text(echo_client))
    ours = {outcome: value for (provider, outcome), value in series.items() if provider == "yoomoney"}
    assert len(ours) == MAX_OUTCOMES_PER_PROVIDER + 1
    assert ours[OTHER] == 42, "the 40 past the cap and the 2 that are no names"
    assert all(ours[f"made_up_{n}"] == 1 for n in range(MAX_OUTCOMES_PER_PROVIDER))


async def post_with_outcome(client, name: str) -> int:  # type: ignore[no-untyped-def]
    response = await client.post("/notify/yoomoney/echo-outcome", params={"outcome": name})
    await response.read()
    return response.status


@pytest.fixture
async def echo_client(settings, plans, clock, redis_conn) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """The app with one extra route under a real provider's name that reports the outcome it is given."""

    async def echo_outcome(request: web.Request) -> web.Response:
        request[NOTIFY_OUTCOME] = request.query["outcome"]
        return web.Response(text="ok")

    app = create_app(settings, plans=plans, clock=clock)
    app.router.add_post("/notify/yoomoney/echo-outcome", echo_outcome)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
