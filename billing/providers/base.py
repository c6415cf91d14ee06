"""What every provider module shares: the plain data that crosses the provider boundary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from billing.money import Money


@dataclass(frozen=True, slots=True)
class RawNotification:
    """A provider's request as webhook_server received it; no framework types."""

    path: str
    headers: Mapping[str, str]
    body: bytes
    remote: str


class EventKind(StrEnum):
    PAYMENT = "payment"  # money received and available: fulfil
    HELD = "held"  # money received but not yet available to us: record, do not fulfil
    TEST = "test"  # the provider's settings-page test: log only
    UNVERIFIED = "unverified"  # authenticity not proven (an unsigned notification): keep it, pay nothing yet


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """All that leaves a provider module once a notification is proven authentic."""

    provider: str
    operation_id: str
    label: str
    amount: Money  # what the payer paid; matched against the invoice
    kind: EventKind
    occurred_at: datetime | None = None
    net_amount: Money | None = None  # what we were credited, where the provider says
    payment_method: str | None = None  # a saved method as a person reads it, e.g. "Visa •••• 4242"
    payment_token: str | None = None  # what charges that method again (card token, payment_method_id); never logged
    period_end: datetime | None = None  # where the provider fixes it, the end of the period paid (Telegram Stars)


class Outcome(StrEnum):
    """What the domain decided about an event; each provider turns it into its own answer."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    TEST = "test"
    HELD = "held"
    UNKNOWN_LABEL = "unknown_label"
    WRONG_AMOUNT = "wrong_amount"
    WRONG_CURRENCY = "wrong_currency"
    ALREADY_PAID = "already_paid"  # only from pre-payment checks (check_payable)
    EXTRA = "extra"  # money for an invoice another payment had claimed: recorded, refunded or listed for refund
    UNVERIFIED = "unverified"  # kept as unverified until the provider's API confirms it


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    MISSING_SIGNATURE = "missing_signature"
    NOT_CONFIRMED = "not_confirmed"


class NotificationRejected(Exception):
    """The request is not an authentic, well-formed notification; nothing may change."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    status: int
    body: str = ""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class PageForm:
    """A form the payment page renders and the payer's browser submits to the provider."""

    provider: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class ProviderHTTPError(Exception):
    """A provider API answered with an error status or could not be reached."""


class HttpTransport(Protocol):
    """Implemented once outside billing/ over the shared HTTP client session."""

    async def post_form(self, url: str, data: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        """POST a form; return (status, decoded JSON body). Raises ProviderHTTPError on network failure."""
        ...

    async def request(
        self, method: str, url: str, *, json: Any = None, headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Any method with an optional JSON body and Basic auth; return (status, decoded JSON body or None).
        Raises ProviderHTTPError on network failure or timeout."""
        ...


class RefundUnsupported(Exception):
    """The provider offers no API to take this payment back; the owner refunds by hand."""


class ProviderRejected(Exception):
    """The provider's API refused a request (4xx): retrying the same request cannot succeed."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of the refusal, where it was an HTTP answer
        self.code = code  # the provider's error code ("forbidden", "invalid_request"), where it sent one



class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    PENDING = "pending"  # the provider has not decided yet: ask again later with the same request


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One merchant-initiated charge of a saved method (a renewal attempt)."""

    label: str  # the renewal invoice's label, carried back by the provider as a first payment's is
    amount: Money
    token: str  # the saved method: card token or payment_method_id; never logged
    idempotency_key: str  # the same for every run of one attempt, new for the next attempt
    user_id: int
    description: str
    known_operation_id: str | None = None  # the charge an earlier run of this attempt already started


Remember = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    operation_id: str | None = None  # the provider's id of the charge, where it made one
    event: VerifiedEvent | None = None  # SUCCEEDED: what the ledger records, exactly as for a first payment
    reason: str = ""  # DECLINED: the provider's reason, short, safe to show the user and the admin
    hard: bool = False  # DECLINED: retrying cannot succeed (card expired, lost, stolen, method revoked, or the
    # provider refused the request itself: 4xx, charges without the payer off for the shop); the method is dropped
    keep_method: bool = False  # DECLINED hard for a reason of ours (our credentials): the method stays saved


@runtime_checkable
class SavedMethodCharger(Protocol):
    """A provider that can charge a saved payment method without the payer (renewals)."""

    name: str
    charge_currency: str  # the currency its saved-method charges are made in

    async def charge(self, request: ChargeRequest, remember: Remember) -> ChargeResult:
        """Charge the saved method at most once per `request.idempotency_key`.

        Calls `remember(operation_id)` as soon as the provider names the charge and before any later
        step that could take money, so that a rerun after a crash passes it back as
        `known_operation_id` and the charge is looked up instead of made again.

        A refusal no retry can fix (the provider's 4xx, a dead card or token) is RETURNED as a hard DECLINED
        with the provider's message as `reason`. A temporary failure whose outcome is unknown (network,
        timeout, 5xx, 429) RAISES ProviderUnavailable: the renewal tries the same request (same key, same
        known_operation_id) again after RETRY_INTERVALS. Anything else raised counts as the latter, loudly.
        """
        ...

    async def forget(self, token: str) -> bool:
        """Delete the saved method at the provider; False where the provider has no API for it."""
        ...
