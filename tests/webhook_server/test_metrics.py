"""GET /metrics: Prometheus text an operator can scrape, with figures that follow what happened, behind
METRICS_TOKEN when it is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.billing.test_fulfilment import crash_at
from tests.conftest import ADMIN_TOKEN
from tests.helpers import new_invoice, notification, post_notification
from tests.test_check_config import check_config
from webhook_server.app import create_app


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


async def test_metrics_count_notifications_and_read_the_stores(client, worker, clock):
    paid = await new_invoice(client, user_id=61)
    await post_notification(client, notification(paid["label"]))
    await post_notification(client, {**notification(paid["label"]), "sha1_hash": "0" * 40})
    await post_notification(client, notification("inv_unknown"))
    crashing = await new_invoice(client, user_id=62)
    await post_notification(client, notification(crashing["label"], operation_id="crash-1"))
    before = await scrape(client)
    assert before[("ymds_queue_depth", (("queue", "ymds-fulfilment"),))] == 2

    await worker.drain()
    worker.runtime.checkpoint = crash_at("after_ledger_insert")
    crashed = await new_invoice(client, user_id=63)
    await post_notification(client, notification(crashed["label"], operation_id="crash-2"))
    await worker.drain()

    figures = await scrape(client)
    notifications = {labels: value for (name, labels), value in figures.items() if name == "ymds_notifications_total"}
    assert notifications == {
        (("outcome", "accepted"), ("provider", "yoomoney")): 3,
        (("outcome", "bad_signature"), ("provider", "yoomoney")): 1,
        (("outcome", "unknown_label"), ("provider", "yoomoney")): 1,
    }, "each notification pays its own invoice: none is extra"
    assert figures[("ymds_active_subscriptions", ())] == 2
    assert figures[("ymds_queue_depth", (("queue", "ymds-fulfilment"),))] == 0
    assert figures[("ymds_failed_jobs", (("queue", "ymds-fulfilment"),))] == 1
    assert figures[("ymds_fulfilments_last_hour", ())] == 2
    assert ("ymds_fulfilment_latency_seconds", (("quantile", "0.99"),)) in figures


METRICS_TOKEN = "test-metrics-token-0123456789abcdef"


@pytest.fixture
async def guarded(settings, plans, clock, redis_conn) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """The app with METRICS_TOKEN set."""
    app = create_app(settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}), plans=plans,
                     clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN[:-1]}",
    f"Bearer {METRICS_TOKEN}x", f"Bearer {ADMIN_TOKEN}", "Bearer " + "é" * 8,
])
async def test_with_a_metrics_token_only_its_bearer_sees_the_figures(guarded, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await guarded.get("/metrics", headers=headers)
    body = await response.text()
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "ymds_" not in body and METRICS_TOKEN not in body


async def test_the_metrics_token_opens_the_figures(guarded):
    response = await guarded.get("/metrics", headers={"Authorization": f"bearer  {METRICS_TOKEN} "})
    assert response.status == 200
    assert "ymds_active_subscriptions" in await response.text()


async def test_invalid_utf8_in_the_authorization_header_is_a_401(guarded):
    """Raw bytes that are no UTF-8 must neither match nor turn into a 500."""
    host, port = guarded.server.host, guarded.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3\x28\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_without_a_metrics_token_the_figures_stay_open(client):
    response = await client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert response.status == 200


def test_production_check_config_warns_while_the_metrics_token_is_unset(tmp_path):
    unset = check_config(tmp_path, "--offline")
    assert unset.returncode == 0, unset.stderr
    assert "warning: METRICS_TOKEN: unset" in unset.stdout
    token = "m" * 40
    given = check_config(tmp_path, "--offline", METRICS_TOKEN=token)
    assert given.returncode == 0 and "METRICS_TOKEN" not in given.stdout and token not in given.stdout
    empty = check_config(tmp_path, "--offline", METRICS_TOKEN="  ")
    assert "warning: METRICS_TOKEN: unset" in empty.stdout, "an empty value is no token"
    development = check_config(tmp_path, "--offline", ENVIRONMENT="development")
    assert "METRICS_TOKEN" not in development.stdout


def test_the_demo_fills_a_metrics_token_unless_one_is_given():
    from settings import Settings
    from webhook_server.demo import DemoAddress, with_demo_values

    address = DemoAddress("127.0.0.1", 8080)
    filled = with_demo_values(Settings(_env_file=None), address).metrics_token
    assert filled is not None and filled.get_secret_value()
    given = with_demo_values(Settings(_env_file=None, metrics_token="owner-token"), address).metrics_token
    assert given is not None and given.get_secret_value() == "owner-token"
