"""The objects the YooKassa emulator keeps, and how they move (reference §2, §5, §6): a payment goes
pending → succeeded (or waiting_for_capture when created with capture false) or canceled; a charge of a
saved method is decided at once; a refund makes the payment's `refunded_amount` grow. Times come from the
emulator's own clock. Tests drive these methods directly too."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billing.money import Money
from webhook_server.emulators.common import Declines
from webhook_server.emulators.yookassa_refunds import RefundTimeline, add_refunded, begin, end_due
from webhook_server.emulators.yookassa_refusals import ShopRules
from webhook_server.emulators.yookassa_wire import REFUND_SUCCEEDED, amount, amount_minor, iso, notification

FEE_PER_MILLE = 35  # YooKassa's fee (3.5 %) in tenths of a percent, for income_amount
TEST_CARD = {"first6": "555555", "last4": "4444", "expiry_month": "12", "expiry_year": "2030",
             "card_type": "MasterCard", "issuer_country": "RU"}


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class YooKassaShop:
    """One emulated shop: its credentials, mode, clock and objects."""

    shop_id: str
    secret_key: str
    checkout_base: str = ""  # where the payer's browser reaches the emulator
    test: bool = True
    refund_status: str = "succeeded"  # what a new refund becomes: succeeded, pending or canceled
    refund_timeline: RefundTimeline = field(default_factory=RefundTimeline)  # how a pending one ends, and when
    clock: Callable[[], datetime] = wall_clock  # YooKassa's own time: created_at, and the redelivery schedule
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved_methods: set[str] = field(default_factory=set)  # payment_method ids a later charge may use
    method_declines: Declines[str] = field(default_factory=Declines)  # method id → cancellation reason
    charges: list[str] = field(default_factory=list)  # ids of the payments made by charging a saved method
    rules: ShopRules = field(default_factory=ShopRules)  # the shop's settings and failures on demand

    def now(self) -> str:
        return iso(self.clock())

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        payment_id = str(uuid.uuid4())
        payment: dict[str, Any] = {
            "id": payment_id, "status": "pending", "paid": False, "amount": dict(body["amount"]),
            "description": body.get("description", ""), "recipient": {"account_id": self.shop_id,
                                                                       "gateway_id": "2190001"},
            "created_at": self.now(), "test": self.test, "refundable": False,
            "metadata": dict(body.get("metadata") or {}), "_capture": bool(body.get("capture", False)),
            "_save": body.get("save_payment_method") is True,
        }
        self.payments[payment_id] = payment
        method_id = body.get("payment_method_id")
        if isinstance(method_id, str):
            self._charge_method(payment, method_id)
        else:
            payment["confirmation"] = {"type": "redirect", "return_url": body["confirmation"]["return_url"],
                                       "confirmation_url": f"{self.checkout_base}/checkout/{payment_id}"}
        return payment

    def _charge_method(self, payment: dict[str, Any], method_id: str) -> None:
        """A merchant-initiated charge: succeeded, or canceled as the issuer or YooKassa would cancel it; with
        `rules.pending_for`, left pending until then (`decide_due_charges`)."""
        self.charges.append(payment["id"])
        payment["_save"] = True
        decide_at = self.rules.decided_at(self.clock())
        if decide_at is not None:
            payment.update(_decide_at=decide_at, _method=method_id)
            return
        self._decide_charge(payment, method_id)

    def decide_due_charges(self) -> list[str]:
        """Pending charges whose time on the emulator's clock has come end now, as they would have at once."""
        now = self.clock()
        due = [payment for payment in self.payments.values()
               if payment["status"] == "pending" and "_decide_at" in payment and payment["_decide_at"] <= now]
        for payment in due:
            del payment["_decide_at"]
            self._decide_charge(payment, payment.pop("_method"))
        return [payment["id"] for payment in due]

    def _decide_charge(self, payment: dict[str, Any], method_id: str) -> None:
        if method_id not in self.saved_methods:
            self.cancel(payment["id"], "yoo_money", "permission_revoked")
            return
        reason = self.method_declines.take(method_id)
        if reason is None:
            self.succeed(payment["id"], payment=payment, method_id=method_id)
        else:
            self.cancel(payment["id"], "payment_network", reason)

    def decline_method(self, method_id: str, reason: str, times: int = 0) -> None:
        """Cancel the next `times` charges of a saved method (all of them while 0) with this reason."""
        self.method_declines.add(method_id, reason, times)

    def allow_method(self, method_id: str) -> None:
        self.method_declines.clear(method_id)

    def succeed(self, payment_id: str, *, payment: dict[str, Any] | None = None,
                method_id: str | None = None) -> dict[str, Any]:
        """The payer paid: succeeded (captured) or, for capture false, waiting_for_capture."""
        payment = payment or self.payments[payment_id]
        payment.pop("confirmation", None)
        minor, currency = self.amount_of(payment, "amount")
        saved = payment["_save"]
        payment.update({
            "paid": True, "status": "succeeded" if payment["_capture"] or method_id else "waiting_for_capture",
            "income_amount": amount(minor - -(-minor * FEE_PER_MILLE // 1000), currency),
            "payment_method": {"type": "bank_card", "id": method_id or payment_id, "saved": saved,
                               "title": f"Bank card *{TEST_CARD['last4']}", "card": dict(TEST_CARD)},
            "authorization_details": {"rrn": "603668680243", "auth_code": "000000",
                                      "three_d_secure": {"applied": False}},
        })
        if payment["status"] == "succeeded":
            self._captured(payment)
        if saved:
            self.saved_methods.add(payment["payment_method"]["id"])
        return payment

    def _captured(self, payment: dict[str, Any]) -> None:
        payment.update({"status": "succeeded", "captured_at": self.now(), "refundable": True,
                        "refunded_amount": amount(0, payment["amount"]["currency"])})

    def cancel(self, payment_id: str, party: str = "payment_network",
               reason: str = "insufficient_funds") -> dict[str, Any]:
        payment = self.payments[payment_id]
        payment.pop("confirmation", None)
        payment.update({"status": "canceled", "paid": False,
                        "cancellation_details": {"party": party, "reason": reason}})
        return payment

    def refund(self, payment_id: str, money: Money, description: str = "") -> dict[str, Any]:
        payment = self.payments[payment_id]
        refund = {"id": str(uuid.uuid4()), "payment_id": payment_id, "status": self.refund_status,
                  "created_at": self.now(), "amount": amount(money.minor, money.currency), "description": description}
        if self.refund_status == "canceled":
            refund["cancellation_details"] = {"party": "yoo_money", "reason": "rejected_by_payee"}
        elif self.refund_status == "pending":
            begin(refund, self.clock(), self.refund_timeline)  # ends later (yookassa_refunds)
        else:
            add_refunded(payment, refund)
        self.refunds[refund["id"]] = refund
        return refund

    def end_due_refunds(self) -> list[str]:
        """Pending refunds whose time on the emulator's clock has come end now; the ids that succeeded."""
        return end_due(self.payments, self.refunds, self.clock())

    def refunds_of(self, payment_id: str) -> list[dict[str, Any]]:
        """The refunds made of one payment, oldest first: what a test counts."""
        return [refund for refund in self.refunds.values() if refund["payment_id"] == payment_id]

    @staticmethod
    def amount_of(obj: Mapping[str, Any], name: str) -> tuple[int, str]:
        read = amount_minor(obj.get(name))
        assert read is not None, f"the emulator keeps {name} readable"
        return read

    def public(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """An object as the API shows it (without the emulator's own bookkeeping)."""
        return {name: value for name, value in obj.items() if not name.startswith("_")}

    def notification(self, event: str, object_id: str) -> dict[str, Any]:
        store = self.refunds if event == REFUND_SUCCEEDED else self.payments
        return notification(event, self.public(store[object_id]))
