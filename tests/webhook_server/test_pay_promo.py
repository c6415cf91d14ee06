"""A promo code typed on the payment page (issue 18.3): a discount makes a new invoice at the discounted prices
and sends the payer to its signed page, the use counted once; a gift grants its days; a bad, used or
inapplicable code goes back to the page, which says why; a forged link is refused and changes nothing."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from billing.invoices import get_invoice
from db import Invoice
from db.promo import PromoCode, PromoRedemption
from tests.bot.test_promo import create
from tests.conftest import AUTH
from tests.helpers import new_invoice, notification, path_of, post_notification


def page_fields(html: str) -> dict[str, str]:
    form = html.split('id="promo"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


async def open_page(client, user_id: int = 41) -> tuple[dict, str, dict[str, str]]:
    invoice = await new_invoice(client, user_id=user_id)
    page = await client.get(path_of(invoice["pay_url"]))
    assert page.status == 200
    html = await page.text()
    assert 'id="promo"' in html
    return invoice, html, page_fields(html)


async def test_a_discount_code_on_the_page_opens_the_discounted_invoice_and_is_counted_once(client, worker):
    await create(client, code="PAGE-20", kind="percent", percent_off=20, max_uses=3, plans=["month"])
    invoice, _, fields = await open_page(client)
    answer = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "code": " page-20 "},
                               allow_redirects=False)
    assert answer.status == 303
    location = answer.headers["Location"]
    new_label = urlsplit(location).path.rsplit("/", 1)[1]
    assert new_label != invoice["label"] and "sig" in parse_qs(urlsplit(location).query)
    discounted = await get_invoice(new_label)
    assert discounted.amounts["RUB"] == 23920 and discounted.promo_code == "PAGE-20"
    page = await client.get(path_of(location))
    assert page.status == 200 and 'id="promo"' not in await page.text()  # one code per invoice
    assert (await PromoCode.find_one({"code": "PAGE-20"})).uses_left == 2
    assert await post_notification(client, notification(new_label, paid_minor=23920)) == 200
    await worker.drain()
    assert (await get_invoice(new_label)).paid_at is not None

    again = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "code": "PAGE-20"},
                              allow_redirects=False)
    assert "promo=already_used" in again.headers["Location"]
    assert await PromoRedemption.find({"code": "PAGE-20"}).count() == 1


async def test_refused_codes_go_back_to_the_page_which_says_why(client):
    await create(client, code="YEAR-ONLY", kind="fixed", amounts_off={"RUB": 100}, max_uses=1, plans=["year"])
    invoice, _, fields = await open_page(client)
    for code, problem in [("x", "invalid"), ("NO-SUCH", "unknown"), ("YEAR-ONLY", "wrong_plan"), ("", "invalid")]:
        answer = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "code": code},
                                   allow_redirects=False)
        assert answer.status == 303 and f"promo={problem}" in answer.headers["Location"], code
        back = await client.get(path_of(answer.headers["Location"]))
        assert 'id="promo-error"' in await back.text()
    assert await Invoice.count() == 1


async def test_a_forged_or_expired_link_is_refused_and_makes_nothing(client):
    await create(client, code="PAGE-30", kind="percent", percent_off=30, max_uses=3, plans=["month"])
    invoice, _, fields = await open_page(client)
    forged = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "sig": "0" * 64, "code": "PAGE-30"},
                               allow_redirects=False)
    assert forged.status == 403
    moved = await client.post(f"/pay/{invoice['label']}/promo",
                              data={**fields, "exp": str(int(fields["exp"]) + 3600), "code": "PAGE-30"},
                              allow_redirects=False)
    assert moved.status == 403
    assert await Invoice.count() == 1 and (await PromoCode.find_one({"code": "PAGE-30"})).uses_left == 3


async def test_a_gift_code_on_the_page_grants_its_days(client, worker):
    await create(client, code="GIFT-7", kind="gift", gift_plan="month", gift_days=7, max_uses=2)
    invoice, _, fields = await open_page(client, user_id=42)
    answer = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "code": "gift-7"})
    assert answer.status == 200 and "7 days" in await answer.text()
    await worker.drain()
    status = await client.get("/api/users/42/subscription", headers=AUTH)
    assert status.status == 200 and (await status.json())["status"] == "active"
    again = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "code": "GIFT-7"},
                              allow_redirects=False)
    assert "promo=already_used" in again.headers["Location"]


async def test_a_paid_invoice_takes_no_code(client, worker):
    await create(client, code="LATE-10", kind="percent", percent_off=10, max_uses=3)
    invoice, _, fields = await open_page(client, user_id=43)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()
    answer = await client.post(f"/pay/{invoice['label']}/promo", data={**fields, "code": "LATE-10"},
                               allow_redirects=False)
    assert "promo=not_applicable" in answer.headers["Location"]
    assert (await PromoCode.find_one({"code": "LATE-10"})).uses_left == 3
