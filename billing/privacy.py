"""A user's data deleted on request (/deletedata; Telegram's Bot Developer Terms, 152-FZ art. 21).

What is erased, what is anonymised and what is kept, per collection (README, "Telegram bot"): the bot's own
records of the user go (language, subscription with its saved method, finished renewals, payout drafts and
claims never sent, the user's chat id on delivered notices); the records of money stay, because accounting and
tax law require them and refunds need them (invoices, the ledger, Stars charges, payouts that reached
konsol.pro), stripped of what identifies a card or an address: the ledger's saved token and card title, the
consent's IP address, the buyer's e-mail or phone the receipt was sent to (the receipt itself, at the provider
and the tax service, stays as the law keeps it), the payee's name, card and phone on a payout claim.

What must not be destroyed silently blocks the deletion, and the user is told what to do first
(`Blocker`): a subscription that renews by itself (our saved method, a CloudPayments or a Telegram Stars
subscription), its removal at the provider still under way, a renewal charge in flight, a payout claim not yet
settled. Paid access still running is not a blocker: the question names it, and the confirmation carries the
period end the user agreed to give up, so access bought after the question asks again (`AccessChanged`).

Every step is one conditional write that matches nothing once done, in an order where every prefix leaves a
consistent database: a rerun after a crash (a redelivered update, the polling retry) finishes the work, and a
second confirmation changes nothing. The log names counts only, never the user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from billing.errors import BillingError
from billing.steps import Checkpoint, no_checkpoint
from billing.subscriptions import get_subscription, is_active, renews_automatically
from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription
from db.cloudpayments import CloudPaymentsSubscription
from db.payouts import FINAL_STATUSES, ClaimStatus, PayoutClaim
from db.renewals import OPEN_VALUES, Renewal
from db.stars import RenewalState, StarsSubscription
from db.users import BotUser, SentNotice

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # the subscription changed between its check and its deletion this often: give up (contention)
ERASED_CHAT = 0  # the chat id a delivered notice keeps once its recipient's data is deleted

# Ledger rows whose processing is over: their saved token and card title are no longer needed by anything.
FINISHED_OPERATIONS = [status.value for status in (
    OperationStatus.APPLIED, OperationStatus.EXTRA, OperationStatus.REJECTED, OperationStatus.REVERSED,
    OperationStatus.PAYOUT)]
KEPT_INVOICES = [InvoiceStatus.PAID.value, InvoiceStatus.REFUNDED.value]
# Payout claims konsol.pro knew of: the record of money paid out (or of its failure) stays, anonymised.
ANONYMISED_CLAIMS = [status.value for status in (ClaimStatus.PAID, ClaimStatus.FAILED, ClaimStatus.CANCELLED)]
# Final claims that never reached konsol.pro (rejected by an admin, expired undecided) and drafts: deleted.
DELETED_CLAIMS = [status.value for status in (ClaimStatus.REJECTED, ClaimStatus.EXPIRED, ClaimStatus.DRAFT)]
OPEN_CLAIMS = [status.value for status in ClaimStatus
               if status not in FINAL_STATUSES and status is not ClaimStatus.DRAFT]
PAYEE_FIELDS = ("payee_first_name", "payee_last_name", "card_mask", "card_encrypted", "phone", "bank_id",
                "bank_name", "language")
CLOUDPAYMENTS_RENEWING = ("Active", "PastDue")  # CloudPayments still charges the card by itself

STEPS = ("subscription deleted", "payout drafts and unsent claims deleted", "payout claims anonymised",
         "consent addresses erased", "receipt contacts erased", "ledger methods erased",
         "renewals deleted", "notices anonymised", "user deleted")


class Blocker(StrEnum):
    """What the user must settle before their data can go."""

    AUTO_RENEWAL = "auto_renewal"  # a saved method (ours) or a CloudPayments subscription renews it: /cancel
    RENEWAL_STOPPING = "renewal_stopping"  # not renewing, but the saved method's removal at the provider is pending
    STARS_RENEWAL = "stars_renewal"  # Telegram renews a Stars subscription by itself: /renewal
    CHARGE_IN_PROGRESS = "charge_in_progress"  # a renewal charge is due, running or pending at the provider
    PAYOUT_OPEN = "payout_open"  # a payout claim filed and not settled


class DeletionRefused(BillingError):
    """The deletion cannot run now; `inventory` says why (its blockers) or what changed."""

    def __init__(self, inventory: Inventory) -> None:
        super().__init__(", ".join(inventory.blockers) or "access changed")
        self.inventory = inventory


class DeletionBlocked(DeletionRefused):
    """Something the user must settle first (`inventory.blockers`); nothing was changed."""


class AccessChanged(DeletionRefused):
    """Paid access now runs later than the user agreed to give up (a payment since the question); ask again."""


class SubscriptionContention(BillingError):
    """The subscription kept changing between its check and its deletion."""


@dataclass(frozen=True)
class Inventory:
    """What the user has and what a deletion would do, for the question and for the refusal."""

    blockers: tuple[Blocker, ...]
    open_payouts: tuple[str, ...]  # labels of the claims that block
    plan: str | None  # the plan of paid access that a deletion ends
    access_until: datetime | None  # its end; None: no access to give up
    payments_kept: int  # paid or refunded invoices (with their ledger rows) that stay
    payouts_kept: int  # payout claims that stay, anonymised

    @property
    def access_seconds(self) -> int:
        """The access end as the confirmation carries it (unix seconds; 0: none)."""
        return int(self.access_until.timestamp()) if self.access_until is not None else 0


@dataclass
class Erasure:
    """What one run of `erase` changed (a rerun counts only what was still left), and what stays."""

    deleted: dict[str, int] = field(default_factory=dict)  # collection → documents deleted
    anonymised: dict[str, int] = field(default_factory=dict)  # collection → documents stripped
    payments_kept: int = 0
    payouts_kept: int = 0

    @property
    def changed(self) -> int:
        return sum(self.deleted.values()) + sum(self.anonymised.values())


async def inventory(user_id: int, now: datetime) -> Inventory:
    subscription = await get_subscription(user_id)
    blockers: list[Blocker] = []
    if subscription is not None and renews_automatically(subscription):
        blockers.append(Blocker.AUTO_RENEWAL)
    elif subscription is not None and _method_left(subscription):
        blockers.append(Blocker.RENEWAL_STOPPING)
    cloudpayments = await CloudPaymentsSubscription.find(
        {"user_id": user_id, "status": {"$in": list(CLOUDPAYMENTS_RENEWING)}}).to_list()
    if cloudpayments and not blockers:
        stopping = all(row.stop_requested_at is not None for row in cloudpayments)
        blockers.append(Blocker.RENEWAL_STOPPING if stopping else Blocker.AUTO_RENEWAL)
    stars = await StarsSubscription.find({"user_id": user_id, "state": RenewalState.ACTIVE.value}).to_list()
    if any(row.expires_at is None or row.expires_at > now for row in stars):
        blockers.append(Blocker.STARS_RENEWAL)
    if await Renewal.find_one({"user_id": user_id, "status": {"$in": OPEN_VALUES}}) is not None:
        blockers.append(Blocker.CHARGE_IN_PROGRESS)
    open_claims = await PayoutClaim.find({"user_id": user_id, "status": {"$in": OPEN_CLAIMS}}).sort(
        "created_at").to_list()
    if open_claims:
        blockers.append(Blocker.PAYOUT_OPEN)
    access = subscription is not None and is_active(subscription, now)
    return Inventory(
        blockers=tuple(blockers), open_payouts=tuple(claim.label for claim in open_claims),
        plan=subscription.plan if access and subscription is not None else None,
        access_until=subscription.current_period_end if access and subscription is not None else None,
        payments_kept=await Invoice.find({"user_id": user_id, "status": {"$in": KEPT_INVOICES}}).count(),
        payouts_kept=await PayoutClaim.find({"user_id": user_id, "status": {"$in": ANONYMISED_CLAIMS}}).count(),
    )


async def erase(user_id: int, now: datetime, *, accepted_access: int,
                checkpoint: Checkpoint = no_checkpoint) -> Erasure:
    """Delete or anonymise the user's data as the module says. `accepted_access`: the access end (unix seconds,
    0 for none) the user agreed to give up. DeletionBlocked or AccessChanged change nothing."""
    found = await inventory(user_id, now)
    if found.blockers:
        raise DeletionBlocked(found)
    if found.access_seconds > accepted_access:
        raise AccessChanged(found)
    done = Erasure(payments_kept=found.payments_kept, payouts_kept=found.payouts_kept)
    _count(done.deleted, "subscriptions", await _delete_subscription(user_id, now, accepted_access))
    checkpoint(STEPS[0])
    claims = PayoutClaim.get_motor_collection()
    removed = await claims.delete_many({"user_id": user_id, "status": {"$in": DELETED_CLAIMS}})
    _count(done.deleted, "payout_claims", removed.deleted_count)
    checkpoint(STEPS[1])
    payee = [{name: {"$exists": True}} for name in PAYEE_FIELDS]
    changed = await claims.update_many({"user_id": user_id, "status": {"$in": ANONYMISED_CLAIMS}, "$or": payee},
                                       {"$unset": dict.fromkeys(PAYEE_FIELDS, "")})
    _count(done.anonymised, "payout_claims", changed.modified_count)
    checkpoint(STEPS[2])
    changed = await Invoice.get_motor_collection().update_many(
        {"user_id": user_id, "auto_renew_consent.ip": {"$nin": ["", None]}},
        {"$set": {"auto_renew_consent.ip": ""}})
    _count(done.anonymised, "invoices", changed.modified_count)
    checkpoint(STEPS[3])
    changed = await Invoice.get_motor_collection().update_many(
        {"user_id": user_id, "receipt_contact": {"$ne": None}}, {"$set": {"receipt_contact": None}})
    _count(done.anonymised, "invoices", changed.modified_count)
    checkpoint(STEPS[4])
    labels = [row["label"] async for row in Invoice.get_motor_collection().find({"user_id": user_id}, {"label": 1})]
    if labels:
        changed = await Operation.get_motor_collection().update_many(
            {"label": {"$in": labels}, "status": {"$in": FINISHED_OPERATIONS},
             "$or": [{"payment_token": {"$ne": None}}, {"payment_method": {"$ne": None}}]},
            {"$set": {"payment_token": None, "payment_method": None}})
        _count(done.anonymised, "operations", changed.modified_count)
    checkpoint(STEPS[5])
    removed = await Renewal.get_motor_collection().delete_many({"user_id": user_id, "status": {"$nin": OPEN_VALUES}})
    _count(done.deleted, "renewals", removed.deleted_count)
    checkpoint(STEPS[6])
    changed = await SentNotice.get_motor_collection().update_many({"chat_id": user_id},
                                                                  {"$set": {"chat_id": ERASED_CHAT}})
    _count(done.anonymised, "sent_notices", changed.modified_count)
    checkpoint(STEPS[7])
    removed = await BotUser.get_motor_collection().delete_many({"user_id": user_id})
    _count(done.deleted, "bot_users", removed.deleted_count)
    checkpoint(STEPS[8])
    log.info("personal data deleted on request: deleted %s, anonymised %s; kept %d payments and %d payouts",
             _summary(done.deleted), _summary(done.anonymised), done.payments_kept, done.payouts_kept)
    return done


async def _delete_subscription(user_id: int, now: datetime, accepted_access: int) -> int:
    """Delete the subscription only as it was checked: not renewing by itself, and no later access than the
    user accepted. A change in between (a payment, auto-renewal turned on) is looked at again."""
    for _ in range(MAX_ATTEMPTS):
        subscription = await get_subscription(user_id)
        if subscription is None:
            return 0
        if renews_automatically(subscription) or _method_left(subscription):
            raise DeletionBlocked(await inventory(user_id, now))
        if is_active(subscription, now) and int(subscription.current_period_end.timestamp()) > accepted_access:
            raise AccessChanged(await inventory(user_id, now))
        unchanged: dict[str, Any] = {
            "_id": subscription.id, "version": subscription.version, "auto_renew": subscription.auto_renew,
            "payment_token": subscription.payment_token,
            "cloudpayments_subscription_id": subscription.cloudpayments_subscription_id}
        result = await Subscription.get_motor_collection().delete_one(unchanged)
        if result.deleted_count == 1:
            return 1
    raise SubscriptionContention("the subscription kept changing while it was being deleted")


def _method_left(subscription: Subscription) -> bool:
    """A saved method or a CloudPayments subscription is still attached, though nothing renews with it: the worker
    removes it at the provider after auto-renewal is turned off (or the scheduler turns off an unconsented one).
    Forgetting it here first would leave the provider's binding with nobody to delete it."""
    return subscription.payment_token is not None or subscription.cloudpayments_subscription_id is not None


def _count(counts: dict[str, int], name: str, number: int) -> None:
    if number:
        counts[name] = counts.get(name, 0) + number


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}={number}" for name, number in sorted(counts.items())) or "nothing"
