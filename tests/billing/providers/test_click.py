"""billing/providers/click: the reference's sign_string and Auth vectors, amounts, requests, answers, page form."""

from __future__ import annotations

import ast
import json
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import given, strategies as st

from billing.providers.base import RawNotification
from billing.providers.click import (
    REQUIRED_FIELDS,
    Action,
    Click,
    ClickError,
    ClickRequest,
    Malformed,
    Reply,
    answer,
    build_request,
    click_amount,
    click_days,
    merchant_auth,
    operation_id,
    parse_amount,
    parse_body,
    read_request,
    sign,
)
from settings import ConfigError
from tests.conftest import make_settings

SECRET = "test_secret"  # click.md section 9
PREPARE = {"click_trans_id": "1234567", "service_id": "11111", "click_paydoc_id": "7654321",
           "merchant_trans_id": "inv-42", "amount": "35000.00", "action": "0", "error": "0",
           "error_note": "Success", "sign_time": "2026-11-22 12:00:00"}
COMPLETE = {**PREPARE, "action": "1", "merchant_prepare_id": "5"}
PREPARE_BODY = (b"click_trans_id=1234567&service_id=11111&click_paydoc_id=7654321&merchant_trans_id=inv-42"
                b"&amount=35000.00&action=0&error=0&error_note=Success&sign_time=2026-11-22+12%3A00%3A00"
                b"&sign_string=10dbe518dfcde82f35bcbca8e5f24858")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def raw(body: bytes, headers: dict[str, str] | None = None) -> RawNotification:
    return RawNotification("/notify/click/prepare", headers or FORM, body, "127.0.0.1")


def test_prepare_sign_string_matches_the_worked_vector() -> None:
    assert sign(PREPARE, SECRET) == "10dbe518dfcde82f35bcbca8e5f24858"


def test_complete_sign_string_includes_merchant_prepare_id() -> None:
    assert sign(COMPLETE, SECRET) == "b8eb4515eac634516bbcc452fcabe429"
    assert sign({**COMPLETE, "merchant_prepare_id": "6"}, SECRET) != "b8eb4515eac634516bbcc452fcabe429"


def test_prepare_sign_string_ignores_a_merchant_prepare_id() -> None:
    assert sign({**PREPARE, "merchant_prepare_id": "5"}, SECRET) == "10dbe518dfcde82f35bcbca8e5f24858"


@pytest.mark.parametrize(("amount", "expected"), [
    ("35000", "6a422acc100ae8d71f104baac6a369f3"),
    ("35000.0", "08b6e5d1f13af1c404da65aaa67536fd"),
    ("35000.00", "10dbe518dfcde82f35bcbca8e5f24858"),
])
def test_sign_string_covers_the_raw_amount_text(amount: str, expected: str) -> None:
    assert sign({**PREPARE, "amount": amount}, SECRET) == expected


@pytest.mark.parametrize("field", ["error", "error_note", "click_paydoc_id"])
def test_unsigned_fields_do_not_change_the_sign_string(field: str) -> None:
    assert sign({**PREPARE, field: "-5017"}, SECRET) == sign(PREPARE, SECRET)


def test_merchant_api_auth_header_matches_the_worked_vector() -> None:
    assert merchant_auth("33333", SECRET, 1763812800) == (
        "33333:e03852f85cad3d9e0473938eabd86826403e75a5:1763812800")


def test_build_request_produces_the_reference_form_body() -> None:
    fields = build_request(SECRET, action=Action.PREPARE, click_trans_id=1234567, service_id="11111", label="inv-42",
                           amount="35000.00", sign_time="2026-11-22 12:00:00", click_paydoc_id=7654321)
    assert urlencode(fields).encode() == PREPARE_BODY
    complete = build_request(SECRET, action=Action.COMPLETE, click_trans_id=1234567, service_id="11111",
                             label="inv-42", amount="35000.00", sign_time="2026-11-22 12:00:00",
                             click_paydoc_id=7654321, merchant_prepare_id=5)
    assert complete["sign_string"] == "b8eb4515eac634516bbcc452fcabe429"


@pytest.mark.parametrize(("text", "tiyin"), [
    ("35000.00", 3500000), ("35000", 3500000), ("35000.0", 3500000), ("0.1", 10), ("0.01", 1),
    ("110000", 11000000), ("1000.10000", 100010),
])
def test_amount_in_sum_becomes_exact_tiyin(text: str, tiyin: int) -> None:
    assert parse_amount(text) == tiyin


@pytest.mark.parametrize("text", [
    "35000.001", "0.005", "1e3", "-1.00", "+1", " 1", "1,00", "", ".5", "5.", "NaN", "Infinity", "0x10", "٣٥٠٠٠",
])
def test_amount_that_is_not_a_whole_number_of_tiyin_is_refused(text: str) -> None:
    assert parse_amount(text) is None


@given(st.integers(min_value=0, max_value=10**15))
def test_click_amount_round_trips_through_parse_amount(tiyin: int) -> None:
    assert parse_amount(click_amount(tiyin)) == tiyin


def test_click_amount_formats_sum_with_two_decimals() -> None:
    assert (click_amount(3500000), click_amount(5), click_amount(100)) == ("35000.00", "0.05", "1.00")


def test_form_body_decodes_to_the_exact_strings() -> None:
    fields = parse_body(raw(PREPARE_BODY))
    assert fields["sign_time"] == "2026-11-22 12:00:00" and fields["amount"] == "35000.00"


def test_json_body_keeps_number_literals_for_the_signature() -> None:
    body = json.dumps({**PREPARE, "click_trans_id": 1234567, "amount": 35000.00}).replace("35000.0", "35000.00")
    fields = parse_body(raw(body.encode(), {"content-type": "application/json; charset=utf-8"}))
    assert fields["amount"] == "35000.00" and fields["click_trans_id"] == "1234567"


@pytest.mark.parametrize(("body", "content_type"), [
    (b"\xff\xfe", "application/x-www-form-urlencoded"),
    (b"a=%FF", "application/x-www-form-urlencoded"),
    (b"action=0&action=0", "application/x-www-form-urlencoded"),
    (b"not a form", "application/x-www-form-urlencoded"),
    (b"[1, 2]", "application/json"),
    (b'{"action": true}', "application/json"),
    (b'{"action": null}', "application/json"),
    (b"{", "application/json"),
])
def test_malformed_body_is_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(Malformed):
        parse_body(raw(body, {"Content-Type": content_type}))


def test_well_formed_request_is_read() -> None:
    request = read_request({**COMPLETE, "sign_string": "x"}, Action.COMPLETE)
    assert isinstance(request, ClickRequest)
    assert (request.click_trans_id, request.prepare_id, request.label, request.error) == (1234567, 5, "inv-42", 0)


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
@pytest.mark.parametrize("route", list(Action))
def test_missing_field_is_error_in_request(field: str, route: Action) -> None:
    fields = {**(COMPLETE if route is Action.COMPLETE else PREPARE), "sign_string": "x"}
    del fields[field]
    assert read_request(fields, route) is ClickError.ERROR_IN_REQUEST


def test_empty_error_note_is_present() -> None:
    assert isinstance(read_request({**PREPARE, "error_note": "", "sign_string": "x"}, Action.PREPARE), ClickRequest)


def test_merchant_prepare_id_is_required_on_complete_only() -> None:
    fields = {**PREPARE, "sign_string": "x"}
    assert isinstance(read_request(fields, Action.PREPARE), ClickRequest)
    assert read_request({**fields, "action": "1"}, Action.COMPLETE) is ClickError.ERROR_IN_REQUEST


@pytest.mark.parametrize(("field", "value"), [
    ("click_trans_id", "12a"), ("click_trans_id", ""), ("click_trans_id", "-1"), ("click_trans_id", "1" * 19),
    ("service_id", "11111.0"), ("click_paydoc_id", " 1"), ("merchant_prepare_id", "five"),
    ("merchant_prepare_id", "٥"), ("error", "x"), ("error", ""), ("error", "1"), ("error", "-"),
])
def test_malformed_field_is_error_in_request(field: str, value: str) -> None:
    assert read_request({**COMPLETE, "sign_string": "x", field: value}, Action.COMPLETE) is ClickError.ERROR_IN_REQUEST


@pytest.mark.parametrize(("action", "route"), [
    ("1", Action.PREPARE), ("0", Action.COMPLETE), ("2", Action.PREPARE), ("", Action.COMPLETE),
    ("00", Action.PREPARE), ("prepare", Action.PREPARE),
])
def test_action_other_than_the_route_is_action_not_found(action: str, route: Action) -> None:
    fields = {**COMPLETE, "sign_string": "x", "action": action}
    assert read_request(fields, route) is ClickError.ACTION_NOT_FOUND


def test_answers_are_json_with_integer_ids_and_error() -> None:
    prepared = answer(Action.PREPARE, PREPARE, Reply(ClickError.SUCCESS, 5))
    assert (prepared.status, prepared.content_type) == (200, "application/json")
    assert prepared.body == ('{"click_trans_id": 1234567, "merchant_trans_id": "inv-42", "merchant_prepare_id": 5, '
                             '"error": 0, "error_note": "Success"}')
    confirmed = json.loads(answer(Action.COMPLETE, COMPLETE, Reply(ClickError.ALREADY_PAID, 5)).body)
    assert confirmed == {"click_trans_id": 1234567, "merchant_trans_id": "inv-42", "merchant_confirm_id": 5,
                         "error": -4, "error_note": "Already paid"}


def test_error_answer_to_an_unreadable_request_has_null_ids() -> None:
    body = json.loads(answer(Action.COMPLETE, {"click_trans_id": "x"}, Reply(ClickError.ERROR_IN_REQUEST)).body)
    assert body == {"click_trans_id": None, "merchant_trans_id": None, "merchant_confirm_id": None,
                    "error": -8, "error_note": "Error in request from click"}


def test_every_error_code_has_clicks_wording() -> None:
    notes = {int(code): json.loads(answer(Action.PREPARE, {}, Reply(code)).body)["error_note"] for code in ClickError}
    assert notes == {
        0: "Success", -1: "SIGN CHECK FAILED!", -2: "Incorrect parameter amount", -3: "Action not found",
        -4: "Already paid", -5: "User does not exist", -6: "Transaction does not exist",
        -7: "Failed to update user", -8: "Error in request from click", -9: "Transaction cancelled",
    }


def provider(pay_url: str = "https://my.click.uz/services/pay") -> Click:
    return Click(service_id="11111", merchant_id="22222", secret_key=SECRET, pay_url=pay_url)


def test_page_form_is_the_reference_payment_link() -> None:
    form = provider().page_form(label="inv-42", amounts={"RUB": 29900, "UZS": 3500000}, title="1 month",
                                success_url="https://pay.example/done/inv-42")
    assert form is not None and (form.provider, form.method) == ("click", "get")
    assert f"{form.action}?{urlencode(form.fields)}" == (
        "https://my.click.uz/services/pay?service_id=11111&merchant_id=22222&amount=35000.00"
        "&transaction_param=inv-42&return_url=https%3A%2F%2Fpay.example%2Fdone%2Finv-42")


def test_page_form_needs_a_uzs_price() -> None:
    assert provider().page_form(label="inv-42", amounts={"RUB": 29900}, title="t", success_url="https://x") is None


@pytest.mark.parametrize(("service_id", "merchant_id"), [("", "22222"), ("abc", "22222"), ("11111", "2 2")])
def test_provider_refuses_non_numeric_ids(service_id: str, merchant_id: str) -> None:
    with pytest.raises(ValueError):
        Click(service_id=service_id, merchant_id=merchant_id, secret_key=SECRET)


@pytest.mark.parametrize("field", ["click_service_id", "click_merchant_id", "click_merchant_user_id"])
def test_check_config_refuses_a_non_numeric_click_id(field: str) -> None:
    ids = {"click_service_id": "11111", "click_merchant_id": "22222", "click_merchant_user_id": "33333"}
    settings = make_settings(**{**ids, field: "12 3"}, click_secret_key=SECRET)
    with pytest.raises(ConfigError, match=field.upper()):
        settings.validate_for_run()
    assert make_settings(**ids, click_secret_key=SECRET).provider_enabled("click")


def test_operation_id_is_the_click_trans_id_for_one_order() -> None:
    assert operation_id(1234567, "inv-42") == "1234567:inv-42"
    assert operation_id(1234567, "inv-42") != operation_id(1234567, "inv-43")


@pytest.mark.parametrize(("first", "last", "now", "days"), [
    ("2026-11-22T12:00:00+00:00", "2026-11-22T12:30:00+00:00", "2026-11-22T13:00:00+00:00", ["2026-11-22"]),
    ("2026-11-22T18:50:00+00:00", "2026-11-22T19:20:00+00:00", "2026-11-23T08:00:00+00:00",
     ["2026-11-22", "2026-11-23"]),  # 23:50 to 00:20 in Tashkent
    ("2026-11-22T18:50:00+00:00", "2026-11-22T19:20:00+00:00", "2026-11-22T18:55:00+00:00", ["2026-11-22"]),
])
def test_click_days_are_tashkent_days_from_prepare_to_the_hold_or_now(first: str, last: str, now: str,
                                                                      days: list[str]) -> None:
    moments = [datetime.fromisoformat(text) for text in (first, last, now)]
    assert [day.isoformat() for day in click_days(*moments)] == days


def test_the_emulator_has_its_own_protocol_code() -> None:
    """The Click emulator must not agree with this module by importing it (DESIGN.md, Testing)."""
    import webhook_server.emulators.click as emulator

    tree = ast.parse(Path(emulator.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name and name.startswith("billing")}
