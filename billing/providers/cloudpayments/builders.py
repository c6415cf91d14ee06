"""Notifications as CloudPayments writes them: for the emulator, `ymds simulate cloudpayments` and the tests.

Field names and order follow the reference's worked Pay example (cloudpayments.md 9.2), so a body
built here and form-encoded is byte for byte what CloudPayments sends.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from billing.money import Money
from billing.providers.cloudpayments.protocol import Status, format_amount

TEST_CARD = ("424242", "4242", "Visa", "12/27")
INSUFFICIENT_FUNDS = (5051, "InsufficientFunds")


def _when(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def transaction_fields(
    *, transaction_id: int | str, amount: Money, label: str, account_id: str, status: str = Status.COMPLETED,
    test: bool = True, subscription_id: str = "", token: str | None = None, description: str = "",
    occurred_at: datetime | None = None, data: dict[str, Any] | None = None, pay: bool = True,
) -> dict[str, str]:
    """Check, Pay or Confirm for one transaction (`pay` adds Pay's own fields: gateway, auth code, token)."""
    first_six, last_four, card_type, expiry = TEST_CARD
    fields = {
        "TransactionId": str(transaction_id), "Amount": format_amount(amount.minor), "Currency": amount.currency,
        "PaymentAmount": format_amount(amount.minor), "PaymentCurrency": amount.currency,
        "DateTime": _when(occurred_at), "CardFirstSix": first_six, "CardLastFour": last_four,
        "CardType": card_type, "CardExpDate": expiry, "TestMode": "1" if test else "0", "Status": str(status),
        "OperationType": "Payment",
    }
    if pay:
        fields["GatewayName"] = "Test" if test else "Tinkoff"
    fields.update({"InvoiceId": label, "AccountId": account_id, "SubscriptionId": subscription_id,
                   "Name": "CARD HOLDER", "Email": "", "IpAddress": "203.0.113.7", "Description": description})
    if pay:
        fields["AuthCode"] = "A1B2C3"
        if token:
            fields["Token"] = token
    fields["Data"] = json.dumps(data if data is not None else {"label": label}, separators=(",", ":"), default=str)
    if pay:
        fields["TotalFee"] = "0.00"
    return fields


def fail_fields(*, transaction_id: int | str, amount: Money, label: str, account_id: str, test: bool = True,
                reason: tuple[int, str] = INSUFFICIENT_FUNDS, subscription_id: str = "") -> dict[str, str]:
    fields = transaction_fields(transaction_id=transaction_id, amount=amount, label=label, account_id=account_id,
                                status="Declined", test=test, subscription_id=subscription_id, pay=False)
    fields.update({"Reason": reason[1], "ReasonCode": str(reason[0])})
    return fields


def refund_fields(*, refund_id: int | str, payment_id: int | str, amount: Money, label: str,
                  account_id: str, occurred_at: datetime | None = None) -> dict[str, str]:
    return {"TransactionId": str(refund_id), "PaymentTransactionId": str(payment_id),
            "Amount": format_amount(amount.minor), "DateTime": _when(occurred_at), "OperationType": "Refund",
            "InvoiceId": label, "AccountId": account_id, "Email": "", "Data": json.dumps({"label": label})}


def cancel_fields(*, transaction_id: int | str, amount: Money, label: str, account_id: str,
                  occurred_at: datetime | None = None) -> dict[str, str]:
    return {"TransactionId": str(transaction_id), "Amount": format_amount(amount.minor),
            "DateTime": _when(occurred_at), "InvoiceId": label, "AccountId": account_id, "Email": "",
            "Data": json.dumps({"label": label})}


def recurrent_fields(*, subscription_id: str, account_id: str, amount: Money, status: str, interval: str,
                     period: int, successes: int = 1, failures: int = 0, description: str = "",
                     start: datetime | None = None) -> dict[str, str]:
    return {"Id": subscription_id, "AccountId": account_id, "Description": description, "Email": "",
            "Amount": format_amount(amount.minor), "Currency": amount.currency, "RequireConfirmation": "0",
            "StartDate": _when(start), "Interval": interval, "Period": str(period), "Status": status,
            "SuccessfulTransactionsNumber": str(successes), "FailedTransactionsNumber": str(failures)}
