"""Logs: JSON lines, secrets and card numbers masked, the web request's id carried into its RQ jobs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

import logs
from tests.conftest import ADMIN_TOKEN, YOOMONEY_SECRET
from tests.helpers import new_invoice, notification

CARD = "2200 7001 2345 6781"  # a Luhn-valid Mir number


@contextlib.contextmanager
def configured_logs() -> Iterator[None]:
    """Let a test call logs.configure, then put the session's logging back as it was."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name in logs.HOUSEKEEPING:
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture
def captured(settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    with configured_logs():
        logs.configure(settings.secret_values(), stream=stream)
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_full_payment_run_logs_no_secret_and_no_card_number(client, worker, captured, settings):
    invoice = await new_invoice(client)
    await client.get(invoice["pay_url"].removeprefix(settings.public_base_url))
    forged = {**notification(invoice["label"]), "sha1_hash": "f" * 40}
    await client.post("/notify/yoomoney", data=forged)
    fields = notification(invoice["label"])
    await client.post("/notify/yoomoney", data=fields, headers={"X-Request-Id": "req-1234"})
    await worker.drain()
    logging.getLogger("test").warning("payer wrote card %s and sha1_hash=%s", CARD, fields["sha1_hash"])

    text = captured.getvalue()
    sig = invoice["pay_url"].rsplit("sig=", 1)[1]
    for secret in (ADMIN_TOKEN, YOOMONEY_SECRET, "test-link-secret", sig, fields["sha1_hash"], CARD,
                   CARD.replace(" ", "")):
        assert secret not in text
    assert "220070******6781" in text
    assert "sha1_hash does not match" in text, "ordinary words next to a secret name stay readable"
    assert all(entry["level"] and entry["logger"] for entry in lines(captured))


async def test_the_request_id_follows_the_notification_into_its_jobs(client, worker, captured):
    invoice = await new_invoice(client)
    await client.post("/notify/yoomoney", data=notification(invoice["label"]), headers={"X-Request-Id": "req-77"})
    await worker.drain()
    applied = [entry for entry in lines(captured) if "applied to invoice" in entry["msg"]]
    assert [entry.get("request_id") for entry in applied] == ["req-77"]


def test_masker_leaves_ordinary_numbers_and_masks_keyed_secrets():
    masker = logs.SecretMasker(["s3cr3t-value"])
    assert masker.mask("invoice inv_1 amount 29900 op 1234567890123") == "invoice inv_1 amount 29900 op 1234567890123"
    assert (masker.mask("token=abc&x=1 Authorization: Basic UGF5Y29tOmtleQ==")
            == "token=***&x=1 Authorization: Basic ***")
    assert masker.mask('{"api_secret": "zzz", "password":"p"}') == '{"api_secret": "***", "password":"***"}'
    assert masker.mask("key s3cr3t-value") == "key ***"
    assert masker.mask("4111111111111111 4111111111111112") == "411111******1111 4111111111111112"


@pytest.fixture
def text_console(settings) -> Iterator[io.StringIO]:
    """logs.configure as `ymds demo` and a terminal get it: LOG_FORMAT=text."""
    stream = io.StringIO()
    with configured_logs():
        logs.configure(settings.secret_values(), stream=stream, log_format="text")
        yield stream


async def test_the_text_console_tells_the_payment_as_a_story_without_rq_housekeeping(client, worker, text_console):
    invoice = await new_invoice(client)
    fields = notification(invoice["label"])
    await client.post("/notify/yoomoney", data=fields)
    await worker.drain()
    logging.getLogger("rq.worker").info("*** Listening on ymds-fulfilment...")
    logging.getLogger("rq.scheduler").info("Acquired scheduler lock for ymds-notices")

    story = text_console.getvalue().splitlines()
    assert not any(line.lstrip().startswith("{") for line in story), "no JSON lines on a console"
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in story), story
    assert any(f"yoomoney notification {fields['operation_id']}: accepted" in line for line in story)
    assert any(f"applied to invoice {invoice['label']}" in line for line in story)
    assert not any("Listening on" in line or "scheduler lock" in line for line in story), "RQ's housekeeping"
    assert YOOMONEY_SECRET not in "\n".join(story)


def test_auto_is_json_off_a_terminal_and_text_on_one():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with configured_logs():
        assert isinstance(logs.configure(stream=io.StringIO()).formatter, logs.JsonFormatter)
        assert isinstance(logs.configure(stream=Terminal()).formatter, logs.TextFormatter)
        assert isinstance(logs.configure(stream=Terminal(), log_format="json").formatter, logs.JsonFormatter)
