"""The buttons under the worker's notices, as the Bot API's JSON, so that the worker needs no aiogram.

Their callback data are what the bot's CallbackData classes unpack (the prefixes are these constants; the values
in the classes' field order, a bool as 1 or 0, joined by ':' as aiogram's `CallbackData.pack` does), so a press
reaches the bot's handler: HoldConfirm (bot/keyboards.py), ClaimDecision and ClaimResolution
(bot/payouts_keyboards.py), RenewalChoice (bot/routers/renewals.py). tests/bot/test_notice_keyboards.py unpacks
each with its class.
"""

from __future__ import annotations

from bot.texts import Texts

HOLD = "hold"
CLAIM_DECISION = "claim"
CLAIM_RESOLUTION = "pores"
RENEWAL_CHOICE = "renew"
TURN_OFF = "off"  # RenewalChoice's action that turns automatic renewal off
RESOLUTIONS_FOR_ALERT = {"unknown": ("attach", "fail", "resend"), "overdue": ("fail",), "config": ("resend",)}
SEPARATOR = ":"
MAX_CALLBACK_DATA_BYTES = 64  # the Bot API's limit, which aiogram's pack() enforces too

Keyboard = dict[str, list[list[dict[str, str]]]]


def pack(prefix: str, *values: str | int | bool) -> str:
    """aiogram's packing of one CallbackData: refuses the separator inside a value and anything over 64 bytes."""
    parts = [prefix]
    for value in values:
        text = str(int(value)) if isinstance(value, bool) else str(value)
        if SEPARATOR in text:
            raise ValueError(f"{SEPARATOR!r} cannot be part of a callback value: {text!r}")
        parts.append(text)
    data = SEPARATOR.join(parts)
    if len(data.encode()) > MAX_CALLBACK_DATA_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_DATA_BYTES} bytes: {data!r}")
    return data


def _rows(*rows: list[tuple[str, str]]) -> Keyboard:
    return {"inline_keyboard": [[{"text": text, "callback_data": data} for text, data in row] for row in rows]}


def hold_keyboard(label: str, t: Texts) -> Keyboard:
    """An admin's Confirm of a two-stage payment held for invoice `label`."""
    return _rows([(t("hold.confirm"), pack(HOLD, label))])


def decision_keyboard(label: str, t: Texts) -> Keyboard:
    """Accept or Reject of a payout claim, in the admin chat."""
    return _rows([(t("payout.admin.accept"), pack(CLAIM_DECISION, label, True)),
                  (t("payout.admin.reject"), pack(CLAIM_DECISION, label, False))])


def resolution_keyboard(label: str, alert_kind: str, t: Texts) -> Keyboard | None:
    """The buttons under an admin alert that needs a decision; None for an alert that only informs."""
    actions = RESOLUTIONS_FOR_ALERT.get(alert_kind.split(":", 1)[0], ())
    if not actions:
        return None
    return _rows(*([(t(f"payout.resolve.{action}"), pack(CLAIM_RESOLUTION, label, action, False))]
                   for action in actions))


def cancel_renewal_keyboard(t: Texts) -> Keyboard:
    """The one-tap cancel under the notice of a coming charge: the same RenewalChoice the /cancel question uses,
    so pressing it runs bot/routers/renewals.py's handler (auto-renewal off, the saved method removed)."""
    return _rows([(t("renewal.upcoming.cancel"), pack(RENEWAL_CHOICE, TURN_OFF))])

