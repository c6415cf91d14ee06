"""The YooMoney emulator against the reference (../shared/providers/yoomoney.md), not against our provider module:
its own signing (vectors V1–V5 and the negative vector), unsigned notifications by default, the redelivery schedule
on its own clock, dropped notifications, and the wallet API's history and details over real HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from webhook_server.emulators.yoomoney import YooMoneyEmulator, credited, kopecks, rubles, sha1_hash

SECRET = "01234567890ABCDEF01234567890"  # reference section 9
TOKEN = "emulator-test-token"
WALLET = "4100118000000000"
START = datetime(2026, 5, 25, 12, 0, tzinfo=UTC)
HASHED = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro", "label")


def fields_of(line: str) -> dict[str, str]:
    """The reference's hash input `a&b&...&secret&label` back into named fields."""
    *before, secret, label = line.split("&")
    assert secret == SECRET
    return dict(zip(HASHED, [*before, label], strict=True))


VECTORS = {  # reference section 9: the exact hash inputs and their SHA-1
    "V1": ("p2p-incoming&1234567&300.00&643&2011-07-01T09:00:00.000+04:00&41001XXXXXXXX&false&"
           "01234567890ABCDEF01234567890&YM.label.12345", "a2ee4a9195f4a90e893cff4f62eeba0b662321f9"),
    "V2": ("card-incoming&744133575212011012&970.00&643&2024-03-15T10:20:30Z&&false&01234567890ABCDEF01234567890&"
           "inv_8f3a2c1d", "f2f354e17f7fae5eaadb0a84b99900f259910828"),
    "V3": ("card-incoming&744133575212011013&48.50&643&2024-03-15T10:25:00Z&&false&01234567890ABCDEF01234567890&",
           "efc3ff63d001f1e78f89e8ea9686500e6800cbe9"),
    "V4": ("p2p-incoming&test-notification&130.43&643&2024-09-08T11:58:25Z&41001000040&false&"
           "01234567890ABCDEF01234567890&", "3892af200a507cfff392528fcf00864de5f55369"),
    "V5": ("p2p-incoming&904035776918098009&99.01&643&2024-03-15T10:30:00Z&4100175017397&false&"
           "01234567890ABCDEF01234567890&заказ-42", "473a60470e21e66dd1b77611d7405e403e38cd90"),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_signing_matches_the_reference_vectors(name: str) -> None:
    line, expected = VECTORS[name]
    assert hashlib.sha1(line.encode()).hexdigest() == expected  # the vector itself, as printed
    assert sha1_hash(fields_of(line), SECRET) == expected


def test_signing_keeps_the_empty_sender_unlike_the_negative_vector() -> None:
    dropped = "card-incoming&744133575212011012&970.00&643&2024-03-15T10:20:30Z&false&" + SECRET + "&inv_8f3a2c1d"
    assert hashlib.sha1(dropped.encode()).hexdigest() == "039477a237cb420e9d8223fe91fb3b4ac61bd52f"
    assert sha1_hash(fields_of(VECTORS["V2"][0]), SECRET) != "039477a237cb420e9d8223fe91fb3b4ac61bd52f"


@pytest.mark.parametrize(("paid", "payment_type", "net"), [
    (100000, "AC", 97000), (100000, "PC", 99009),  # the reference's doc examples: 1000 → 970.00 / 990.09
    (29900, "AC", 29003), (101, "AC", 97), (0, "AC", 0),
])
def test_commission_follows_the_reference(paid: int, payment_type: str, net: int) -> None:
    assert credited(paid, payment_type) == net


@pytest.mark.parametrize(("text", "minor"), [("299.00", 29900), ("0.05", 5), ("1000", 100000), ("1e3", None),
                                             ("10.001", None), ("-1.00", None), ("", None)])
def test_amount_text_round_trips(text: str, minor: int | None) -> None:
    assert kopecks(text) == minor
    if minor is not None:
        assert kopecks(rubles(minor)) == minor


class Shop:
    """Our server's stand-in: records every notification, answers with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict[str, str]] = []

    async def notify(self, request: web.Request) -> web.Response:
        self.received.append({name: str(value) for name, value in (await request.post()).items()})
        return web.Response(status=self.status, text="answer")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def rig() -> AsyncIterator[tuple[YooMoneyEmulator, Shop, str, Clock]]:
    shop, clock = Shop(), Clock()
    shop_app = web.Application()
    shop_app.router.add_post("/notify/yoomoney", shop.notify)
    shop_server = TestServer(shop_app)
    await shop_server.start_server()
    emulator = YooMoneyEmulator(secret=SECRET, notify_url=str(shop_server.make_url("/notify/yoomoney")),
                                api_token=TOKEN, wallet=WALLET, clock=clock)
    server = TestServer(emulator.app())
    await server.start_server()
    yield emulator, shop, str(server.make_url("")).rstrip("/"), clock
    await server.close()
    await shop_server.close()


async def api(base: str, method: str, token: str = TOKEN, **form: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/api/{method}", data=form,
                                headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status, await response.text()


async def test_a_payment_is_notified_unsigned_by_default_and_signed_on_request(rig) -> None:
    emulator, shop, _, _ = rig
    unsigned = await emulator.pay("inv_a", 29900)
    emulator.sign_notifications = True
    signed = await emulator.pay("inv_b", 29900)

    first, second = shop.received
    assert "sha1_hash" not in first
    assert first.items() >= {"notification_type": "card-incoming", "operation_id": unsigned.operation_id,
                             "amount": "290.03", "withdraw_amount": "299.00", "currency": "643", "sender": "",
                             "codepro": "false", "unaccepted": "false", "label": "inv_a",
                             "datetime": "2026-05-25T12:00:00Z"}.items()
    assert second["operation_id"] == signed.operation_id
    line = "&".join([*(second[name] for name in HASHED[:-1]), SECRET, second["label"]])
    assert second["sha1_hash"] == hashlib.sha1(line.encode()).hexdigest()
    assert emulator.deliveries == [200, 200]


async def test_a_wallet_payment_is_p2p_with_the_wallet_commission(rig) -> None:
    emulator, shop, _, _ = rig
    await emulator.pay("inv_a", 100000, payment_type="PC")
    [fields] = shop.received
    assert (fields["notification_type"], fields["amount"], fields["withdraw_amount"]) == ("p2p-incoming", "990.09",
                                                                                          "1000.00")
    assert fields["sender"]


async def test_redelivery_at_10_minutes_and_1_hour_then_it_gives_up(rig) -> None:
    emulator, shop, _, _ = rig
    shop.status = 500
    operation = await emulator.pay("inv_a", 29900)
    assert emulator.deliveries == [500]

    assert await emulator.advance(timedelta(minutes=9, seconds=59)) == []
    assert await emulator.advance(timedelta(seconds=1)) == [500]  # +10 min
    assert await emulator.advance(timedelta(minutes=49, seconds=59)) == []
    assert emulator.given_up() == []
    assert await emulator.advance(timedelta(seconds=1)) == [500]  # +1 h after the first attempt
    assert await emulator.advance(timedelta(days=2)) == []
    assert emulator.given_up() == [operation.operation_id]
    assert len(shop.received) == 3 and all(f["operation_id"] == operation.operation_id for f in shop.received)


async def test_a_200_ends_the_redeliveries_and_only_200_counts(rig) -> None:
    emulator, shop, _, _ = rig
    shop.status = 204  # a 2xx other than 200 is not taken as an acknowledgement
    await emulator.pay("inv_a", 29900)
    shop.status = 200
    assert await emulator.advance(timedelta(minutes=10)) == [200]
    assert await emulator.advance(timedelta(hours=2)) == []
    assert emulator.deliveries == [204, 200] and emulator.given_up() == []


async def test_dropped_notifications_never_arrive_but_the_history_has_the_payment(rig) -> None:
    emulator, shop, base, _ = rig
    emulator.drop_notifications = True
    operation = await emulator.pay("inv_a", 29900)
    assert await emulator.advance(timedelta(hours=2)) == []
    assert shop.received == [] and emulator.deliveries == []

    status, body = await api(base, "operation-history", type="deposition", label="inv_a")
    assert status == 200 and [op["operation_id"] for op in json.loads(body)["operations"]] == [operation.operation_id]
    assert await emulator.deliver_late(operation.operation_id) == 200
    assert [f["operation_id"] for f in shop.received] == [operation.operation_id]


async def test_operation_details_answers_amounts_as_json_numbers(rig) -> None:
    emulator, _, base, _ = rig
    operation = await emulator.pay("inv_a", 29900)
    status, text = await api(base, "operation-details", operation_id=operation.operation_id)
    assert status == 200
    assert '"amount": 290.03' in text  # a JSON number, not a string
    body = json.loads(text)
    assert body.items() >= {"operation_id": operation.operation_id, "status": "success", "direction": "in",
                            "label": "inv_a", "type": "deposition", "datetime": "2026-05-25T12:00:00Z"}.items()
    assert await api(base, "operation-details", operation_id="1") == (200, '{"error": "illegal_param_operation_id"}')


async def test_the_wallet_api_wants_the_token_and_can_be_down(rig) -> None:
    emulator, _, base, _ = rig
    status, text = await api(base, "operation-details", token="wrong", operation_id="1")
    assert (status, json.loads(text)) == (401, {"error": "invalid_token"})
    emulator.api_available = False
    assert (await api(base, "operation-history"))[0] == 503
    assert (await api(base, "operation-details", operation_id="1"))[0] == 503


async def test_protected_and_unaccepted_transfers_stay_in_progress_until_settled(rig) -> None:
    emulator, shop, base, _ = rig
    protected = await emulator.pay("inv_a", 29900, payment_type="PC", codepro=True)
    unaccepted = await emulator.pay("inv_b", 29900, unaccepted=True)
    assert [(f["codepro"], f["unaccepted"]) for f in shop.received] == [("true", "false"), ("false", "true")]

    async def status_of(operation_id: str) -> str:
        return json.loads((await api(base, "operation-details", operation_id=operation_id))[1])["status"]

    assert await status_of(protected.operation_id) == await status_of(unaccepted.operation_id) == "in_progress"
    status, body = await api(base, "operation-history", type="incoming-transfers-unaccepted")
    assert {op["operation_id"] for op in json.loads(body)["operations"]} == {protected.operation_id,
                                                                             unaccepted.operation_id}
    emulator.accept(protected.operation_id)
    emulator.refuse(unaccepted.operation_id)
    assert (await status_of(protected.operation_id), await status_of(unaccepted.operation_id)) == ("success",
                                                                                                   "refused")
    with pytest.raises(ValueError):
        emulator.accept(unaccepted.operation_id)
    assert len(shop.received) == 2, "settling sends no second notification"


async def test_history_filters_by_label_from_and_till_newest_first(rig) -> None:
    emulator, _, base, clock = rig
    ids = []
    for minute in range(4):
        clock.now = START + timedelta(minutes=minute)
        ids.append((await emulator.pay("inv_x" if minute % 2 else "inv_y", 10000 + minute)).operation_id)

    async def history(**form: str) -> list[str]:
        status, body = await api(base, "operation-history", **form)
        assert status == 200, body
        return [op["operation_id"] for op in json.loads(body)["operations"]]

    assert await history() == ids[::-1]
    assert await history(label="inv_x") == [ids[3], ids[1]]
    window = {"from": (START + timedelta(minutes=1)).isoformat(), "till": (START + timedelta(minutes=3)).isoformat()}
    assert await history(type="deposition", **window) == [ids[2], ids[1]]  # from inclusive, till exclusive
    assert await history(type="payment") == []


async def test_history_pages_by_next_record(rig) -> None:
    emulator, _, base, clock = rig
    for second in range(5):
        clock.now = START + timedelta(seconds=second)
        await emulator.pay("inv_p", 10000)
    seen: list[str] = []
    form: dict[str, Any] = {"type": "deposition", "records": "2"}
    pages = 0
    while True:
        body = json.loads((await api(base, "operation-history", **form))[1])
        seen += [op["operation_id"] for op in body["operations"]]
        pages += 1
        if "next_record" not in body:
            break
        form["start_record"] = body["next_record"]
    assert pages == 3 and len(seen) == 5 and seen == sorted(seen, key=lambda i: emulator.operations[i].at,
                                                             reverse=True)


@pytest.mark.parametrize(("form", "error"), [
    ({"type": "refunds"}, "illegal_param_type"), ({"records": "0"}, "illegal_param_records"),
    ({"records": "101"}, "illegal_param_records"), ({"start_record": "x"}, "illegal_param_start_record"),
    ({"from": "yesterday"}, "illegal_param_from"), ({"till": "2026-05-25T12:00:00"}, "illegal_param_till"),
])
async def test_history_refuses_bad_parameters_in_its_own_words(rig, form: dict[str, str], error: str) -> None:
    _, _, base, _ = rig
    status, body = await api(base, "operation-history", **form)
    assert (status, json.loads(body)) == (200, {"error": error})


async def test_the_payers_pages_take_them_back_whatever_the_shop_answered(rig) -> None:
    emulator, shop, base, _ = rig
    shop.status = 500
    form = {"receiver": WALLET, "sum": "299.00", "label": "inv_a", "successURL": "http://shop.test/back",
            "paymentType": "AC"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/quickpay/confirm", data=form) as page:
            assert page.status == 200 and "emulator-pay" in await page.text()
        async with session.post(f"{base}/quickpay/pay", data=form, allow_redirects=False) as paid:
            assert (paid.status, paid.headers["Location"]) == (303, "http://shop.test/back")
        async with session.post(f"{base}/quickpay/pay", data={**form, "receiver": "41001"},
                                allow_redirects=False) as wrong:
            assert wrong.status == 400
    assert emulator.deliveries == [500] and len(emulator.operations) == 1
