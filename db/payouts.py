"""Payout claims (konsol.pro), the log of konsol.pro webhooks, and the cached SBP bank directory.

A claim moves only by conditional updates whose filter names the status it leaves. Unset fields are not
stored (keep_nulls=False), so the sparse unique index on `konsol_id` holds only claims that have one, and
an erased card number is gone from the document, not kept as null.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from db.record import Record

OPERATIONS_COLLECTION = "operations"  # db.models.Operation's


class ClaimStatus(StrEnum):
    DRAFT = "draft"  # the user has not confirmed yet (the bot's dialogue)
    NEW = "new"  # filed; waits for an admin
    REJECTED = "rejected"  # final
    ACCEPTED = "accepted"  # an admin accepted; the payout job is queued
    CREATING = "creating"  # the job records each attempt to create the payout here before it calls konsol.pro
    SUBMITTED = "submitted"  # konsol.pro gave the payout an id
    NEEDS_ACTION = "needs_action"  # konsol.pro waits for something outside open-ymds (e.g. «Мой налог»)
    UNKNOWN = "unknown"  # whether konsol.pro created it is not known; looked up, else reconciled by hand
    PAID = "paid"  # final
    FAILED = "failed"  # final
    CANCELLED = "cancelled"  # final
    EXPIRED = "expired"  # final: never decided while the card data could be kept


FINAL_STATUSES = frozenset({ClaimStatus.REJECTED, ClaimStatus.PAID, ClaimStatus.FAILED, ClaimStatus.CANCELLED,
                            ClaimStatus.EXPIRED})
OPEN_AT_KONSOL = (ClaimStatus.SUBMITTED, ClaimStatus.NEEDS_ACTION)


class PayoutMethod(StrEnum):
    CARD = "card"
    FPS = "fps"  # SBP: phone + bank


class AttemptState(StrEnum):
    """The last attempt to create the payout at konsol.pro, recorded before and after the call."""

    IN_FLIGHT = "in_flight"  # recorded before the call; still so after a crash mid-call
    NOT_SENT = "not_sent"  # certainly created nothing (unreachable, 429): may be sent again
    SERVER_ERROR = "server_error"  # konsol.pro answered 5xx: looked up before anything is sent again
    OUTCOME_UNKNOWN = "outcome_unknown"  # timeout or lost connection: only ever looked up, never sent again


class Resolution(StrEnum):
    """What an admin decided for a claim the machine cannot settle (recorded in `PayoutClaim.decisions`)."""

    ATTACH = "attach"  # this konsol.pro payment id is the claim's payout (checked by a lookup of that id)
    FAIL = "fail"  # no payout exists, or it can no longer be paid: the claim fails, the user may file again
    RESEND = "resend"  # no payout exists at konsol.pro: send it again


class AdminDecision(BaseModel):
    action: Resolution
    by: int  # Telegram id; 0 for the admin API
    by_name: str
    at: datetime
    konsol_id: str | None = None
    note: str = ""


class PayoutClaim(Record):
    label: str  # "po_" + 16 hex digits; what admins, the API and konsol.pro's purpose text show
    external_id: str  # "claim_<label>": open-ymds's own key (konsol.pro has no idempotency key)
    user_id: int
    payee_first_name: str = ""
    payee_last_name: str = ""
    language: str | None = None
    amount: int  # kopecks
    currency: str = "RUB"
    method: PayoutMethod
    card_mask: str | None = None  # "411111******1111"
    card_encrypted: str | None = None  # Fernet token; erased once konsol.pro has the payout, or on any end
    phone: str | None = None  # E.164, SBP payouts only
    bank_id: str | None = None  # SBP member id
    bank_name: str | None = None
    status: ClaimStatus = ClaimStatus.DRAFT
    created_at: datetime
    updated_at: datetime
    filed_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: int | None = None  # Telegram id of the deciding admin; 0 for the admin API
    decided_by_name: str | None = None
    reject_reason: str | None = None
    job_runs: int = 0  # runs of the creation job (its RQ retries included)
    attempts: int = 0  # POSTs that may have reached konsol.pro
    attempt_state: AttemptState | None = None
    attempted_at: datetime | None = None
    konsol_id: str | None = None
    konsol_status: str | None = None
    submitted_at: datetime | None = None
    settled_at: datetime | None = None
    failure_reason: str | None = None  # short and scrubbed: a konsol.pro message, "timeout", ...
    poll_step: int = 0
    alerts: list[str] = Field(default_factory=list)  # admin alerts already raised for this claim
    rounds: int = 0  # times the creation was queued again by an admin (each its own job)
    unknown_since: datetime | None = None
    candidate_id: str | None = None  # a konsol.pro id an admin gave for an `unknown` claim, while it is checked
    decisions: list[AdminDecision] = Field(default_factory=list)  # admins' resolutions, who and when

    class Settings:
        name = "payout_claims"
        keep_nulls = False
        indexes = [
            IndexModel([("label", ASCENDING)], unique=True, name="label_unique"),
            IndexModel([("external_id", ASCENDING)], unique=True, name="external_id_unique"),
            IndexModel([("konsol_id", ASCENDING)], unique=True, sparse=True, name="konsol_id_unique"),
            IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_created"),
            IndexModel([("status", ASCENDING), ("created_at", DESCENDING)], name="status_created"),
            IndexModel([("currency", ASCENDING)], name="currency"),
        ]


class KonsolWebhookLog(Record):
    """One row per request to POST /notify/konsol: what it claimed and what came of it. Never its body, a
    card number, a signature or a token."""

    received_at: datetime
    remote: str
    expected_source: bool  # from konsol.pro's documented address
    authenticated_by: str | None = None  # "signature", "token", "none" (no secret set); None: refused
    event: str = ""
    payment_id: str = ""  # as the body named it (scrubbed)
    status_hint: str = ""
    claim_label: str | None = None
    fetched_status: str | None = None
    outcome: str = ""
    http_status: int | None = None

    class Settings:
        name = "konsol_webhooks"
        keep_nulls = False
        indexes = [IndexModel([("received_at", DESCENDING)], name="received"),
                   IndexModel([("payment_id", ASCENDING)], name="payment_id")]


class SbpBankDirectory(Record):
    """konsol.pro's SBP bank list, fetched at most once a day and shared by every process."""

    key: str = "fps_bank_members"
    banks: list[dict[str, str]]  # [{"id": "100000000111", "name": "Сбербанк"}, ...]
    fetched_at: datetime

    class Settings:
        name = "sbp_banks"
        indexes = [IndexModel([("key", ASCENDING)], unique=True, name="key_unique")]


async def settle_payout_rows(database: Any) -> int:
    """Ledger rows of payout outcomes written by earlier versions were left `recorded`, so the sweep of
    unfinished payments took them for customer payments: mark them finished. Idempotent."""
    result = await database[OPERATIONS_COLLECTION].update_many(
        {"provider": "konsol", "status": "recorded"}, {"$set": {"status": "payout"}})
    return int(result.modified_count)


PAYOUT_DOCUMENTS: list[type[Record]] = [PayoutClaim, KonsolWebhookLog, SbpBankDirectory]
