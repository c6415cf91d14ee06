"""The konsol.pro Payments API client: create a payout, get one by its id, the balance, the SBP directory.

Only the calls the reference (shared/providers/konsol.md §4.2) names are made: no payments list, no cancel
(konsol.pro publishes neither; a payout is cancelled in its cabinet). Every call carries `Authorization:
Bearer KONSOL_API_TOKEN` and is bounded by KONSOL_TIMEOUT. Failures become typed exceptions carrying
konsol.pro's own message (scrubbed of card numbers and phones):
- KonsolNotSent: the request certainly created nothing (connection refused, DNS, HTTP 429);
- KonsolOutcomeUnknown: it may have been processed (timeout, connection lost after sending, HTTP 5xx, and
  for a creation any status we do not know as a refusal);
- KonsolRejected (KonsolAuthFailed, KonsolNotFound): HTTP 4xx, which no retry fixes.
konsol.pro documents no idempotency key, so the caller never repeats a creation whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from billing.errors import ProviderUnavailable
from billing.providers.base import HttpTransport, ProviderHTTPError, ProviderRejected
from billing.providers.konsol.protocol import (
    Account,
    Bank,
    KonsolPayment,
    parse_balance,
    parse_banks,
    parse_payment,
    scrub,
)

log = logging.getLogger(__name__)

PAYMENTS_PATH = "/api/v1/payments"
# the SBP directory: the path the reference names, then the one another public integration calls
BANKS_PATHS = ("/api/v1/references/fps_bank_members", "/api/v1/payments/fps_banks")
ACCOUNTS_PATH = "/api/v1/company_accounts"
# what konsol.pro answers when it refuses a payout it validated [OBS: 422 with its message]; for a creation every
# other non-2xx (but 401/403 and 429) may hide a payout that exists
CREATE_REFUSALS = frozenset({400, 402, 422})
MESSAGE_KEYS = ("message", "error_message", "error", "detail", "errors", "description")


class KonsolUnavailable(ProviderUnavailable):
    """konsol.pro did not answer usefully; the call may be retried (a creation only as the subclass says)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KonsolNotSent(KonsolUnavailable):
    """The request certainly did not create anything: it never left, or was refused unprocessed (429)."""


class KonsolOutcomeUnknown(KonsolUnavailable):
    """The request left and no answer came back (timeout, connection lost): it may have been processed."""


class KonsolServerError(KonsolOutcomeUnknown):
    """HTTP 5xx: a proxy's 502 or 504 usually means "processed, answer lost"."""


class KonsolRejected(ProviderRejected):
    """HTTP 4xx: konsol.pro refused the request; repeating it cannot succeed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"konsol.pro answered HTTP {status}" + (f": {message}" if message else ""))
        self.status = status
        self.message = message


class KonsolAuthFailed(KonsolRejected):
    """401/403: the token is wrong or lacks access ("access denied")."""


class KonsolNotFound(KonsolRejected):
    """404."""


class KonsolClient:
    """konsol.pro's Payments API over the process's HttpTransport."""

    def __init__(self, transport: HttpTransport, *, base_url: str, token: str, timeout: float) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    @property
    def transport(self) -> HttpTransport:
        return self._transport

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    async def create_payment(self, body: Mapping[str, Any]) -> KonsolPayment:
        """POST once. A 2xx without a readable payment is an unknown outcome, never a failure."""
        answer = await self._call("POST", PAYMENTS_PATH, json=dict(body), creating=True)
        payment = parse_payment(answer)
        if payment is None:
            raise KonsolOutcomeUnknown("konsol.pro accepted the payout but its answer has no payment id")
        return payment

    async def get_payment(self, payment_id: str) -> KonsolPayment:
        answer = await self._call("GET", f"{PAYMENTS_PATH}/{quote(payment_id, safe='')}")
        payment = parse_payment(answer)
        if payment is None or payment.id != payment_id:
            raise KonsolUnavailable("konsol.pro's answer is not the payment asked for")
        return payment

    async def balance(self) -> list[Account]:
        return parse_balance(await self._call("GET", ACCOUNTS_PATH))

    async def banks(self) -> list[Bank]:
        """The SBP directory. The documented-by-usage path first, then the one another integration calls."""
        for path in BANKS_PATHS:
            try:
                banks = parse_banks(await self._call("GET", path))
            except KonsolNotFound:
                continue
            if banks:
                return banks
        return []

    async def _call(self, method: str, path: str, *, json: Any = None, creating: bool = False) -> Any:
        headers = self.auth_headers()
        if json is not None:
            headers["Content-Type"] = "application/json"
        name = f"{method} {path.split('?', 1)[0]}"
        try:
            async with asyncio.timeout(self._timeout):
                status, body = await self._transport.request(method, self._base_url + path, json=json, headers=headers)
        except TimeoutError:
            raise KonsolOutcomeUnknown(f"konsol.pro did not answer {name} within {self._timeout:g} s") from None
        except ProviderHTTPError as err:
            if _never_sent(err):
                raise KonsolNotSent(f"konsol.pro unreachable for {name}: {err}") from None
            raise KonsolOutcomeUnknown(f"konsol.pro connection failed during {name}: {err}") from None
        if 200 <= status < 300:
            return body
        message = _message(body)
        log.warning("konsol.pro answered %s to %s: %s", status, name, message or "(no message)")
        if status == 429:
            raise KonsolNotSent(f"konsol.pro rate-limited {name}: {message}", status)
        if status >= 500:
            raise KonsolServerError(f"konsol.pro answered HTTP {status} to {name}: {message}", status)
        if status in (401, 403):
            raise KonsolAuthFailed(status, message)
        if creating and status not in CREATE_REFUSALS:
            raise KonsolOutcomeUnknown(f"konsol.pro answered HTTP {status} to {name}: {message}", status)
        if status in (404, 405):
            raise KonsolNotFound(status, message)
        if status >= 400:
            raise KonsolRejected(status, message)
        raise KonsolUnavailable(f"konsol.pro answered HTTP {status} to {name}", status)


def _never_sent(err: BaseException) -> bool:
    """Connection refused or the name did not resolve: the request never reached konsol.pro. The transport
    chains the underlying OS error, so no HTTP library is needed to tell."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (ConnectionRefusedError, socket.gaierror)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in MESSAGE_KEYS:
            value = body.get(key)
            if value:
                return scrub(value if isinstance(value, str) else str(value))
        return ""
    return scrub(str(body)) if body is not None else ""
