"""billing/providers/yoomoney.py: sha1_hash vectors, verify(), wallet-API confirmation, answers, page form."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import assume, given, settings, strategies as st

from billing.errors import ProviderUnavailable
from billing.money import MINOR_DIGITS, Money
from billing.providers.base import (
    EventKind,
    NotificationRejected,
    Outcome,
    ProviderHTTPError,
    RawNotification,
    RejectReason,
)
from billing.providers.yoomoney import (
    WalletClient,
    YooMoney,
    build_notification,
    card_net_amount,
    format_amount,
    largest_payment_for,
    sign,
    wallet_net_amount,
)
from db import Operation, OperationStatus, init_db
from db.init import MEMORY_URI

SECRET = "01234567890ABCDEF01234567890"  # yoomoney.md section 9
WALLET = "4100118000000000"
QUICKPAY_URL = "http://yoomoney.test/quickpay/confirm"
API_URL = "http://wallet.test/"
API_TOKEN = "wallet-oauth-token"
# yoomoney.md 3.2: the hashed fields, every one required
HASHED_FIELDS = ("notification_type", "operation_id", "amount", "currency", "datetime", "sender", "codepro", "label")

V2_BODY = (
    b"notification_type=card-incoming&bill_id=&amount=970.00&datetime=2024-03-15T10%3A20%3A30Z&codepro=false"
    b"&sender=&sha1_hash=f2f354e17f7fae5eaadb0a84b99900f259910828&withdraw_amount=1000.00&unaccepted=false"
    b"&operation_label=2d6c6a1e-0011-5000-a000-1b2c3d4e5f60&operation_id=744133575212011012&currency=643"
    b"&label=inv_8f3a2c1d"
)
V5_BODY = (
    b"notification_type=p2p-incoming&amount=99.01&datetime=2024-03-15T10%3A30%3A00Z&codepro=false"
    b"&sender=4100175017397&sha1_hash=473a60470e21e66dd1b77611d7405e403e38cd90&operation_id=904035776918098009"
    b"&currency=643&label=%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7-42"
)


def _vector(kind: str, op: str, amount: str, when: str, sender: str, label: str) -> dict[str, str]:
    return {"notification_type": kind, "operation_id": op, "amount": amount, "currency": "643",
            "datetime": when, "sender": sender, "codepro": "false", "label": label}


V4_FIELDS = _vector("p2p-incoming", "test-notification", "130.43", "2024-09-08T11:58:25Z", "41001000040", "")

VECTORS = {  # yoomoney.md section 9
    "V1": (_vector("p2p-incoming", "1234567", "300.00", "2011-07-01T09:00:00.000+04:00", "41001XXXXXXXX",
                   "YM.label.12345"), "a2ee4a9195f4a90e893cff4f62eeba0b662321f9"),
    "V2": (_vector("card-incoming", "744133575212011012", "970.00", "2024-03-15T10:20:30Z", "", "inv_8f3a2c1d"),
           "f2f354e17f7fae5eaadb0a84b99900f259910828"),
    "V3": (_vector("card-incoming", "744133575212011013", "48.50", "2024-03-15T10:25:00Z", "", ""),
           "efc3ff63d001f1e78f89e8ea9686500e6800cbe9"),
    "V4": (V4_FIELDS, "3892af200a507cfff392528fcf00864de5f55369"),
    "V5": (_vector("p2p-incoming", "904035776918098009", "99.01", "2024-03-15T10:30:00Z", "4100175017397",
                   "заказ-42"), "473a60470e21e66dd1b77611d7405e403e38cd90"),
}


@pytest.fixture(autouse=True)
def database() -> None:
    """A fresh in-memory ledger: verify() asks it whether an operation is held (a hold is never released by a
    notification's word)."""
    asyncio.run(init_db(MEMORY_URI, f"yoomoney-unit-{uuid.uuid4().hex}"))


class FakeTransport:
    """The HttpTransport seen by WalletClient: records each call, answers canned (status, json) in turn (the
    last one again once the others are used up)."""

    def __init__(self, *answers: tuple[int, Any], error: Exception | None = None) -> None:
        self.answers = list(answers) or [(200, {})]
        self.error = error
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []

    async def post_form(self, url: str, data: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        self.calls.append((url, dict(data), dict(headers)))
        if self.error is not None:
            raise self.error
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def raw(body: bytes) -> RawNotification:
    return RawNotification("/notify/yoomoney", {"Content-Type": "application/x-www-form-urlencoded"}, body, "127.0.0.1")


def provider(transport: FakeTransport | None = None) -> YooMoney:
    client = WalletClient(transport, API_URL, API_TOKEN) if transport is not None else None
    return YooMoney(wallet=WALLET, notification_secret=SECRET, quickpay_url=QUICKPAY_URL, wallet_client=client)


def v2(**changes: str) -> dict[str, str]:
    fields = dict(parse_qsl(V2_BODY.decode(), keep_blank_values=True))
    fields.update(changes)
    return fields


def resigned(**changes: str) -> bytes:
    """V2 with some fields changed and a correct sha1_hash: only the changed values can be at fault."""
    fields = v2(**changes)
    fields["sha1_hash"] = sign(fields, SECRET)
    return urlencode(fields).encode()


async def rejection(body: bytes, transport: FakeTransport | None = None) -> RejectReason:
    with pytest.raises(NotificationRejected) as info:
        await provider(transport).verify(raw(body))
    return info.value.reason


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_sign_matches_worked_vector(name: str) -> None:
    fields, expected = VECTORS[name]
    assert sign(fields, SECRET) == expected


async def test_hash_that_drops_the_empty_sender_does_not_validate() -> None:
    wrong = "card-incoming&744133575212011012&970.00&643&2024-03-15T10:20:30Z&false&" + SECRET + "&inv_8f3a2c1d"
    wrong_hash = hashlib.sha1(wrong.encode()).hexdigest()
    assert wrong_hash == "039477a237cb420e9d8223fe91fb3b4ac61bd52f"
    assert sign(v2(), SECRET) != wrong_hash
    assert await rejection(urlencode(v2(sha1_hash=wrong_hash)).encode()) is RejectReason.BAD_SIGNATURE


async def test_valid_card_notification_verifies() -> None:
    event = await provider().verify(raw(V2_BODY))
    assert (event.provider, event.kind) == ("yoomoney", EventKind.PAYMENT)
    assert (event.operation_id, event.label) == ("744133575212011012", "inv_8f3a2c1d")
    assert (event.amount, event.net_amount) == (Money(100000, "RUB"), Money(97000, "RUB"))  # withdraw_amount, amount
    assert event.occurred_at == datetime(2024, 3, 15, 10, 20, 30, tzinfo=UTC)


@pytest.mark.parametrize(("field", "value"), [
    ("amount", "971.00"), ("label", "inv_00000000"), ("operation_id", "744133575212011013"),
    ("currency", "840"), ("datetime", "2024-03-15T10:20:31Z"), ("sender", "41001000040"),
    ("codepro", "true"), ("notification_type", "p2p-incoming"),
])
async def test_tampered_hashed_field_is_rejected(field: str, value: str) -> None:
    assert await rejection(urlencode(v2(**{field: value})).encode()) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("given_hash", ["0" * 40, " ", "f2f354e17f7fae5eaadb0a84b99900f25991082", "заказ"])
async def test_wrong_hash_is_rejected(given_hash: str) -> None:
    assert await rejection(urlencode(v2(sha1_hash=given_hash)).encode()) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("field", HASHED_FIELDS)
async def test_missing_field_is_malformed(field: str) -> None:
    fields = v2()
    del fields[field]
    assert await rejection(urlencode(fields).encode()) is RejectReason.MALFORMED


@pytest.mark.parametrize("body", [
    V2_BODY.replace(b"label=inv_8f3a2c1d", b"label=%FF%FE"),  # percent-encoded bytes that are not UTF-8
    V2_BODY.replace(b"label=inv_8f3a2c1d", b"label=\xff"),
    V2_BODY + b"&amount=970.00",  # repeated field, even with the same value
    V2_BODY + b"&label=inv_other",
    b"this is not a form",
    b"",
], ids=["bad-percent-utf8", "bad-raw-utf8", "repeated-amount", "repeated-label", "not-a-form", "empty"])
async def test_malformed_body_is_rejected(body: bytes) -> None:
    assert await rejection(body) is RejectReason.MALFORMED


@pytest.mark.parametrize(("field", "value"), [
    *[("amount", bad) for bad in ("1e3", "10.001", "-970.00", " 970.00", "970,00", "", "NaN", "Infinity", "0x10")],
    ("withdraw_amount", "1e3"), ("withdraw_amount", "1000.001"),
    ("notification_type", "incoming-transfer"), ("operation_id", ""), ("datetime", "15.03.2024 10:20"),
])
async def test_signed_but_unreadable_value_is_malformed(field: str, value: str) -> None:
    assert await rejection(resigned(**{field: value})) is RejectReason.MALFORMED


async def test_amount_with_non_ascii_digits_is_malformed() -> None:
    # Arabic-Indic digits: re's \d and Decimal both accept them; YooMoney amounts are ASCII "970.00".
    assert await rejection(resigned(amount="٩٧٠.٠٠")) is RejectReason.MALFORMED


@pytest.mark.parametrize(("field", "value"), [
    ("codepro", "True"), ("codepro", "1"), ("codepro", ""), ("unaccepted", "yes"), ("unaccepted", "FALSE"),
    ("test_notification", "1"),
])
async def test_boolean_other_than_true_or_false_is_malformed(field: str, value: str) -> None:
    assert await rejection(resigned(**{field: value})) is RejectReason.MALFORMED


async def test_non_ascii_percent_encoded_label_verifies() -> None:
    event = await provider().verify(raw(V5_BODY))
    assert event.label == "заказ-42"
    assert event.kind is EventKind.PAYMENT
    assert event.amount == event.net_amount == Money(9901, "RUB")  # p2p without withdraw_amount


@pytest.mark.parametrize("body", [
    *[urlencode({**V4_FIELDS, **extra, "sha1_hash": VECTORS["V4"][1]}).encode()
      for extra in ({"test_notification": "true"}, {"test_notification": "false"}, {})],
    resigned(test_notification="true"),  # flag set, real-looking operation_id
], ids=["flag-true", "flag-false-test-op-id", "test-op-id", "flag-true-real-op-id"])
async def test_settings_page_test_notification_is_a_test_event(body: bytes) -> None:
    assert (await provider().verify(raw(body))).kind is EventKind.TEST


@pytest.mark.parametrize("changes", [{"unaccepted": "true"}, {"codepro": "true"}])
async def test_money_not_yet_available_is_held(changes: dict[str, str]) -> None:
    event = await provider().verify(raw(resigned(**changes)))
    assert event.kind is EventKind.HELD


@pytest.mark.parametrize("code", ["840", "860", "UZS", "XTR", "RUB", ""])
async def test_currency_other_than_643_is_no_currency_an_invoice_is_priced_in(code: str) -> None:
    """The wallet takes roubles only (code 643): any other `currency` is kept for review, never matched against
    an invoice's UZS or XTR price."""
    event = await provider().verify(raw(resigned(currency=code)))
    assert event.amount.currency not in MINOR_DIGITS and code in event.amount.currency
    assert event.amount.minor == 100000


# --- notifications without sha1_hash: kept as unverified, paid only as the wallet API has them ---

UNSIGNED = urlencode({k: v for k, v in v2().items() if k != "sha1_hash"}).encode()
CONFIRMED = {"operation_id": "744133575212011012", "status": "success", "direction": "in",
             "label": "inv_8f3a2c1d", "amount": 970.0, "type": "deposition", "datetime": "2024-03-15T10:20:30Z"}


@pytest.mark.parametrize("body", [UNSIGNED, urlencode(v2(sha1_hash="")).encode()], ids=["absent", "empty"])
async def test_unsigned_notification_is_unverified_without_asking_anyone(body: bytes) -> None:
    transport = FakeTransport()
    event = await provider(transport).verify(raw(body))
    assert (event.kind, event.operation_id, event.label) == (EventKind.UNVERIFIED, "744133575212011012",
                                                             "inv_8f3a2c1d")
    assert (event.amount, event.net_amount) == (Money(100000, "RUB"), Money(97000, "RUB"))  # as notified, for review
    assert transport.calls == []
    assert (await provider().verify(raw(body))).kind is EventKind.UNVERIFIED  # no token: kept all the same


async def test_unsigned_test_notification_is_still_only_a_test() -> None:
    body = urlencode({**V4_FIELDS, "test_notification": "true"}).encode()
    assert (await provider().verify(raw(body))).kind is EventKind.TEST


async def test_unsigned_but_malformed_is_rejected() -> None:
    assert await rejection(urlencode({k: v for k, v in v2(amount="1e3").items() if k != "sha1_hash"}).encode()) \
        is RejectReason.MALFORMED


async def unverified(body: bytes = UNSIGNED) -> Any:
    return await provider().verify(raw(body))


@pytest.mark.parametrize("api_amount", ["970.00", 970.0, 970])
async def test_wallet_api_confirms_with_its_own_record(api_amount: Any) -> None:
    transport = FakeTransport((200, {**CONFIRMED, "amount": api_amount}))
    check = await provider(transport).confirm_operation(await unverified())
    assert check.event is not None and not check.refused
    event = check.event
    assert (event.operation_id, event.label, event.kind) == ("744133575212011012", "inv_8f3a2c1d", EventKind.PAYMENT)
    assert (event.amount, event.net_amount) == (Money(100000, "RUB"), Money(97000, "RUB"))
    [(url, data, headers)] = transport.calls
    assert url == "http://wallet.test/api/operation-details"
    assert data == {"operation_id": "744133575212011012"}
    assert headers["Authorization"] == f"Bearer {API_TOKEN}"


async def test_the_api_label_and_credit_win_over_the_notifications() -> None:
    # a forged notification names a real operation, but another invoice and a bigger payment
    forged = urlencode({k: v for k, v in v2(label="inv_expensive", amount="9700.00", withdraw_amount="10000.00")
                        .items() if k != "sha1_hash"}).encode()
    check = await provider(FakeTransport((200, CONFIRMED))).confirm_operation(await unverified(forged))
    assert check.event is not None
    assert (check.event.label, check.event.net_amount, check.event.amount) == (
        "inv_8f3a2c1d", Money(97000, "RUB"), Money(100001, "RUB"))  # the most a 970.00 credit can come from


async def test_the_payer_amount_is_what_the_credit_implies_never_more_than_notified() -> None:
    # The API confirms a 0.97 RUB credit; the unhashed withdraw_amount claims 1000.00 RUB.
    body = urlencode({k: v for k, v in v2(amount="0.97").items() if k != "sha1_hash"}).encode()
    check = await provider(FakeTransport((200, {**CONFIRMED, "amount": 0.97}))).confirm_operation(
        await unverified(body))
    assert check.event is not None and check.event.amount == Money(101, "RUB")  # 1.01 by card → 0.97 at most
    lower = urlencode({k: v for k, v in v2(withdraw_amount="990.00").items() if k != "sha1_hash"}).encode()
    check = await provider(FakeTransport((200, CONFIRMED))).confirm_operation(await unverified(lower))
    assert check.event is not None and check.event.amount == Money(99000, "RUB")


async def test_an_operation_in_progress_is_held() -> None:
    check = await provider(FakeTransport((200, {**CONFIRMED, "status": "in_progress"}))).confirm_operation(
        await unverified())
    assert check.event is not None and check.event.kind is EventKind.HELD


@pytest.mark.parametrize(("answer", "refused"), [
    ((200, {**CONFIRMED, "status": "refused"}), True),
    ((200, {**CONFIRMED, "direction": "out"}), False),
    ((200, {**CONFIRMED, "operation_id": "1"}), False),
    ((200, {"error": "illegal_param_operation_id"}), False),
], ids=["refused", "outgoing", "other-operation", "unknown-op"])
async def test_what_the_wallet_does_not_confirm_gives_no_event(answer: tuple[int, Any], refused: bool) -> None:
    transport = FakeTransport(answer)
    check = await provider(transport).confirm_operation(await unverified())
    assert (check.event, check.refused) == (None, refused) and check.reason
    assert len(transport.calls) == 1


@pytest.mark.parametrize("transport", [
    FakeTransport(error=ProviderHTTPError("connection refused")), FakeTransport((500, None)),
    FakeTransport((502, {})), FakeTransport((401, {"error": "invalid_token"})),
    FakeTransport((200, {**CONFIRMED, "amount": "lots"})), FakeTransport((200, {**CONFIRMED, "status": "new"})),
    FakeTransport((404, None)), FakeTransport((200, {"error": "illegal_param_type"})), FakeTransport((200, None)),
], ids=["network", "http-500", "http-502", "token-revoked", "unreadable-amount", "unknown-status",
        "wrong-api-url-404", "other-error", "not-json"])
async def test_a_wallet_api_that_cannot_answer_is_provider_unavailable(transport: FakeTransport) -> None:
    with pytest.raises(ProviderUnavailable):
        await provider(transport).confirm_operation(await unverified())


async def test_without_a_token_the_wallet_cannot_be_asked() -> None:
    assert provider().reconcilable is False and provider(FakeTransport()).reconcilable is True
    with pytest.raises(ProviderUnavailable, match="YOOMONEY_API_TOKEN"):
        await provider().confirm_operation(await unverified())


# --- a signed PAYMENT rests on unaccepted=false, which the hash does not cover ---

async def test_a_signed_payment_is_paid_as_the_wallet_api_has_it() -> None:
    transport = FakeTransport((200, CONFIRMED))
    event = await provider(transport).verify(raw(V2_BODY))
    assert (event.kind, event.label, event.net_amount) == (EventKind.PAYMENT, "inv_8f3a2c1d", Money(97000, "RUB"))
    assert [data for _, data, _ in transport.calls] == [{"operation_id": "744133575212011012"}]


@pytest.mark.parametrize("transport", [
    FakeTransport((200, {**CONFIRMED, "status": "in_progress"})),
    FakeTransport((200, {**CONFIRMED, "status": "refused"})),
    FakeTransport((503, None)), FakeTransport(error=ProviderHTTPError("connection refused")),
], ids=["in-progress", "refused", "api-503", "api-unreachable"])
async def test_a_signed_payment_the_wallet_api_does_not_show_credited_is_held(transport: FakeTransport) -> None:
    event = await provider(transport).verify(raw(V2_BODY))
    assert event.kind is EventKind.HELD and event.operation_id == "744133575212011012"


async def held_row(operation_id: str = "744133575212011012") -> None:
    await Operation(provider="yoomoney", operation_id=operation_id, label="inv_8f3a2c1d", amount=100000,
                    currency="RUB", status=OperationStatus.HELD, recorded_at=datetime.now(UTC)).insert()


@pytest.mark.parametrize("transport", [None, FakeTransport((200, {"error": "illegal_param_operation_id"}))],
                         ids=["no-wallet-api", "unknown-to-the-api"])
async def test_the_notifications_word_pays_a_fresh_operation_but_never_releases_a_hold(
        transport: FakeTransport | None) -> None:
    assert (await provider(transport).verify(raw(V2_BODY))).kind is EventKind.PAYMENT
    await held_row()
    assert (await provider(transport).verify(raw(V2_BODY))).kind is EventKind.HELD


async def history(transport: FakeTransport) -> list[list[str]]:
    client = WalletClient(transport, API_URL, API_TOKEN)
    start, end = datetime(2026, 5, 20, tzinfo=UTC), datetime(2026, 5, 23, tzinfo=UTC)
    return [[op["operation_id"] for op in page] async for page in client.incoming_pages(start, end)]


async def test_history_is_read_page_by_page_until_next_record_is_absent() -> None:
    incoming = {**CONFIRMED, "operation_id": "1"}
    transport = FakeTransport(
        (200, {"next_record": "2", "operations": [incoming, {**CONFIRMED, "operation_id": "2", "direction": "out"}]}),
        (200, {"operations": [{**incoming, "operation_id": "3"}]}),
    )
    assert await history(transport) == [["1"], ["3"]]  # outgoing operations are not ours to record
    (url, first, _), (_, second, _) = transport.calls
    assert url == "http://wallet.test/api/operation-history"
    assert first == {"type": "deposition", "from": "2026-05-20T00:00:00+00:00", "till": "2026-05-23T00:00:00+00:00",
                     "records": "100"}
    assert second == {**first, "start_record": "2"}


@pytest.mark.parametrize("transport", [
    FakeTransport((200, {"error": "illegal_param_from"})),
    FakeTransport((200, {"next_record": "5", "operations": []})),  # a cursor that never moves on
    FakeTransport((500, None)),
], ids=["api-error", "stuck-cursor", "http-500"])
async def test_a_history_that_cannot_be_read_is_provider_unavailable(transport: FakeTransport) -> None:
    with pytest.raises(ProviderUnavailable):
        await history(transport)


# --- the signed path: withdraw_amount is not hashed ---

async def test_a_raised_withdraw_amount_is_bounded_by_the_hashed_credit() -> None:
    event = await provider().verify(raw(resigned(withdraw_amount="10000.00")))  # amount 970.00 is hashed
    assert event.amount == Money(largest_payment_for(97000), "RUB") and event.amount.minor < 100100
    assert (await provider().verify(raw(V2_BODY))).amount == Money(100000, "RUB"), "an honest one is kept"


@settings(max_examples=300, deadline=None)
@given(paid=st.integers(0, 10**11))
def test_the_bound_never_shorts_an_honest_payer_and_is_sharp(paid: int) -> None:
    for credit in (card_net_amount, wallet_net_amount):
        net = credit(paid)
        largest = largest_payment_for(net)
        assert largest >= paid
        assert card_net_amount(largest + 1) > net and wallet_net_amount(largest + 1) > net


@pytest.mark.parametrize(("net", "largest"), [(97000, 100001), (29003, 29901), (99009, 102072), (0, 1)])
def test_largest_payment_for_known_credits(net: int, largest: int) -> None:
    # card: 29901 - ceil(897.03) = 29003, 29902 - 898 = 29004; so 29901 is the most a 290.03 credit explains
    assert largest_payment_for(net) == largest
    assert card_net_amount(largest) <= net < card_net_amount(largest + 1)


@pytest.mark.parametrize(("paid", "net"), [(100000, 99009), (300, 297), (101, 100), (0, 0)])
def test_wallet_net_amount_follows_the_reference(paid: int, net: int) -> None:
    assert wallet_net_amount(paid) == net  # 1000.00 → 990.09 is the reference's example


# --- building notifications, amounts, answers, the Quickpay form ---

@pytest.mark.parametrize(("kwargs", "kind"), [({}, EventKind.PAYMENT), ({"unaccepted": True}, EventKind.HELD),
                                              ({"codepro": True}, EventKind.HELD), ({"test": True}, EventKind.TEST)])
async def test_built_notification_round_trips_through_verify(kwargs: dict[str, bool], kind: EventKind) -> None:
    fields = build_notification(SECRET, operation_id="653707199659002312", paid=Money(29900, "RUB"),
                                label="inv_round", **kwargs)
    event = await provider().verify(raw(urlencode(fields).encode()))
    assert (event.operation_id, event.label, event.kind) == ("653707199659002312", "inv_round", kind)
    assert event.net_amount == Money(card_net_amount(29900), "RUB")
    assert event.amount == (event.net_amount if kwargs.get("test") else Money(29900, "RUB"))


@pytest.mark.parametrize(("paid", "net"), [(100000, 97000), (200, 194), (101, 97), (100, 97), (1, 0), (0, 0)])
def test_card_net_amount_rounds_the_commission_up(paid: int, net: int) -> None:
    assert card_net_amount(paid) == net


@pytest.mark.parametrize(("minor", "text"), [(0, "0.00"), (5, "0.05"), (29900, "299.00"), (100001, "1000.01")])
def test_format_amount_gives_rubles_with_two_decimals(minor: int, text: str) -> None:
    assert format_amount(minor) == text


@pytest.mark.parametrize("outcome", list(Outcome))
def test_whatever_was_recorded_is_answered_200_so_yoomoney_stops(outcome: Outcome) -> None:
    assert provider().answer(outcome).status == 200


@pytest.mark.parametrize("reason", list(RejectReason))
def test_rejected_notification_gets_400_and_own_failure_500(reason: RejectReason) -> None:
    assert provider().reject(NotificationRejected(reason, "detail")).status == 400
    assert provider().retry_later().status == 500  # a 5xx makes YooMoney deliver again


def test_page_form_posts_the_quickpay_fields() -> None:
    form = provider().page_form(label="inv_1", amounts={"RUB": 29900, "UZS": 3500000}, title="1 month",
                                success_url="http://shop.test/pay/inv_1/done")
    assert form is not None and (form.provider, form.action, form.method) == ("yoomoney", QUICKPAY_URL, "post")
    assert form.fields.items() >= {"receiver": WALLET, "quickpay-form": "button", "paymentType": "AC", "sum": "299.00",
                                   "label": "inv_1", "successURL": "http://shop.test/pay/inv_1/done"}.items()


def test_page_form_without_rub_price_is_none() -> None:
    assert provider().page_form(label="inv_1", amounts={"UZS": 3500000}, title="t", success_url="http://x") is None


_text = st.text(max_size=30)


@settings(max_examples=150, deadline=None)
@given(operation_id=st.text(min_size=1, max_size=30).filter(lambda s: s != "test-notification"),
       paid=st.integers(0, 10**14 - 1), label=_text, sender=_text,
       notification_type=st.sampled_from(["p2p-incoming", "card-incoming"]), codepro=st.booleans(),
       # hypothesis takes naive bounds; timezones= makes every value aware UTC
       when=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),  # noqa: DTZ001
       field=st.sampled_from(HASHED_FIELDS), replacement=_text)
def test_built_notification_verifies_and_any_hashed_change_breaks_it(
    operation_id: str, paid: int, label: str, sender: str, notification_type: str, codepro: bool,
    when: datetime, field: str, replacement: str,
) -> None:
    fields = build_notification(SECRET, operation_id=operation_id, paid=Money(paid, "RUB"), label=label,
                                sender=sender, notification_type=notification_type, codepro=codepro, occurred_at=when)
    event = asyncio.run(provider().verify(raw(urlencode(fields).encode())))
    assert (event.operation_id, event.label, event.amount) == (operation_id, label, Money(paid, "RUB"))
    assert event.kind is (EventKind.HELD if codepro else EventKind.PAYMENT)
    assume(replacement != fields[field])
    tampered = urlencode({**fields, field: replacement}).encode()
    with pytest.raises(NotificationRejected) as info:
        asyncio.run(provider().verify(raw(tampered)))
    assert info.value.reason is RejectReason.BAD_SIGNATURE


async def test_datetime_without_an_offset_is_malformed() -> None:
    fields = build_notification(SECRET, operation_id="1", paid=Money(100, "RUB"), label="inv_a")
    fields["datetime"] = "2024-03-15T10:20:30"
    fields["sha1_hash"] = sign(fields, SECRET)
    with pytest.raises(NotificationRejected) as err:
        await provider().verify(raw(urlencode(fields).encode()))
    assert err.value.reason is RejectReason.MALFORMED


async def test_unaccepted_flag_is_checked_even_when_codepro_is_set() -> None:
    fields = build_notification(SECRET, operation_id="1", paid=Money(100, "RUB"), label="inv_a", codepro=True)
    fields["unaccepted"] = "maybe"
    with pytest.raises(NotificationRejected) as err:
        await provider().verify(raw(urlencode(fields).encode()))
    assert err.value.reason is RejectReason.MALFORMED
