"""The Click emulator's own protocol code against the reference's vectors (click.md 9), its Merchant API, its
controls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from webhook_server.emulators.click import (
    COMPLETE,
    MERCHANT_API,
    PREPARE,
    SUCCESSFUL,
    Attempt,
    ClickCaller,
    ClickEmulator,
    ClickState,
    auth_header,
    auth_valid,
    click_day,
    sign_string,
    som,
)

SECRET = "test_secret"
PREPARE_FIELDS = {"click_trans_id": "1234567", "service_id": "11111", "merchant_trans_id": "inv-42",
                  "amount": "35000.00", "action": PREPARE, "sign_time": "2026-11-22 12:00:00"}
COMPLETE_FIELDS = {**PREPARE_FIELDS, "action": COMPLETE, "merchant_prepare_id": "5"}
VECTOR_AUTH = "33333:e03852f85cad3d9e0473938eabd86826403e75a5:1763812800"


def test_sign_string_matches_the_reference_vectors() -> None:
    assert sign_string(PREPARE_FIELDS, SECRET) == "10dbe518dfcde82f35bcbca8e5f24858"
    assert sign_string(COMPLETE_FIELDS, SECRET) == "b8eb4515eac634516bbcc452fcabe429"


@pytest.mark.parametrize(("amount", "expected"), [
    ("35000", "6a422acc100ae8d71f104baac6a369f3"), ("35000.0", "08b6e5d1f13af1c404da65aaa67536fd"),
])
def test_sign_string_covers_the_raw_amount(amount: str, expected: str) -> None:
    assert sign_string({**PREPARE_FIELDS, "amount": amount}, SECRET) == expected


def test_auth_header_matches_the_reference_vector() -> None:
    assert auth_header("33333", SECRET, 1763812800) == VECTOR_AUTH
    assert auth_valid(VECTOR_AUTH, "33333", SECRET)


@pytest.mark.parametrize("header", [
    None, "", VECTOR_AUTH.replace("33333", "33334"), VECTOR_AUTH.replace(":1763812800", ":1763812801"),
    "33333:356a192b7913b04c54574d18c28d46e6395428ab:1519051543",  # Click's docs placeholder: sha1("1")
    VECTOR_AUTH + ":x", "33333:e03852f85cad3d9e0473938eabd86826403e75a5:176381280",
])
def test_auth_check_refuses_anything_else(header: str | None) -> None:
    assert not auth_valid(header, "33333", SECRET)


def test_som_formats_tiyin() -> None:
    assert (som(3500000), som(5), som(100)) == ("35000.00", "0.05", "1.00")


class Shop:
    """A stand-in shop that answers every Prepare and Complete with success, and counts what it got."""

    def __init__(self) -> None:
        self.got: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.got.append(form)
        return web.json_response({"error": 0, "merchant_prepare_id": 7, "error_note": "Success"})


@pytest.fixture
async def shop() -> AsyncIterator[tuple[Shop, str]]:
    shop = Shop()
    app = web.Application()
    app.add_routes([web.post("/notify/click/{route}", shop.handle)])
    server = TestServer(app)
    await server.start_server()
    yield shop, str(server.make_url("/notify/click"))
    await server.close()


@pytest.fixture
async def emulator(shop: tuple[Shop, str]) -> AsyncIterator[tuple[ClickEmulator, str]]:
    emulator = ClickEmulator(service_id="11111", merchant_id="22222", secret=SECRET, notify_base=shop[1],
                             merchant_user_id="33333")
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, str(server.make_url("")).rstrip("/")
    await server.close()


async def merchant_get(session: aiohttp.ClientSession, url: str, auth: str | None) -> tuple[int, dict]:
    headers = {"Accept": "application/json", **({"Auth": auth} if auth is not None else {})}
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_merchant_api_answers_from_clicks_book_and_only_with_a_valid_auth(emulator) -> None:
    click, base = emulator
    async with aiohttp.ClientSession() as session:
        [prepared, completed] = await click.caller(session).pay("inv-42", "35000.00")
        assert (prepared.error, completed.error) == (0, 0)
        [payment] = click.state.payments
        day = click_day(click.state.clock())
        by_label = f"{base}{MERCHANT_API}/payment/status_by_mti/11111/inv-42/{day}"
        auth = auth_header("33333", SECRET, 1763812800)
        assert await merchant_get(session, by_label, auth) == (200, {
            "error_code": 0, "error_note": "Success", "payment_id": payment.payment_id, "merchant_trans_id": "inv-42"})
        status = f"{base}{MERCHANT_API}/payment/status/11111/{payment.payment_id}"
        assert (await merchant_get(session, status, auth))[1]["payment_status"] == SUCCESSFUL
        assert (await merchant_get(session, status, None))[0] == 401
        assert (await merchant_get(session, status, auth_header("33333", "wrong", 1763812800)))[0] == 401
        assert (await merchant_get(session, status.replace("/11111/", "/99999/"), auth))[0] == 403
        other_day = f"{base}{MERCHANT_API}/payment/status_by_mti/11111/inv-42/2001-01-01"
        assert (await merchant_get(session, other_day, auth))[1]["error_code"] < 0, "filed under its own day"


async def test_dropped_complete_is_debited_unseen_and_delivered_late(shop, emulator) -> None:
    received, _ = shop
    click, base = emulator
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/control/drop", json={"deliveries": ["complete"]}) as response:
            assert (await response.json()) == {"drop": ["complete"]}
        [prepared, completed] = await click.caller(session).pay("inv-1", "1.00")
        assert (prepared.error, completed.dropped) == (0, True)
        assert [form["action"] for form in received.got] == [PREPARE], "the Complete never arrived"
        assert click.state.payments[0].status == SUCCESSFUL, "yet Click debited the payer"
        async with session.post(f"{base}/control/deliver") as response:
            assert (await response.json()) == {"delivered": [{"status": 200, "error": 0}]}
        assert [form["action"] for form in received.got] == [PREPARE, COMPLETE]
        assert received.got[1]["sign_string"] == sign_string(received.got[1], SECRET)


async def test_dropped_prepare_cancels_the_payment_without_a_debit(shop, emulator) -> None:
    received, _ = shop
    click, base = emulator
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/control/drop", json={"deliveries": ["prepare", "complete"]}):
            pass
        [prepared] = await click.caller(session).pay("inv-1", "1.00")
        assert prepared.dropped and received.got == [] and click.state.payments[0].status < 0
        async with session.delete(f"{base}/control/drop"):
            pass
        assert [r.error for r in await click.caller(session).pay("inv-1", "1.00")] == [0, 0]


async def test_reuse_control_sends_one_click_trans_id_across_orders(shop, emulator) -> None:
    received, _ = shop
    click, base = emulator
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/control/reuse", json={"click_trans_id": 777}) as response:
            assert (await response.json()) == {"click_trans_id": 777}
        for label in ("inv-1", "inv-2"):
            await click.caller(session).pay(label, "1.00")
        assert {form["click_trans_id"] for form in received.got} == {"777"}
        assert [form["merchant_trans_id"] for form in received.got] == ["inv-1", "inv-1", "inv-2", "inv-2"]
        async with session.delete(f"{base}/control/reuse"):
            pass
        await click.caller(session).pay("inv-3", "1.00")
        assert received.got[-1]["click_trans_id"] != "777"
        async with session.post(f"{base}/control/reuse", json={"click_trans_id": "x"}) as response:
            assert response.status == 400


async def test_requests_are_form_encoded_as_click_sends_them(shop) -> None:
    received, url = shop
    async with aiohttp.ClientSession() as session:
        caller = ClickCaller(session, url, "11111", SECRET, ClickState())
        await caller.prepare(Attempt("inv-42", "35000.00", 1234567, 7654321))
    [form] = received.got
    assert form["sign_string"] == sign_string(form, SECRET) and form["error"] == "0"
    assert set(form) == {"click_trans_id", "service_id", "click_paydoc_id", "merchant_trans_id", "amount", "action",
                         "error", "error_note", "sign_time", "sign_string"}, "no merchant_prepare_id on Prepare"
