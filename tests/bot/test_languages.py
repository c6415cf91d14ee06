"""Russian, English and Uzbek: the user's language from Telegram or /language, the catalogues, and the
payment page's language from the signed link, the stored language or Accept-Language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from billing.links import signed_pay_url
from bot.texts import LANGUAGES, catalogue, negotiate, page_language
from db.users import BotUser, remember_user
from tests.bot.conftest import USER_ID, last_text, send
from tests.helpers import new_invoice, path_of

ROOT = Path(__file__).resolve().parents[2]
GREETINGS = {"ru": "Здравствуйте, Ivan!", "en": "Hello, Ivan!", "uz": "Salom, Ivan!"}


@pytest.mark.parametrize(("code", "expected"), [
    ("ru", "ru"), ("en", "en"), ("uz", "uz"), ("de", "en"), (None, "en"), ("ru-RU", "ru"), ("UZ", "uz"),
])
async def test_start_greets_in_telegrams_language_and_remembers_it(dispatcher, bot, fake, code, expected):
    await send(dispatcher, bot, "/start", language_code=code)

    assert last_text(fake).startswith(GREETINGS[expected])
    user = await BotUser.find_one(BotUser.user_id == USER_ID)
    assert user.language == expected and not user.language_chosen


async def test_language_command_offers_each_language_in_its_own_name(dispatcher, bot, fake):
    await send(dispatcher, bot, "/language", language_code="uz")

    message = fake.bot_messages(USER_ID)[-1]
    assert message["text"] == "Tilni tanlang:"
    rows = message["reply_markup"]["inline_keyboard"]
    assert [(row[0]["text"], row[0]["callback_data"]) for row in rows] == [
        ("Русский", "lang:ru"), ("English", "lang:en"), ("Oʻzbekcha", "lang:uz")]


async def test_choosing_a_language_switches_the_bot_and_outlives_telegrams_language(dispatcher, bot, fake):
    await send(dispatcher, bot, "/language", language_code="en")
    menu = fake.bot_messages(USER_ID)[-1]
    press = {"update_id": 2, "callback_query": {
        "id": "cq1", "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"},
        "message": menu, "chat_instance": "1", "data": "lang:uz"}}
    await dispatcher.feed_raw_update(bot, press)

    assert fake.bot_messages(USER_ID)[-1]["text"] == "Tayyor: endi siz bilan oʻzbek tilida gaplashaman."
    assert fake.sent("answerCallbackQuery")
    await send(dispatcher, bot, "/start", language_code="ru", update_id=3, message_id=12)
    assert last_text(fake).startswith(GREETINGS["uz"])
    await send(dispatcher, bot, "/status", language_code="ru", update_id=4, message_id=13)
    assert last_text(fake) == "Sizda hali obuna yoʻq. /subscribe orqali tarif tanlang."


async def test_a_forged_language_callback_changes_nothing(dispatcher, bot, fake):
    await send(dispatcher, bot, "/language", language_code="en")
    press = {"update_id": 2, "callback_query": {
        "id": "cq1", "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan"},
        "message": fake.bot_messages(USER_ID)[-1], "chat_instance": "1", "data": "lang:xx"}}
    await dispatcher.feed_raw_update(bot, press)
    user = await BotUser.find_one(BotUser.user_id == USER_ID)
    assert user.language == "en" and not user.language_chosen


async def test_unknown_text_gets_a_hint_in_the_users_language(dispatcher, bot, fake):
    await send(dispatcher, bot, "hello", language_code="ru")
    assert last_text(fake) == "Я не знаю такой команды. Попробуйте /subscribe, /status или /language."


# --- the catalogues ---

def test_the_three_catalogues_have_the_same_keys_and_placeholders_and_no_empty_text():
    messages = catalogue()
    read = {language: {m.id: m.string for m in messages.read(language) if m.id} for language in LANGUAGES}
    assert read["ru"].keys() == read["en"].keys() == read["uz"].keys()
    for key, english in read["en"].items():
        for language in LANGUAGES:
            text = read[language][key]
            assert text, f"{language}: {key} is empty"
            assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", english)), (language, key)


def test_every_key_the_code_uses_is_in_the_catalogue():
    keys = {m.id for m in catalogue().read("en") if m.id}
    used: set[str] = set()
    for path in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("webhook_server").rglob("*.py"),
                 *ROOT.joinpath("webhook_server", "templates").glob("*.html")]:
        used |= set(re.findall(r"""\b(?:t|a)\(\s*["']([a-z_]+(?:\.[a-z0-9_]+)+)["']""", path.read_text()))
    assert used, "the scan found no keys at all"
    assert used - keys == set()


def test_accept_language_is_negotiated_by_quality():
    assert negotiate("de-DE,de;q=0.9,uz;q=0.8,ru;q=0.7") == "uz"
    assert negotiate("ru;q=0.5, en;q=0.6") == "en"
    assert negotiate("fr, de") is None and negotiate("") is None and negotiate("ru;q=abc") is None
    assert negotiate("en;q=0, ru") == "ru"


def test_page_language_prefers_the_signed_link_then_the_user_then_the_browser():
    assert page_language("uz", "ru", "en") == "uz"
    assert page_language(None, "ru", "en") == "ru"
    assert page_language(None, None, "uz-UZ,ru;q=0.5") == "uz"
    assert page_language(None, None, "fr") == "en"


# --- the payment page ---

async def link_with_lang(client, settings, clock, lang: str, user_id: int = 42) -> str:
    invoice = await new_invoice(client, user_id=user_id)
    exp = int(clock.now.timestamp()) + 3600
    return path_of(signed_pay_url("http://shop.test", settings.link_key, invoice["label"], exp, lang))


@pytest.mark.parametrize(("lang", "title", "button"), [
    ("ru", "1 месяц", "Оплатить через YooMoney"), ("en", "1 month", "Pay with YooMoney"),
    ("uz", "1 oy", "YooMoney orqali toʻlash"),
])
async def test_the_payment_page_speaks_the_signed_links_language(client, settings, clock, lang, title, button):
    response = await client.get(await link_with_lang(client, settings, clock, lang),
                                headers={"Accept-Language": "de"})
    page = await response.text()
    assert response.status == 200
    assert f'<html lang="{lang}">' in page and f"<h1>{title}</h1>" in page and button in page


async def test_a_changed_or_added_lang_breaks_the_signature(client, settings, clock):
    path = await link_with_lang(client, settings, clock, "ru")
    assert (await client.get(path.replace("lang=ru", "lang=uz"))).status == 403
    assert (await client.get(path.replace("lang=ru&", ""))).status == 403
    invoice = await new_invoice(client)
    assert (await client.get(path_of(invoice["pay_url"]) + "&lang=ru")).status == 403


async def test_a_link_without_lang_uses_the_users_stored_language_then_the_browsers(client, clock):
    invoice = await new_invoice(client, user_id=4242)
    page = await (await client.get(path_of(invoice["pay_url"]), headers={"Accept-Language": "uz"})).text()
    assert '<html lang="uz">' in page

    await remember_user(4242, "ru", chosen=True, now=clock.now)
    page = await (await client.get(path_of(invoice["pay_url"]), headers={"Accept-Language": "uz"})).text()
    assert '<html lang="ru">' in page and "Счёт " in page


async def test_the_return_from_the_provider_keeps_the_language(client, settings, clock):
    path = await link_with_lang(client, settings, clock, "uz")
    page = await (await client.get(path)).text()
    assert "lang=uz" in re.search(r'name="successURL" value="([^"]+)"', page).group(1)
    page = await (await client.get(path + "&returned=1")).text()
    assert "Rahmat. Toʻlovingizni tasdiqlayapmiz" in page


async def test_error_pages_follow_accept_language(client):
    response = await client.get("/pay/inv_x?exp=1&sig=00", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    page = await response.text()
    assert response.status == 403
    assert "Эта ссылка на оплату недействительна" in page and "Ошибка 403" in page
    response = await client.get("/pay/inv_x?exp=1&sig=00&lang=uz")
    assert "Bu toʻlov havolasi yaroqsiz" in await response.text()
