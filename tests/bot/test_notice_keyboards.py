"""bot/notice_keyboards.py: the worker's buttons, built without aiogram, are the callback data the bot's handlers
unpack with their CallbackData classes, and they refuse what aiogram's pack() refuses."""

from __future__ import annotations

import pytest

from bot.keyboards import HoldConfirm
from bot.notice_keyboards import (
    cancel_renewal_keyboard,
    decision_keyboard,
    hold_keyboard,
    pack,
    resolution_keyboard,
)
from bot.payouts_keyboards import ClaimDecision, ClaimResolution
from bot.routers.renewals import RenewalChoice
from bot.texts import catalogue

T = catalogue().texts("en")
LABEL = "inv_0136b0d82f40c60d3f189f0e"


def callback_data(keyboard: dict | None) -> list[str]:
    assert keyboard is not None
    return [button["callback_data"] for row in keyboard["inline_keyboard"] for button in row]


def test_the_hold_confirm_is_the_bots_hold_confirm():
    [data] = callback_data(hold_keyboard(LABEL, T))
    assert HoldConfirm.unpack(data) == HoldConfirm(label=LABEL)
    assert data == HoldConfirm(label=LABEL).pack()


def test_accept_and_reject_are_the_bots_claim_decisions():
    accept, reject = callback_data(decision_keyboard(LABEL, T))
    assert ClaimDecision.unpack(accept) == ClaimDecision(label=LABEL, accept=True)
    assert ClaimDecision.unpack(reject) == ClaimDecision(label=LABEL, accept=False)


@pytest.mark.parametrize(("alert", "actions"), [
    ("unknown", ["attach", "fail", "resend"]), ("overdue:3", ["fail"]), ("config", ["resend"]),
])
def test_an_alert_that_needs_a_decision_offers_the_bots_resolutions(alert, actions):
    unpacked = [ClaimResolution.unpack(data) for data in callback_data(resolution_keyboard(LABEL, alert, T))]
    assert unpacked == [ClaimResolution(label=LABEL, action=action, confirm=False) for action in actions]


def test_an_alert_that_only_informs_has_no_buttons():
    assert resolution_keyboard(LABEL, "paid", T) is None


def test_the_one_tap_cancel_turns_renewal_off_in_the_bots_handler():
    [data] = callback_data(cancel_renewal_keyboard(T))
    assert RenewalChoice.unpack(data).action == "off"


def test_packing_refuses_the_separator_and_data_telegram_would_refuse():
    with pytest.raises(ValueError, match="cannot be part"):
        pack("hold", "inv:1")
    with pytest.raises(ValueError, match="64 bytes"):
        pack("hold", "x" * 60)
    assert pack("claim", "inv_1", True) == "claim:inv_1:1"
