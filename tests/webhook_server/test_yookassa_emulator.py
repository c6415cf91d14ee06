"""The YooKassa emulator itself, held to the reference rather than to our code: its own amounts and Basic auth
against the worked vectors (TV1, TV2), no import of billing/providers/yookassa, the payments list with its
created_at filters and cursor paging, and notifications redelivered on its own clock for 24 hours, then
given up, or lost on purpose (the next N, or all)."""

from __future__ import annotations

import ast
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from billing.money import Money
from tests.conftest import ROOT
from tests.yookassa_support import (
    SECRET_KEY,
    SHOP_ID,
    created_payment,
    paid_payment,
    settings,
    yookassa,
    yookassa_clock,
    yookassa_emulator,
)
from webhook_server.emulators.yookassa_outbox import GIVE_UP_AFTER, REDELIVERY_OFFSETS
from webhook_server.emulators.yookassa_wire import basic_auth, iso, minor_of, value_of

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

EMULATOR_MODULES = sorted((ROOT / "webhook_server" / "emulators").glob("yookassa*.py"))


def test_tv1_authorization_and_tv2_amounts_from_the_emulators_own_code():
    assert basic_auth("123456", "test_abc") == "Basic MTIzNDU2OnRlc3RfYWJj"
    for minor, value in ((14900, "149.00"), (5, "0.05"), (100000, "1000.00"), (9999, "99.99"), (1, "0.01")):
        assert value_of(minor) == value
    for value, minor in (("149.00", 14900), ("0.05", 5), ("350000.00", 35000000)):
        assert minor_of(value) == minor
    for bad in ("149", "149.0", "1.5.0", "-1.00", "01.00", 149.0, None):
        assert minor_of(bad) is None, bad


@pytest.mark.parametrize("path", EMULATOR_MODULES, ids=lambda path: path.name)
def test_the_emulator_imports_nothing_of_the_provider_module(path: Path):
    tree = ast.parse(path.read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name.startswith("billing.providers")}


async def list_payments(base: str, query: dict[str, str], auth: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": auth or basic_auth(SHOP_ID, SECRET_KEY)}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/v3/payments", params=query, headers=headers) as response:
            return response.status, await response.json()


async def test_payments_list_filters_on_created_at_and_status_newest_first_by_cursor(yookassa_emulator):
    emulator, base = yookassa_emulator
    clock = yookassa_clock(emulator)
    start = clock.now
    made = []
    for minute in range(6):  # one payment a minute; the odd ones are paid
        clock.now = start + timedelta(minutes=minute)
        made.append((paid_payment if minute % 2 else created_payment)(emulator, f"inv_{minute}"))
    window = {"created_at.gte": iso(start + timedelta(minutes=1)), "created_at.lt": iso(start + timedelta(minutes=5)),
              "status": "succeeded", "limit": "1"}
    pages, cursor = [], None
    while True:
        status, page = await list_payments(base, {**window, **({"cursor": cursor} if cursor else {})})
        assert status == 200 and page["type"] == "list"
        pages.append([item["id"] for item in page["items"]])
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert pages == [[made[3]], [made[1]]], "minutes 1 and 3 in [1, 5), newest first, one per page"
    status, everything = await list_payments(base, {"created_at.gt": iso(start)})
    assert status == 200 and [item["id"] for item in everything["items"]] == made[:0:-1]
    assert "next_cursor" not in everything, "the default limit of 10 holds them all"


@pytest.mark.parametrize(("query", "parameter"), [({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"),
                                                  ({"cursor": "not a cursor"}, "cursor"),
                                                  ({"created_at.gte": "yesterday"}, "created_at.gte"),
                                                  ({"status": "paid"}, "status")])
async def test_payments_list_refuses_a_bad_query_as_yookassa_does(yookassa_emulator, query, parameter):
    _, base = yookassa_emulator
    status, body = await list_payments(base, query)
    assert status == 400 and (body["code"], body["parameter"]) == ("invalid_request", parameter)
    assert (await list_payments(base, {}, auth=basic_auth(SHOP_ID, "wrong")))[0] == 401


async def test_a_refused_notification_is_redelivered_on_schedule_then_given_up_after_24_hours(client, yookassa):
    """Our server cannot confirm anything while YooKassa's API is down (503 to every delivery): YooKassa
    tries again on its own clock at growing intervals and stops for good 24 hours after the event."""
    clock = yookassa_clock(yookassa)
    assert REDELIVERY_OFFSETS[-1] == GIVE_UP_AFTER == timedelta(hours=24)
    gaps = [later - earlier for earlier, later in pairwise((timedelta(0), *REDELIVERY_OFFSETS))]
    assert all(gap <= following for gap, following in pairwise(gaps[:-1])), "growing, but for the last"
    payment_id = paid_payment(yookassa, "inv_unreachable")
    event_at = clock.now
    yookassa.fail_with = 500
    assert await yookassa.notify("payment.succeeded", payment_id) == 503
    for offset in REDELIVERY_OFFSETS:
        clock.now = event_at + offset - timedelta(seconds=1)
        assert await yookassa.redeliver_due() == 0, f"nothing due before {offset}"
        clock.now = event_at + offset
        assert await yookassa.redeliver_due() == 1, f"a redelivery at {offset}"
    assert yookassa.deliveries == [("payment.succeeded", 503)] * (1 + len(REDELIVERY_OFFSETS))
    [given_up] = yookassa.outbox.given_up
    assert given_up.object_id == payment_id and yookassa.outbox.waiting == []
    yookassa.fail_with = None
    clock.now += timedelta(days=2)
    assert await yookassa.redeliver_due() == 0 and len(yookassa.deliveries) == 1 + len(REDELIVERY_OFFSETS)


async def test_a_jump_of_the_clock_redelivers_once_and_past_24_hours_not_at_all(client, yookassa):
    clock = yookassa_clock(yookassa)
    first, second = paid_payment(yookassa, "inv_a"), paid_payment(yookassa, "inv_b")
    yookassa.drop_deliveries()
    await yookassa.notify("payment.succeeded", first)
    await yookassa.notify("payment.succeeded", second)
    clock.now += timedelta(hours=5)
    assert await yookassa.redeliver_due() == 2, "the slots the clock jumped over are one attempt"
    clock.now += GIVE_UP_AFTER
    assert await yookassa.redeliver_due() == 0
    assert [notice.object_id for notice in yookassa.outbox.given_up] == [first, second]
    assert yookassa.outbox.dropped == [("payment.succeeded", first), ("payment.succeeded", second)] * 2


async def test_the_drop_control_loses_the_next_n_deliveries_or_all_of_them(client, yookassa, yookassa_emulator):
    _, base = yookassa_emulator
    clock = yookassa_clock(yookassa)
    payment_id = paid_payment(yookassa, "inv_drop")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/control/notifications/drop", json={"times": 2}) as response:
            assert response.status == 200
        async with session.post(f"{base}/control/notifications/drop", json={"times": -1}) as response:
            assert response.status == 400
        assert await yookassa.notify("payment.succeeded", payment_id) is None
        clock.now += timedelta(minutes=1)
        assert await yookassa.redeliver_due() == 1 and yookassa.deliveries == []
        clock.now += timedelta(minutes=2)
        assert await yookassa.redeliver_due() == 1
        assert yookassa.outbox.dropped == [("payment.succeeded", payment_id)] * 2
        assert yookassa.deliveries == [("payment.succeeded", 200)] and yookassa.outbox.waiting == []
        async with session.post(f"{base}/control/notifications/drop", json={}) as response:
            assert response.status == 200  # every delivery, until told otherwise
        refund = yookassa.refund(payment_id, Money(100, "RUB"))
        assert await yookassa.notify("refund.succeeded", refund["id"]) is None
        async with session.delete(f"{base}/control/notifications/drop") as response:
            assert response.status == 200
        clock.now += timedelta(minutes=1)
        async with session.post(f"{base}/control/notifications/redeliver") as response:
            assert (await response.json()) == {"attempts": 1, "waiting": 0, "given_up": 0}
    assert yookassa.deliveries[-1] == ("refund.succeeded", 200)
