"""`ymds check-config` and YooMoney without YOOMONEY_API_TOKEN: YooMoney no longer signs its notifications, so
without the wallet API no payment can be confirmed — an error in production, a warning in development."""

from __future__ import annotations

from pathlib import Path

import pytest

from config_check import yoomoney_confirmation
from tests.conftest import make_settings
from tests.test_check_config import check_config

YOOMONEY = {"YOOMONEY_WALLET": "4100118000000000", "YOOMONEY_NOTIFICATION_SECRET": "s" * 28}


@pytest.mark.parametrize(("environment", "errors", "warnings"), [("production", 1, 0), ("development", 0, 1)])
def test_yoomoney_without_a_token_cannot_confirm_payments(environment: str, errors: int, warnings: int) -> None:
    found = yoomoney_confirmation(make_settings(environment=environment, yoomoney_api_token=None))
    assert (len(found[0]), len(found[1])) == (errors, warnings)
    [message] = found[0] + found[1]
    assert message.startswith("YOOMONEY_API_TOKEN: unset") and "cannot be confirmed" in message


@pytest.mark.parametrize("overrides", [
    {"yoomoney_api_token": "wallet-token"},  # set: payments are confirmed
    {"yoomoney_wallet": None, "yoomoney_notification_secret": None},  # YooMoney disabled: nothing to confirm
])
def test_nothing_to_say_when_payments_can_be_confirmed_or_yoomoney_is_off(overrides: dict[str, str | None]) -> None:
    assert yoomoney_confirmation(make_settings(environment="production", **overrides)) == ([], [])


def test_an_empty_token_counts_as_unset() -> None:
    errors, _ = yoomoney_confirmation(make_settings(environment="production", yoomoney_api_token=""))
    assert errors


def test_check_config_fails_in_production_and_warns_in_development(tmp_path: Path) -> None:
    production = check_config(tmp_path, "--offline", **YOOMONEY)
    assert production.returncode == 2
    assert "YOOMONEY_API_TOKEN: unset, so YooMoney payments cannot be confirmed" in production.stderr
    development = check_config(tmp_path, "--offline", ENVIRONMENT="development", **YOOMONEY)
    assert development.returncode == 0, development.stderr
    assert "warning: YOOMONEY_API_TOKEN: unset" in development.stdout
    configured = check_config(tmp_path, "--offline", YOOMONEY_API_TOKEN="4100.token", **YOOMONEY)
    assert configured.returncode == 0, configured.stderr
    assert "YOOMONEY_API_TOKEN" not in configured.stdout + configured.stderr
