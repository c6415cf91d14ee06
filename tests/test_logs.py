"""Logs: JSON lines, secrets and card numbers masked, the web request's id carried into its RQ jobs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

import logs
from tests.conftest import ADMIN_TOKEN, YOOMONEY_SECRET
from tests.helpers import new_invoice, notification

CARD = "2200 7001 2345 6781"  # a Luhn-valid Mir number


@pytest.fixture
def captured(settings) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure(settings.secret_values(), stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


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
    assert masker.mask("token=abc&x=1 Authorization: Basic UGF5Y29tOmtleQ==") == "token=***&x=1 Authorization: Basic ***"
    assert masker.mask('{"api_secret": "zzz", "password":"p"}') == '{"api_secret": "***", "password":"***"}'
    assert masker.mask("key s3cr3t-value") == "key ***"
    assert masker.mask("4111111111111111 4111111111111112") == "411111******1111 4111111111111112"
