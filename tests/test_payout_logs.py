"""No full card number, konsol.pro token or payout secret, and no buyer's e-mail or phone, in any log line of the
whole test run.

tests/log_guard.py keeps every record of the session raw, from every thread (web app, RQ worker, bot); this
module runs last. Card numbers must never be logged at all, not even to be masked; secrets are checked in
what production writes (the masker's pattern rules, before it also replaces the known secret values).
"""

from __future__ import annotations

import logging
import threading

import pytest

from billing.payouts.cards import card_key
from billing.providers.konsol import url_token
from logs import SecretMasker
from tests.conftest import make_settings
from tests.contact_support import LOGGED_NEVER
from tests.konsol_support import FULL_NUMBERS, KONSOL_SECRET, KONSOL_TOKEN
from tests.log_guard import SUITE_LOG


def test_the_suite_log_keeps_records_from_every_thread_raw():
    probe = "suite-log-probe-2f9a"
    thread = threading.Thread(target=lambda: logging.getLogger("probe").warning("%s from a thread", probe))
    thread.start()
    thread.join()
    logging.getLogger("probe").info("%s at info", probe)
    assert f"WARNING probe: {probe} from a thread" in SUITE_LOG.lines
    assert f"INFO probe: {probe} at info" in SUITE_LOG.lines


def test_no_full_card_number_token_or_secret_in_any_log_line_of_the_suite():
    raw = "\n".join(SUITE_LOG.lines)
    if "payout claim po_" not in raw:
        pytest.skip("no payout ran in this session")
    for number in FULL_NUMBERS:
        assert number not in raw, f"a full card number was logged: {_line_with(number)}"
    written = SecretMasker(()).mask(raw)
    secrets = (KONSOL_TOKEN, KONSOL_SECRET, url_token(KONSOL_SECRET),
               card_key(make_settings().link_key).decode())
    for secret in secrets:
        assert secret not in written, f"a payout secret reaches the log: {_line_with(secret)}"


def test_no_receipt_contact_in_any_log_line_of_the_suite():
    """Personal data is never logged, not even masked: the tests' e-mails and phones, in every spelling used."""
    raw = "\n".join(SUITE_LOG.lines)
    for contact in LOGGED_NEVER:
        assert contact not in raw, f"a buyer's contact was logged: {_line_with(contact)}"


def _line_with(text: str) -> str:
    line = next(line for line in SUITE_LOG.lines if text in line)
    return line.replace(text, "<HERE>")[:300]
