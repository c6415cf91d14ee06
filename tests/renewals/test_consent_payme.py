"""Consent with Payme's card binding, through the real seams: the page's signed choice, the card bound at the Payme
emulator's Subscribe API as the page's script binds it, our POST with the token alone, the real worker; and
turning auto-renewal off, which deletes the card at Payme (cards.remove) and tells the user."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from billing.ports import RenewalEvent
from billing.subscriptions import get_subscription
from db import Invoice, Operation
from tests.conftest import RecordingNotifier
from tests.consent_support import choose, page_forms
from tests.helpers import new_invoice, path_of
from tests.payme_subscribe_support import SANDBOX_CARD_MASKED, bind_card
from tests.renewals.test_renewal_engine import emulators, settings
from webhook_server.runner import InProcessWorker

__all__ = ["emulators", "settings"]  # fixtures, imported for pytest

USER = 4343


def payme_of(emulators: dict[str, tuple[Any, str]]) -> tuple[Any, str]:
    emulator, base = emulators["payme"]
    return emulator, base + "/api"


async def consent_of(label: str):  # type: ignore[no-untyped-def]
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return invoice.auto_renew_consent


async def paid_with_a_bound_card(client: TestClient, worker: InProcessWorker, emulators, invoice) -> str:  # type: ignore[no-untyped-def]
    status, location = await choose(client, invoice, "payme")
    assert status == 303 and location == invoice["pay_url"] + "#payme-card"
    card = (await page_forms(client, invoice))["pay-payme-card"]  # shown now that the payer chose to renew
    _, api = payme_of(emulators)
    token = await bind_card(client.session, api)
    paid = await client.post(path_of(card["action"]), data={**card["fields"], "token": token}, allow_redirects=False)
    assert paid.status == 303 and paid.headers["Location"].endswith("&returned=1")
    await worker.drain()
    return token


async def test_the_card_form_shows_and_charges_only_after_the_choice_to_renew(client, worker, emulators):
    invoice = await new_invoice(client, user_id=USER)
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    assert 'id="renew-payme"' in page and 'id="payme-card"' not in page, "a choice first, no card form"
    payme, api = payme_of(emulators)
    token = await bind_card(client.session, api)  # a token got past the page (an old tab, a script)
    label = invoice["label"]
    fields = dict((await page_forms(client, invoice))["renew-payme"]["fields"])
    link = {name: fields[name] for name in ("exp", "sig") if name in fields}
    refused = await client.post(f"/pay/{label}/payme/card", data={**link, "token": token}, allow_redirects=False)
    assert refused.status == 409
    assert "receipts.create" not in payme.subscribe.methods and await Operation.find_all().count() == 0


async def test_pay_and_renew_with_payme_stores_the_consent_and_keeps_the_card(client, worker, emulators, clock):
    invoice = await new_invoice(client, user_id=USER)
    token = await paid_with_a_bound_card(client, worker, emulators, invoice)
    consent = await consent_of(invoice["label"])
    assert consent is not None and (consent.provider, consent.currency, consent.amount) == ("payme", "UZS", 3500000)
    assert (consent.at, consent.ip) == (clock.now, "127.0.0.1")
    subscription = await get_subscription(USER)
    assert subscription is not None and subscription.auto_renew is True
    assert (subscription.payment_token, subscription.payment_method) == (token, SANDBOX_CARD_MASKED)


async def test_a_consent_signed_for_one_provider_does_not_count_for_another(client, emulators):
    invoice = await new_invoice(client, user_id=USER)
    status, _ = await choose(client, invoice, "yookassa", changes={"provider": "payme"})
    assert status == 403 and await consent_of(invoice["label"]) is None


async def test_turning_off_deletes_the_card_at_payme_and_tells_the_user(client, worker, emulators,
                                                                       notifier: RecordingNotifier):
    invoice = await new_invoice(client, user_id=USER)
    token = await paid_with_a_bound_card(client, worker, emulators, invoice)
    payme, _ = payme_of(emulators)
    assert token in payme.subscribe.cards
    renewal_page = path_of(invoice["pay_url"]).replace("?", "/renewal?", 1)  # the footer's link, same signed link
    renewal = await client.get(renewal_page)
    assert renewal.status == 200 and 'id="cancel-renewal"' in await renewal.text()
    off = await client.post(renewal_page)
    assert off.status == 200
    await worker.drain()
    assert token not in payme.subscribe.cards and payme.subscribe.methods.count("cards.remove") == 1
    subscription = await get_subscription(USER)
    assert subscription is not None
    assert (subscription.auto_renew, subscription.payment_token, subscription.renewal_consent) == (False, None, None)
    [told] = notifier.renewals
    assert (told.event, told.user_id, told.reason) == (RenewalEvent.METHOD_DELETED, USER,
                                                      f"{SANDBOX_CARD_MASKED}, Payme")
