"""Payme's Subscribe API: the client and the saved-card charger (SavedMethodCharger) against the Payme
emulator over HTTP, and the emulator's own protocol (X-Auth, CORS, SMS code, test cards)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.providers.base import ChargeRequest, ChargeStatus, EventKind, SavedMethodCharger
from billing.providers.payme import Payme
from billing.providers.payme.subscribe import PaymeSubscribeError, SubscribeClient, masked
from tests import payme_subscribe_support
from tests.payme_subscribe_support import (
    SANDBOX_CARD,
    SANDBOX_CARD_MASKED,
    PaymeApi,
    bind_card,
    charger_of,
    error_code,
    rpc,
)
from tests.payme_support import PAYME_KEY, PAYME_MERCHANT, PRICE_MONTH_UZS
from webhook_server.emulators.payme_subscribe import EXPIRED_CARD, INSUFFICIENT_FUNDS_CARD, NOT_RECURRENT_CARD
from webhook_server.http_transport import AiohttpTransport

payme_api = payme_subscribe_support.payme_api  # fixtures: Payme enabled, its Subscribe API at the emulator
settings = payme_subscribe_support.settings


def request_for(token: str, label: str = "inv-renewal-1", known: str | None = None) -> ChargeRequest:
    return ChargeRequest(label=label, amount=Money(PRICE_MONTH_UZS, "UZS"), token=token,
                         idempotency_key=f"renewal:{label}", user_id=42, description="1 month, renewal",
                         known_operation_id=known)


class Remembered:
    """The renewal job's `remember`: keeps the receipt id, and what the emulator had done at that moment."""

    def __init__(self, api: PaymeApi) -> None:
        self.api = api
        self.ids: list[str] = []
        self.paid_before: list[bool] = []

    async def __call__(self, operation_id: str) -> None:
        self.ids.append(operation_id)
        self.paid_before.append(self.api.subscribe.receipts[operation_id]["state"] != 0
                                or "receipts.pay" in self.api.subscribe.methods)


def payme_with(client, api_url: str, key: str = PAYME_KEY) -> Payme:  # type: ignore[no-untyped-def]
    """A second Payme provider over the app's HTTP session (for a wrong key or an unreachable host)."""
    return Payme(merchant_id=PAYME_MERCHANT, key=key, transport=AiohttpTransport(client.session),
                 api_url=api_url)


async def test_the_app_builds_payme_as_a_saved_method_charger(client, payme_api):
    payme = charger_of(client)
    assert isinstance(payme, SavedMethodCharger)
    assert payme.name == "payme" and payme.charge_currency == "UZS"


async def test_client_reads_cards_and_receipts_with_the_server_x_auth(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    api = SubscribeClient(AiohttpTransport(client.session), payme_api.url, PAYME_MERCHANT, _key, "order_id")
    card = await api.cards_check(token)
    assert (card.number, card.token, card.recurrent, card.verified) == (SANDBOX_CARD_MASKED, token, True, True)
    receipt = await api.receipts_create(PRICE_MONTH_UZS, "inv-7", "1 month")
    assert (receipt.state, receipt.amount, receipt.pay_time, receipt.card_number) == (0, PRICE_MONTH_UZS, 0, None)
    stored = payme_api.subscribe.receipts[receipt.receipt_id]
    assert stored["account"] == [{"name": "order_id", "title": "order_id", "value": "inv-7"}]
    paid = await api.receipts_pay(receipt.receipt_id, token)
    assert paid.state == 4 and paid.card_number == SANDBOX_CARD_MASKED and paid.pay_time > 0
    assert (await api.receipts_get(receipt.receipt_id)) == paid
    with pytest.raises(PaymeSubscribeError) as unknown:
        await api.receipts_get("0" * 24)
    assert unknown.value.code == -31602 and unknown.value.message == "Receipt not found"


async def _key() -> str:
    return PAYME_KEY


async def test_a_charge_remembers_the_receipt_before_paying_it(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    remember = Remembered(payme_api)
    result = await charger_of(client).charge(request_for(token), remember)

    assert result.status is ChargeStatus.SUCCEEDED
    [receipt] = payme_api.subscribe.paid_receipts()
    assert remember.ids == [receipt["_id"]] and remember.paid_before == [False]
    assert result.operation_id == receipt["_id"]
    event = result.event
    assert event is not None
    assert (event.provider, event.operation_id, event.label, event.amount, event.kind) == (
        "payme", receipt["_id"], "inv-renewal-1", Money(PRICE_MONTH_UZS, "UZS"), EventKind.PAYMENT)
    assert event.payment_method == SANDBOX_CARD_MASKED and event.payment_token == token
    assert event.occurred_at is not None
    assert payme_api.subscribe.methods[-3:] == ["cards.check", "receipts.create", "receipts.pay"]


async def test_insufficient_funds_is_a_soft_decline(client, payme_api):
    token = await bind_card(client.session, payme_api.url, INSUFFICIENT_FUNDS_CARD, expire="1230")
    remember = Remembered(payme_api)
    result = await charger_of(client).charge(request_for(token), remember)
    assert result.status is ChargeStatus.DECLINED and not result.hard
    assert "-31630" in result.reason and result.operation_id == remember.ids[0]
    assert payme_api.subscribe.paid_receipts() == []


async def test_declines_set_through_the_control_route_then_the_card_pays_again(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    control = f"{payme_api.base}/control/cards/decline"
    async with client.session.post(control, json={"token": token, "count": 1, "code": -31303},
                                   headers={"X-Auth": f"{PAYME_MERCHANT}:{PAYME_KEY}"}) as response:
        assert response.status == 200
    async with client.session.post(control, json={"token": token}, headers={"X-Auth": PAYME_MERCHANT}) as refused:
        assert refused.status == 403, "the control route wants the server's id:key"
    payme = charger_of(client)
    first = await payme.charge(request_for(token, "inv-a"), Remembered(payme_api))
    second = await payme.charge(request_for(token, "inv-b"), Remembered(payme_api))
    assert (first.status, first.hard) == (ChargeStatus.DECLINED, False)
    assert second.status is ChargeStatus.SUCCEEDED
    assert len(payme_api.subscribe.paid_receipts()) == 1


@pytest.mark.parametrize("code", [-31301, -31400, -31300, -32500])
async def test_codes_meaning_the_card_can_never_work_are_hard_declines(client, payme_api, code):
    token = await bind_card(client.session, payme_api.url)
    payme_api.subscribe.decline_next(token, 1, code)
    result = await charger_of(client).charge(request_for(token), Remembered(payme_api))
    assert result.status is ChargeStatus.DECLINED and result.hard and str(code) in result.reason


async def test_an_unverified_or_non_recurrent_or_removed_card_is_declined_without_a_receipt(client, payme_api):
    payme = charger_of(client)
    unverified = await bind_card(client.session, payme_api.url, verify=False)
    not_recurrent = await bind_card(client.session, payme_api.url, NOT_RECURRENT_CARD)
    one_time = await bind_card(client.session, payme_api.url, save=False)
    removed = await bind_card(client.session, payme_api.url)
    assert await payme.forget(removed) is True
    for token in (unverified, not_recurrent, one_time, removed):
        result = await payme.charge(request_for(token), Remembered(payme_api))
        assert result.status is ChargeStatus.DECLINED and result.hard, token[:30]
    assert payme_api.subscribe.receipts == {}, "no receipt is made for a card that cannot be charged"


async def test_a_known_receipt_is_looked_up_and_never_paid_twice(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    payme = charger_of(client)
    first = await payme.charge(request_for(token), Remembered(payme_api))
    made = len(payme_api.subscribe.receipts)
    again = await payme.charge(request_for(token, known=first.operation_id), Remembered(payme_api))

    assert again.status is ChargeStatus.SUCCEEDED and again.event == first.event
    assert len(payme_api.subscribe.paid_receipts()) == 1 and len(payme_api.subscribe.receipts) == made
    assert payme_api.subscribe.methods[-1] == "receipts.get"


async def test_a_crash_between_remember_and_pay_is_finished_on_the_same_receipt(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    payme = charger_of(client)
    payme_api.subscribe.decline_next(token, 1, -32400)  # Payme's system error: the outcome is unknown
    remember = Remembered(payme_api)
    with pytest.raises(ProviderUnavailable):
        await payme.charge(request_for(token), remember)
    [receipt_id] = remember.ids
    rerun = await payme.charge(request_for(token, known=receipt_id), Remembered(payme_api))
    assert rerun.status is ChargeStatus.SUCCEEDED and rerun.operation_id == receipt_id
    assert [receipt["_id"] for receipt in payme_api.subscribe.paid_receipts()] == [receipt_id]
    assert len(payme_api.subscribe.receipts) == 1


async def test_a_cancelled_known_receipt_is_a_soft_decline(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    receipt = await rpc(client.session, payme_api.url, "receipts.create",
                        {"amount": PRICE_MONTH_UZS, "account": {"order_id": "inv-c"}},
                        auth=f"{PAYME_MERCHANT}:{PAYME_KEY}")
    receipt_id = receipt["result"]["receipt"]["_id"]
    cancelled = await rpc(client.session, payme_api.url, "receipts.cancel", {"id": receipt_id},
                          auth=f"{PAYME_MERCHANT}:{PAYME_KEY}")
    assert cancelled["result"]["receipt"]["state"] == 50
    result = await charger_of(client).charge(request_for(token, known=receipt_id), Remembered(payme_api))
    assert (result.status, result.hard, result.operation_id) == (ChargeStatus.DECLINED, False, receipt_id)
    assert payme_api.subscribe.paid_receipts() == []


async def test_a_wrong_key_ends_the_charge_but_keeps_the_card(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    wrong = payme_with(client, payme_api.url, key="not-the-key")
    refused = await wrong.charge(request_for(token), Remembered(payme_api))
    assert (refused.status, refused.hard, refused.keep_method) == (ChargeStatus.DECLINED, True, True)
    assert refused.reason.startswith("Payme -32504") and "not-the-key" not in refused.reason
    with pytest.raises(PaymeSubscribeError):
        await wrong.forget(token)
    misplaced = await payme_with(client, payme_api.base + "/no-such-api").charge(request_for(token),
                                                                                 Remembered(payme_api))
    assert misplaced.keep_method and misplaced.reason == "Payme -32300: HTTP 404"  # PAYME_API_URL on a wrong path
    assert payme_api.subscribe.receipts == {} and token in payme_api.subscribe.cards


async def test_payme_unreachable_or_failing_is_provider_unavailable(client, payme_api):
    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_post("/api", failing)
    broken = TestServer(app)
    await broken.start_server()
    down_url = str(broken.make_url("/api"))
    token = await bind_card(client.session, payme_api.url)
    try:
        with pytest.raises(ProviderUnavailable):
            await payme_with(client, down_url).charge(request_for(token), Remembered(payme_api))
    finally:
        await broken.close()
    with pytest.raises(ProviderUnavailable):  # the server is gone now: connection refused
        await payme_with(client, down_url).charge(request_for(token), Remembered(payme_api))


async def test_forget_removes_the_card_at_payme(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    payme = charger_of(client)
    assert await payme.forget(token) is True
    assert token not in payme_api.subscribe.cards and payme_api.subscribe.methods[-1] == "cards.remove"
    check = await rpc(client.session, payme_api.url, "cards.check", {"token": token},
                      auth=f"{PAYME_MERCHANT}:{PAYME_KEY}")
    assert error_code(check) == -31400
    assert await payme.forget(token) is True, "a card Payme no longer knows counts as removed"


async def test_a_charge_in_another_currency_is_refused(client, payme_api):
    token = await bind_card(client.session, payme_api.url)
    request = ChargeRequest(label="x", amount=Money(29900, "RUB"), token=token, idempotency_key="k", user_id=1,
                            description="d")
    with pytest.raises(ValueError):
        await charger_of(client).charge(request, Remembered(payme_api))


# ---- the emulator's protocol -------------------------------------------------------------------


async def test_front_end_methods_take_the_merchant_id_and_answer_cors(payme_api):
    async with aiohttp.ClientSession() as session:
        async with session.options(payme_api.url, headers={
            "Origin": "http://shop.test", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-auth",
        }) as preflight:
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == "*"
            assert "x-auth" in preflight.headers["Access-Control-Allow-Headers"].lower()
        created = await rpc(session, payme_api.url, "cards.create",
                            {"card": {"number": "8600 4954 7331 6478", "expire": "03/99"}, "save": True},
                            headers={"Origin": "http://shop.test"})
        card = created["result"]["card"]
        assert card["number"] == "860049******6478" and card["expire"] == "03/99" and card["verify"] is False
        wrong = await rpc(session, payme_api.url, "cards.verify", {"token": card["token"], "code": "666666"})
        assert error_code(wrong) == -31101, "a code must be requested first"
        sent = await rpc(session, payme_api.url, "cards.get_verify_code", {"token": card["token"]})
        assert sent["result"] == {"sent": True, "phone": "99890*****31", "wait": 60000}
        wrong = await rpc(session, payme_api.url, "cards.verify", {"token": card["token"], "code": "123456"})
        assert error_code(wrong) == -31103
        for method in ("cards.check", "receipts.create", "cards.remove"):
            denied = await rpc(session, payme_api.url, method, {"token": card["token"]})
            assert error_code(denied) == -32504, f"{method} wants id:key"
        nobody = await rpc(session, payme_api.url, "cards.create", {}, auth=None)
        assert error_code(nobody) == -32504


@pytest.mark.parametrize(("number", "expire", "code"), [
    (EXPIRED_CARD, "0399", -31301),
    (SANDBOX_CARD, "0120", -31301),  # an expiry in the past
    ("8600069195406312", "0399", -31300),  # bad check digit
    (SANDBOX_CARD, "1399", -31300),  # no such month
])
async def test_cards_payme_refuses_at_creation(payme_api, number, expire, code):
    async with aiohttp.ClientSession() as session:
        answer = await rpc(session, payme_api.url, "cards.create", {"card": {"number": number, "expire": expire}})
    assert error_code(answer) == code and set(answer["error"]["message"]) == {"ru", "uz", "en"}


def test_card_numbers_are_always_masked():
    assert masked("8600069195406311") == "860006******6311"
    assert masked("860031**********") == "860031**********"
    assert masked("8600 0691 9540 6311") == "860006******6311"
    assert masked("12345") == "*****"
