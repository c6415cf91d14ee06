"""billing/links.py: signed payment links; billing/invoices.pay_link: a link never outlives its invoice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from billing.errors import BadLinkSignature, LinkExpired
from billing.invoices import pay_link
from billing.links import check_link, link_signature, signed_pay_url
from db import Invoice

KEY = b"test-link-secret"
BASE = "https://pay.example.org/"
NOW = 1_700_000_000
EXP = NOW + 3600
LABEL = "inv_0123456789abcdef01234567"


def query_of(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query, strict_parsing=True).items()}


def good_sig(label: str = LABEL, exp: int = EXP) -> str:
    return link_signature(KEY, label, exp)


def test_signed_url_points_at_the_pay_page_with_exp_and_sig() -> None:
    url = signed_pay_url(BASE, KEY, LABEL, EXP)
    assert url.startswith(f"https://pay.example.org/pay/{LABEL}?")
    path, query = query_of(url)
    assert path == f"/pay/{LABEL}"
    assert set(query) == {"exp", "sig"}
    assert query["exp"] == str(EXP)
    assert len(query["sig"]) == 64 and set(query["sig"]) <= set("0123456789abcdef")  # hex HMAC-SHA256
    assert query["sig"] == good_sig()


def test_link_from_signed_url_is_accepted() -> None:
    _, query = query_of(signed_pay_url(BASE, KEY, LABEL, EXP))
    check_link(KEY, LABEL, query["exp"], query["sig"], NOW)  # raises on failure


def test_label_with_reserved_characters_is_escaped_and_still_checks() -> None:
    label = "inv/ä?x=1&y"
    url = signed_pay_url(BASE, KEY, label, EXP)
    path, query = query_of(url)
    assert path == "/pay/inv%2F%C3%A4%3Fx%3D1%26y"
    check_link(KEY, label, query["exp"], query["sig"], NOW)


def test_signature_depends_on_key_label_and_expiry() -> None:
    sig = good_sig()
    assert sig != link_signature(b"another-key", LABEL, EXP)
    assert sig != link_signature(KEY, LABEL + "x", EXP)
    assert sig != link_signature(KEY, LABEL, EXP + 1)


def test_tampered_sig_is_rejected() -> None:
    sig = good_sig()
    tampered = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), tampered, NOW)


def test_sig_of_another_label_is_rejected() -> None:
    other = "inv_ffffffffffffffffffffffff"
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), good_sig(other), NOW)
    with pytest.raises(BadLinkSignature):
        check_link(KEY, other, str(EXP), good_sig(LABEL), NOW)


def test_extended_expiry_with_the_old_sig_is_rejected() -> None:
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP + 86400), good_sig(), NOW)


def test_sig_made_with_another_key_is_rejected() -> None:
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), link_signature(b"attacker", LABEL, EXP), NOW)


@pytest.mark.parametrize("sig", [
    "", "zz" * 32, "подпись", "é" * 64, " " + "0" * 63, "0" * 63, "0" * 65,
], ids=["empty", "non-hex", "cyrillic", "non-ascii-64", "space", "short", "long"])
def test_malformed_sig_is_rejected(sig: str) -> None:
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), sig, NOW)


def test_padded_good_sig_is_rejected() -> None:
    for variant in (good_sig() + " ", "\x00" + good_sig(), good_sig() + good_sig()):
        with pytest.raises(BadLinkSignature):
            check_link(KEY, LABEL, str(EXP), variant, NOW)


@pytest.mark.parametrize(("exp", "sig"), [(None, "sig"), (str(EXP), None), (None, None), ("", "sig"), (str(EXP), "")])
def test_missing_exp_or_sig_is_rejected(exp: str | None, sig: str | None) -> None:
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, exp, good_sig() if sig == "sig" else sig, NOW)


@pytest.mark.parametrize("exp", [
    "-1", "+1700003600", "1700003600.0", " 1700003600", "1e9", "0x65", "१७००००३६००", "１７０００００３６００", "²",
    "1" * 13,
], ids=["negative", "plus", "float", "space", "exponent", "hex", "devanagari", "fullwidth", "superscript", "too-long"])
def test_exp_that_is_not_plain_ascii_digits_is_rejected(exp: str) -> None:
    # The sig is computed for whatever integer exp might be read as, so only the format check can stop it.
    try:
        as_int = int(exp)
    except ValueError:
        as_int = EXP
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, exp, good_sig(exp=as_int), NOW)


@pytest.mark.parametrize("exp", [NOW, NOW - 1, 0])
def test_link_at_or_past_its_expiry_is_expired(exp: int) -> None:
    with pytest.raises(LinkExpired):
        check_link(KEY, LABEL, str(exp), good_sig(exp=exp), NOW)


def test_link_one_second_before_expiry_is_accepted() -> None:
    check_link(KEY, LABEL, str(NOW + 1), good_sig(exp=NOW + 1), NOW)


def test_forged_sig_with_past_expiry_is_a_bad_signature_not_expired() -> None:
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(NOW - 10), "0" * 64, NOW)


# --- billing/invoices.pay_link ---

def invoice(expires_at: datetime) -> Invoice:
    """An Invoice held in memory only: model_construct skips Beanie's collection lookup."""
    return Invoice.model_construct(
        label=LABEL, user_id=42, plan="month", amounts={"RUB": 29900}, period_days=30,
        created_at=expires_at - timedelta(days=1), expires_at=expires_at,
    )


NOW_DT = datetime.fromtimestamp(NOW, UTC)


def test_pay_link_lasts_the_link_ttl_when_the_invoice_lives_longer() -> None:
    link = pay_link(invoice(NOW_DT + timedelta(days=7)), base_url=BASE, key=KEY, now=NOW_DT, ttl_seconds=3600)
    assert link.expires_at == NOW + 3600
    path, query = query_of(link.url)
    assert (path, query["exp"]) == (f"/pay/{LABEL}", str(NOW + 3600))
    check_link(KEY, LABEL, query["exp"], query["sig"], NOW)


def test_pay_link_never_outlives_its_invoice() -> None:
    expires = NOW_DT + timedelta(minutes=10)
    link = pay_link(invoice(expires), base_url=BASE, key=KEY, now=NOW_DT, ttl_seconds=86400)
    assert link.expires_at == int(expires.timestamp()) == NOW + 600
    _, query = query_of(link.url)
    assert int(query["exp"]) == NOW + 600
    check_link(KEY, LABEL, query["exp"], query["sig"], NOW)
    with pytest.raises(LinkExpired):
        check_link(KEY, LABEL, query["exp"], query["sig"], NOW + 600)


def test_pay_link_of_an_expired_invoice_is_already_expired() -> None:
    link = pay_link(invoice(NOW_DT - timedelta(seconds=1)), base_url=BASE, key=KEY, now=NOW_DT, ttl_seconds=3600)
    _, query = query_of(link.url)
    with pytest.raises(LinkExpired):
        check_link(KEY, LABEL, query["exp"], query["sig"], NOW)
