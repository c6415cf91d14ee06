"""The Payme emulator's own wire code against the reference's worked vectors (payme.md §2.1, §9): the
Authorization header Payme's servers send, the checkout link's encoding and decoding, receipt card
masking, and no import of the provider module it stands in front of."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.payme_support import INV_42, INV_42_WITH_RETURN, PAYME_MERCHANT as MERCHANT
from webhook_server.emulators.payme import basic_auth, checkout_link, read_checkout
from webhook_server.emulators.payme_subscribe import masked

ROOT = Path(__file__).resolve().parents[2]


def test_the_authorization_header_of_the_reference():
    assert basic_auth("TEST_KEY_123") == "Basic UGF5Y29tOlRFU1RfS0VZXzEyMw=="


def test_a_key_with_odd_characters_is_sent_as_is():
    assert basic_auth("a:b#c&d?e%41@f") == "Basic UGF5Y29tOmE6YiNjJmQ/ZSU0MUBm"


def test_the_official_checkout_example():
    link = checkout_link("https://checkout.paycom.uz", {"m": "587f72c72cac0d162c722ae2", "ac.order_id": "197",
                                                        "a": "500"})
    assert link == "https://checkout.paycom.uz/bT01ODdmNzJjNzJjYWMwZDE2MmM3MjJhZTI7YWMub3JkZXJfaWQ9MTk3O2E9NTAw"


@pytest.mark.parametrize("host", ["https://checkout.paycom.uz", "https://test.paycom.uz/"])
def test_the_inv_42_checkout_vectors(host):
    params = {"m": MERCHANT, "ac.order_id": "inv-42", "a": "3500000"}
    assert checkout_link(host, params) == host.rstrip("/") + "/" + INV_42
    assert read_checkout(INV_42) == params
    full = {**params, "l": "ru", "c": "https://example.com/paid/inv-42"}
    assert checkout_link(host, full) == host.rstrip("/") + "/" + INV_42_WITH_RETURN
    assert read_checkout(INV_42_WITH_RETURN) == full


@pytest.mark.parametrize("encoded", ["not base64!", "bT0xO209Mg==", "//79", "YQ=="])
def test_a_bad_checkout_link_is_refused(encoded):
    """Not base64; `m=1;m=2` (a repeated name); not UTF-8; `a` (a pair without '=')."""
    with pytest.raises(ValueError):
        read_checkout(encoded)


def test_receipt_cards_are_masked_as_payme_shows_them():
    assert masked("8600069195406311") == "860006******6311"
    assert masked("8600495473316478123") == "860049*********8123"


@pytest.mark.parametrize("module", ["webhook_server/emulators/payme.py", "webhook_server/emulators/payme_subscribe.py"])
def test_the_emulator_imports_nothing_of_the_provider_module(module):
    tree = ast.parse((ROOT / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name.startswith("billing.providers")}, imported

