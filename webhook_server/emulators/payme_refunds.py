"""Payme receipt cancellations that take time (reference §4, §6), on the emulator's own clock.

receipts.cancel of a paid receipt puts it in state 21 (queued for cancellation); `after_ms` later it is
50 (cancelled, the money back with the payer), or, while `fails` is set for it, paid again (4): the
emulator's stand-in for a cancellation Payme could not carry out, which Payme documents no state for.
Whoever reads the receipt after its time sees it ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECEIPT_PAID = 4
RECEIPT_CANCELLED = 50


@dataclass(slots=True)
class ReceiptCancels:
    after_ms: int = 3_600_000  # how long a receipt stays queued for cancellation
    fails: bool = False  # the cancellations queued from now on end with the receipt paid again
    due: dict[str, tuple[int, bool]] = field(default_factory=dict)  # receipt id → (ends at, fails)

    def queue(self, receipt_id: str, now_ms: int) -> None:
        self.due.setdefault(receipt_id, (now_ms + self.after_ms, self.fails))

    def settle(self, receipts: dict[str, dict[str, Any]], now_ms: int) -> None:
        """End every queued cancellation whose time has come."""
        for receipt_id, (ends_at, fails) in list(self.due.items()):
            if ends_at > now_ms:
                continue
            del self.due[receipt_id]
            if fails:
                receipts[receipt_id].update(state=RECEIPT_PAID, cancel_time=0)
            else:
                receipts[receipt_id].update(state=RECEIPT_CANCELLED, cancel_time=now_ms)
