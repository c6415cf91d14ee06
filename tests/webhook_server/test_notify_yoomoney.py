"""POST /notify/yoomoney through real HTTP, the real Redis and a real RQ worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlencode

from db import Invoice, Operation, OperationStatus, Subscription
from tests.helpers import (
    PRICE_MONTH_RUB,
    get_json,
    new_invoice,
    notification,
    operations,
    post_notification,
    resign,
)
from tests.raw_http import raw_request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def invoice_status(label: str) -> str:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice.status.value


async def test_paid_notification_activates_the_subscription(client, worker, clock, queues, notifier):
    invoice = await new_invoice(client, user_id=7)
    fields = notification(invoice["label"])

    assert await post_notification(client, fields) == 200
    assert await worker.drain()

    status, body = await get_json(client, f"/api/invoices/{invoice['label']}")
    assert (status, body["status"], body["provider"]) == (200, "paid", "yoomoney")
    assert body["paid_amount"] == PRICE_MONTH_RUB
    status, sub = await get_json(client, "/api/users/7/subscription")
    assert status == 200
    assert sub["status"] == "active" and sub["plan"] == "month"
    assert sub["current_period_end"] == (clock.now + timedelta(days=30)).isoformat()
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED and operation.net_amount == 29003
    assert [n.user_id for n in notifier.notices] == [7]
    assert queues.depth() == 0


async def test_wrong_signature_is_rejected_and_changes_nothing(client, queues):
    invoice = await new_invoice(client)
    fields = {**notification(invoice["label"]), "sha1_hash": "0" * 40}

    assert await post_notification(client, fields) == 400
    assert await operations() == [] and queues.depth() == 0
    assert await invoice_status(invoice["label"]) == "pending"


async def test_tampered_fields_break_the_signature(client, queues):
    invoice = await new_invoice(client)
    other = await new_invoice(client, user_id=43)
    signed = notification(invoice["label"], paid_minor=100)
    for tampered in ({**signed, "amount": "290.03"}, {**signed, "label": other["label"]},
                     {**signed, "operation_id": "1"}, {**signed, "codepro": "true"}):
        assert await post_notification(client, tampered) == 400
    assert await operations() == [] and queues.depth() == 0


async def test_unsigned_notification_is_confirmed_at_once_and_activates(client, worker, yoomoney_emulator, notifier):
    """As YooMoney sends them since May 2026: no sha1_hash. The route keeps it, asks the wallet API, pays."""
    emulator, _ = yoomoney_emulator
    invoice = await new_invoice(client, user_id=70)
    operation = await emulator.pay(invoice["label"], PRICE_MONTH_RUB)
    assert emulator.deliveries == [200]
    assert [call for call, _ in emulator.api_calls] == ["operation-details"]
    await worker.drain()

    assert await invoice_status(invoice["label"]) == "paid"
    status, sub = await get_json(client, "/api/users/70/subscription")
    assert sub["status"] == "active"
    [row] = await operations()
    assert (row.operation_id, row.status, row.net_amount) == (operation.operation_id, OperationStatus.APPLIED, 29003)
    assert [n.user_id for n in notifier.notices] == [70]


async def test_forged_unsigned_notification_pays_nothing(client, worker, yoomoney_emulator, queues):
    emulator, _ = yoomoney_emulator
    invoice = await new_invoice(client)
    forged = notification(invoice["label"], signed=False)  # an operation the wallet has never seen
    assert await post_notification(client, forged) == 200, "recorded (and dismissed): YooMoney must stop"
    await worker.drain()
    [row] = await operations()
    assert row.status is OperationStatus.REJECTED and row.reason == "the wallet has no such operation"
    assert await invoice_status(invoice["label"]) == "pending" and queues.depth() == 0
    assert [call for call, _ in emulator.api_calls] == ["operation-details"]


async def test_unsigned_notification_naming_a_real_operation_pays_only_what_the_wallet_has(
        client, worker, yoomoney_emulator):
    """A forger who learned a small payment's operation_id points it at a dear invoice: the API's label wins."""
    emulator, _ = yoomoney_emulator
    cheap, dear = await new_invoice(client, user_id=71), await new_invoice(client, user_id=72, plan="year")
    emulator.drop_notifications = True
    operation = await emulator.pay(cheap["label"], PRICE_MONTH_RUB)
    forged = {**operation.notification(), "label": dear["label"], "withdraw_amount": "2990.00"}
    assert await post_notification(client, forged) == 200
    await worker.drain()
    assert (await invoice_status(cheap["label"]), await invoice_status(dear["label"])) == ("paid", "pending")


async def test_without_an_api_token_an_unsigned_notification_is_kept_unverified(plans, clock, redis_conn):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.conftest import make_settings
    from webhook_server.app import create_app

    async with TestClient(TestServer(create_app(make_settings(), plans=plans, clock=clock))) as bare:
        invoice = await new_invoice(bare)
        assert await post_notification(bare, notification(invoice["label"], signed=False)) == 200
        [row] = await operations()
        assert row.status is OperationStatus.UNVERIFIED and row.label == invoice["label"]
        assert await invoice_status(invoice["label"]) == "pending"


async def test_a_raised_withdraw_amount_on_a_signed_notification_pays_no_larger_invoice(client, worker):
    """withdraw_amount is not hashed: a 299 RUB payment re-sent with withdraw_amount=2990.00 must not pay a year."""
    year = await new_invoice(client, user_id=73, plan="year")
    signed = notification(year["label"], paid_minor=PRICE_MONTH_RUB)  # what the payer really paid, hash intact
    raised = {**signed, "withdraw_amount": "2990.00"}
    assert await post_notification(client, raised) == 200
    await worker.drain()
    [row] = await operations()
    assert row.status is OperationStatus.REJECTED and row.reason == "wrong_amount"
    assert row.amount < 29990 and await invoice_status(year["label"]) == "pending"


async def test_unknown_label_is_kept_for_review_and_acknowledged(client, queues):
    assert await post_notification(client, notification("inv_doesnotexist")) == 200
    [operation] = await operations()
    assert operation.status is OperationStatus.REJECTED and operation.reason == "unknown_label"
    assert queues.depth() == 0


async def test_underpaid_notification_never_activates(client, worker):
    invoice = await new_invoice(client)
    assert await post_notification(client, notification(invoice["label"], paid_minor=PRICE_MONTH_RUB - 1)) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) == "pending"
    assert await Subscription.find_all().to_list() == []
    [operation] = await operations()
    assert operation.reason == "wrong_amount"


async def test_wrong_currency_never_activates(client, worker):
    invoice = await new_invoice(client)
    fields = resign({**notification(invoice["label"]), "currency": "840"})
    assert await post_notification(client, fields) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) == "pending"


async def test_held_money_is_recorded_and_no_notification_releases_it(client, worker):
    """unaccepted is not covered by sha1_hash: only the wallet API releases a hold (test_yoomoney_held_release.py)."""
    invoice = await new_invoice(client)
    held = notification(invoice["label"], operation_id="555", unaccepted=True)
    protected = notification(invoice["label"], operation_id="556", codepro=True)
    assert await post_notification(client, held) == 200
    assert await post_notification(client, protected) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) == "pending"
    assert {op.status for op in await operations()} == {OperationStatus.HELD}

    released = notification(invoice["label"], operation_id="555")  # signed, unaccepted=false
    assert await post_notification(client, released) == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) == "pending"
    assert {op.status for op in await operations()} == {OperationStatus.HELD}


async def test_test_notification_is_acknowledged_and_ignored(client, queues):
    fields = notification("", operation_id="test-notification", test=True)
    assert await post_notification(client, fields) == 200
    assert await operations() == [] and queues.depth() == 0


async def test_malformed_bodies_get_400(client):
    invoice = await new_invoice(client)
    good = notification(invoice["label"])
    without_amount = {k: v for k, v in good.items() if k != "amount"}
    bodies = [b"\xff\xfe", b"a=1&&&b", b"", b"amount=1&amount=2"]
    for body in bodies:
        response = await client.post("/notify/yoomoney", data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 400, body
    assert await post_notification(client, without_amount) == 400
    assert await post_notification(client, resign({**good, "withdraw_amount": "1e9"})) == 400
    assert await post_notification(client, resign({**good, "datetime": "yesterday"})) == 400
    assert await operations() == []


async def test_invalid_utf8_in_a_signed_notifications_values_gets_400(client, queues):
    invoice = await new_invoice(client)
    signed = notification(invoice["label"])
    body = urlencode(signed).encode()
    for broken in (body.replace(b"label=", b"label=%FF%FE"), body.replace(b"label=", b"label=%C3%28"),
                   body.replace(b"sender=", b"sender=\xff"), body + b"&firstname=%ED%A0%80"):
        response = await client.post("/notify/yoomoney", data=broken, headers=FORM)
        assert response.status == 400, broken
    assert await operations() == [] and queues.depth() == 0


async def test_json_and_deep_nesting_are_no_form_and_get_400(client):
    """YooMoney notifications are forms; whatever JSON is sent, however deep, is refused before it is read."""
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 1000 + b"1" + b"}" * 1000, b'{"label":"x"}'):
        response = await client.post("/notify/yoomoney", data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400
    assert await operations() == []


async def test_invalid_utf8_in_headers_changes_nothing_of_a_signed_notification(client, worker):
    invoice = await new_invoice(client, user_id=14)
    body = urlencode(notification(invoice["label"])).encode()
    headers = {"Content-Type": b"application/x-www-form-urlencoded; charset=\xff", "Content-HMAC": b"\xff\xfe",
               "X-Content-HMAC": b"\xc3(", "Authorization": b"Bearer \xff"}
    answer = await raw_request(client, "POST", "/notify/yoomoney", headers, body)
    assert answer.status == 200
    await worker.drain()
    assert await invoice_status(invoice["label"]) == "paid"


async def test_oversized_body_gets_413(client):
    response = await client.post("/notify/yoomoney", data=b"a=" + b"x" * (1024 * 1024 + 1),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413
    assert await operations() == []


async def test_redelivery_changes_nothing(client, worker, clock, notifier):
    invoice = await new_invoice(client, user_id=8)
    fields = notification(invoice["label"])
    assert await post_notification(client, fields) == 200
    await worker.drain()
    first = await Subscription.find_one(Subscription.user_id == 8)

    assert await post_notification(client, fields) == 200
    await worker.drain()
    again = await Subscription.find_one(Subscription.user_id == 8)
    assert again.current_period_end == first.current_period_end
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_24_concurrent_deliveries_extend_once(client, worker, clock, notifier, queues):
    invoice = await new_invoice(client, user_id=9)
    fields = notification(invoice["label"])

    statuses = await asyncio.gather(*(post_notification(client, fields) for _ in range(24)))
    assert statuses == [200] * 24
    assert queues.depth() == 1
    await worker.drain()

    subscription = await Subscription.find_one(Subscription.user_id == 9)
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    assert len(await operations()) == 1 and len(notifier.notices) == 1


async def test_payment_for_an_active_subscription_extends_from_its_end(client, worker, clock):
    first = await new_invoice(client, user_id=10)
    await post_notification(client, notification(first["label"]))
    await worker.drain()
    clock.now += timedelta(days=10)
    second = await new_invoice(client, user_id=10, plan="year")
    await post_notification(client, notification(second["label"], paid_minor=299000))
    await worker.drain()

    subscription = await Subscription.find_one(Subscription.user_id == 10)
    assert subscription.current_period_end == clock.now - timedelta(days=10) + timedelta(days=30 + 365)
    assert subscription.plan == "year"


async def test_second_payment_of_a_paid_invoice_is_flagged_not_applied(client, worker, clock):
    invoice = await new_invoice(client, user_id=11)
    await post_notification(client, notification(invoice["label"], operation_id="1001"))
    await post_notification(client, notification(invoice["label"], operation_id="1002"))
    await worker.drain()

    by_id = {op.operation_id: op.status for op in await operations()}
    assert by_id == {"1001": OperationStatus.APPLIED, "1002": OperationStatus.EXTRA}
    subscription = await Subscription.find_one(Subscription.user_id == 11)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_lapsed_subscription_restarts_from_now(client, worker, clock):
    first = await new_invoice(client, user_id=12)
    await post_notification(client, notification(first["label"]))
    await worker.drain()
    clock.now += timedelta(days=45)
    status, body = await get_json(client, "/api/users/12/subscription")
    assert body["status"] == "expired"

    second = await new_invoice(client, user_id=12)
    await post_notification(client, notification(second["label"]))
    await worker.drain()
    subscription = await Subscription.find_one(Subscription.user_id == 12)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_disabled_provider_route_answers_404(settings, plans, clock, redis_conn):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.conftest import make_settings
    from webhook_server.app import create_app

    app = create_app(make_settings(yoomoney_wallet=None, yoomoney_notification_secret=None), plans=plans)
    async with TestClient(TestServer(app)) as bare:
        response = await bare.post("/notify/yoomoney", data=notification("inv_x"))
        assert response.status == 404
    assert await Operation.find_all().to_list() == []
