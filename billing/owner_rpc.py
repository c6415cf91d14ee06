"""The owner's own bot asks us over Redis and RQ (the seed design's remote procedures).

An owner's process enqueues these jobs by name on RPC_QUEUE (`ymds_client.py` does it) and reads the
result: plain JSON-able values, so the owner's side needs nothing of ours but the client. The invoices and
links are the ones the bot's /subscribe hands out (billing/invoices.py LinkIssuer); the status means what
GET /api/users/{id}/subscription says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing.invoices import LinkIssuer
from billing.languages import LANGUAGES, supported_language
from billing.providers.stars.protocol import CURRENCY as STARS_CURRENCY
from billing.runtime import JobRuntime, current
from billing.subscriptions import access_status, get_subscription, is_active, renews_automatically

MAX_USER_ID = 2**53  # Telegram: user ids have at most 52 significant bits


class RequestRefused(ValueError):
    """The owner's bot asked with arguments we do not take; the message says which and why."""


def generate_subscribe_link(user_id: int, language: str | None = None) -> list[dict[str, Any]]:
    """One signed payment link per plan for this Telegram user, as /subscribe would show them. `language`
    ("ru", "en", "uz", or a tag such as "ru-RU") is signed into the link and picks the payment page's
    language; None lets the page follow the payer's browser."""
    user = _valid_user_id(user_id)
    lang = _valid_language(language)
    runtime = current()
    now = runtime.clock()
    offers = runtime.run(_links(runtime).offers(runtime.plans, user, now=now, lang=lang))
    return [{
        "plan": offer.plan.name,
        "title": offer.plan.title,
        # Stars are paid inside Telegram, never on the page the link opens
        "amounts": {currency: minor for currency, minor in offer.link.invoice.amounts.items()
                    if currency != STARS_CURRENCY},
        "pay_url": offer.link.url,
        "expires_at": datetime.fromtimestamp(offer.link.expires_at, UTC).isoformat(),
    } for offer in offers]


def subscription_status(user_id: int) -> dict[str, Any]:
    """{"active", "status", "plan", "current_period_end", "auto_renew"}: `active` is whether the user has
    access now (a running paid period, or a declined renewal still retrying); `status` is "none" for a user
    who never subscribed, else the admin API's word ("active", "past_due", "expired")."""
    user = _valid_user_id(user_id)
    runtime = current()
    now = runtime.clock()
    subscription = runtime.run(get_subscription(user))
    if subscription is None:
        return {"active": False, "status": "none", "plan": None, "current_period_end": None, "auto_renew": False}
    return {
        "active": is_active(subscription, now),
        "status": access_status(subscription, now),
        "plan": subscription.plan,
        "current_period_end": subscription.current_period_end.isoformat(),
        "auto_renew": renews_automatically(subscription),
    }


def _valid_user_id(user_id: object) -> int:
    if isinstance(user_id, bool) or not isinstance(user_id, int) or not 0 < user_id < MAX_USER_ID:
        raise RequestRefused(f"user_id must be a Telegram user id (a positive integer), not {user_id!r:.40}")
    return user_id


def _valid_language(language: object) -> str | None:
    if language is None:
        return None
    found = supported_language(language) if isinstance(language, str) else None
    if found is None:
        raise RequestRefused(f"language must be one of {', '.join(LANGUAGES)} or None, not {language!r:.40}")
    return found


def _links(runtime: JobRuntime) -> LinkIssuer:
    if runtime.renewals is None:
        raise RuntimeError("payment links are not set up in this worker")
    return runtime.renewals.links
