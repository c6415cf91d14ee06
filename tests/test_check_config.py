"""`ymds check-config` as an owner runs it: every bad setting explained, production warnings, stores reached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REDIS_TEST_URL, ROOT
from tests.webhook_server.test_redis_faults import free_port

YMDS = Path(sys.executable).with_name("ymds")
BASE = {"PLANS_FILE": str(ROOT / "plans.toml"), "LINK_SECRET": "l" * 32, "ADMIN_API_TOKEN": "a" * 40,
        "PUBLIC_BASE_URL": "https://pay.example.org"}


def check_config(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(YMDS), "check-config", *args], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "", "HOME": str(tmp_path), **BASE, **env}, timeout=60)


def test_every_invalid_setting_is_named_with_an_example(tmp_path):
    result = check_config(tmp_path, "--offline", WEB_PORT="eighty", LINK_TTL_SECONDS="-1")
    assert result.returncode == 2
    assert "WEB_PORT:" in result.stderr and "(e.g. WEB_PORT=8080)" in result.stderr
    assert "LINK_TTL_SECONDS:" in result.stderr and "(e.g. LINK_TTL_SECONDS=86400)" in result.stderr


def test_production_warnings_point_at_risky_choices(tmp_path):
    result = check_config(tmp_path, "--offline", PUBLIC_BASE_URL="http://pay.example.org", ADMIN_API_TOKEN="short",
                          YOOKASSA_SHOP_ID="1", YOOKASSA_SECRET_KEY="test_abcdef")
    assert result.returncode == 0, result.stderr
    assert "warning: PUBLIC_BASE_URL: not https" in result.stdout
    assert "warning: ADMIN_API_TOKEN: shorter than 32" in result.stdout
    assert "warning: YOOKASSA_SECRET_KEY: a test key" in result.stdout
    assert "RENEWAL_NOTICE_DAYS" not in result.stdout
    silent = check_config(tmp_path, "--offline", YOOKASSA_SHOP_ID="1", YOOKASSA_SECRET_KEY="live_abcdef",
                          RENEWAL_NOTICE_DAYS="0")
    assert "warning: RENEWAL_NOTICE_DAYS: 0, so payers hear nothing before yookassa charges" in silent.stdout
    assert "RENEWAL_LEAD_SECONDS" not in result.stdout + silent.stdout
    late = check_config(tmp_path, "--offline", YOOKASSA_SHOP_ID="1", YOOKASSA_SECRET_KEY="live_abcdef",
                        RENEWAL_NOTICE_DAYS="1", RENEWAL_LEAD_SECONDS="86400")
    assert "warning: RENEWAL_LEAD_SECONDS: 86400, so saved methods are charged before the notice" in late.stdout
    assert "test_abcdef" not in result.stdout + result.stderr
    quiet = check_config(tmp_path, "--offline", ENVIRONMENT="development", PUBLIC_BASE_URL="http://127.0.0.1:8080")
    assert "warning: PUBLIC_BASE_URL" not in quiet.stdout


def test_unreachable_stores_fail_the_check_unless_offline(tmp_path):
    closed = free_port()
    env = {"MONGODB_URI": f"mongodb://ymds:hunter2@127.0.0.1:{closed}/ymds", "REDIS_URL": f"redis://127.0.0.1:{closed}/0"}
    result = check_config(tmp_path, **env)
    assert result.returncode == 2
    assert f"MONGODB_URI: mongodb://ymds:***@127.0.0.1:{closed}/ymds does not answer" in result.stderr
    assert "REDIS_URL:" in result.stderr and "hunter2" not in result.stderr
    assert check_config(tmp_path, "--offline", **env).returncode == 0


def test_a_reachable_redis_passes_the_check(tmp_path, redis_conn):
    result = check_config(tmp_path, REDIS_URL=REDIS_TEST_URL)
    assert result.returncode == 0, result.stderr
    assert "MongoDB and Redis answer" in result.stdout


def test_donation_ranges_are_checked(tmp_path):
    assert check_config(tmp_path, "--offline", DONATION_MIN="RUB=5000", DONATION_MAX="RUB=500000",
                        DONATION_SUGGESTED="RUB=5000/25000").returncode == 0
    cases = [
        ({"DONATION_MIN": "RUB=ten"}, "DONATION_MIN: Value error, 'RUB=ten': give CURRENCY=minor units"),
        ({"DONATION_MIN": "RUB=50000", "DONATION_MAX": "RUB=10000", "DONATION_SUGGESTED": ""},
         "RUB needs 100 <= min <= max <= 100000000"),
        ({"DONATION_MIN": "RUB=50", "DONATION_MAX": "RUB=10000", "DONATION_SUGGESTED": ""}, "RUB needs 100 <= min"),
        ({"DONATION_MIN": "RUB=100", "DONATION_MAX": "RUB=999999999999", "DONATION_SUGGESTED": ""},
         "max <= 100000000"),
        ({"DONATION_MIN": "EUR=100", "DONATION_MAX": "EUR=1000", "DONATION_SUGGESTED": ""}, "EUR is not one of"),
        ({"DONATION_MIN": "RUB=100", "DONATION_MAX": "RUB=1000,UZS=1000"}, "name the same currencies in both"),
        ({"DONATION_SUGGESTED": "RUB=5000"}, "DONATION_SUGGESTED: every RUB amount must lie between"),
        ({"DONATION_SUGGESTED": "XTR=100"}, "DONATION_SUGGESTED: every XTR amount"),
    ]
    for env, message in cases:
        result = check_config(tmp_path, "--offline", **env)
        assert result.returncode == 2, env
        assert message in result.stderr, (env, result.stderr)


UZ_DEFAULTS = {"RECEIPT_IKPU": "10305008002000000", "RECEIPT_PACKAGE_CODE": "1514296", "RECEIPT_VAT_PERCENT": "12"}
PAYME = {"PAYME_MERCHANT_ID": "5e730e8e0b852a417aa49ceb", "PAYME_KEY": "k", "PAYME_RECEIPTS": "true"}
CLICK = {"CLICK_SERVICE_ID": "1", "CLICK_MERCHANT_ID": "2", "CLICK_SECRET_KEY": "s", "CLICK_RECEIPTS": "true"}
YOOKASSA = {"YOOKASSA_SHOP_ID": "1", "YOOKASSA_SECRET_KEY": "live_abcdef", "YOOKASSA_RECEIPTS": "true"}
CLOUDPAYMENTS = {"CLOUDPAYMENTS_PUBLIC_ID": "pk_1", "CLOUDPAYMENTS_API_SECRET": "s", "CLOUDPAYMENTS_RECEIPTS": "true"}
TWO_PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900, UZS = 3500000 }
receipt = { title = "Access for a month", vat_code = 1, ikpu = "10305008002000000", package_code = "1514296" }

[plans.year]
title = "12 months"
period_days = 365
prices = { RUB = 299000, UZS = 35000000 }
"""


def plans_file(tmp_path: Path, text: str = TWO_PLANS) -> str:
    path = tmp_path / "plans.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def missing_plan_field(switch: str, plan: str, field: str) -> str:
    return f"{switch}: plan {plan!r} has no receipt {field}"


def test_uzbek_receipts_name_each_missing_field(tmp_path):
    result = check_config(tmp_path, "--offline", **PAYME, RECEIPT_IKPU="10305008002000000")
    assert result.returncode == 2
    for plan in ("month", "year"):
        for field in ("package_code", "vat_percent"):
            assert missing_plan_field("PAYME_RECEIPTS", plan, field) in result.stderr
        assert missing_plan_field("PAYME_RECEIPTS", plan, "ikpu") not in result.stderr
    assert "PAYME_RECEIPTS: orders and donations take the shop's defaults and lack RECEIPT_PACKAGE_CODE, " \
           "RECEIPT_VAT_PERCENT" in result.stderr
    result = check_config(tmp_path, "--offline", **CLICK, **UZ_DEFAULTS)
    assert result.returncode == 2
    assert "CLICK_RECEIPTS: the shop's receipts need RECEIPT_SELLER_TIN, CLICK_MERCHANT_USER_ID" in result.stderr
    assert "plan " not in result.stderr
    bad_tin = check_config(tmp_path, "--offline", **CLICK, **UZ_DEFAULTS, RECEIPT_SELLER_TIN="12345",
                           CLICK_MERCHANT_USER_ID="3")
    assert bad_tin.returncode != 0 and "RECEIPT_SELLER_TIN" in bad_tin.stderr
    ready = check_config(tmp_path, "--offline", **CLICK, **UZ_DEFAULTS, RECEIPT_SELLER_TIN="310618348",
                         CLICK_MERCHANT_USER_ID="3")
    assert ready.returncode == 0, ready.stderr
    assert check_config(tmp_path, "--offline", **PAYME, **UZ_DEFAULTS).returncode == 0


def test_a_plan_override_stands_in_for_the_default_and_only_for_its_plan(tmp_path):
    """month gives its own ikpu and package_code; year has none, and the shop gives neither default."""
    result = check_config(tmp_path, "--offline", **PAYME, RECEIPT_VAT_PERCENT="12",
                          PLANS_FILE=plans_file(tmp_path))
    assert result.returncode == 2
    assert "'month'" not in result.stderr
    assert missing_plan_field("PAYME_RECEIPTS", "year", "ikpu") in result.stderr
    assert missing_plan_field("PAYME_RECEIPTS", "year", "package_code") in result.stderr
    assert "RECEIPT_IKPU for every plan" in result.stderr


def test_russian_receipts_name_the_vat_code_per_plan_and_the_tax_system(tmp_path):
    for provider, switch in ((YOOKASSA, "YOOKASSA_RECEIPTS"), (CLOUDPAYMENTS, "CLOUDPAYMENTS_RECEIPTS")):
        result = check_config(tmp_path, "--offline", **provider, PLANS_FILE=plans_file(tmp_path))
        assert result.returncode == 2, result.stdout
        needs = "RECEIPT_TAX_SYSTEM_CODE, CLOUDPAYMENTS_INN" if provider is CLOUDPAYMENTS else "RECEIPT_TAX_SYSTEM_CODE"
        assert f"{switch}: the shop's receipts need {needs}\n" in result.stderr
        assert missing_plan_field(switch, "year", "vat_code") in result.stderr
        assert missing_plan_field(switch, "month", "vat_code") not in result.stderr
        assert f"{switch}: orders and donations take the shop's defaults and lack RECEIPT_VAT_CODE" in result.stderr
        inn = {"CLOUDPAYMENTS_INN": "7707083893"} if provider is CLOUDPAYMENTS else {}
        ready = check_config(tmp_path, "--offline", **provider, **inn, RECEIPT_TAX_SYSTEM_CODE="2",
                             RECEIPT_VAT_CODE="1", PLANS_FILE=plans_file(tmp_path))
        assert ready.returncode == 0, ready.stderr
    off = check_config(tmp_path, "--offline", **{**YOOKASSA, "YOOKASSA_RECEIPTS": "false"})
    assert off.returncode == 0, off.stderr


def test_the_worker_refuses_to_start_without_what_the_receipts_need(tmp_path):
    stores = {"MONGODB_URI": "mongodb://127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([str(YMDS), "worker", "--burst"], capture_output=True, text=True, cwd=tmp_path,
                            env={"PATH": "", "HOME": str(tmp_path), **BASE, **YOOKASSA, **stores}, timeout=60)
    assert result.returncode == 2
    assert "YOOKASSA_RECEIPTS: the shop's receipts need RECEIPT_TAX_SYSTEM_CODE" in result.stderr


def test_events_settings_are_checked(tmp_path):
    secret = "s" * 32
    both = check_config(tmp_path, "--offline", EVENTS_URL="https://crm.example.org/hooks/ymds?token=abc",
                        EVENTS_SECRET=secret)
    assert both.returncode == 0, both.stderr
    assert "events: signed and sent to https://crm.example.org\n" in both.stdout
    assert "token=abc" not in both.stdout and secret not in both.stdout
    assert "events: off (EVENTS_URL unset)" in check_config(tmp_path, "--offline").stdout

    half = check_config(tmp_path, "--offline", EVENTS_URL="https://crm.example.org/hooks")
    assert half.returncode == 2 and "EVENTS_URL and EVENTS_SECRET: set both or neither" in half.stderr
    plain = check_config(tmp_path, "--offline", EVENTS_URL="http://crm.example.org/hooks", EVENTS_SECRET=secret)
    assert plain.returncode == 2 and "EVENTS_URL: must be https:// in production" in plain.stderr
    in_development = check_config(tmp_path, "--offline", ENVIRONMENT="development",
                                  EVENTS_URL="http://127.0.0.1:9000/hooks", EVENTS_SECRET=secret)
    assert in_development.returncode == 0, in_development.stderr
    short = check_config(tmp_path, "--offline", EVENTS_URL="https://crm.example.org/hooks", EVENTS_SECRET="short")
    assert short.returncode == 2 and "EVENTS_SECRET: at least 32 characters" in short.stderr
    assert "short" not in short.stderr.replace("EVENTS_SECRET: at least", ""), "the secret is never echoed"
    no_delays = check_config(tmp_path, "--offline", EVENTS_URL="https://crm.example.org/hooks", EVENTS_SECRET=secret,
                             EVENTS_RETRY_INTERVALS="60,0")
    assert no_delays.returncode == 2 and "EVENTS_RETRY_INTERVALS" in no_delays.stderr
    timeout = check_config(tmp_path, "--offline", EVENTS_TIMEOUT_SECONDS="0")
    assert timeout.returncode == 2 and "EVENTS_TIMEOUT_SECONDS" in timeout.stderr
