"""Telling people about payout claims, from a notice job, once the state change is committed."""

from __future__ import annotations

import logging
from dataclasses import replace

from billing.payouts.claims import find_claim, notice_for
from billing.ports import Notifier

log = logging.getLogger(__name__)

ALERT_PREFIX = "alert:"
USER_EVENTS = frozenset({"accepted", "rejected", "paid", "failed", "cancelled", "expired"})


async def send_payout_notice(label: str, event: str, detail: str, *, notifier: Notifier) -> bool:
    """`filed` goes to the admin chat with the buttons; `alert:<kind>` to the admin chat only; the other
    events to the user (and the outcomes to the admin chat too). The notifier keys every delivery, so a
    retried job writes nothing twice."""
    claim = await find_claim(label)
    if claim is None:
        log.warning("payout notice %s for claim %s, which is gone", event, label)
        return False
    if event == "filed":
        await notifier.payout_filed(notice_for(claim, event))
    elif event.startswith(ALERT_PREFIX):
        await notifier.payout_alert(replace(notice_for(claim, event.removeprefix(ALERT_PREFIX)), reason=detail))
    elif event in USER_EVENTS:
        await notifier.payout_changed(notice_for(claim, event))
    else:
        log.error("payout notice %s for claim %s: no such event", event, label)
        return False
    return True
