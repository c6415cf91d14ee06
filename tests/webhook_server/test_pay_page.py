"""GET /pay/{label}: signed links open the page; tampered, swapped or expired ones get 403/410 and change nothing."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from billing.links import signed_pay_url
from db import Invoice
from tests.helpers import new_invoice, notification, path_of, post_notification


async def test_signed_link_shows_the_quickpay_form(client):
    invoice = await new_invoice(client)
    response = await client.get(path_of(invoice["pay_url"]))
    page = await response.text()
    assert response.status == 200
    assert 'action="http://yoomoney.test/quickpay/confirm"' in page
    assert f'name="label" value="{invoice["label"]}"' in page
    assert 'name="sum" value="299.00"' in page
    assert "XTR" not in page, "Stars are paid in the bot, never on the page"
    return_url = invoice["pay_url"].replace("&", "&amp;") + "&amp;returned=1"
    assert f'name="successURL" value="{return_url}"' in page
    assert response.headers["Cache-Control"] == "no-store"


async def test_tampered_signature_gets_403(client):
    invoice = await new_invoice(client)
    url = invoice["pay_url"]
    query = parse_qs(urlsplit(url).query)
    bad = f"/pay/{invoice['label']}?exp={query['exp'][0]}&sig={'0' * 64}"
    response = await client.get(bad)
    assert response.status == 403
    assert "not valid" in await response.text()


async def test_swapped_label_gets_403(client):
    first = await new_invoice(client)
    second = await new_invoice(client, user_id=99)
    query = urlsplit(first["pay_url"]).query
    response = await client.get(f"/pay/{second['label']}?{query}")
    assert response.status == 403


async def test_extended_expiry_gets_403(client):
    invoice = await new_invoice(client)
    query = parse_qs(urlsplit(invoice["pay_url"]).query)
    later = int(query["exp"][0]) + 86400
    response = await client.get(f"/pay/{invoice['label']}?exp={later}&sig={query['sig'][0]}")
    assert response.status == 403


async def test_missing_or_malformed_parameters_get_403(client):
    invoice = await new_invoice(client)
    for query in ("", "?exp=1", "?sig=ab", "?exp=abc&sig=ab", "?exp=%C2%B2&sig=%FF"):
        response = await client.get(f"/pay/{invoice['label']}{query}")
        assert response.status == 403, query


async def test_expired_link_gets_410_and_changes_nothing(client, clock):
    invoice = await new_invoice(client)
    clock.now += timedelta(days=2)
    response = await client.get(path_of(invoice["pay_url"]))
    assert response.status == 410
    assert "expired" in (await response.text()).lower()
    stored = await Invoice.find_one(Invoice.label == invoice["label"])
    assert stored.status.value == "pending"


async def test_validly_signed_unknown_label_gets_404(client, settings, clock):
    url = signed_pay_url("http://shop.test", settings.link_key, "inv_missing", int(clock.now.timestamp()) + 60)
    response = await client.get(path_of(url))
    assert response.status == 404


async def test_return_from_the_provider_shows_confirming_until_paid(client, worker):
    invoice = await new_invoice(client)
    response = await client.get(path_of(invoice["pay_url"]) + "&returned=1")
    page = await response.text()
    assert response.status == 200
    assert "confirming" in page and 'http-equiv="refresh"' in page and "<form" not in page

    await post_notification(client, notification(invoice["label"]))
    await worker.drain()
    page = await (await client.get(path_of(invoice["pay_url"]) + "&returned=1")).text()
    assert "Paid" in page and "refresh" not in page


async def test_return_mark_does_not_bypass_the_signature(client):
    invoice = await new_invoice(client)
    response = await client.get(f"/pay/{invoice['label']}?returned=1")
    assert response.status == 403


async def test_paid_invoice_page_says_paid_and_offers_no_form(client, worker):
    invoice = await new_invoice(client)
    await post_notification(client, notification(invoice["label"]))
    await worker.drain()
    response = await client.get(path_of(invoice["pay_url"]))
    page = await response.text()
    assert response.status == 200
    assert "Paid" in page and "<form" not in page


async def test_payment_through_the_emulator_activates_the_subscription(client, worker, yoomoney_emulator):
    """The payer's path: our page's form → the emulator's Quickpay page → Pay → our notification route."""
    emulator, emulator_url = yoomoney_emulator
    invoice = await new_invoice(client, user_id=77)
    form = {"receiver": "4100118000000000", "sum": "299.00", "label": invoice["label"],
            "successURL": invoice["pay_url"]}
    async with client.session.post(f"{emulator_url}/quickpay/confirm", data=form) as confirm:
        assert confirm.status == 200 and 'id="emulator-pay"' in (await confirm.text()).replace("'", '"')
    async with client.session.post(f"{emulator_url}/quickpay/pay", data=form, allow_redirects=False) as paid:
        assert paid.status == 303
        assert paid.headers["Location"] == invoice["pay_url"]
    assert emulator.deliveries == [200]
    await worker.drain()
    response = await client.get("/api/users/77/subscription", headers={"Authorization": "Bearer test-admin-token"})
    assert (await response.json())["status"] == "active"


async def test_an_expired_link_posted_by_a_payment_button_gets_the_page_not_a_code(plans, clock, redis_conn):
    from aiohttp.test_utils import TestClient, TestServer

    from tests.conftest import make_settings
    from webhook_server.app import create_app

    settings = make_settings(yookassa_shop_id="1", yookassa_secret_key="test_key", yookassa_test_mode=True)
    async with TestClient(TestServer(create_app(settings, plans=plans, clock=clock))) as client:
        invoice = await new_invoice(client)
        query = parse_qs(urlsplit(invoice["pay_url"]).query)
        clock.now += timedelta(days=2)
        response = await client.post(f"/pay/{invoice['label']}/yookassa",
                                     data={"exp": query["exp"][0], "sig": query["sig"][0]})
        assert response.status == 410
        assert response.content_type == "text/html" and "/subscribe" in await response.text()
