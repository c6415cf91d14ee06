"""The bot keeps a user's public @username (lower case) so that an admin finds them on the dashboard; it follows
a renamed user, forgets a removed username, and /deletedata deletes it with the rest of the bot's record."""

from __future__ import annotations

from billing.dashboard import find_user
from db.users import BotUser
from tests.bot.conftest import USER_ID, send


async def stored_username() -> str | None:
    user = await BotUser.find_one(BotUser.user_id == USER_ID)
    assert user is not None
    return user.username


async def test_the_username_is_remembered_and_follows_a_rename(dispatcher, bot, fake):
    await send(dispatcher, bot, "/start", username="Ivan_P")
    assert await stored_username() == "ivan_p"
    assert await find_user("@IVAN_P") == USER_ID and await find_user("ivan_p") == USER_ID
    await send(dispatcher, bot, "/help", username="ivan_renamed", update_id=2, message_id=11)
    assert await stored_username() == "ivan_renamed"
    assert await find_user("@ivan_p") is None and await find_user("@ivan_renamed") == USER_ID
    await send(dispatcher, bot, "/help", update_id=3, message_id=12)  # the user removed their username
    assert await stored_username() is None and await find_user("@ivan_renamed") is None


async def test_an_unknown_or_empty_username_finds_nobody(dispatcher, bot, fake):
    await send(dispatcher, bot, "/start")
    assert await find_user("@") is None and await find_user("") is None and await find_user("@nobody") is None
