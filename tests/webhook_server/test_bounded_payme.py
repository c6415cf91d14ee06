"""Issue 24, part 1, for Payme over real HTTP: every integer a Merchant API call carries (amount, time, reason,
from, to, the request id) is read with bounds before it is converted. A literal such as 1e999999999 once
became a billion-digit int that froze the event loop; now it, 10^30, 2^62, huge digit runs, fractions and
booleans get Payme's own error at once, nothing is stored and no invoice is held. Nesting past the reader's
limit is Payme's parse error."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from billing.bounded_json import MAX_DEPTH
from billing.providers.payme.merchant import MAX_AHEAD_MS
from billing.providers.payme.protocol import TIMEOUT_MS, to_ms
from db import Invoice
from db.payme import PaymeState
from tests.helpers import new_invoice, operations
from tests.payme_support import (  # noqa: F401 - fixtures
    PRICE_MONTH_UZS,
    payme,
    rpc,
    settings,
    transactions,
)
from webhook_server.emulators.payme import new_payme_id

# Number literals as they stand in the body: the two of the issue, 10^30 and 2^62 (readable integers, out of
# every range), a 5 000-digit run, a fraction, a boolean.
HUGE = {
    "exp-billion": "1e999999999",
    "exp-million": "1e1000000",
    "ten-pow-30": str(10**30),
    "two-pow-62": str(2**62),
    "digits-5000": "9" * 5000,
    "fraction": "1.5",
    "boolean": "true",
}
# CheckPerformTransaction's amount: what is no number at all is −32600, a number that is no tiyin amount −31001.
AMOUNT_CODES = {"exp-billion": -32600, "exp-million": -32600, "ten-pow-30": -31001, "two-pow-62": -31001,
                "digits-5000": -32600, "fraction": -31001, "boolean": -32600}


def body(method: str, params: str, request_id: str = "7") -> bytes:
    """A request with `params` given as literal JSON text, so that numbers travel exactly as written."""
    return f'{{"jsonrpc": "2.0", "id": {request_id}, "method": "{method}", "params": {params}}}'.encode()


async def call(client, raw: bytes) -> dict:
    status, answer = await rpc(client, None, raw=raw)
    assert status == 200, answer
    return answer


def error_of(answer: dict) -> tuple[int, str | None]:
    return answer["error"]["code"], answer["error"].get("data")


async def unheld(label: str) -> bool:
    invoice = await Invoice.find_one(Invoice.label == label)
    return invoice is not None and invoice.claimed_by is None and invoice.claim_until is None


@pytest.mark.parametrize(("literal", "code"), [(HUGE[name], code) for name, code in AMOUNT_CODES.items()],
                         ids=AMOUNT_CODES.keys())
async def test_a_huge_or_mistyped_amount_gets_payme_s_error_and_checks_nothing(client, literal, code):
    invoice = await new_invoice(client)
    account = json.dumps({"order_id": invoice["label"]})
    answer = await call(client, body("CheckPerformTransaction", f'{{"amount": {literal}, "account": {account}}}'))
    assert error_of(answer) == (code, "amount" if code == -32600 else None)
    answer = await call(client, body("CreateTransaction", f'{{"id": "{new_payme_id()}", "time": 1, '
                                                          f'"amount": {literal}, "account": {account}}}'))
    assert error_of(answer)[0] == code
    assert await transactions() == [] and await unheld(invoice["label"])


@pytest.mark.parametrize("literal", HUGE.values(), ids=HUGE.keys())
async def test_a_huge_create_time_is_refused_before_any_hold_or_transaction(client, literal):
    invoice = await new_invoice(client)
    params = (f'{{"id": "{new_payme_id()}", "time": {literal}, "amount": {PRICE_MONTH_UZS}, '
              f'"account": {{"order_id": "{invoice["label"]}"}}}}')
    answer = await call(client, body("CreateTransaction", params))
    assert error_of(answer) == (-32600, "time")
    assert await transactions() == [] and await operations() == []
    assert await unheld(invoice["label"])


async def test_a_create_time_ahead_of_our_clock_takes_no_hold_beyond_the_allowance(client, payme, clock):
    """Within 13 digits but hours ahead: the hold would last that long, so it is refused; the allowance
    itself (clock drift) still creates the transaction, held until 12 hours after Payme's time."""
    invoice = await new_invoice(client)
    now_ms = to_ms(clock.now)
    ahead = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS,
                               payme_time=now_ms + MAX_AHEAD_MS + 1)
    assert error_of(ahead.body) == (-31008, "time")
    assert await transactions() == [] and await unheld(invoice["label"])
    allowed = await payme.create(client.session, new_payme_id(), invoice["label"], PRICE_MONTH_UZS,
                                 payme_time=now_ms + MAX_AHEAD_MS)
    assert allowed.result["state"] == 1
    held = await Invoice.find_one(Invoice.label == invoice["label"])
    assert held.claim_until.replace(tzinfo=clock.now.tzinfo) - clock.now == timedelta(
        milliseconds=MAX_AHEAD_MS + TIMEOUT_MS + 1)


@pytest.mark.parametrize("literal", [*HUGE.values(), "0", "6", "-1", "9"],
                         ids=[*HUGE.keys(), "zero", "six", "minus-one", "nine"])
async def test_a_cancel_reason_outside_payme_s_list_changes_nothing(client, payme, literal):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    assert (await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)).result["state"] == 1
    answer = await call(client, body("CancelTransaction", f'{{"id": "{payme_id}", "reason": {literal}}}'))
    assert error_of(answer) == (-32600, "reason")
    [tx] = await transactions()
    assert (tx.state, tx.reason, tx.cancel_time) == (PaymeState.CREATED, None, 0)


async def test_every_reason_of_payme_s_list_is_taken(client, payme):
    for reason in (1, 2, 3, 4, 5, 10):
        invoice = await new_invoice(client)
        payme_id = new_payme_id()
        await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
        answer = await payme.by_id(client.session, "CancelTransaction", payme_id, reason=reason)
        assert answer.result["state"] == -1, reason


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize("literal", [*HUGE.values(), "-1"], ids=[*HUGE.keys(), "negative"])
async def test_a_statement_bound_out_of_range_gets_32600_naming_it(client, field, literal):
    params = {"from": "0", "to": "1700000000000", field: literal}
    answer = await call(client, body("GetStatement", "{" + ", ".join(f'"{k}": {v}' for k, v in params.items()) + "}"))
    assert error_of(answer) == (-32600, field)


async def test_a_statement_over_the_whole_window_is_read(client, payme):
    invoice = await new_invoice(client)
    payme_id = new_payme_id()
    await payme.create(client.session, payme_id, invoice["label"], PRICE_MONTH_UZS)
    answer = await call(client, body("GetStatement", '{"from": 0, "to": 9999999999999}'))
    assert [item["id"] for item in answer["result"]["transactions"]] == [payme_id]


@pytest.mark.parametrize("literal", ["1e999999999", "9" * 5000], ids=["exp-billion", "digits-5000"])
async def test_a_huge_request_id_is_an_invalid_request(client, literal):
    answer = await call(client, body("CheckTransaction", '{"id": "5305e3bab097f420a62ced0b"}', request_id=literal))
    assert (error_of(answer), answer["id"]) == ((-32600, "id"), None)


async def test_while_payme_sends_1e999999999_every_route_keeps_answering(client):
    """The request that froze the server, sent with /healthz and the admin API at the same time: all answer."""
    invoice = await new_invoice(client)
    params = (f'{{"id": "{new_payme_id()}", "time": 1e999999999, "amount": 1e999999999, '
              f'"account": {{"order_id": "{invoice["label"]}"}}}}')
    hostile, health, other = await asyncio.gather(
        call(client, body("CreateTransaction", params)), client.get("/healthz"), new_invoice(client))
    assert hostile["error"]["code"] == -32600
    assert health.status == 200 and other["status"] == "pending"
    assert await transactions() == [] and await unheld(invoice["label"])


@pytest.mark.parametrize(("depth", "code"), [(MAX_DEPTH, -31003), (MAX_DEPTH + 1, -32700), (100_000, -32700)])
async def test_nesting_past_the_limit_is_a_parse_error(client, depth, code):
    """The envelope and params are two levels; `pad` brings the document to `depth`."""
    pad = "[" * (depth - 2) + "]" * (depth - 2)
    answer = await call(client, body("CheckTransaction", f'{{"id": "5305e3bab097f420a62ced0b", "pad": {pad}}}'))
    assert answer["error"]["code"] == code
