"""billing/providers/payme: the reference's worked vectors (auth header, checkout links), the envelope,
error format, parameter readers and millisecond times, without a server."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

import ymds
from billing.providers.payme import Payme, protocol
from billing.providers.payme.protocol import (
    PaymeError,
    authorized,
    checkout_text,
    checkout_url,
    error_answer,
    from_ms,
    param_account,
    param_amount,
    read_request,
    result_answer,
    to_ms,
)
from tests.conftest import make_settings
from tests.payme_support import INV_42, INV_42_WITH_RETURN, PAYME_MERCHANT as MERCHANT
from webhook_server.emulators import payme as payme_emulator
from webhook_server.emulators.payme import basic_auth, read_checkout

ROOT = Path(__file__).resolve().parents[3]


def test_authorization_header_vector():
    assert basic_auth("TEST_KEY_123") == "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw=="
    assert authorized({"Authorization": "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw=="}, "TEST_KEY_123")


@pytest.mark.parametrize("header", [
    None, "", "Basic", "Basic ", "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw", "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw==x",
    "Bearer UGF5Y29tOlRFU1RfS0VZXzEyMw==", "Basic " + base64.b64encode(b"Paycom:TEST_KEY_1234").decode(),
    "Basic " + base64.b64encode(b"Paycom:TEST_KEY_12").decode(),
    "Basic " + base64.b64encode(b"Payme:TEST_KEY_123").decode(),
    "Basic " + base64.b64encode(b"Paycom TEST_KEY_123").decode(), "Basic " + base64.b64encode(b"Paycom:").decode(),
])
def test_any_other_authorization_is_refused(header):
    headers = {} if header is None else {"Authorization": header}
    assert not authorized(headers, "TEST_KEY_123")


def test_key_is_split_on_the_first_colon_and_never_url_decoded():
    key = "a:b#c&d?e%41@f"
    assert authorized({"authorization": basic_auth(key)}, key)
    assert not authorized({"Authorization": basic_auth("a:b#c&d?eA@f")}, key)


def test_an_empty_configured_key_authorizes_nothing():
    assert not authorized({"Authorization": basic_auth("")}, "")


def test_checkout_link_of_the_official_example():
    text = checkout_text(merchant_id="587f72c72cac0d162c722ae2", account_field="order_id", label="197", amount=500)
    assert text == "m=587f72c72cac0d162c722ae2;ac.order_id=197;a=500"
    assert checkout_url("https://checkout.paycom.uz", text) == (
        "https://checkout.paycom.uz/bT01ODdmNzJjNzJjYWMwZDE2MmM3MjJhZTI7YWMub3JkZXJfaWQ9MTk3O2E9NTAw")


def test_checkout_link_vectors_for_inv_42():
    text = checkout_text(merchant_id=MERCHANT, account_field="order_id", label="inv-42", amount=3500000)
    assert text == "m=5e730e8e0b852a417aa49ceb;ac.order_id=inv-42;a=3500000" and len(text.encode()) == 55
    assert checkout_url("https://checkout.paycom.uz", text) == f"https://checkout.paycom.uz/{INV_42}"
    assert checkout_url("https://test.paycom.uz/", text) == f"https://test.paycom.uz/{INV_42}"
    full = checkout_text(merchant_id=MERCHANT, account_field="order_id", label="inv-42", amount=3500000, lang="ru",
                         return_url="https://example.com/paid/inv-42")
    assert full == "m=5e730e8e0b852a417aa49ceb;ac.order_id=inv-42;a=3500000;l=ru;c=https://example.com/paid/inv-42"
    assert checkout_url("https://checkout.paycom.uz", full) == f"https://checkout.paycom.uz/{INV_42_WITH_RETURN}"


def test_a_semicolon_in_a_checkout_value_is_refused():
    with pytest.raises(ValueError):
        checkout_text(merchant_id=MERCHANT, account_field="order_id", label="a;b", amount=1)


@given(st.text(alphabet=st.characters(blacklist_characters=";", blacklist_categories=["Cs"]), min_size=1),
       st.integers(min_value=1, max_value=10**15))
def test_the_emulators_checkout_reads_back_every_link(label, amount):
    text = checkout_text(merchant_id=MERCHANT, account_field="order_id", label=label, amount=amount,
                         return_url="https://shop.example/pay/x?exp=1&sig=ab&returned=1")
    params = read_checkout(checkout_url("https://x", text).removeprefix("https://x/"))
    assert params["ac.order_id"] == label and params["a"] == str(amount)
    assert params["c"] == "https://shop.example/pay/x?exp=1&sig=ab&returned=1"


def test_page_form_for_a_uzs_invoice_and_none_otherwise():
    payme = Payme(merchant_id=MERCHANT, key="k")
    form = payme.page_form(label="inv-42", amounts={"RUB": 29900, "UZS": 3500000}, title="1 month",
                           success_url="https://example.com/paid/inv-42")
    assert form is not None and (form.provider, form.method, form.fields) == ("payme", "get", {})
    assert form.action == (
        "https://checkout.paycom.uz/bT01ZTczMGU4ZTBiODUyYTQxN2FhNDljZWI7YWMub3JkZXJfaWQ9aW52LTQyO2E9MzUwMDAwMDtj"
        "PWh0dHBzOi8vZXhhbXBsZS5jb20vcGFpZC9pbnYtNDI=")
    assert payme.page_form(label="inv-42", amounts={"RUB": 29900}, title="t", success_url="https://e/x") is None


def test_page_form_uses_the_sandbox_host_and_the_configured_field():
    payme = Payme(merchant_id=MERCHANT, key="k", checkout_url="https://ignored.example", sandbox=True,
                  account_field="invoice")
    form = payme.page_form(label="inv-42", amounts={"UZS": 3500000}, title="t", success_url="https://e/x;y")
    assert form is not None and form.action.startswith("https://test.paycom.uz/")
    assert read_checkout(form.action.removeprefix("https://test.paycom.uz/")) == {
        "m": MERCHANT, "ac.invoice": "inv-42", "a": "3500000"}


@pytest.mark.parametrize("field", ["", "order id", "a.b", "x=y", "a;b"])
def test_an_unusable_account_field_is_refused_at_build_time(field):
    with pytest.raises(ValueError):
        Payme(merchant_id=MERCHANT, key="k", account_field=field)


def test_error_answer_has_the_localized_message_data_and_the_id():
    answer = error_answer(7, PaymeError(protocol.ORDER_NOT_FOUND, "order_id"))
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert json.loads(answer.body) == {"jsonrpc": "2.0", "id": 7, "error": {
        "code": -31050, "message": {"ru": "Заказ не найден", "uz": "Buyurtma topilmadi", "en": "Order not found"},
        "data": "order_id"}}
    assert "data" not in json.loads(error_answer(None, PaymeError(protocol.WRONG_AMOUNT)).body)["error"]


def test_result_answer_echoes_the_id():
    assert json.loads(result_answer("x1", {"allow": True}).body) == {"jsonrpc": "2.0", "id": "x1",
                                                                     "result": {"allow": True}}


def test_every_fault_speaks_three_languages_and_account_errors_are_in_range():
    faults = [value for value in vars(protocol).values() if isinstance(value, protocol.Fault)]
    assert len(faults) >= 20
    for fault in faults:
        assert all(text.strip() for text in (fault.ru, fault.uz, fault.en)), fault
    assert {f.code for f in faults} >= {-32700, -32600, -32601, -32504, -32400, -32300, -31001, -31003, -31007,
                                        -31008, -31050}
    account = [protocol.ORDER_NOT_FOUND, protocol.ORDER_NOT_PAYABLE, protocol.ORDER_EXPIRED, protocol.ORDER_NOT_IN_UZS]
    assert all(-31099 <= fault.code <= -31050 for fault in account)


@pytest.mark.parametrize(("payload", "data"), [
    ("x", None), ({"method": "A", "params": {}}, "id"), ({"method": "", "params": {}, "id": 1}, "method"),
    ({"method": "A", "params": None, "id": 1}, "params"), ({"method": "A", "params": {}, "id": None}, "id"),
])
def test_read_request_refuses_a_bad_envelope(payload, data):
    with pytest.raises(PaymeError) as caught:
        read_request(payload)
    assert (caught.value.fault.code, caught.value.data) == (-32600, data)


@pytest.mark.parametrize(("amount", "code"), [
    (Decimal("3500000.0"), None), (3500000, None), (Decimal("1.5"), -31001), (0, -31001), (-5, -31001),
    (True, -32600), ("100", -32600), (None, -32600),
])
def test_amount_reader(amount, code):
    if code is None:
        assert param_amount({"amount": amount}) == 3500000
    else:
        with pytest.raises(PaymeError) as caught:
            param_amount({"amount": amount})
        assert caught.value.fault.code == code


def test_account_reader_takes_the_configured_field_and_echoes_the_account():
    assert param_account({"account": {"invoice": "inv-1", "phone": "998901234567"}}, "invoice") == (
        "inv-1", {"invoice": "inv-1", "phone": "998901234567"})
    assert param_account({"account": {"order_id": 197}}, "order_id")[0] == "197"
    with pytest.raises(PaymeError) as caught:
        param_account({"account": {"order_id": "x" * 65}}, "order_id")
    assert (caught.value.fault.code, caught.value.data) == (-31050, "order_id")


@given(st.integers(min_value=0, max_value=253402300799999))
def test_milliseconds_round_trip_exactly(ms):
    assert to_ms(from_ms(ms)) == ms


def test_milliseconds_of_a_known_moment():
    moment = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert to_ms(moment) == 1735787045678
    assert to_ms(moment + timedelta(microseconds=999)) == 1735787045678, "sub-millisecond parts are dropped"
    assert len(str(to_ms(moment))) == 13


def check_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Any, **env: str) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp_path)
    for name in ("YOOMONEY_WALLET", "YOOMONEY_NOTIFICATION_SECRET"):
        monkeypatch.delenv(name, raising=False)
    values = {"ENVIRONMENT": "production", "ADMIN_API_TOKEN": "t", "LINK_SECRET": "s",
              "PLANS_FILE": str(ROOT / "plans.toml"), "PAYME_MERCHANT_ID": MERCHANT, "PAYME_KEY": "secret#key%41",
              **env}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    status = ymds.main(["check-config"])
    out, err = capsys.readouterr()
    return status, out, err


def test_check_config_enables_payme_without_a_warning(monkeypatch, tmp_path, capsys):
    status, out, err = check_config(monkeypatch, tmp_path, capsys)
    assert status == 0 and "enabled providers: payme" in out
    assert not [line for line in out.splitlines() if line.startswith("warning") and "payme" in line.lower()]
    assert "secret#key%41" not in out + err


@pytest.mark.parametrize(("env", "named"), [({"PAYME_KEY": ""}, "PAYME_KEY"),
                                            ({"PAYME_ACCOUNT_FIELD": "order id"}, "PAYME_ACCOUNT_FIELD"),
                                            ({"PAYME_CHECKOUT_URL": "checkout.paycom.uz"}, "PAYME_CHECKOUT_URL")])
def test_check_config_names_a_bad_payme_setting(monkeypatch, tmp_path, capsys, env, named):
    status, out, err = check_config(monkeypatch, tmp_path, capsys, **env)
    assert status != 0 and named in err
    assert "secret#key%41" not in out + err


def test_demo_fills_payme_with_the_emulator():
    values = payme_emulator.demo_values("http://127.0.0.1:8080", "http://127.0.0.1:8080/emulator/payme")
    assert values["payme_checkout_url"] == "http://127.0.0.1:8080/emulator/payme/checkout"
    settings = make_settings(**values)
    assert settings.provider_enabled("payme") and payme_emulator.demo_app(settings, "http://127.0.0.1:8080")
    assert payme_emulator.demo_app(make_settings(), "http://127.0.0.1:8080") is None
