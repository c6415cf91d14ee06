"""/payout through the real Dispatcher and the fake Bot API: the dialogue with bad input at every step, /cancel
anywhere, the admin chat's Accept and Reject, and the whole road to a paid payout through konsol.pro's emulator."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import StorageKey

from bot.main import build_dispatcher
from db.payouts import ClaimStatus, PayoutClaim, SbpBankDirectory
from settings import Settings
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, bot_settings, last_text, message_update, send
from tests.konsol_support import (  # noqa: F401
    CARD,
    PHONE,
    SBER,
    konsol,
    konsol_server,
    konsol_settings,
    payouts,
    stored,
)

SECOND_ADMIN = 1002
REFUSAL = "Sorry, this command is only for the administrators of this service."


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram, konsol_server) -> Settings:
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], admin_ids=[ADMIN_ID, SECOND_ADMIN],
                        **konsol_settings(konsol_server[1]))


@pytest.fixture(autouse=True)
async def close_the_desk(dispatcher: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    yield
    await dispatcher.emit_shutdown(bot=bot)


class Chat:
    """One person talking to the bot: numbered updates, their messages, their button presses."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, fake: Any, user_id: int = USER_ID, *,
                 chat_id: int | None = None, language: str = "en") -> None:
        self.dispatcher, self.bot, self.fake = dispatcher, bot, fake
        self.user_id, self.chat_id, self.language = user_id, chat_id or user_id, language
        self.counter = 1000 * abs(user_id % 97 + 1)

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    async def says(self, text: str) -> Any:
        number = self._next()
        return await send(self.dispatcher, self.bot, text, user_id=self.user_id, update_id=number, message_id=number,
                          language_code=self.language, chat_id=None if self.chat_id == self.user_id else self.chat_id)

    async def sends_location(self) -> None:
        number = self._next()
        update = message_update("x", user_id=self.user_id, update_id=number, message_id=number)
        del update["message"]["text"]
        update["message"]["location"] = {"latitude": 55.75, "longitude": 37.62}
        await self.dispatcher.feed_raw_update(self.bot, update)

    def press_update(self, data: str, message: dict[str, Any]) -> dict[str, Any]:
        number = self._next()
        sender = {"id": self.user_id, "is_bot": False, "first_name": f"Admin{self.user_id}", "language_code": "en"}
        return {"update_id": number, "callback_query": {"id": f"cq{number}", "from": sender, "message": message,
                                                        "chat_instance": "1", "data": data}}

    async def presses(self, label: str, message: dict[str, Any] | None = None) -> None:
        """Press the button labelled `label` under `message` (default: the bot's last message with it)."""
        message = message or self.message_with(label)
        await self.dispatcher.feed_raw_update(self.bot, self.press_update(button(message, label), message))

    def message_with(self, label: str) -> dict[str, Any]:
        for message in reversed(self.fake.bot_messages(self.chat_id)):
            if any(b["text"] == label for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                   for b in row):
                return copy.deepcopy(message)  # the fake edits its own copy in place
        raise AssertionError(f"no button {label!r} in chat {self.chat_id}")

    @property
    def last(self) -> str:
        return last_text(self.fake, self.chat_id)

    def alerts(self) -> list[str]:
        """Every pop-up answer the bot gave to a button press (in this test's chats)."""
        return [str(call.get("text")) for call in self.fake.sent("answerCallbackQuery") if call.get("show_alert")
                in ("true", True)]


def button(message: dict[str, Any], label: str) -> str:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return next(b["callback_data"] for row in rows for b in row if b["text"] == label)


def buttons(message: dict[str, Any]) -> list[str]:
    return [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]


async def fsm_data(dispatcher: Dispatcher, bot: Bot, user_id: int = USER_ID, chat_id: int | None = None) -> dict:
    return await dispatcher.storage.get_data(StorageKey(bot_id=bot.id, chat_id=chat_id or user_id, user_id=user_id))


async def claims() -> list[PayoutClaim]:
    return await PayoutClaim.find_all().to_list()


@pytest.fixture
def user(dispatcher, bot, fake) -> Chat:
    return Chat(dispatcher, bot, fake)


@pytest.fixture
def admin(dispatcher, bot, fake) -> Chat:
    return Chat(dispatcher, bot, fake, ADMIN_ID, chat_id=ADMIN_CHAT_ID)


async def file_card_claim(user: Chat) -> PayoutClaim:
    await user.says("/payout")
    await user.says("1500")
    await user.presses("💳 To a bank card")
    await user.says(CARD)
    await user.presses("✅ Send")
    [claim] = await claims()
    return claim


async def test_a_claim_goes_from_the_dialogue_to_paid_through_konsol(user, admin, fake, worker, konsol, payouts):
    await user.says("/payout")
    assert user.last.startswith("How much should be paid out? Send the amount in rubles, from 100")
    await user.says("1500")
    assert user.last == "Where should 1,500\xa0RUB be paid?"
    await user.presses("💳 To a bank card")
    assert user.last.startswith("Send the card number")
    await user.says(CARD)
    assert user.last == "Please check your claim:\nAmount: 1,500\xa0RUB\nTo: •••• 6412\nSend it to the administrators?"
    await user.presses("✅ Send")
    [claim] = await claims()
    assert user.last == (f"Your claim {claim.label} has been sent to the administrators. "
                         "You will be told when they decide.")
    assert claim.status is ClaimStatus.NEW and claim.user_id == USER_ID and claim.amount == 150000

    await worker.drain()
    card = admin.message_with("✅ Accept")
    assert card["text"] == f"💸 Payout claim {claim.label}\nUser: {USER_ID}\nAmount: 1,500\xa0RUB\nTo: •••• 6412"
    assert buttons(card) == ["✅ Accept", "❌ Reject"]
    await admin.presses("✅ Accept", card)
    assert admin.last.endswith("\n✅ Accepted by Admin1001")
    assert "reply_markup" not in fake.bot_messages(ADMIN_CHAT_ID)[-1]

    await worker.drain()
    [payment] = konsol.created()
    assert user.last.startswith(f"Your payout claim {claim.label} for 1,500\xa0RUB was accepted.")
    assert await konsol.settle(payment["id"]) == [200]
    await worker.drain()
    assert user.last == f"💸 Payout {claim.label}: 1,500\xa0RUB has been sent to •••• 6412."
    assert admin.last.startswith(f"✅ Payout paid: {claim.label}\nUser: {USER_ID}\nAmount: 1,500\xa0RUB\nTo: •••• 6412")
    assert (await stored(claim.label)).status is ClaimStatus.PAID


async def test_bad_amounts_are_explained_and_the_step_repeats(user, settings):
    await user.says("/payout")
    for typed, answer in (("abc", "That is not an amount."), ("0", "That is not an amount."),
                          ("-15", "That is not an amount."), ("15.555", "That is not an amount."),
                          ("99.99", "The amount must be from 100"), ("100000.01", "The amount must be from 100")):
        await user.says(typed)
        assert user.last.startswith(answer), typed
    await user.sends_location()
    assert user.last == "Please send it as a text message, or /cancel."
    await user.says("100000")
    assert user.last == "Where should 100,000\xa0RUB be paid?"


async def test_the_method_step_takes_buttons_only(user, fake):
    await user.says("/payout")
    await user.says("1500")
    await user.says("card please")
    assert user.last == "Please choose with the buttons above, or send /cancel."
    await user.presses("💳 To a bank card")
    assert user.last.startswith("Send the card number")
    await user.presses("📱 By phone number (SBP)", _stale_methods(fake))
    assert user.alerts()[-1] == "This button is no longer active."


def _stale_methods(fake: Any) -> dict[str, Any]:
    """The method message as it was before its keyboard was removed (a press on a stale copy)."""
    message = next(m for m in fake.bot_messages(USER_ID) if m["text"].startswith("Where should"))
    return {**message, "reply_markup": {"inline_keyboard": [[{"text": "📱 By phone number (SBP)",
                                                              "callback_data": "pomethod:fps"}]]}}


async def test_bad_card_numbers_are_refused_and_deleted_from_the_chat(user, fake, dispatcher, bot):
    await user.says("/payout")
    await user.says("1500")
    await user.presses("💳 To a bank card")
    await user.says("1234")
    assert user.last == "This is not a valid card number. Check the digits and send it again."
    assert fake.sent("deleteMessage") == [], "too short to be a card: nothing to hide"
    await user.says("2200 7001 2222 3333")  # Luhn-invalid
    assert user.last.startswith("This is not a valid card number")
    assert len(fake.sent("deleteMessage")) == 1
    assert await claims() == []
    await user.says(CARD)
    [deleted_bad, deleted_good] = fake.sent("deleteMessage")
    assert int(deleted_good["message_id"]) == user.counter and int(deleted_good["chat_id"]) == USER_ID
    [draft] = await claims()
    assert draft.status is ClaimStatus.DRAFT and draft.card_mask == "220070******6412"
    assert draft.card_encrypted and CARD not in draft.card_encrypted
    assert CARD not in str(await fsm_data(dispatcher, bot)), "the FSM storage holds the label only"
    await user.says("yes")
    assert user.last == "Please choose with the buttons above, or send /cancel."


async def test_an_sbp_claim_takes_a_phone_and_a_bank_from_konsols_directory(user, fake, konsol, worker, admin):
    await user.says("/payout")
    await user.says("2500,50")
    await user.presses("📱 By phone number (SBP)")
    for typed, answer in (("12345", "This is not a phone number"), ("+998901234567", "SBP pays to Russian numbers")):
        await user.says(typed)
        assert user.last.startswith(answer), typed
    await user.says("8 (916) 123-45-67")
    assert user.last == "Choose the bank, or type part of its name to search:"
    page = fake.bot_messages(USER_ID)[-1]
    assert len(buttons(page)) == 9 and buttons(page)[-1] == "More ▶"
    await user.presses("More ▶", page)
    assert buttons(fake.bot_messages(USER_ID)[-1]) == ["ПСБ", "Россельхозбанк", "Открытие", "◀"]
    await user.says("нет такого")
    assert user.last.startswith("No bank matches “нет такого”.")
    await user.says("СБЕР")
    assert buttons(fake.bot_messages(USER_ID)[-1]) == ["Сбербанк"]
    await user.presses("Сбербанк")
    assert user.last == ("Please check your claim:\nAmount: 2,500.50\xa0RUB\nTo: +7******4567, Сбербанк\n"
                         "Send it to the administrators?")
    await user.presses("✅ Send")
    [claim] = await claims()
    assert (claim.phone, claim.bank_id, claim.status) == (PHONE, SBER, ClaimStatus.NEW)
    assert await SbpBankDirectory.find_all().count() == 1, "the directory is kept for a day"
    assert [path for _, path in konsol.calls].count("/api/v1/references/fps_bank_members") == 1


@pytest.mark.parametrize("steps", [
    [], ["1500"], ["1500", "💳 To a bank card"], ["1500", "📱 By phone number (SBP)"],
    ["1500", "📱 By phone number (SBP)", PHONE], ["1500", "💳 To a bank card", CARD],
])
async def test_cancel_leaves_the_dialogue_at_any_step_and_keeps_nothing(user, dispatcher, bot, steps):
    await user.says("/payout")
    for step in steps:
        if step.startswith(("💳", "📱")):
            await user.presses(step)
        else:
            await user.says(step)
    await user.says("/cancel")
    assert user.last == "The payout claim was cancelled."
    assert await claims() == [] and await fsm_data(dispatcher, bot) == {}
    assert await dispatcher.storage.get_state(StorageKey(bot_id=bot.id, chat_id=USER_ID, user_id=USER_ID)) is None
    await user.says("1500")
    assert user.last != "Where should 1,500\xa0RUB be paid?", "the dialogue is over"
    await user.says("/cancel")
    assert user.last == "You have no automatic renewal to turn off.", "outside a dialogue /cancel is auto-renewal's"


async def test_the_confirmation_can_be_refused(user):
    await user.says("/payout")
    await user.says("1500")
    await user.presses("💳 To a bank card")
    await user.says(CARD)
    await user.presses("✖️ Cancel")
    assert user.last == "The payout claim was cancelled." and await claims() == []
    stale = {**user.fake.bot_messages(USER_ID)[-1],
             "reply_markup": {"inline_keyboard": [[{"text": "✅ Send", "callback_data": "poconfirm:po_gone:1"}]]}}
    await user.presses("✅ Send", stale)
    assert user.alerts()[-1] == "This claim can no longer be sent; start again with /payout."


async def test_two_admins_pressing_accept_at_once_make_one_payout(user, admin, dispatcher, bot, fake, worker,
                                                                   konsol, payouts):
    claim = await file_card_claim(user)
    await worker.drain()
    card = admin.message_with("✅ Accept")
    second = Chat(dispatcher, bot, fake, SECOND_ADMIN, chat_id=ADMIN_CHAT_ID)
    await asyncio.gather(dispatcher.feed_raw_update(bot, admin.press_update(button(card, "✅ Accept"), card)),
                         dispatcher.feed_raw_update(bot, second.press_update(button(card, "✅ Accept"), card)))
    await worker.drain()

    assert len(konsol.created()) == 1
    decided = await stored(claim.label)
    winner = decided.decided_by_name
    assert winner in ("Admin1001", "Admin1002")
    assert admin.alerts() == [f"Already accepted by {winner}."], "the loser is told who decided"

    await admin.presses("✅ Accept", card)  # a late press on the old buttons
    await worker.drain()
    assert admin.alerts()[-1] == f"Already accepted by {winner}." and len(konsol.created()) == 1


async def test_only_admins_may_decide(user, dispatcher, bot, fake, worker):
    claim = await file_card_claim(user)
    await worker.drain()
    card = Chat(dispatcher, bot, fake, ADMIN_ID, chat_id=ADMIN_CHAT_ID).message_with("✅ Accept")
    intruder = Chat(dispatcher, bot, fake, 4242, chat_id=ADMIN_CHAT_ID)
    for label in ("✅ Accept", "❌ Reject"):
        await intruder.presses(label, card)
        assert intruder.alerts()[-1] == REFUSAL
    assert (await stored(claim.label)).status is ClaimStatus.NEW


async def test_reject_asks_for_a_reason_and_tells_the_user(user, admin, fake, worker, dispatcher, bot):
    claim = await file_card_claim(user)
    await worker.drain()
    card = admin.message_with("❌ Reject")
    await admin.presses("❌ Reject", card)
    prompt = fake.bot_messages(ADMIN_CHAT_ID)[-1]
    assert prompt["text"].startswith(f"Why is claim {claim.label} rejected?")
    assert (await stored(claim.label)).status is ClaimStatus.NEW, "nothing is decided before the reason"

    await admin.says("Not one of our partners")
    assert admin.last == f"Claim {claim.label} is rejected; the user has been told."
    edited = next(m for m in fake.bot_messages(ADMIN_CHAT_ID) if m["message_id"] == card["message_id"])
    assert edited["text"].endswith("\n❌ Rejected by Ivan: Not one of our partners") and "reply_markup" not in edited
    await worker.drain()
    assert user.last == (f"Your payout claim {claim.label} for 1,500\xa0RUB was rejected. "
                         "Reason: Not one of our partners")
    rejected = await stored(claim.label)
    assert rejected.status is ClaimStatus.REJECTED and rejected.card_encrypted is None

    await admin.presses("✅ Accept", card)
    assert admin.alerts()[-1] == "Already rejected by Ivan."


async def test_cancel_while_giving_a_reason_keeps_the_claim_waiting(user, admin, worker):
    claim = await file_card_claim(user)
    await worker.drain()
    await admin.presses("❌ Reject")
    await admin.says("/cancel")
    assert admin.last == f"Claim {claim.label} keeps waiting for a decision."
    await admin.says("too late for a reason")
    assert (await stored(claim.label)).status is ClaimStatus.NEW


async def test_balance_is_for_admins(user, dispatcher, bot, fake, konsol):
    konsol.balance = 123456789
    await Chat(dispatcher, bot, fake, ADMIN_ID).says("/balance")
    assert last_text(fake, ADMIN_ID) == "konsol.pro balance:\n• nominal-1: 1,234,567.89\xa0RUB"
    await user.says("/balance")
    assert user.last == REFUSAL
    konsol.fail_next("balance", 503)
    await Chat(dispatcher, bot, fake, ADMIN_ID).says("/balance")
    assert last_text(fake, ADMIN_ID) == "konsol.pro did not answer; try again later."


async def test_the_dialogue_speaks_russian(dispatcher, bot, fake):
    ivan = Chat(dispatcher, bot, fake, language="ru")
    await ivan.says("/payout")
    assert ivan.last.startswith("Какую сумму выплатить?")
    await ivan.says("1500")
    assert ivan.last == "Куда выплатить 1\xa0500\xa0₽?"


async def test_payouts_off_is_said_plainly(settings, plans, clock, client, bot, fake):
    off = build_dispatcher(settings.model_copy(update={"konsol_api_token": None}), plans, clock=clock)
    await send(off, bot, "/payout")
    assert last_text(fake) == "Payouts are not available at the moment."
    await off.emit_shutdown(bot=bot)
