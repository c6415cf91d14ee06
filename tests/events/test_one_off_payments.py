"""payment.succeeded for an order (with the owner's order_id and metadata) and a donation (with its message); neither
touches a subscription, so no subscription event follows."""

from __future__ import annotations

from urllib.parse import urlsplit

from billing.donations import donation_url
from tests.helpers import Forms, notification, path_of, post_notification
from tests.webhook_server.test_orders_api import ORDER, post_order


async def test_a_paid_order_sends_its_order_id_and_metadata(client, worker, receiver):
    status, order = await post_order(client, ORDER)
    assert status == 201, order
    assert await post_notification(client, notification(order["label"], paid_minor=50000)) == 200
    await worker.drain()
    [event] = receiver.accepted()
    assert event["type"] == "payment.succeeded"
    data = event["data"]
    assert (data["kind"], data["invoice"], data["user_id"]) == ("order", order["label"], 77)
    assert (data["order_id"], data["metadata"]) == ("shop-1001", {"sku": "credits-100", "qty": 1, "gift": False})
    assert (data["amount"], data["currency"], data["plan"], data["description"]) == (50000, "RUB", None,
                                                                                     "100 credits")


async def test_a_paid_donation_sends_its_message(client, worker, receiver, settings, clock):
    page = await client.get(path_of(donation_url(settings.public_base_url, settings.link_key, 515, now=clock.now,
                                                 ttl_seconds=3600)))
    forms = Forms()
    forms.feed(await page.text())
    chosen = await client.post("/donate", data={**forms.forms["donate"]["fields"], "pick": "RUB:10000",
                                                "message": "for the servers"}, allow_redirects=False)
    assert chosen.status == 303
    label = urlsplit(chosen.headers["Location"]).path.rsplit("/", 1)[1]
    assert await post_notification(client, notification(label, paid_minor=10000)) == 200
    await worker.drain()
    [event] = receiver.accepted()
    assert event["type"] == "payment.succeeded"
    assert {key: event["data"][key] for key in ("kind", "user_id", "amount", "message", "plan")} == {
        "kind": "donation", "user_id": 515, "amount": 10000, "message": "for the servers", "plan": None}
