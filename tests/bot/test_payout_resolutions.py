"""The admin chat resolves what the machine cannot, through the real Dispatcher and the fake Bot API: an `unknown`
claim's alert carries buttons (attach konsol.pro's id, mark failed, send again); failing and sending again warn
first that the payout must not exist at konsol.pro; every decision records who made it; of two at once one wins."""

from __future__ import annotations

import asyncio

import pytest

from db.payouts import ClaimStatus
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID
from tests.bot.test_payouts import (  # noqa: F401
    SECOND_ADMIN,
    Chat,
    admin,
    button,
    buttons,
    close_the_desk,
    file_card_claim,
    settings,
    user,
)
from tests.konsol_support import konsol, konsol_server, payouts, stored  # noqa: F401

ATTACH, FAIL, RESEND = "🔗 Attach konsol.pro payment id", "✖️ Mark failed", "🔁 Send again"
CONFIRM_FAIL = "Yes: it is not payable at konsol.pro, mark it failed"
CONFIRM_RESEND = "Yes: it does not exist at konsol.pro, send it again"


@pytest.fixture
async def unknown(user, admin, worker, konsol, payouts) -> str:
    """A claim whose creation was answered 502 after konsol.pro made the payout: (its label)."""
    claim = await file_card_claim(user)
    await worker.drain()
    konsol.fail_after_create(502)
    await admin.presses("✅ Accept")
    await worker.drain()
    assert (await stored(claim.label)).status is ClaimStatus.UNKNOWN
    return claim.label


async def test_the_unknown_alert_carries_the_three_decisions(unknown, admin):
    alert = admin.message_with(ATTACH)
    assert alert["text"].startswith(f"⚠️ Payout {unknown} needs attention: it is unknown whether konsol.pro created it")
    assert "HTTP 502" in alert["text"] and buttons(alert) == [ATTACH, FAIL, RESEND]


async def test_mark_failed_warns_first_then_fails_the_claim_and_records_who(unknown, admin, user, fake, worker,
                                                                            konsol):
    await admin.presses(FAIL)
    warning = admin.message_with(CONFIRM_FAIL)
    assert "only if the payout does not exist at konsol.pro" in warning["text"]
    assert (await stored(unknown)).status is ClaimStatus.UNKNOWN, "nothing is decided before the confirmation"

    await admin.presses(CONFIRM_FAIL, warning)
    await worker.drain()
    failed = await stored(unknown)
    assert failed.status is ClaimStatus.FAILED and failed.card_encrypted is None
    assert [(d.action.value, d.by, d.by_name) for d in failed.decisions] == [("fail", ADMIN_ID, "Admin1001")]
    assert user.last.startswith(f"The payout {unknown} of 1,500\xa0RUB to •••• 6412 failed")
    assert len(konsol.created()) == 1


async def test_attach_asks_for_the_id_and_the_payout_is_followed_to_paid(unknown, admin, user, worker, konsol):
    [payment] = konsol.created()
    await admin.presses(ATTACH)
    assert admin.last.startswith(f"Reply with konsol.pro's payment id for claim {unknown}")
    await admin.says("not an id!")
    assert admin.last.startswith("That is not a konsol.pro payment id")
    await admin.presses(ATTACH)
    await admin.says(payment["id"])
    assert admin.last == f"Claim {unknown} is now submitted (decided by Ivan)."

    assert await konsol.settle(payment["id"]) == [200]
    await worker.drain()
    paid = await stored(unknown)
    assert paid.status is ClaimStatus.PAID and paid.konsol_id == payment["id"]
    assert [(d.action.value, d.konsol_id) for d in paid.decisions] == [("attach", payment["id"])]
    assert user.last == f"💸 Payout {unknown}: 1,500\xa0RUB has been sent to •••• 6412."


async def test_send_again_warns_first_then_makes_one_new_payout(unknown, admin, worker, konsol):
    await admin.presses(RESEND)
    warning = admin.message_with(CONFIRM_RESEND)
    assert "the user would be paid twice" in warning["text"] and len(konsol.created()) == 1
    await admin.presses(CONFIRM_RESEND, warning)
    await worker.drain()
    sent = await stored(unknown)
    assert sent.status is ClaimStatus.SUBMITTED and len(konsol.created()) == 2 and sent.rounds == 1
    await admin.presses(CONFIRM_RESEND, warning)  # a late press on the old button
    await worker.drain()
    assert len(konsol.created()) == 2 and admin.last.startswith(f"Claim {unknown} is submitted")


async def test_two_admins_deciding_at_once_one_wins(unknown, admin, dispatcher, bot, fake, worker, konsol):
    await admin.presses(FAIL)
    fail = admin.message_with(CONFIRM_FAIL)
    await admin.presses(RESEND)
    again = admin.message_with(CONFIRM_RESEND)
    second = Chat(dispatcher, bot, fake, SECOND_ADMIN, chat_id=ADMIN_CHAT_ID)
    await asyncio.gather(
        dispatcher.feed_raw_update(bot, admin.press_update(button(fail, CONFIRM_FAIL), fail)),
        dispatcher.feed_raw_update(bot, second.press_update(button(again, CONFIRM_RESEND), again)))
    await worker.drain()

    decided = await stored(unknown)
    assert len(decided.decisions) == 1
    assert (decided.status, len(konsol.created())) in ((ClaimStatus.FAILED, 1), (ClaimStatus.SUBMITTED, 2))


async def test_only_admins_may_resolve(unknown, dispatcher, bot, fake, admin):
    alert = admin.message_with(FAIL)
    intruder = Chat(dispatcher, bot, fake, 4242, chat_id=ADMIN_CHAT_ID)
    for label in (ATTACH, FAIL, RESEND):
        await intruder.presses(label, alert)
        assert intruder.alerts()[-1] == "Sorry, this command is only for the administrators of this service."
    forged = intruder.press_update(f"pores:{unknown}:fail:1", alert)
    await dispatcher.feed_raw_update(bot, forged)
    claim = await stored(unknown)
    assert claim.status is ClaimStatus.UNKNOWN and claim.decisions == []
