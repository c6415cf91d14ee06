"""/email through the real Dispatcher and the fake Bot API: the receipts' e-mail or phone saved on the user, shown
only masked, refused with a reason when it is neither, in the user's language; the payment page reads the same."""

from __future__ import annotations

import pytest

from billing.receipt_contact import saved_contact
from db.users import ReceiptContact
from tests.bot.conftest import USER_ID, last_text, send
from tests.contact_support import (
    EMAIL,
    EMAIL_MASKED,
    RU_PHONE,
    RU_PHONE_DIGITS,
    RU_PHONE_MASKED,
    UZ_PHONE,
    UZ_PHONE_DIGITS,
    UZ_PHONE_MASKED,
)


async def test_email_saves_the_address_and_shows_it_masked(dispatcher, bot, fake):
    await send(dispatcher, bot, "/email")
    assert last_text(fake).startswith("No e-mail or phone is saved for receipts.")
    await send(dispatcher, bot, f"/email {EMAIL}", update_id=2, message_id=11)
    assert last_text(fake) == f"Saved: receipts will go to {EMAIL_MASKED}."
    assert await saved_contact(USER_ID) == ReceiptContact(email=EMAIL)
    await send(dispatcher, bot, "/email", update_id=3, message_id=12)
    text = last_text(fake)
    assert text.startswith(f"Receipts go to {EMAIL_MASKED}.") and EMAIL not in text


@pytest.mark.parametrize(("typed", "digits", "masked"), [
    (RU_PHONE, RU_PHONE_DIGITS, RU_PHONE_MASKED), ("8 (900) 123-45-67", RU_PHONE_DIGITS, RU_PHONE_MASKED),
    (UZ_PHONE, UZ_PHONE_DIGITS, UZ_PHONE_MASKED)])
async def test_email_takes_a_russian_or_uzbek_phone_too(dispatcher, bot, fake, typed, digits, masked):
    await send(dispatcher, bot, f"/email {EMAIL}")
    await send(dispatcher, bot, f"/email {typed}", update_id=2, message_id=11)
    assert last_text(fake) == f"Saved: receipts will go to {masked}."
    assert await saved_contact(USER_ID) == ReceiptContact(phone=digits), "a new contact replaces the old one"


@pytest.mark.parametrize(("typed", "answer"), [
    ("ivan@", "That is not an e-mail address."), ("ivan@example", "That is not an e-mail address."),
    ("a b@example.com", "That is not an e-mail address."), ("+7 900 123", "That is neither an e-mail address"),
    ("+1 202 555 0100", "That is neither an e-mail address"), ("call me", "That is neither an e-mail address")])
async def test_email_refuses_what_is_no_contact_and_keeps_the_saved_one(dispatcher, bot, fake, typed, answer):
    await send(dispatcher, bot, f"/email {EMAIL}")
    await send(dispatcher, bot, f"/email {typed}", update_id=2, message_id=11)
    assert last_text(fake).startswith(answer)
    assert await saved_contact(USER_ID) == ReceiptContact(email=EMAIL)


@pytest.mark.parametrize(("code", "saved", "invalid"), [
    ("ru", "Сохранено: чеки будут приходить на", "Это не адрес e-mail."),
    ("uz", "Saqlandi: cheklar", "Bu e-mail manzili emas.")])
async def test_email_answers_in_the_users_language(dispatcher, bot, fake, code, saved, invalid):
    await send(dispatcher, bot, f"/email {EMAIL}", language_code=code)
    assert last_text(fake).startswith(saved) and EMAIL_MASKED in last_text(fake)
    await send(dispatcher, bot, "/email ivan@", language_code=code, update_id=2, message_id=11)
    assert last_text(fake).startswith(invalid)
