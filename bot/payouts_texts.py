"""How a payout claim reads in the admin chat and in the user's notices (the sentences are in the catalogues)."""

from __future__ import annotations

from billing.ports import PayoutNotice
from bot.texts import Texts

ADMIN_OUTCOMES = frozenset({"paid", "failed", "cancelled", "expired"})


def claim_summary(t: Texts, notice: PayoutNotice) -> str:
    """The admin chat's card of a claim: label, user, amount, destination."""
    return t("payout.admin.claim", label=notice.label, user_id=notice.user_id, amount=t.money(notice.amount),
             destination=notice.destination)


def user_notice(t: Texts, notice: PayoutNotice) -> str:
    return t(f"payout.notice.{notice.event}", label=notice.label, amount=t.money(notice.amount),
             destination=notice.destination, reason=notice.reason or t("payout.no_reason"))


def admin_outcome(t: Texts, notice: PayoutNotice) -> str:
    return t(f"payout.admin.outcome.{notice.event}", label=notice.label, user_id=notice.user_id,
             amount=t.money(notice.amount), destination=notice.destination, konsol_id=notice.konsol_id or "—",
             reason=notice.reason or t("payout.no_reason"))


def admin_alert(t: Texts, notice: PayoutNotice) -> str:
    kind = notice.event.split(":", 1)[0]
    what = t(f"payout.alert.{kind}") if t.has(f"payout.alert.{kind}") else kind
    return t("payout.admin.alert", label=notice.label, user_id=notice.user_id, amount=t.money(notice.amount),
             what=what, detail=notice.reason or "—")
