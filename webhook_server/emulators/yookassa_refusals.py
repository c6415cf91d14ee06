"""How the YooKassa emulator refuses what the real API refuses (reference §4.5, §5, §9), on demand.

- The shop's settings: autopayments off (a live shop before YooKassa's manager switches them on) answers
  403 `forbidden` to a charge of a saved method and to `save_payment_method: true`; fiscalization through
  YooKassa on (`receipts_required`) answers 400 `invalid_request`, parameter `receipt`, to a payment
  or refund created without a valid one ("Receipt is missing or illegal"; yookassa_receipts.py checks it).
- Failures of the next calls: HTTP 500 `internal_server_error`, 429 `too_many_requests`, 503, ... either
  before anything happened, or after the payment was made (YooKassa answers 500 when it has no definite
  answer within 30 s; the payment exists and a repeat under the same Idempotence-Key returns it).
- Charges that stay `pending` for a while on the emulator's clock, then end as the charge would have.
A wrong key is 401 `invalid_credentials` already, whatever is set here.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from webhook_server.emulators.yookassa_receipts import receipt_problem
from webhook_server.emulators.yookassa_wire import amount_minor

log = logging.getLogger(__name__)

FORBIDDEN = (403, "forbidden", "Autopayments are not available for this shop. Contact your YooKassa manager "
             "to enable them", None)
NO_RECEIPT = (400, "invalid_request", "Receipt is missing or illegal", "receipt")
CODES = {429: "too_many_requests", 500: "internal_server_error"}
Refusal = tuple[int, str, str, str | None]  # status, code, description, parameter


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    after_effect: bool  # the call did what it asked (a payment exists), but the answer is this error


@dataclass(slots=True)
class ShopRules:
    autopayments: bool = True  # merchant-initiated charges and saving methods allowed
    receipts_required: bool = False  # 54-FZ fiscalization through YooKassa: payments and refunds need `receipt`
    pending_for: timedelta | None = None  # charges of saved methods stay pending this long, then end
    failures: deque[Failure] = field(default_factory=deque)

    def fail_next(self, status: int, times: int = 1, *, after_effect: bool = False) -> None:
        """The next `times` API calls answer `status` (after making the payment, with `after_effect`)."""
        if times < 1 or not 400 <= status <= 599:
            raise ValueError("times >= 1 and an HTTP error status")
        self.failures.extend([Failure(status, after_effect)] * times)

    def failure(self, *, after_effect: bool) -> int | None:
        """The status the call in hand fails with at this point (before or after its effect), if any."""
        if self.failures and self.failures[0].after_effect is after_effect:
            return self.failures.popleft().status
        return None

    def refusal(self, body: dict[str, Any]) -> Refusal | None:
        """What the shop's settings refuse in a POST /payments body, checked before anything is made."""
        if not self.autopayments and ("payment_method_id" in body or body.get("save_payment_method") is True):
            return FORBIDDEN
        return self.receipt_refusal(body)

    def receipt_refusal(self, body: dict[str, Any]) -> Refusal | None:
        """A payment's or refund's receipt, when the shop fiscalizes through YooKassa: missing or not valid for
        the body's amount is refused as YooKassa refuses it (yookassa_receipts.py)."""
        if not self.receipts_required:
            return None
        amount = amount_minor(body.get("amount"))
        problem = receipt_problem(body.get("receipt"), amount) if amount is not None else "no amount"
        if problem is not None:
            log.info("yookassa emulator: receipt refused: %s", problem)
            return NO_RECEIPT
        return None

    def decided_at(self, now: datetime) -> datetime | None:
        """When a charge made now is decided: None for at once."""
        return None if self.pending_for is None else now + self.pending_for


def failure_code(status: int) -> str:
    return CODES.get(status, "internal_server_error" if status >= 500 else "invalid_request")
