"""The owner's own bot asks open-ymds over the real Redis: ymds_client enqueues on ymds-rpc, a real RQ worker
answers with the links /subscribe would give and the subscription's status."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from beanie import init_beanie
from mongomock_motor import AsyncMongoMockClient

from billing.links import check_link
from db import Invoice
from db.models import DOCUMENT_MODELS
from rq_access import RPC_QUEUE
from tests.conftest import AUTH, REDIS_TEST_URL, make_settings
from tests.helpers import notification, path_of, post_notification
from webhook_server import runner
from ymds_client import RPC_QUEUE as CLIENT_QUEUE, YmdsClient, YmdsFailed, YmdsRefused, YmdsTimeout

USER_ID = 4242


@pytest.fixture
async def owner(redis_conn) -> AsyncIterator[YmdsClient]:
    ymds = YmdsClient(REDIS_TEST_URL)
    yield ymds
    ymds.close()


@pytest.fixture
async def answering(worker) -> AsyncIterator[None]:
    """The worker running continuously, as `ymds worker` does, while the owner's client waits in a thread."""
    worker.start()
    yield
    await worker.stop()


def label_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def test_the_client_asks_on_the_queue_the_worker_listens_to():
    assert CLIENT_QUEUE == RPC_QUEUE


async def test_subscribe_links_are_one_signed_payment_page_per_plan(client, owner, answering, settings, clock):
    links = await asyncio.to_thread(owner.subscribe_links, USER_ID, "ru")

    assert [(link["plan"], link["title"], link["amounts"]) for link in links] == [
        ("month", "1 month", {"RUB": 29900, "UZS": 3500000}),  # Stars are paid in Telegram, not on the page
        ("year", "12 months", {"RUB": 299000, "UZS": 35000000}),
    ]
    for link in links:
        query = {name: values[0] for name, values in parse_qs(urlsplit(link["pay_url"]).query).items()}
        assert query["lang"] == "ru"
        assert int(query["exp"]) == int(datetime.fromisoformat(link["expires_at"]).timestamp())
        check_link(settings.link_key, label_of(link["pay_url"]), query["exp"], query["sig"],
                   int(clock.now.timestamp()), query["lang"])
        response = await client.get(path_of(link["pay_url"]))
        page = await response.text()
        assert response.status == 200 and '<html lang="ru">' in page
    invoices = await Invoice.find_all().to_list()
    assert sorted((invoice.plan, invoice.user_id) for invoice in invoices) == [("month", USER_ID), ("year", USER_ID)]


async def test_asking_again_hands_out_the_same_pending_invoices(client, owner, answering):
    first = await asyncio.to_thread(owner.subscribe_links, USER_ID, None)
    second = await asyncio.to_thread(owner.subscribe_links, USER_ID, "en-US")

    assert [label_of(link["pay_url"]) for link in second] == [label_of(link["pay_url"]) for link in first]
    assert "lang" not in parse_qs(urlsplit(first[0]["pay_url"]).query)  # None: the page follows the browser
    assert parse_qs(urlsplit(second[0]["pay_url"]).query)["lang"] == ["en"]
    assert await Invoice.find_all().count() == 2


async def test_status_follows_a_payment_through_the_provider(client, owner, answering):
    assert await asyncio.to_thread(owner.subscription_status, USER_ID) == {
        "active": False, "status": "none", "plan": None, "current_period_end": None, "auto_renew": False}
    month = (await asyncio.to_thread(owner.subscribe_links, USER_ID, "en"))[0]

    assert await post_notification(client, notification(label_of(month["pay_url"]))) == 200
    status = await asyncio.to_thread(owner.subscription_status, USER_ID)  # taken after the fulfilment job

    assert status["active"] is True and status["status"] == "active" and status["plan"] == "month"
    admin = await (await client.get(f"/api/users/{USER_ID}/subscription", headers=AUTH)).json()
    assert {key: admin[key] for key in ("status", "plan", "current_period_end", "auto_renew")} == {
        key: status[key] for key in ("status", "plan", "current_period_end", "auto_renew")}


@pytest.mark.parametrize(("user_id", "language", "refusal"), [
    (0, "en", "user_id must be a Telegram user id"),
    (-5, "en", "user_id must be a Telegram user id"),
    ("42", "en", "user_id must be a Telegram user id"),
    (True, "en", "user_id must be a Telegram user id"),
    (42, "de", "language must be one of ru, en, uz or None"),
    (42, 7, "language must be one of ru, en, uz or None"),
])
async def test_bad_arguments_are_refused_and_create_nothing(client, owner, answering, user_id, language, refusal):
    with pytest.raises(YmdsRefused, match=refusal):
        await asyncio.to_thread(owner.subscribe_links, user_id, language)
    assert await Invoice.find_all().count() == 0


async def test_bad_user_id_is_refused_for_the_status_too(client, owner, answering):
    with pytest.raises(YmdsRefused, match="user_id must be a Telegram user id"):
        await asyncio.to_thread(owner.subscription_status, -1)


async def test_without_a_worker_the_client_times_out_and_the_question_is_dropped(redis_conn, owner):
    with pytest.raises(YmdsTimeout, match="is `ymds worker` running on this Redis"):
        owner.subscription_status(USER_ID, timeout=1)

    pending = [job_id.decode() for job_id in redis_conn.lrange(f"rq:queue:{RPC_QUEUE}", 0, -1)]
    assert all(not redis_conn.exists(f"rq:job:{job_id}") for job_id in pending), \
        "a question nobody waits for any more must not be answered by a worker that starts later"


async def test_a_worker_that_cannot_make_links_fails_the_question_clearly(client, owner, worker):
    worker.runtime.renewals = None  # a runtime without the link issuer
    worker.start()
    try:
        with pytest.raises(YmdsFailed, match="payment links are not set up in this worker"):
            await asyncio.to_thread(owner.subscribe_links, USER_ID, "en")
    finally:
        await worker.stop()
    assert await Invoice.find_all().count() == 0


def test_ymds_worker_answers_the_owner_from_its_own_database(monkeypatch, redis_conn, plans):
    """`ymds worker`'s own runtime (runner.run_worker: its database, plans and link issuer) serves the queue."""
    database = AsyncMongoMockClient(tz_aware=True)

    async def open_database(uri: str, name: str) -> Any:
        await init_beanie(database=database[name], document_models=DOCUMENT_MODELS)
        return database

    monkeypatch.setattr(runner, "init_db", open_database)
    owner = YmdsClient(REDIS_TEST_URL)
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(owner.subscribe_links, USER_ID, "uz", timeout=30)
        wait_until(lambda: redis_conn.llen(f"rq:queue:{RPC_QUEUE}") == 1)
        runner.run_worker(make_settings(), plans, burst=True)
        links = asked.result(timeout=30)
    owner.close()

    assert [link["plan"] for link in links] == ["month", "year"]
    assert all(link["pay_url"].startswith("http://shop.test/pay/inv_") and "lang=uz" in link["pay_url"]
               for link in links)


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait (bounded) for a condition another thread makes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_the_owner_side_imports_none_of_our_settings_or_services():
    probe = ("import sys, ymds_client; ours = {'settings', 'billing', 'bot', 'db', 'aiogram', 'aiohttp', 'beanie'};"
             " assert not ours & {name.split('.')[0] for name in sys.modules}, 'client';"
             " import bot.owner; assert not {'settings', 'db', 'beanie', 'webhook_server', 'rq_access'}"
             " & {name.split('.')[0] for name in sys.modules}, 'aiogram side'")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
