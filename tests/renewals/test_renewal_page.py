"""The payment page's footer link: the payer sees automatic renewal and turns it off under the signed link."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from billing.subscriptions import get_subscription
from tests.helpers import Forms, new_invoice, paid_with_saved_method, path_of
from webhook_server.runner import InProcessWorker

USER = 5150


async def saved_card_subscription(client: TestClient, worker: InProcessWorker) -> dict[str, str]:
    invoice = await new_invoice(client, user_id=USER)
    await paid_with_saved_method(client, worker, USER, provider="yookassa", token="pm-page-1",
                                 method="Mir •••• 0004")
    return invoice


def renewal_link(page: str) -> str:
    marker = 'id="renewal-link"'
    assert marker in page, "the payment page links to automatic renewal"
    start = page.rindex('href="', 0, page.index(marker)) + len('href="')
    return page[start:page.index('"', start)].replace("&amp;", "&")


async def test_the_footer_link_shows_auto_renewal_and_turns_it_off(client: TestClient,
                                                                   worker: InProcessWorker) -> None:
    invoice = await saved_card_subscription(client, worker)
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    link = renewal_link(page)
    renewal_page = await client.get(link)
    text = await renewal_page.text()
    assert renewal_page.status == 200 and "•••• 0004" in text and "pm-page-1" not in text
    forms = Forms()
    forms.feed(text)
    done = await client.post(forms.forms["cancel-renewal"]["action"])
    assert done.status == 200 and "Automatic renewal is off" in await done.text()
    stored = await get_subscription(USER)
    assert stored is not None and stored.auto_renew is False
    again = await (await client.get(link)).text()
    assert "cancel-renewal" not in again, "nothing left to turn off"


async def test_a_tampered_link_changes_nothing(client: TestClient, worker: InProcessWorker) -> None:
    invoice = await saved_card_subscription(client, worker)
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    link = renewal_link(page)
    tampered = link.replace("sig=", "sig=00")
    assert (await client.post(tampered)).status == 403
    assert (await client.get(tampered)).status == 403
    stored = await get_subscription(USER)
    assert stored is not None and stored.auto_renew is True


async def test_without_a_subscription_the_page_says_there_is_nothing_to_renew(client: TestClient) -> None:
    invoice = await new_invoice(client, user_id=USER)
    page = await (await client.get(path_of(invoice["pay_url"]))).text()
    response = await client.post(renewal_link(page))
    assert response.status == 200 and "nothing to renew" in await response.text()
