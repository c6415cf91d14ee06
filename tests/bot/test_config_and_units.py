"""Settings the bot adds, `ymds bot`, signed links with a language, and the small pure helpers."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing.errors import BadLinkSignature
from billing.grants import grant_label
from billing.links import check_link, link_signature, signed_pay_url
from bot.main import make_bot
from bot.notifier import TelegramNotifier
from bot.routers.subscribe import mask_method
from settings import ConfigError, Settings
from tests.bot.conftest import ADMIN_CHAT_ID, last_text
from tests.helpers import new_invoice, notification, post_notification

YMDS = Path(sys.executable).with_name("ymds")
KEY = b"test-link-secret"
LABEL = "inv_0123456789abcdef01234567"
EXP = 1_700_003_600


def test_the_webhook_secret_derived_from_the_bot_token_matches_the_reference_vector():
    settings = Settings(_env_file=None, bot_token="123456:ABC")
    assert settings.webhook_secret_token == "f0558127604fef6ae75ca1b712e23124cc1ef5021aae7a49d791129dd24bc9d9"
    assert Settings(_env_file=None, bot_token="123456:ABC", webhook_secret="mine_1").webhook_secret_token == "mine_1"


def test_webhook_mode_needs_a_bot_token_and_a_well_formed_secret():
    base = {"_env_file": None, "environment": "development", "link_secret": "x"}
    with pytest.raises(ConfigError, match="WEBHOOK_MODE"):
        Settings(**base, webhook_mode=True).validate_for_run()
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        Settings(**base, bot_token="1:a", webhook_mode=True, webhook_secret="has:colon").validate_for_run()
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None).webhook_secret_token  # noqa: B018


def test_a_bot_with_a_dotless_public_host_is_warned_about():
    base = {"_env_file": None, "environment": "development", "bot_token": "1:a"}
    [warning] = Settings(**base, public_base_url="http://localhost:8080").validate_for_run()
    assert warning.startswith("PUBLIC_BASE_URL: Telegram refuses")
    assert Settings(**base, public_base_url="https://pay.example.org").validate_for_run() == []


def test_admin_language_is_one_of_the_three():
    assert Settings(_env_file=None, admin_language="uz").admin_language == "uz"
    with pytest.raises(ValidationError):
        Settings(_env_file=None, admin_language="de")


async def run_ymds(*args: str, tmp_path: Path, **env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(YMDS), *args, cwd=tmp_path, env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, out.decode()


async def test_ymds_bot_refuses_to_start_without_what_it_needs(tmp_path):
    common = {"ENVIRONMENT": "development", "LINK_SECRET": "x"}
    status, out = await run_ymds("bot", tmp_path=tmp_path, **common)
    assert status == 2 and "BOT_TOKEN" in out
    status, out = await run_ymds("bot", tmp_path=tmp_path, BOT_TOKEN="123456:ABC", **common)
    assert status == 2 and "memory://" in out and "123456:ABC" not in out


async def test_ymds_bot_in_webhook_mode_leaves_the_bot_to_the_web_server(tmp_path):
    status, out = await run_ymds("bot", tmp_path=tmp_path, ENVIRONMENT="development", BOT_TOKEN="123456:ABC",
                                 WEBHOOK_MODE="true")
    assert status == 0 and "/telegram/webhook" in out


# --- signed links with a language ---

def test_a_link_with_lang_signs_it_and_one_without_signs_as_before():
    assert link_signature(KEY, LABEL, EXP) != link_signature(KEY, LABEL, EXP, "ru")
    assert link_signature(KEY, LABEL, EXP, "ru") != link_signature(KEY, LABEL, EXP, "uz")
    url = signed_pay_url("https://pay.example.org", KEY, LABEL, EXP, "uz")
    assert url == (f"https://pay.example.org/pay/{LABEL}?exp={EXP}&lang=uz&sig={link_signature(KEY, LABEL, EXP, 'uz')}")
    check_link(KEY, LABEL, str(EXP), link_signature(KEY, LABEL, EXP, "uz"), EXP - 10, "uz")


@pytest.mark.parametrize("lang", ["", "RU", "r", "ru1", "ru-RU", "abcdefghi", "рус"])
def test_a_malformed_lang_is_a_bad_link_even_when_signed(lang):
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), link_signature(KEY, LABEL, EXP, lang), EXP - 10, lang)


def test_lang_cannot_be_dropped_or_added():
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), link_signature(KEY, LABEL, EXP, "ru"), EXP - 10)
    with pytest.raises(BadLinkSignature):
        check_link(KEY, LABEL, str(EXP), link_signature(KEY, LABEL, EXP), EXP - 10, "ru")


# --- small helpers ---

def test_grant_labels_look_like_labels_and_are_fixed_by_the_request():
    label = grant_label("1001-10")
    assert label.startswith("inv_") and len(label) == 28 and label == grant_label("1001-10") != grant_label("1001-11")


@pytest.mark.parametrize(("method", "shown"), [
    ("card-token-5c1b9f00d4e2-4242", "•••• 4242"), ("AC", "••••"), ("12345678", "••••"), ("", "••••"),
])
def test_saved_payment_methods_show_at_most_their_last_four_characters(method, shown):
    assert mask_method(method) == shown


async def test_the_admin_chat_reads_notices_in_admin_language(client, worker, fake, settings, clock, sleeps):
    worker.runtime.notifier = TelegramNotifier(make_bot(settings), admin_chat_id=ADMIN_CHAT_ID, admin_language="uz",
                                               clock=clock, sleep=sleeps)
    try:
        invoice = await new_invoice(client, user_id=5)
        await post_notification(client, notification(invoice["label"]))
        await worker.drain()
    finally:
        await worker.runtime.notifier.close()
    end = clock.now + timedelta(days=30)
    fake_text = last_text(fake, ADMIN_CHAT_ID)
    assert fake_text.startswith(f"✅ Hisob-faktura toʻlandi: {invoice['label']}\nFoydalanuvchi: 5\nTarif: 1 oy\n")
    assert str(end.year) in fake_text
