"""The konsol.pro module: the reference's worked vectors, the tolerant readers, and the API client against the
emulator over real HTTP (errors typed by what a caller may do next)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from billing.payouts.cards import CardCipher, card_key, luhn_valid, normalize_card, normalize_phone, parse_amount_input
from billing.providers.base import NotificationRejected, RawNotification, RejectReason
from billing.providers.konsol import (
    FALLBACK_BANKS,
    KonsolAuthFailed,
    KonsolClient,
    KonsolNotFound,
    KonsolNotSent,
    KonsolOutcomeUnknown,
    KonsolRejected,
    KonsolServerError,
    PayoutState,
    WebhookAnswer,
    WebhookTooLarge,
    answer_for,
    claim_label,
    format_amount,
    mask_card,
    mask_phone,
    parse_amount,
    parse_balance,
    parse_banks,
    parse_payment,
    payment_request,
    payout_state,
    read_webhook,
    scrub,
    sign_webhook,
    url_token,
    webhook_answer,
    webhook_url,
)
from tests.konsol_support import CARD, KONSOL_SECRET, KONSOL_TOKEN, PHONE, SBER, konsol_server  # noqa: F401
from tests.webhook_server.test_redis_faults import free_port
from webhook_server.emulators.konsol import KonsolEmulator, signature as emulator_signature
from webhook_server.payout_services import OwnSessionTransport

VECTOR_BODY = (b'{"event":"payment.completed","data":{"id":"3f1c2a9e-5b7d-4e21-9c3a-0d8e6f4b2a10","amount":"1000.00",'
               b'"status":"executed"},"timestamp":"2025-03-01T12:00:00Z"}')
VECTOR_SIGNATURE = "b942c026a2ae6716d680aa0ba5d87efaf033d6a30467823c93b223525018a9be"


def raw(body: bytes, **headers: str) -> RawNotification:
    return RawNotification(path="/notify/konsol", headers={"Content-Type": "application/json", **headers}, body=body,
                           remote="84.201.153.160")


# ---- the reference's worked vectors ----------------------------------------------------------------

def test_webhook_signature_matches_the_reference_vector():
    assert len(VECTOR_BODY) == 156
    assert sign_webhook(VECTOR_BODY, "konsol_webhook_test_secret") == VECTOR_SIGNATURE


def test_a_trailing_newline_changes_the_signature_and_is_refused():
    assert sign_webhook(VECTOR_BODY + b"\n", KONSOL_SECRET) == (
        "9a77dd6c247ee9e6945f1e8b242af10f04dc9d1e0aa76253596bc911fc4e82a0")
    with pytest.raises(NotificationRejected) as refused:
        read_webhook(raw(VECTOR_BODY + b"\n", **{"X-Konsol-Signature": VECTOR_SIGNATURE}), secret=KONSOL_SECRET,
                     query_token=None)
    assert refused.value.reason is RejectReason.BAD_SIGNATURE


def test_the_url_token_matches_the_reference_vector():
    token = "436d6e70e99caa54b2248b65635f15dc55890adb0f903faa3c7764c4cc2f04fc"
    assert url_token(KONSOL_SECRET) == token
    assert webhook_url("https://pay.example.org/", KONSOL_SECRET) == f"https://pay.example.org/notify/konsol?token={token}"
    assert webhook_url("https://pay.example.org", None) == "https://pay.example.org/notify/konsol"


def test_the_auth_header_is_bearer_and_the_token():
    client = KonsolClient(OwnSessionTransport(1), base_url="http://x", token="test_token_123", timeout=1)
    assert client.auth_headers()["Authorization"] == "Bearer test_token_123"


@pytest.mark.parametrize(("kopecks", "text"), [(100000, "1000.00"), (123456, "1234.56"), (99, "0.99"), (5, "0.05")])
def test_kopecks_and_konsol_amounts_convert_exactly_both_ways(kopecks, text):
    assert format_amount(kopecks) == text
    assert parse_amount(text) == kopecks


@pytest.mark.parametrize("bad", ["1e3", "1000.001", "-5", "", "1,000.00", None, True, "NaN"])
def test_anything_but_a_decimal_amount_is_refused(bad):
    with pytest.raises(ValueError):
        parse_amount(bad)


def test_card_vectors_luhn_and_masks():
    assert luhn_valid("4111111111111111") and mask_card("4111111111111111") == "411111******1111"
    assert luhn_valid("2200000000000004") and mask_card("2200000000000004") == "220000******0004"
    assert normalize_card("2200700122223333") is None, "Luhn-invalid"
    assert normalize_card("4111 1111-1111 1111") == "4111111111111111"
    assert normalize_card("411111111111111") is None, "15 digits"
    assert normalize_card("4111111111111111a") is None


def test_the_card_key_matches_the_reference_vector_and_encrypts():
    assert card_key(b"link_secret_example") == b"qpLIYtX17pfLtPjayU170ke1vcmTceXbN49IPHcpaeA="
    cipher = CardCipher.from_link_key(b"link_secret_example")
    token = cipher.encrypt(CARD)
    assert CARD not in token and cipher.decrypt(token) == CARD
    assert CardCipher.from_link_key(b"another").encrypt(CARD) != token


@pytest.mark.parametrize(("typed", "phone"), [
    ("+7 916 123-45-67", "+79161234567"), ("89161234567", "+79161234567"), ("79161234567", "+79161234567"),
    ("9161234567", "+79161234567"), ("(916) 123 45 67", "+79161234567"), ("+998901234567", "+998901234567"),
    ("+0123456789", None), ("12345", None), ("+7916abc", None), ("", None),
])
def test_phones_are_read_as_e164(typed, phone):
    assert normalize_phone(typed) == phone


@pytest.mark.parametrize(("typed", "kopecks"), [
    ("1500", 150000), ("1 500", 150000), ("1500,5", 150050), ("1500.50 ₽", 150050), ("0.01", 1),
    ("0", None), ("-5", None), ("1e3", None), ("15.555", None), ("abc", None), ("", None),
])
def test_typed_amounts_are_read_exactly(typed, kopecks):
    assert parse_amount_input(typed) == kopecks


def test_phones_and_card_runs_are_scrubbed_from_provider_text():
    text = scrub(f"card {CARD} declined, payee +7 916 123-45-67, id 3f1c2a9e, amount 1000.00")
    assert CARD not in text and "220070******6412" in text
    assert "123-45-67" not in text and "+7******4567" in text
    assert "3f1c2a9e" in text and "1000.00" in text
    assert mask_phone(PHONE) == "+7******4567"
    assert len(scrub("x" * 900)) == 500


# ---- webhook reading -------------------------------------------------------------------------------

def test_a_signed_webhook_yields_the_payment_id_and_hints_only():
    hint = read_webhook(raw(VECTOR_BODY, **{"x-konsol-signature": VECTOR_SIGNATURE.upper()}), secret=KONSOL_SECRET,
                        query_token=None)
    assert (hint.payment_id, hint.event, hint.status, hint.amount, hint.authenticated_by) == (
        "3f1c2a9e-5b7d-4e21-9c3a-0d8e6f4b2a10", "payment.completed", "executed", "1000.00", "signature")


def test_the_url_token_authenticates_instead_of_the_header():
    hint = read_webhook(raw(VECTOR_BODY), secret=KONSOL_SECRET, query_token=url_token(KONSOL_SECRET))
    assert hint.authenticated_by == "token"


@pytest.mark.parametrize(("headers", "token", "reason"), [
    ({}, None, RejectReason.MISSING_SIGNATURE),
    ({"X-Konsol-Signature": "0" * 64}, None, RejectReason.BAD_SIGNATURE),
    ({}, "0" * 64, RejectReason.BAD_SIGNATURE),
    ({"X-Konsol-Signature": sign_webhook(VECTOR_BODY, "another secret")}, None, RejectReason.BAD_SIGNATURE),
])
def test_without_a_valid_signature_or_token_a_webhook_is_unauthorized(headers, token, reason):
    with pytest.raises(NotificationRejected) as refused:
        read_webhook(raw(VECTOR_BODY, **headers), secret=KONSOL_SECRET, query_token=token)
    assert refused.value.reason is reason and answer_for(refused.value) is WebhookAnswer.UNAUTHORIZED


def test_without_a_secret_set_the_webhook_is_read_but_marked_unauthenticated():
    assert read_webhook(raw(VECTOR_BODY), secret=None, query_token=None).authenticated_by == "none"


@pytest.mark.parametrize(("body", "payment_id"), [
    ({"payment": {"id": "p-1"}}, "p-1"), ({"object": {"id": 77}}, "77"), ({"payment_id": "p-2"}, "p-2"),
    ({"id": "p-3", "status": "failed"}, "p-3"), ({"data": {"id": "d"}, "id": "outer"}, "d"),
])
def test_the_payment_id_is_found_wherever_the_body_puts_it(body, payment_id):
    encoded = json.dumps(body).encode()
    hint = read_webhook(raw(encoded, **{"X-Konsol-Signature": sign_webhook(encoded, KONSOL_SECRET)}),
                        secret=KONSOL_SECRET, query_token=None)
    assert hint.payment_id == payment_id


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'{"data": {}}', b'{"id": true}', b'{"id": ""}',
                                  b"\xff\xfe"])
def test_malformed_webhooks_are_bad_requests(body):
    with pytest.raises(NotificationRejected) as refused:
        read_webhook(raw(body, **{"X-Konsol-Signature": sign_webhook(body, KONSOL_SECRET)}), secret=KONSOL_SECRET,
                     query_token=None)
    assert answer_for(refused.value) is WebhookAnswer.BAD_REQUEST


def test_a_form_body_is_refused_and_a_missing_content_type_is_tolerated():
    signed = {"X-Konsol-Signature": sign_webhook(VECTOR_BODY, KONSOL_SECRET)}
    with pytest.raises(NotificationRejected):
        read_webhook(RawNotification("/", {"Content-Type": "application/x-www-form-urlencoded", **signed}, VECTOR_BODY,
                                     ""), secret=KONSOL_SECRET, query_token=None)
    assert read_webhook(RawNotification("/", signed, VECTOR_BODY, ""), secret=KONSOL_SECRET, query_token=None)


def test_a_body_over_64_kib_is_too_large_before_anything_else():
    with pytest.raises(WebhookTooLarge) as refused:
        read_webhook(raw(b"{" + b" " * 65536 + b"}"), secret=KONSOL_SECRET, query_token=None)
    assert answer_for(refused.value) is WebhookAnswer.TOO_LARGE


@pytest.mark.parametrize(("answer", "status", "body"), [
    (WebhookAnswer.OK, 200, {"ok": True}), (WebhookAnswer.DUPLICATE, 200, {"ok": True, "duplicate": True}),
    (WebhookAnswer.UNAUTHORIZED, 401, {"ok": False, "error": "unauthorized"}),
    (WebhookAnswer.BAD_REQUEST, 400, {"ok": False, "error": "bad_request"}),
    (WebhookAnswer.TOO_LARGE, 413, {"ok": False, "error": "bad_request"}),
    (WebhookAnswer.UNKNOWN_PAYMENT, 404, {"ok": False, "error": "unknown_payment"}),
    (WebhookAnswer.AMOUNT_MISMATCH, 409, {"ok": False, "error": "amount_mismatch"}),
    (WebhookAnswer.RETRY, 503, {"ok": False, "error": "retry"}),
])
def test_answers_follow_the_reference_table(answer, status, body):
    answered = webhook_answer(answer)
    assert (answered.status, json.loads(answered.body), answered.content_type) == (status, body, "application/json")


# ---- API objects ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "state"), [
    ("created", PayoutState.PENDING), ("manualpay", PayoutState.MANUAL), ("executed", PayoutState.PAID),
    ("failed", PayoutState.FAILED), ("nalog_unbound", PayoutState.NEEDS_ACTION), ("Canceled", PayoutState.CANCELLED),
    ("refunded", PayoutState.UNRECOGNISED),
])
def test_statuses_map_as_the_reference_says(status, state):
    assert payout_state(status) is state


def test_a_payment_is_read_with_its_amount_purpose_and_scrubbed_error():
    payment = parse_payment({"id": "p", "status": "failed", "amount": "1500.00", "purpose": "Выплата по заявке po_1",
                             "services_list": [{"title": "t po_2", "amount": "1500.00"}],
                             "error_message": f"card {CARD} is blocked"})
    assert payment is not None and payment.amount == 150000 and payment.mentions("po_1") and payment.mentions("po_2")
    assert CARD not in payment.error_message
    assert parse_payment({"status": "created"}) is None and parse_payment([]) is None
    assert parse_payment({"id": "p", "status": "created", "amount": 10.5}).amount == 1050


def test_the_bank_directory_is_read_tolerantly():
    assert parse_banks([{"id": SBER, "name": "Сбербанк", "bic": "044525225"}, {"id": "x"}]) == [
        FALLBACK_BANKS[0]]
    assert [bank.id for bank in parse_banks({"fps_banks": [{"member_id": "100000000004", "title": "Т-Банк"}]})] == [
        "100000000004"]
    assert parse_banks("nonsense") == []


def test_the_balance_is_read_from_the_shapes_seen():
    assert [(a.balance, a.currency) for a in parse_balance([{"id": "a", "balance": "10.50", "currency": "RUB"}])] == [
        (1050, "RUB")]
    assert [a.balance for a in parse_balance({"accounts": [{"available_balance": 7}]})] == [700]
    assert [a.balance for a in parse_balance({"balance": "1.00"})] == [100]
    assert parse_balance({"nothing": True}) == []


def test_a_payout_request_carries_the_label_and_one_destination():
    card = payment_request(label="po_1", amount=150000, first_name="Ivan", last_name="", card_number=CARD)
    assert card["amount"] == "1500.00" and card["services_list"] == [{"title": "Выплата по заявке po_1",
                                                                      "amount": "1500.00"}]
    assert card["bank_details_kind"] == "card" and card["bank_details"] == {"card_number": CARD}
    assert card["contractor"] == {"first_name": "Ivan", "last_name": "-"}
    fps = payment_request(label="po_1", amount=1, first_name="I", last_name="P", phone=PHONE, bank_id=SBER)
    assert fps["bank_details"] == {"fps_mobile_phone": PHONE, "fps_bank_member_id": SBER}
    with pytest.raises(ValueError):
        payment_request(label="po_1", amount=1, first_name="I", last_name="P", phone=PHONE)


# ---- the client against the emulator -----------------------------------------------------------------

@pytest.fixture
async def api(konsol_server) -> AsyncIterator[tuple[KonsolClient, KonsolEmulator]]:
    emulator, url = konsol_server
    transport = OwnSessionTransport(5)
    yield KonsolClient(transport, base_url=url + "/", token=KONSOL_TOKEN, timeout=2), emulator
    await transport.close()


def card_body(label: str = "po_test", amount: int = 150000, card: str = CARD) -> dict:
    return payment_request(label=label, amount=amount, first_name="Ivan", last_name="Petrov", card_number=card)


async def test_a_card_payout_is_created_and_read_by_its_id(api):
    client, emulator = api
    created = await client.create_payment(card_body())
    assert created.status == "created" and created.amount == 150000 and created.state is PayoutState.PENDING
    assert emulator.payments[created.id]["bank_details"] == {"card_number": CARD}
    fetched = await client.get_payment(created.id)
    assert fetched.id == created.id and claim_label(fetched) == "po_test"
    with pytest.raises(KonsolNotFound):
        await client.get_payment("00000000-0000-0000-0000-000000000000")


async def test_an_sbp_payout_needs_a_directory_bank(api):
    client, emulator = api
    body = payment_request(label="po_1", amount=5000, first_name="I", last_name="P", phone=PHONE, bank_id=SBER)
    assert (await client.create_payment(body)).status == "created"
    body["bank_details"]["fps_bank_member_id"] = "999999999999"
    with pytest.raises(KonsolRejected) as refused:
        await client.create_payment(body)
    assert refused.value.status == 422 and "fps_bank_member_id" in refused.value.message


async def test_the_emulator_offers_only_what_the_reference_documents(api, konsol_server):
    client, emulator = api
    created = await client.create_payment(card_body())
    transport = OwnSessionTransport(5)
    try:
        for method, path in (("GET", "/api/v1/payments"), ("POST", f"/api/v1/payments/{created.id}/cancel"),
                             ("GET", "/api/payments"), ("GET", "/konsol/balance")):
            status, _ = await transport.request(method, konsol_server[1] + path, headers=client.auth_headers())
            assert status in (404, 405), f"{method} {path} is not konsol.pro's documented API"
    finally:
        await transport.close()
    assert not hasattr(client, "list_payments") and not hasattr(client, "cancel_payment")


async def test_balance_and_banks(api):
    client, emulator = api
    [account] = await client.balance()
    assert (account.balance, account.currency) == (emulator.balance, "RUB")
    assert SBER in [bank.id for bank in await client.banks()]


def test_the_emulator_signs_with_its_own_code_as_the_reference_vector_says():
    assert emulator_signature(VECTOR_BODY, KONSOL_SECRET) == VECTOR_SIGNATURE


async def test_the_bank_directory_falls_back_to_the_other_path(api):
    client, emulator = api
    emulator.fail_next("banks", 404)
    assert await client.banks() == [], "the emulator serves only the first path"
    assert [path for method, path in emulator.calls if "fps" in path] == [
        "/api/v1/references/fps_bank_members", "/api/v1/payments/fps_banks"]


async def test_a_wrong_token_is_an_auth_failure_with_konsols_message(konsol_server):
    transport = OwnSessionTransport(5)
    client = KonsolClient(transport, base_url=konsol_server[1], token="wrong", timeout=2)
    try:
        with pytest.raises(KonsolAuthFailed) as refused:
            await client.balance()
    finally:
        await transport.close()
    assert refused.value.status == 401 and "Access denied" in str(refused.value)
    assert "wrong" not in str(refused.value)


@pytest.mark.parametrize(("status", "error"), [
    (503, KonsolServerError), (500, KonsolServerError), (429, KonsolNotSent), (422, KonsolRejected),
    (400, KonsolRejected), (404, KonsolOutcomeUnknown), (409, KonsolOutcomeUnknown), (403, KonsolAuthFailed),
    (401, KonsolAuthFailed),
])
async def test_a_creations_error_statuses_become_typed_exceptions(api, status, error):
    """What a caller may do next: a 5xx or a status we do not know as a refusal may hide a payout that exists."""
    client, emulator = api
    emulator.fail_next("create", status, f"refused card {CARD}")
    with pytest.raises(error) as raised:
        await client.create_payment(card_body())
    assert CARD not in str(raised.value) and "220070******6412" in str(raised.value)
    assert emulator.payments == {}
    assert issubclass(KonsolServerError, KonsolOutcomeUnknown)


async def test_a_5xx_after_the_payout_was_made_is_an_unknown_outcome(api):
    client, emulator = api
    emulator.fail_after_create(502)
    with pytest.raises(KonsolOutcomeUnknown):
        await client.create_payment(card_body())
    assert len(emulator.payments) == 1


async def test_an_unreachable_konsol_certainly_received_nothing():
    transport = OwnSessionTransport(5)
    client = KonsolClient(transport, base_url=f"http://127.0.0.1:{free_port()}", token=KONSOL_TOKEN, timeout=2)
    try:
        with pytest.raises(KonsolNotSent):
            await client.create_payment(card_body())
    finally:
        await transport.close()


async def test_a_dropped_connection_leaves_the_outcome_unknown(api):
    client, emulator = api
    emulator.drop_next_create()
    with pytest.raises(KonsolOutcomeUnknown):
        await client.create_payment(card_body())
    assert len(emulator.payments) == 1, "it was made, the caller just cannot know"


async def test_a_request_past_konsol_timeout_is_an_unknown_outcome(konsol_server):
    emulator, url = konsol_server
    transport = OwnSessionTransport(5)
    client = KonsolClient(transport, base_url=url, token=KONSOL_TOKEN, timeout=0.2)
    emulator.hang_next("create")
    try:
        with pytest.raises(KonsolOutcomeUnknown, match="within 0.2 s"):
            await client.create_payment(card_body())
        assert len(emulator.payments) == 1, "made, never answered"
    finally:
        emulator.release.set()
        await transport.close()


async def test_a_2xx_without_a_payment_is_an_unknown_outcome_not_a_failure(api):
    client, emulator = api
    emulator.fail_next("create", 200, "accepted")
    with pytest.raises(KonsolOutcomeUnknown):
        await client.create_payment(card_body())
