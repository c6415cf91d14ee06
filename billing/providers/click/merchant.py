"""Click's Merchant API (we call Click): the payment-status calls reconciliation asks.

Base `CLICK_API_URL` (https://api.click.uz/v2/merchant), JSON, a fresh `Auth` header per call
(merchant_user_id:sha1(timestamp + secret_key):timestamp). Every reply carries `error_code` (0 success,
negative failure); an HTTP status other than 200/201 means the call itself failed (click.md 4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from billing.errors import ProviderUnavailable
from billing.providers.base import HttpTransport, ProviderHTTPError
from billing.providers.click.protocol import merchant_auth

log = logging.getLogger(__name__)

# payment_status (click.md 4, documented on Click's CLICK Pass page): < 0 error, 0 created, 1 processing, 2 paid.
PAYMENT_SUCCESSFUL = 2


@dataclass(frozen=True, slots=True)
class ClickPayment:
    """A payment as Click's Merchant API reports it."""

    payment_id: int
    status: int | None  # payment_status; None when Click did not say

    @property
    def paid(self) -> bool:
        return self.status == PAYMENT_SUCCESSFUL


class MerchantApi:
    """The Merchant API client; `now` (the caller's clock) makes each call's Auth timestamp."""

    def __init__(self, transport: HttpTransport, base_url: str, *, service_id: int, merchant_user_id: str,
                 secret: str) -> None:
        self._transport = transport
        self._base = base_url.rstrip("/")
        self._service_id = service_id
        self._user = merchant_user_id
        self._secret = secret

    async def payment_by_label(self, label: str, day: date, *, now: datetime) -> ClickPayment | None:
        """Click's payment for merchant_trans_id `label` made on `day` (Click's date), with its status;
        None when Click has none. Click's documented reply to status_by_mti shows no payment_status, so
        payment/status is asked for it when it is missing."""
        body = await self._get(f"/payment/status_by_mti/{self._service_id}/{quote(label, safe='')}/"
                               f"{day.isoformat()}", now)
        payment_id = integer(body, "payment_id") if body else None
        if payment_id is None:
            return None
        status = integer(body, "payment_status") if body else None
        if status is None:
            status = await self.payment_status(payment_id, now=now)
        return ClickPayment(payment_id, status)

    async def payment_status(self, payment_id: int, *, now: datetime) -> int | None:
        """payment/status: Click's payment_status of `payment_id`; None when Click does not know it."""
        body = await self._get(f"/payment/status/{self._service_id}/{payment_id}", now)
        return integer(body, "payment_status") if body else None

    @property
    def service_id(self) -> int:
        return self._service_id

    async def call(self, method: str, path: str, *, now: datetime, body: Any = None) -> tuple[int, Any]:
        """One Merchant API request with a fresh Auth header: (HTTP status, decoded JSON or None). Raises
        ProviderUnavailable when Click cannot be reached."""
        headers = {"Accept": "application/json", "Content-Type": "application/json",
                   "Auth": merchant_auth(self._user, self._secret, int(now.timestamp()))}
        try:
            return await self._transport.request(method, self._base + path, json=body, headers=headers)
        except ProviderHTTPError as err:
            raise ProviderUnavailable(f"Click Merchant API {'/'.join(path.split('/')[1:3])}: {err}") from err

    async def _get(self, path: str, now: datetime) -> dict[str, Any] | None:
        """The reply object when error_code is 0, None when Click answered a negative error_code.

        Raises ProviderUnavailable when Click cannot be asked: network, any HTTP status but 200/201 (401 is a
        wrong CLICK_MERCHANT_USER_ID or secret), or a reply without an integer error_code."""
        method = path.split("/")[2]
        status, body = await self.call("GET", path, now=now)
        if status not in (200, 201):
            hint = " (check CLICK_MERCHANT_USER_ID and CLICK_SECRET_KEY)" if status == 401 else ""
            raise ProviderUnavailable(f"Click Merchant API {method} answered HTTP {status}{hint}")
        error_code = integer(body, "error_code") if isinstance(body, dict) else None
        if not isinstance(body, dict) or error_code is None:
            raise ProviderUnavailable(f"Click Merchant API {method}: a reply without error_code")
        if error_code != 0:
            log.info("click %s: error_code %s (%s)", method, error_code, str(body.get("error_note", ""))[:200])
            return None
        return body


def integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
