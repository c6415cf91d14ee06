"""/privacy and /deletedata through the real Dispatcher, the fake Bot API and the in-memory database: the policy
as a link, per language, or unset (with check-config's warning); the deletion asked first, cancelled without
change, done exactly as README's table says (and harmless when repeated), refused while something must be settled
first, finished by a rerun after a crash at any step, and never touching another user's data."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import StorageKey
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from billing.plans import Catalogue as Plans
from billing.privacy import STEPS, Blocker, erase, inventory
from bot.main import build_dispatcher
from bot.texts import LANGUAGES, catalogue
from db import Invoice, Operation, Subscription
from db.cloudpayments import CloudPaymentsSubscription
from db.payouts import ClaimStatus, PayoutClaim, PayoutMethod
from db.renewals import Renewal, RenewalStatus
from db.stars import StarsCharge, StarsSubscription
from db.users import BotUser, ReceiptContact, SentNotice
from settings import ConfigError, Settings
from tests.bot.conftest import BOT_TOKEN, USER_ID, last_text, send
from tests.conftest import FrozenClock
from tests.helpers import new_invoice, notification, paid_with_saved_method, post_notification
from webhook_server.keys import LEDGER, QUEUES

OTHER_ID = 888
CONSENT_IP = "203.0.113.7"
CARD_TITLE = "Visa •••• 4242"
POLICY_URL = "https://shop.example.org/privacy"
USER_COLLECTIONS = ("bot_users", "subscriptions", "invoices", "operations", "payout_claims", "renewals",
                    "sent_notices", "stars_charges", "stars_subscriptions", "cloudpayments_subscriptions")


@pytest.fixture(autouse=True)
async def close_the_desk(dispatcher: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    yield
    await dispatcher.emit_shutdown(bot=bot)


def press(message: dict[str, Any], label: str, update_id: int, *, user_id: int = USER_ID) -> dict[str, Any]:
    """The user pressed the button `label` under the bot's `message`."""
    data = next(button["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for button in row
                if button["text"] == label)
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": data, "message": message,
        "from": {"id": user_id, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}}


def last_message(fake: Any) -> dict[str, Any]:
    """The bot's last message as the user saw it (a copy: the fake edits its own in place)."""
    return copy.deepcopy(fake.bot_messages(USER_ID)[-1])


def edited(fake: Any) -> str:
    return str(fake.sent("editMessageText")[-1]["text"])


async def database() -> Any:
    return Invoice.get_motor_collection().database


async def snapshot(user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every document of `user_id` (by user id, chat id, or the labels of their invoices), per collection."""
    db = await database()
    labels = [row["label"] async for row in db["invoices"].find({"user_id": user_id})]
    taken: dict[str, list[dict[str, Any]]] = {}
    for name in USER_COLLECTIONS:
        rows = await db[name].find({"$or": [{"user_id": user_id}, {"chat_id": user_id},
                                            {"label": {"$in": labels}}]}).to_list(None)
        taken[name] = sorted(rows, key=lambda row: str(row["_id"]))
    return taken


async def pay(client: TestClient, worker: Any, user_id: int) -> str:
    """A month paid through YooMoney and applied by the worker (its notices reach the fake Bot API)."""
    invoice = await new_invoice(client, user_id=user_id)
    assert await post_notification(client, notification(invoice["label"])) == 200
    await worker.drain()
    return str(invoice["label"])


def claim(user_id: int, label: str, status: ClaimStatus, clock: FrozenClock, **fields: Any) -> PayoutClaim:
    values: dict[str, Any] = {
        "label": label, "external_id": f"claim_{label}", "user_id": user_id, "payee_first_name": "Ivan",
        "payee_last_name": "Petrov", "language": "en", "amount": 150000, "method": PayoutMethod.CARD,
        "card_mask": "411111******1111", "status": status, "created_at": clock(), "updated_at": clock()}
    return PayoutClaim(**{**values, **fields})


async def seed(client: TestClient, worker: Any, clock: FrozenClock, user_id: int, tag: str) -> str:
    """What a user leaves behind: a paid month (invoice, ledger row, subscription, delivered notices), its
    consent's address, the card title and token the provider gave, payout claims paid, rejected and in draft,
    a finished renewal, a Stars charge. Returns the paid invoice's label."""
    label = await pay(client, worker, user_id)
    consent = {"at": clock(), "ip": CONSENT_IP, "text_version": "en-test", "provider": "yoomoney",
               "amount": 29900, "currency": "RUB", "period_days": 30}
    await Invoice.get_motor_collection().update_one({"label": label}, {"$set": {
        "auto_renew_consent": consent, "receipt_contact": {"email": f"buyer-{tag}@example.com", "phone": None}}})
    await Operation.get_motor_collection().update_one(
        {"label": label}, {"$set": {"payment_token": f"tok-{tag}", "payment_method": CARD_TITLE}})
    await Subscription.get_motor_collection().update_one(  # a method once saved, already forgotten after /cancel
        {"user_id": user_id}, {"$set": {"payment_method": CARD_TITLE, "renewal_consent": consent}})
    await claim(user_id, f"po_{tag}paid", ClaimStatus.PAID, clock, konsol_id=f"k-{tag}", phone="+79001234567",
                bank_id="100000000111", bank_name="Сбербанк").insert()
    await claim(user_id, f"po_{tag}rejected", ClaimStatus.REJECTED, clock, reject_reason="no contract").insert()
    await claim(user_id, f"po_{tag}draft", ClaimStatus.DRAFT, clock, card_encrypted="gAAAA-cipher").insert()
    await Renewal(user_id=user_id, period_end=clock() - timedelta(days=30), provider="yookassa", plan="month",
                  label=f"inv_{tag}renewed", status=RenewalStatus.PAID, next_attempt_at=clock(),
                  created_at=clock(), updated_at=clock()).insert()
    await StarsCharge(charge_id=f"stxch-{tag}", user_id=user_id, payload=f"inv_{tag}stars",
                      label=f"inv_{tag}stars", amount=250, paid_at=clock(), recorded_at=clock()).insert()
    if user_id != USER_ID:
        await BotUser(user_id=user_id, language="ru", language_chosen=True, created_at=clock(),
                      updated_at=clock(), receipt_contact=ReceiptContact(phone="998901234567")).insert()
    return label


async def assert_erased_as_documented(user_id: int, label: str, notices_before: int) -> None:
    """README's table, collection by collection."""
    db = await database()
    assert await db["bot_users"].count_documents({"user_id": user_id}) == 0
    assert await db["subscriptions"].count_documents({"user_id": user_id}) == 0
    [invoice] = await db["invoices"].find({"user_id": user_id}).to_list(None)
    assert invoice["label"] == label and invoice["status"] == "paid" and invoice["paid_amount"] == 29900
    consent = invoice["auto_renew_consent"]
    assert consent["ip"] == "" and consent["text_version"] == "en-test" and consent["amount"] == 29900
    assert invoice["receipt_contact"] is None, "the receipt's e-mail or phone goes; the invoice stays"
    [operation] = await db["operations"].find({"label": label}).to_list(None)
    assert operation["status"] == "applied" and operation["amount"] == 29900
    assert operation["payment_token"] is None and operation["payment_method"] is None
    claims = await db["payout_claims"].find({"user_id": user_id}).to_list(None)
    assert [row["status"] for row in claims] == ["paid"], "rejected and draft claims are deleted"
    [paid] = claims
    assert paid["amount"] == 150000 and paid["konsol_id"] and paid["label"].endswith("paid")
    for name in ("payee_first_name", "payee_last_name", "card_mask", "card_encrypted", "phone", "bank_id",
                 "bank_name", "language"):
        assert name not in paid, name
    assert await db["renewals"].count_documents({"user_id": user_id}) == 0
    assert await db["sent_notices"].count_documents({"chat_id": user_id}) == 0
    assert await db["sent_notices"].count_documents({"chat_id": 0}) >= notices_before > 0, "kept, anonymised"
    [charge] = await db["stars_charges"].find({"user_id": user_id}).to_list(None)
    assert charge["amount"] == 250, "a Stars refund names the user: kept"


# ---- /privacy ---------------------------------------------------------------------------------

def dispatcher_with(client: TestClient, settings: Settings, plans: Plans, clock: FrozenClock,
                    **policy: str) -> Dispatcher:
    return build_dispatcher(settings.model_copy(update=policy), plans, clock=clock, ledger=client.app[LEDGER],
                            renewal_queue=client.app[QUEUES])


async def test_privacy_gives_the_policys_link(client, settings, plans, clock, bot, fake):
    dispatcher = dispatcher_with(client, settings, plans, clock, privacy_policy_url=POLICY_URL)
    await send(dispatcher, bot, "/privacy")
    text = last_text(fake)
    assert f"The privacy policy: {POLICY_URL}" in text and "/deletedata" in text


@pytest.mark.parametrize(("language_code", "expected"), [
    ("ru", "Политика: мы храним"), ("en", "Policy: we keep"), ("uz", "Policy: we keep")],
    ids=["ru", "en", "uz-falls-back-to-en"])
async def test_privacy_gives_the_text_in_the_users_language(client, settings, plans, clock, bot, fake,
                                                            language_code, expected):
    dispatcher = dispatcher_with(client, settings, plans, clock, privacy_policy_ru="Политика: мы храним\nваш id.",
                                 privacy_policy_en="Policy: we keep\nyour id.")
    await send(dispatcher, bot, "/privacy", language_code=language_code)
    text = last_text(fake)
    assert text.startswith(expected) and "id." in text
    assert "Policy: we keep" not in text if language_code == "ru" else "Политика" not in text


async def test_privacy_unset_says_none_is_published(dispatcher, bot, fake):
    await send(dispatcher, bot, "/privacy")
    assert last_text(fake).startswith("The owner of this bot has not published a privacy policy yet.")
    await send(dispatcher, bot, "/privacy", user_id=OTHER_ID, language_code="ru", update_id=2, message_id=11)
    assert last_text(fake, OTHER_ID).startswith("Владелец бота ещё не опубликовал политику конфиденциальности.")


def production(**values: Any) -> Settings:
    return Settings(_env_file=None, environment="production", bot_token=BOT_TOKEN, admin_api_token="t" * 32,
                    public_base_url="https://pay.example.org", **values)


def test_check_config_warns_in_production_when_no_policy_is_set():
    [warning] = [w for w in production().validate_for_run() if "PRIVACY_POLICY" in w]
    assert "/privacy" in warning
    assert not [w for w in production(privacy_policy_url=POLICY_URL).validate_for_run() if "PRIVACY" in w]
    assert not [w for w in production(privacy_policy_uz="Siyosat").validate_for_run() if "PRIVACY" in w]
    with pytest.raises(ConfigError, match="PRIVACY_POLICY_URL"):
        production(privacy_policy_url="shop.example.org/privacy").validate_for_run()
    with pytest.raises(ValidationError, match="privacy_policy_en"):
        production(privacy_policy_en="x" * 3501)
    assert production(privacy_policy_ru="  ").privacy_policy("ru") is None


def test_every_blocker_and_command_speaks_every_language():
    messages = catalogue()
    keys = [f"deletedata.blocked.{blocker.value}" for blocker in Blocker] + ["command.privacy", "command.deletedata"]
    for language in LANGUAGES:
        t = messages.texts(language)
        assert all(t.has(key) for key in keys), language


# ---- /deletedata ----------------------------------------------------------------------------------

async def test_deletedata_asks_first_and_cancel_changes_nothing(client, worker, dispatcher, bot, fake, clock):
    await seed(client, worker, clock, USER_ID, "a")
    await send(dispatcher, bot, "/deletedata")
    before = await snapshot(USER_ID)
    question = last_message(fake)
    assert question["text"].startswith("Delete your data?")
    assert "payment records (invoices, the payment ledger, fiscal receipts): 1" in question["text"]
    assert "Your access to 1 month until" in question["text"], "the paid time it ends is named"
    await dispatcher.feed_raw_update(bot, press(question, "Cancel", 50))
    assert edited(fake) == "Nothing was deleted."
    assert await snapshot(USER_ID) == before


async def test_confirm_erases_and_anonymises_as_documented_and_a_second_confirm_is_harmless(
        client, worker, dispatcher, bot, fake, clock, caplog):
    label = await seed(client, worker, clock, USER_ID, "a")
    await seed(client, worker, clock, OTHER_ID, "b")
    other = await snapshot(OTHER_ID)
    notices = await SentNotice.find(SentNotice.chat_id == USER_ID).count()
    storage_key = StorageKey(bot_id=bot.id, chat_id=USER_ID, user_id=USER_ID)
    await dispatcher.storage.set_data(storage_key, {"phone": "+79001234567", "label": "po_adraft"})
    await send(dispatcher, bot, "/deletedata")
    question = last_message(fake)

    with caplog.at_level(logging.INFO, logger="billing.privacy"):
        await dispatcher.feed_raw_update(bot, press(question, "Delete my data", 60))
    done = edited(fake)
    assert done.startswith("Your data is deleted.") and "payment records: 1; payout records: 1" in done
    await assert_erased_as_documented(USER_ID, label, notices)
    assert await dispatcher.storage.get_data(storage_key) == {}
    [record] = [r for r in caplog.records if r.name == "billing.privacy"]
    for personal in (str(USER_ID), "Ivan", "Petrov", "4242", CONSENT_IP, "+7900"):
        assert personal not in record.getMessage()

    after = await snapshot(USER_ID)
    await dispatcher.feed_raw_update(bot, press(question, "Delete my data", 61))  # the same button again
    assert edited(fake).startswith("Your data is deleted.")
    assert await snapshot(USER_ID) == after, "a second confirmation changes nothing"
    assert await snapshot(OTHER_ID) == other, "another user's data is untouched"


async def test_a_subscription_renewing_automatically_must_be_cancelled_first(client, worker, dispatcher, bot, fake):
    await paid_with_saved_method(client, worker, USER_ID, provider="yookassa", token="pm-1", method=CARD_TITLE)
    await send(dispatcher, bot, "/start", update_id=99, message_id=99)  # the bot knows the user (bot_users)
    before = await snapshot(USER_ID)
    await send(dispatcher, bot, "/deletedata")
    answer = fake.bot_messages(USER_ID)[-1]
    assert "turn automatic renewal off with /cancel first" in answer["text"]
    assert "Nothing was deleted." in answer["text"] and "reply_markup" not in answer
    assert await snapshot(USER_ID) == before


async def test_an_open_payout_claim_must_be_settled_first(client, dispatcher, bot, fake, clock):
    await claim(USER_ID, "po_open1", ClaimStatus.NEW, clock).insert()
    await send(dispatcher, bot, "/deletedata")
    assert "your payout claim po_open1 is not settled yet" in last_text(fake)
    kept = await PayoutClaim.find_one(PayoutClaim.label == "po_open1")
    assert kept is not None and kept.payee_first_name == "Ivan"


@pytest.mark.parametrize(("case", "blocker"), [
    ("turned-off", Blocker.RENEWAL_STOPPING), ("unconsented", Blocker.RENEWAL_STOPPING),
    ("stars", Blocker.STARS_RENEWAL), ("charging", Blocker.CHARGE_IN_PROGRESS),
    ("cloudpayments", Blocker.AUTO_RENEWAL)])
async def test_what_still_charges_the_user_blocks_the_deletion(client, worker, dispatcher, bot, fake, clock, case,
                                                               blocker):
    await pay(client, worker, USER_ID)
    if blocker is Blocker.RENEWAL_STOPPING:  # a saved method not yet removed at the provider: off, or never consented
        await Subscription.get_motor_collection().update_one(
            {"user_id": USER_ID}, {"$set": {"payment_token": "pm-1", "auto_renew": case == "unconsented"}})
    elif blocker is Blocker.STARS_RENEWAL:
        await StarsSubscription(label="inv_stars", user_id=USER_ID, plan="month", amount=250, last_charge_id="c1",
                                expires_at=clock() + timedelta(days=20), updated_at=clock()).insert()
    elif blocker is Blocker.CHARGE_IN_PROGRESS:
        await Renewal(user_id=USER_ID, period_end=clock(), provider="yookassa", plan="month", label="inv_r",
                      status=RenewalStatus.CHARGING, next_attempt_at=clock(), created_at=clock(),
                      updated_at=clock()).insert()
    else:  # a CloudPayments subscription charging the card by itself, not bound to ours
        await CloudPaymentsSubscription(subscription_id="sc_1", label="inv_cp", first_transaction_id="1",
                                        user_id=USER_ID, plan="month", period_days=30, created_at=clock()).insert()
    await send(dispatcher, bot, "/start", update_id=99, message_id=99)  # the bot knows the user (bot_users)
    before = await snapshot(USER_ID)
    await send(dispatcher, bot, "/deletedata")
    text = last_text(fake)
    assert text.startswith("Your data cannot be deleted yet:")
    assert catalogue().texts("en")(f"deletedata.blocked.{blocker.value}") in text
    assert await snapshot(USER_ID) == before
    assert (await inventory(USER_ID, clock())).blockers == (blocker,)


async def test_a_claim_filed_after_the_question_blocks_the_confirmation(client, worker, dispatcher, bot, fake, clock):
    await pay(client, worker, USER_ID)
    await send(dispatcher, bot, "/deletedata")
    question = last_message(fake)
    await claim(USER_ID, "po_late", ClaimStatus.NEW, clock).insert()
    before = await snapshot(USER_ID)
    await dispatcher.feed_raw_update(bot, press(question, "Delete my data", 70))
    assert "po_late is not settled yet" in edited(fake)
    assert await snapshot(USER_ID) == before


async def test_access_bought_after_the_question_is_asked_about_again(client, worker, dispatcher, bot, fake, clock):
    await send(dispatcher, bot, "/deletedata")
    question = last_message(fake)
    assert "Your access" not in question["text"]
    await pay(client, worker, USER_ID)
    before = await snapshot(USER_ID)
    await dispatcher.feed_raw_update(bot, press(question, "Delete my data", 80))
    [again] = fake.sent("editMessageText")
    assert again["text"].startswith("Something changed") and "Your access to 1 month until" in again["text"]
    assert await snapshot(USER_ID) == before, "the subscription paid since is not deleted unasked"


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_at_any_step_is_finished_by_the_rerun(client, worker, dispatcher, bot, fake, clock, step):
    label = await seed(client, worker, clock, USER_ID, "a")
    await seed(client, worker, clock, OTHER_ID, "b")
    other = await snapshot(OTHER_ID)
    notices = await SentNotice.find(SentNotice.chat_id == USER_ID).count()
    await send(dispatcher, bot, "/deletedata")  # the user is known to the bot
    accepted = (await inventory(USER_ID, clock())).access_seconds

    def crash(reached: str) -> None:
        if reached == step:
            raise RuntimeError(f"crashed after: {reached}")

    with pytest.raises(RuntimeError, match="crashed after"):
        await erase(USER_ID, clock(), accepted_access=accepted, checkpoint=crash)
    await erase(USER_ID, clock(), accepted_access=accepted)  # the redelivered update, or the polling retry
    await assert_erased_as_documented(USER_ID, label, notices)
    assert await snapshot(OTHER_ID) == other


async def test_a_button_pressed_by_someone_else_erases_only_the_pressers_data(client, worker, dispatcher, bot, fake,
                                                                             clock):
    await seed(client, worker, clock, USER_ID, "a")
    await send(dispatcher, bot, "/deletedata")
    question = last_message(fake)
    before = await snapshot(USER_ID)
    await dispatcher.feed_raw_update(bot, press(question, "Delete my data", 90, user_id=OTHER_ID))
    assert await snapshot(USER_ID) == before, "the callback data name no user: the presser's own data go"
    assert await BotUser.find_one(BotUser.user_id == OTHER_ID) is None
