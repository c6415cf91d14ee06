"""CloudPayments' API client: Basic auth (Public ID : API secret), form bodies, X-Request-ID idempotency.

Requests go as forms rather than JSON so that amounts travel as exact decimal text ("299.00"): the
API takes both (CloudPayments' own CMS modules post forms), and JSON would need a float. Every answer
is {"Success", "Message", "Model"}; `Success` says whether the operation itself succeeded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from billing.errors import ProviderUnavailable
from billing.money import Money
from billing.providers.base import HttpTransport, ProviderHTTPError, ProviderRejected
from billing.providers.cloudpayments.protocol import basic_auth, format_amount

log = logging.getLogger(__name__)

MAX_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class ApiClient:
    transport: HttpTransport
    api_url: str
    public_id: str
    api_secret: str

    async def call(self, path: str, fields: dict[str, str], *, request_id: str) -> dict[str, Any]:
        """POST one method; the answer's body when Success is true.

        Raises ProviderUnavailable (network, timeout, 5xx, 429, an unreadable answer: try again later)
        or ProviderRejected (4xx, or Success false: the same request cannot succeed).
        """
        body = await self.answer(path, fields, request_id=request_id)
        if not body["Success"]:
            raise ProviderRejected(f"cloudpayments {path} refused: {message(body)}")
        return body

    async def answer(self, path: str, fields: dict[str, str], *, request_id: str | None) -> dict[str, Any]:
        """POST one method; its envelope whatever Success says, for methods whose refusal is itself an answer
        (a declined charge, a transaction not found). Without `request_id` no X-Request-ID is sent, so a
        lookup is never answered from CloudPayments' one-hour store of earlier answers.

        Raises ProviderUnavailable (network, timeout, 5xx, 429, no JSON envelope) or ProviderRejected (4xx).
        """
        url = f"{self.api_url.rstrip('/')}{path}"
        headers = {"Authorization": basic_auth(self.public_id, self.api_secret), "Accept": "application/json"}
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        try:
            status, body = await self.transport.post_form(url, fields, headers)
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"cloudpayments {path}: {err}") from err
        if status >= 500 or status == 429:
            raise ProviderUnavailable(f"cloudpayments {path} answered HTTP {status}")
        if status >= 400:
            raise ProviderRejected(f"cloudpayments {path} answered HTTP {status}")
        if not isinstance(body, dict) or not isinstance(body.get("Success"), bool):
            raise ProviderUnavailable(f"cloudpayments {path} answered something other than its JSON envelope")
        return body

    async def kkt_receipt(self, body: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        """POST /kkt/receipt (JSON: its CustomerReceipt is an object): a receipt issued by CloudPayments' kassa.
        Raises as `call` does; Success false (a refused receipt) is ProviderRejected with the Message."""
        url = f"{self.api_url.rstrip('/')}/kkt/receipt"
        headers = {"Authorization": basic_auth(self.public_id, self.api_secret), "Accept": "application/json",
                   "X-Request-ID": request_id}
        try:
            status, answer = await self.transport.request("POST", url, json=body, headers=headers)
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"cloudpayments /kkt/receipt: {err}") from err
        if status >= 500 or status == 429:
            raise ProviderUnavailable(f"cloudpayments /kkt/receipt answered HTTP {status}")
        if status >= 400:
            raise ProviderRejected(f"cloudpayments /kkt/receipt answered HTTP {status}", status=status)
        if not isinstance(answer, dict) or not isinstance(answer.get("Success"), bool):
            raise ProviderUnavailable("cloudpayments /kkt/receipt answered something other than its JSON envelope")
        if not answer["Success"]:
            raise ProviderRejected(f"cloudpayments /kkt/receipt refused: {message(answer)}")
        return answer

    async def refund(self, transaction_id: str, amount: Money, request_id: str | None = None) -> dict[str, Any]:
        """/payments/refund of a completed payment (a partial amount is allowed); `request_id` (X-Request-ID)
        tells one partial refund from the next."""
        return await self.call("/payments/refund", {"TransactionId": transaction_id,
                                                    "Amount": format_amount(amount.minor)},
                               request_id=request_id or f"ymds-refund-{transaction_id}-{amount.minor}")

    async def confirm(self, transaction_id: str, amount: Money) -> dict[str, Any]:
        """/payments/confirm of a two-stage payment held by Pay with Status=Authorized."""
        return await self.call("/payments/confirm", {"TransactionId": transaction_id,
                                                     "Amount": format_amount(amount.minor)},
                               request_id=f"ymds-confirm-{transaction_id}")

    async def void(self, transaction_id: str) -> dict[str, Any]:
        """/payments/void: releases a hold (or cancels a same-day payment)."""
        return await self.call("/payments/void", {"TransactionId": transaction_id},
                               request_id=f"ymds-void-{transaction_id}")

    async def charge_token(self, fields: dict[str, str], *, request_id: str) -> dict[str, Any]:
        """/payments/tokens/charge: a one-stage charge of a saved card token; a decline is an answer too."""
        return await self.answer("/payments/tokens/charge", fields, request_id=request_id)

    async def transaction(self, transaction_id: str) -> dict[str, Any]:
        """/payments/get: one transaction as it is now."""
        return await self.answer("/payments/get", {"TransactionId": transaction_id}, request_id=None)

    async def cancel_subscription(self, subscription_id: str) -> dict[str, Any]:
        """/subscriptions/cancel: CloudPayments charges it no more."""
        return await self.call("/subscriptions/cancel", {"Id": subscription_id},
                               request_id=f"ymds-subscription-cancel-{subscription_id}")

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        """/subscriptions/get: one subscription as it is now (Success false when CloudPayments has none)."""
        return await self.answer("/subscriptions/get", {"Id": subscription_id}, request_id=None)

    async def latest_for_invoice(self, label: str) -> dict[str, Any]:
        """/payments/find: the latest transaction whose InvoiceId is `label`."""
        return await self.answer("/payments/find", {"InvoiceId": label}, request_id=None)


def message(body: dict[str, Any]) -> str:
    """The provider's reason, for the admin: Message, else the model's Reason or CardHolderMessage."""
    model: dict[str, Any] = body["Model"] if isinstance(body.get("Model"), dict) else {}
    for value in (body.get("Message"), model.get("CardHolderMessage"), model.get("Reason")):
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_MESSAGE]
    return "no reason given"
