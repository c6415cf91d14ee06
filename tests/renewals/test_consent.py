"""Consent before any merchant-initiated charge (376-FZ), through the real seams: the payment page and its signed
choice over HTTP, YooKassa's emulator (its payment page, its notifications, its saved-method charges), the real
RQ worker and the renewal scheduler on an injected clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from billing.links import signed_pay_url
from billing.ports import RenewalEvent
from billing.renewals.scheduler import tick
from billing.subscriptions import get_subscription
from bot.texts import catalogue
from db import Invoice, InvoiceStatus, Subscription
from db.renewals import Renewal
from db.yookassa import attempts
from tests.conftest import AUTH, FrozenClock, RecordingNotifier
from tests.consent_support import choose, page_forms
from tests.helpers import new_invoice, paid_with_saved_method, path_of
from tests.yookassa_support import checkout, settings, yookassa, yookassa_emulator
from webhook_server.emulators.yookassa import YooKassaEmulator
from webhook_server.runner import InProcessWorker

__all__ = ["settings", "yookassa", "yookassa_emulator"]  # fixtures, imported for pytest

USER = 4242


def creations(emulator: YooKassaEmulator) -> list[dict[str, Any]]:
    return [body for method, path, _, body in emulator.requests if (method, path) == ("POST", "/v3/payments")]


async def stored_invoice(label: str) -> Invoice:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice


async def pay_at_yookassa(client: TestClient, worker: InProcessWorker, invoice: dict[str, Any], *,
                          renew: bool) -> Subscription:
    status, confirmation = await choose(client, invoice, "yookassa", renew=renew)
    assert status == 303, confirmation
    assert await checkout(confirmation) == 303  # the payer pays on YooKassa's page; its notification reaches us
    await worker.drain()
    subscription = await get_subscription(invoice["user_id"])
    assert subscription is not None
    return subscription


async def at_period_end(clock: FrozenClock, worker: InProcessWorker, subscription: Subscription) -> None:
    """The scheduler's ticks around the end of the paid period, and whatever they queue."""
    services = worker.runtime.renewals
    assert services is not None
    for moment in (subscription.current_period_end - timedelta(days=3), subscription.current_period_end
                   - services.policy.lead + timedelta(minutes=1), subscription.current_period_end):
        clock.now = moment
        await tick(clock(), services)
        await worker.drain()


async def test_the_page_offers_both_choices_with_the_terms_in_every_language(client, yookassa, settings, clock):
    invoice = await new_invoice(client, user_id=USER)
    query = dict(parse_qsl(urlsplit(invoice["pay_url"]).query))
    for lang, price, cancel in (("en", "299", "/cancel"), ("ru", "299", "/cancel"), ("uz", "299", "/cancel")):
        url = signed_pay_url("http://shop.test", settings.link_key, invoice["label"], int(query["exp"]), lang)
        page = await (await client.get(path_of(url))).text()
        t = catalogue().texts(lang)
        assert t("page.choice.once.title") in page and t("page.choice.renew.title") in page
        terms = page.split('id="terms-yookassa">', 1)[1].split("</p>", 1)[0]
        assert price in terms and "30" in terms and cancel in terms, terms
        assert t.moment(clock.now + timedelta(days=30)) in terms, "the next charge date"
    forms = await page_forms(client, invoice)
    assert forms["pay-yookassa"]["fields"]["choice"] == "once"
    renew = forms["renew-yookassa"]
    assert renew["action"] == f"/pay/{invoice['label']}/choose" and renew["fields"]["choice"] == "renew"
    assert {"version", "consent_sig", "exp", "sig"} <= set(renew["fields"])
    assert "pay-yoomoney" in forms and "renew-yoomoney" not in forms, "YooMoney saves nothing: pay once only"
    assert yookassa.requests == [], "showing the page creates nothing"


async def test_pay_once_saves_nothing_and_no_renewal_is_ever_opened(client, worker, yookassa, clock,
                                                                   notifier: RecordingNotifier):
    invoice = await new_invoice(client, user_id=USER)
    subscription = await pay_at_yookassa(client, worker, invoice, renew=False)
    [body] = creations(yookassa)
    assert body["save_payment_method"] is False
    assert (await stored_invoice(invoice["label"])).auto_renew_consent is None
    assert (subscription.auto_renew, subscription.payment_token, subscription.renewal_consent) == (False, None, None)

    await at_period_end(clock, worker, subscription)
    assert await Renewal.find_all().to_list() == [] and yookassa.charges == []
    assert [notice.event for notice in notifier.renewals] == [RenewalEvent.REMINDER, RenewalEvent.EXPIRED]


async def test_pay_and_renew_stores_the_consent_saves_the_card_and_the_renewal_charges_it(client, worker, yookassa,
                                                                                         clock):
    invoice = await new_invoice(client, user_id=USER)
    subscription = await pay_at_yookassa(client, worker, invoice, renew=True)
    [body] = creations(yookassa)
    assert body["save_payment_method"] is True
    consent = (await stored_invoice(invoice["label"])).auto_renew_consent
    assert consent is not None
    assert (consent.at, consent.ip, consent.provider) == (clock.now, "127.0.0.1", "yookassa")
    assert (consent.amount, consent.currency, consent.period_days) == (29900, "RUB", 30)
    assert consent.text_version.startswith("en-") and len(consent.text_version) == len("en-") + 16
    assert subscription.auto_renew is True and subscription.payment_token is not None
    assert subscription.renewal_consent == consent
    first_end = subscription.current_period_end

    await at_period_end(clock, worker, subscription)
    assert len(yookassa.charges) == 1, "charged once, without the payer"
    renewed = await get_subscription(USER)
    assert renewed is not None and renewed.current_period_end == first_end + timedelta(days=30)


async def test_the_client_address_behind_a_trusted_proxy_is_the_one_stored(client, worker, yookassa, settings):
    """The app trusts no proxy by default, so a forged X-Forwarded-For is not believed."""
    invoice = await new_invoice(client, user_id=USER)
    form = (await page_forms(client, invoice))["renew-yookassa"]
    response = await client.post(form["action"], data=form["fields"], headers={"X-Forwarded-For": "203.0.113.9"},
                                 allow_redirects=False)
    assert response.status == 303
    consent = (await stored_invoice(invoice["label"])).auto_renew_consent
    assert consent is not None and consent.ip == "127.0.0.1"


@pytest.mark.parametrize(("change", "expected"), [
    ({"consent_sig": ""}, 403), ({"consent_sig": "0" * 64}, 403), ({"version": "en-0000000000000000"}, 403),
    ({"version": "x" * 65}, 403), ({"sig": "0" * 64}, 403), ({"exp": "1"}, 403),
    ({"provider": "cloudpayments"}, 404),  # not enabled here; test_consent_payme.py swaps to an enabled one
])
async def test_a_forged_or_tampered_consent_is_refused_and_changes_nothing(client, yookassa, change, expected):
    invoice = await new_invoice(client, user_id=USER)
    status, _ = await choose(client, invoice, "yookassa", changes=change)
    assert status == expected
    assert (await stored_invoice(invoice["label"])).auto_renew_consent is None
    assert yookassa.requests == [] and await attempts(invoice["label"]) == []


async def test_malformed_choices_are_refused(client, yookassa, clock):
    invoice = await new_invoice(client, user_id=USER)
    form = (await page_forms(client, invoice))["renew-yookassa"]
    fields = form["fields"]
    for changed, expected in (({"choice": "maybe"}, 400), ({"choice": ""}, 400), ({"provider": "stripe"}, 404),
                              ({"provider": "click"}, 404)):
        response = await client.post(form["action"], data={**fields, **changed}, allow_redirects=False)
        assert response.status == expected, changed
    oversized = await client.post(form["action"], data=b"exp=" + b"1" * (1024 * 1024 + 1),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert oversized.status == 413
    clock.now += timedelta(days=2)
    expired = await client.post(form["action"], data=fields, allow_redirects=False)
    assert expired.status == 410
    assert (await stored_invoice(invoice["label"])).auto_renew_consent is None and yookassa.requests == []


async def test_pay_once_after_pay_and_renew_withdraws_the_consent_and_saves_nothing(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=USER)
    status, _ = await choose(client, invoice, "yookassa", renew=True)
    assert status == 303 and (await stored_invoice(invoice["label"])).auto_renew_consent is not None
    status, confirmation = await choose(client, invoice, "yookassa", renew=False)  # back, and the other choice
    assert status == 303 and (await stored_invoice(invoice["label"])).auto_renew_consent is None
    assert [body["save_payment_method"] for body in creations(yookassa)] == [True, False]
    assert [record.attempt for record in await attempts(invoice["label"])] == [0, 1], "a new payment, not reused"
    assert await checkout(confirmation) == 303
    await worker.drain()
    subscription = await get_subscription(USER)
    assert subscription is not None and (subscription.auto_renew, subscription.payment_token) == (False, None)


async def test_a_paid_invoice_keeps_the_choice_it_was_paid_under(client, worker, yookassa):
    invoice = await new_invoice(client, user_id=USER)
    form = (await page_forms(client, invoice))["renew-yookassa"]
    await pay_at_yookassa(client, worker, invoice, renew=False)
    assert (await stored_invoice(invoice["label"])).status is InvoiceStatus.PAID
    late = await client.post(form["action"], data=form["fields"], allow_redirects=False)
    assert late.status == 303 and late.headers["Location"] == invoice["pay_url"]
    assert (await stored_invoice(invoice["label"])).auto_renew_consent is None and len(creations(yookassa)) == 1


async def test_a_saved_method_without_consent_is_never_charged_and_is_forgotten(client, worker, yookassa, clock,
                                                                               notifier: RecordingNotifier):
    """Saved before consent existed (auto_renew on, a token, no consent): turned off, the card forgotten, the
    user told, and reminded to pay by hand instead of charged."""
    yookassa.saved_methods.add("pm-old-unconsented")
    subscription = await paid_with_saved_method(client, worker, USER, provider="yookassa",
                                                token="pm-old-unconsented", method="Visa •••• 4242")
    await Subscription.get_motor_collection().update_one({"_id": subscription.id},
                                                         {"$set": {"renewal_consent": None}})
    await at_period_end(clock, worker, subscription)
    later = await get_subscription(USER)
    assert later is not None and (later.auto_renew, later.payment_token) == (False, None)
    assert yookassa.charges == [] and await Renewal.find_all().to_list() == []
    events = [notice.event for notice in notifier.renewals]
    assert events[0] is RenewalEvent.METHOD_FORGOTTEN and RenewalEvent.REMINDER in events
    assert "Visa •••• 4242, YooKassa" == notifier.renewals[0].reason


async def test_the_admin_api_turning_off_withdraws_consent_for_good(client, worker, yookassa,
                                                                   notifier: RecordingNotifier):
    invoice = await new_invoice(client, user_id=USER)
    await pay_at_yookassa(client, worker, invoice, renew=True)
    response = await client.patch(f"/api/users/{USER}/subscription", json={"auto_renew": False}, headers=AUTH)
    assert response.status == 200 and (await response.json())["auto_renew"] is False
    await worker.drain()
    subscription = await get_subscription(USER)
    assert subscription is not None and (subscription.renewal_consent, subscription.payment_token) == (None, None)
    [told] = notifier.renewals
    assert told.event is RenewalEvent.METHOD_FORGOTTEN and told.user_id == USER, "YooKassa cannot delete a card"
    again = await client.patch(f"/api/users/{USER}/subscription", json={"auto_renew": True}, headers=AUTH)
    assert again.status == 409, "consent is given again only on the payment page"
