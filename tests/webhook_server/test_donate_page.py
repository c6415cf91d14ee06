"""GET/POST /donate: a signed link, an amount chosen within DONATION_MIN..DONATION_MAX and fixed on the invoice by
our server, never taken from the browser afterwards."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from billing.donations import donation_url
from db import Invoice, InvoiceKind, InvoiceStatus
from tests.helpers import Forms, notification, path_of, post_notification

USER = 515


def link(settings, clock, **options) -> str:
    return donation_url(settings.public_base_url, settings.link_key, USER, now=clock.now, ttl_seconds=3600,
                        **options)


async def donate_fields(client, settings, clock) -> dict[str, str]:
    page = await client.get(path_of(link(settings, clock, lang="ru")))
    assert page.status == 200
    forms = Forms()
    forms.feed(await page.text())
    return forms.forms["donate"]["fields"]


async def test_the_page_offers_the_suggested_amounts_of_the_currencies_a_provider_takes(client, settings, clock):
    page = await client.get(path_of(link(settings, clock, lang="ru")))
    text = await page.text()
    assert page.status == 200 and '<html lang="ru">' in text and "Поддержать нас" in text
    assert 'value="RUB:10000"' in text and 'value="RUB:100000"' in text
    assert "UZS" not in text  # only YooMoney is enabled here: no provider takes sums
    assert "От 100\xa0₽ до 100\xa0000\xa0₽" in text
    assert "script" not in text  # nothing the Content-Security-Policy would have to allow
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_forged_tampered_or_expired_links_change_nothing(client, settings, clock):
    good = link(settings, clock)
    for bad in (good.replace("sig=", "sig=0"), good.replace(f"user={USER}", "user=516"),
                good.replace(f"user={USER}", "user=abc"), good.split("&sig=")[0]):
        assert (await client.get(path_of(bad))).status == 403, bad
    fields = await donate_fields(client, settings, clock)
    clock.now += timedelta(hours=2)
    assert (await client.get(path_of(good))).status == 410
    late = await client.post("/donate", data={**fields, "pick": "RUB:10000"}, allow_redirects=False)
    assert late.status == 410
    forged = await client.post("/donate", data={**fields, "user": "516", "pick": "RUB:10000"})
    assert forged.status == 403
    assert await Invoice.find(Invoice.kind == InvoiceKind.DONATION).count() == 0


async def test_a_typed_amount_is_fixed_exactly_on_the_invoice(client, settings, clock):
    fields = await donate_fields(client, settings, clock)
    chosen = await client.post("/donate", data={**fields, "pick": "custom", "amount": "150,50", "currency": "RUB",
                                                "message": "  for the\nservers  "}, allow_redirects=False)
    assert chosen.status == 303
    location = chosen.headers["Location"]
    assert location.startswith(f"{settings.public_base_url}/pay/inv_") and "lang=ru" in location
    invoice = await Invoice.find_one(Invoice.label == urlsplit(location).path.rsplit("/", 1)[1])
    assert invoice.amounts == {"RUB": 15050} and invoice.donor_message == "for the servers"
    assert invoice.description == "Пожертвование" and invoice.plan is None


async def test_amounts_outside_the_limits_or_not_suggested_are_refused(client, settings, clock):
    fields = await donate_fields(client, settings, clock)
    cases = [
        ({"pick": "RUB:12345"}, "Выберите сумму"),  # not one the settings suggest
        ({"pick": "UZS:1000000"}, "Выберите сумму"),  # no provider takes sums here
        ({"pick": "RUB:10000 "}, "Выберите сумму"),
        ({"pick": ""}, "Выберите сумму"),
        ({"pick": "custom", "amount": "99.99", "currency": "RUB"}, "вне пределов"),
        ({"pick": "custom", "amount": "100000.01", "currency": "RUB"}, "вне пределов"),
        ({"pick": "custom", "amount": "999999999999", "currency": "RUB"}, "вне пределов"),
        ({"pick": "custom", "amount": "9" * 40, "currency": "RUB"}, "Выберите сумму"),
        ({"pick": "custom", "amount": "1e5", "currency": "RUB"}, "Выберите сумму"),
        ({"pick": "custom", "amount": "-500", "currency": "RUB"}, "Выберите сумму"),
        ({"pick": "custom", "amount": "150.555", "currency": "RUB"}, "Выберите сумму"),
        ({"pick": "custom", "amount": "150", "currency": "EUR"}, "Выберите сумму"),
        ({"pick": "custom", "amount": "150", "currency": "UZS"}, "Выберите сумму"),
        ({"pick": "RUB:10000", "message": "x" * 201}, "слишком длинное"),
    ]
    for change, shown in cases:
        answer = await client.post("/donate", data={**fields, **change}, allow_redirects=False)
        assert answer.status == 400, change
        assert shown in await answer.text(), change
    assert await Invoice.find(Invoice.kind == InvoiceKind.DONATION).count() == 0


async def test_a_donation_paid_with_another_amount_than_chosen_is_not_paid(client, worker, settings, clock, notifier):
    fields = await donate_fields(client, settings, clock)
    chosen = await client.post("/donate", data={**fields, "pick": "RUB:10000"}, allow_redirects=False)
    label = urlsplit(chosen.headers["Location"]).path.rsplit("/", 1)[1]
    assert await post_notification(client, notification(label, paid_minor=1000)) == 200
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PENDING
    assert await post_notification(client, notification(label, paid_minor=10000)) == 200
    await worker.drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
    assert [(notice.kind, notice.message) for notice in notifier.notices] == [("donation", None)]
