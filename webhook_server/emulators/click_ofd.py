"""Click's fiscalisation API, emulated (docs.click.uz/fiscalization): `payment/ofd_data/submit_items` and
`payment/ofd_data/{service_id}/{payment_id}`, under the Merchant API's `Auth` check (the emulator's own,
webhook_server/emulators/click.py), never from billing/providers/click.

submit_items is checked as a fiscal register would: the payment is one Click debited; `items` is a non-empty
list of `Name` (≤ 63), `SPIC` (17 digits), `PackageCode` (≤ 20), `Price`, `Amount`, `VAT`, `VATPercent`
and `CommissionInfo` with a 9-digit `TIN` or a 14-digit `PINFL`; the VAT is the share of the price at its
percent (±1 tiyin); the positions and the `received_*` amounts both add up to the payment. A receipt once
registered answers ofd_data with its `qrCodeURL`. Failure modes on demand (`OfdState`, or `/control/ofd`):
a refusal with a given error_code, or a number of HTTP 500s before it answers again. Every submission is
kept (`submissions`), so a test sees one sent twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from webhook_server.emulators.common import control_body

SPIC = re.compile(r"[0-9]{17}")
TIN = re.compile(r"[0-9]{9}")
PINFL = re.compile(r"[0-9]{14}")
INVALID = -8  # the emulator's error_code for a malformed receipt (Click documents none)
UNKNOWN_PAYMENT = -5
QR_BASE = "https://ofd.soliq.uz/epi"


@dataclass(slots=True)
class OfdState:
    """Click's register of fiscal receipts and the switches of its failure modes."""

    receipts: dict[int, str] = field(default_factory=dict)  # payment_id → qrCodeURL
    submissions: list[dict[str, Any]] = field(default_factory=list)  # every body accepted for checking
    refuse: tuple[int, str] | None = None  # answer every submission with this error_code and note
    failures: int = 0  # answer this many next submissions with HTTP 500 (nothing registered)
    withhold_link: bool = False  # register receipts but show no qrCodeURL yet


def vat_share(price: int, percent: int) -> Decimal:
    return Decimal(price) * percent / (100 + percent)


def item_problem(item: Any) -> str | None:
    """What is wrong with one position, or None."""
    if not isinstance(item, dict):
        return "an item is not an object"
    name, spic, package = item.get("Name"), item.get("SPIC"), item.get("PackageCode")
    if not isinstance(name, str) or not 0 < len(name) <= 63:
        return "Name: a string of 1 to 63 characters"
    if not isinstance(spic, str) or not SPIC.fullmatch(spic):
        return "SPIC: the 17-digit IKPU code"
    if not isinstance(package, str) or not 0 < len(package) <= 20:
        return "PackageCode: required, up to 20 characters"
    numbers = {key: item.get(key) for key in ("Price", "Amount", "VAT", "VATPercent")}
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in numbers.values()):
        return "Price, Amount, VAT, VATPercent: non-negative integers"
    if numbers["Amount"] == 0 or numbers["VATPercent"] > 100:
        return "Amount must be positive and VATPercent at most 100"
    if abs(vat_share(numbers["Price"], numbers["VATPercent"]) - numbers["VAT"]) > 1:
        return "VAT is not the price's VAT share at VATPercent"
    info = item.get("CommissionInfo")
    tin = info.get("TIN") if isinstance(info, dict) else None
    pinfl = info.get("PINFL") if isinstance(info, dict) else None
    if not ((isinstance(tin, str) and TIN.fullmatch(tin)) or (isinstance(pinfl, str) and PINFL.fullmatch(pinfl))):
        return "CommissionInfo must hold a 9-digit TIN or a 14-digit PINFL"
    return None


@dataclass(slots=True)
class OfdEmulator:
    """The two ofd_data routes; `refusal(request)` is the Merchant API's auth and service check, `paid(payment_id)`
    the tiyin Click debited for a successful payment (None: no such payment)."""

    service_id: str
    refusal: Callable[[web.Request], web.Response | None]
    paid: Callable[[int], int | None]
    state: OfdState = field(default_factory=OfdState)

    def routes(self, base: str) -> list[web.RouteDef]:
        return [
            web.post(base + "/payment/ofd_data/submit_items", self.submit_items),
            web.get(base + "/payment/ofd_data/{service_id}/{payment_id}", self.receipt),
            web.post("/control/ofd", self.control), web.delete("/control/ofd", self.control),
        ]

    async def submit_items(self, request: web.Request) -> web.Response:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error_code": -400, "error_note": "Bad request"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error_code": -400, "error_note": "Bad request"}, status=400)
        self.state.submissions.append(body)
        if self.state.failures > 0:
            self.state.failures -= 1
            return web.json_response({"error_code": -500, "error_note": "Internal Server Error"}, status=500)
        if self.state.refuse is not None:
            code, note = self.state.refuse
            return web.json_response({"error_code": code, "error_note": note})
        problem, payment_id = self.problem(body)
        if problem is not None:
            return web.json_response({"error_code": UNKNOWN_PAYMENT if payment_id is None else INVALID,
                                      "error_note": problem})
        assert payment_id is not None
        self.state.receipts.setdefault(payment_id, f"{QR_BASE}?t=EZ000000000030&r={payment_id}&c=20261202120000"
                                                   f"&s={payment_id % 10**12:012d}")
        return web.json_response({"error_code": 0, "error_note": "Success"})

    def problem(self, body: dict[str, Any]) -> tuple[str | None, int | None]:
        """What makes the submission unacceptable (and the payment it names, when Click debited it)."""
        if str(body.get("service_id")) != self.service_id:
            return "service_id is not this service", None
        payment_id = body.get("payment_id")
        amount = self.paid(payment_id) if isinstance(payment_id, int) and not isinstance(payment_id, bool) else None
        if amount is None:
            return "no successful payment with this payment_id", None
        items = body.get("items")
        if not isinstance(items, list) or not items:
            return "items: at least one item", payment_id
        for item in items:
            problem = item_problem(item)
            if problem is not None:
                return problem, payment_id
        total = sum(item["Price"] - _integer(item.get("Discount")) - _integer(item.get("Other")) for item in items)
        received = [body.get(key) for key in ("received_ecash", "received_cash", "received_card")]
        if any(not isinstance(value, int) or isinstance(value, bool) or value < 0 for value in received):
            return "received_ecash, received_cash, received_card: non-negative integers (tiyin)", payment_id
        if total != amount or sum(received) != amount:
            return f"the items ({total}) and the amounts received ({sum(received)}) must both be {amount}", payment_id
        return None, payment_id

    async def receipt(self, request: web.Request) -> web.Response:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        raw = request.match_info["payment_id"]
        link = self.state.receipts.get(int(raw)) if raw.isdigit() else None
        if link is None or self.state.withhold_link:
            return web.json_response({"error_code": UNKNOWN_PAYMENT, "error_note": "Fiscal data not found"})
        return web.json_response({"paymentId": int(raw), "qrCodeURL": link})

    async def control(self, request: web.Request) -> web.Response:
        """POST /control/ofd {"refuse": {"error_code": N, "error_note": "..."}} or {"failures": N};
        DELETE /control/ofd: accept again."""
        if request.method == "DELETE":
            self.state.refuse, self.state.failures = None, 0
            return web.json_response({"refuse": None, "failures": 0})
        body = await control_body(request) or {}
        refuse, failures = body.get("refuse"), body.get("failures", 0)
        if refuse is not None:
            if not (isinstance(refuse, dict) and isinstance(refuse.get("error_code"), int)
                    and refuse["error_code"] < 0):
                return web.json_response({"error": "refuse: {error_code: a negative integer, error_note}"},
                                         status=400)
            self.state.refuse = (refuse["error_code"], str(refuse.get("error_note", "Refused")))
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
            return web.json_response({"error": "failures: a non-negative integer"}, status=400)
        self.state.failures = failures
        return web.json_response({"refuse": self.state.refuse, "failures": failures})


def _integer(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
