"""settings.Settings, and `ymds check-config` run as a real process with a controlled environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
YM_SECRET = "ym-notify-secret-5f3a9c0e"
ADMIN_TOKEN = "admin-token-8d21e7b4"
LINK_SECRET = "link-secret-1c9b33aa"
SECRETS = (YM_SECRET, ADMIN_TOKEN, LINK_SECRET)
CHECK_CONFIG = "import sys, ymds; sys.exit(ymds.main(['check-config']))"


def valid_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ENVIRONMENT": "production",
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
        "LINK_SECRET": LINK_SECRET,
        "PUBLIC_BASE_URL": "https://pay.example.org",
        "PLANS_FILE": str(ROOT / "plans.toml"),
        "YOOMONEY_WALLET": "4100118000000000",
        "YOOMONEY_NOTIFICATION_SECRET": YM_SECRET,
        "YOOMONEY_API_TOKEN": "4100118000000000.wallet-api-token",
    }


def check_config(tmp_path: Path, **changes: str | None) -> subprocess.CompletedProcess[str]:
    """Run `ymds check-config` in an empty working directory (no stray .env) with the valid env plus changes."""
    env = valid_env(tmp_path)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run([sys.executable, "-c", CHECK_CONFIG], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


def assert_fails_naming(result: subprocess.CompletedProcess[str], setting: str) -> None:
    assert result.returncode != 0, result.stdout
    assert setting in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in (*SECRETS, *secrets):
        assert secret not in result.stdout + result.stderr, f"{secret!r} leaked into check-config's output"


def test_valid_config_passes_and_lists_yoomoney(tmp_path: Path) -> None:
    result = check_config(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "enabled providers: yoomoney" in result.stdout
    assert_no_secret(result)


def test_no_provider_credentials_means_none_enabled(tmp_path: Path) -> None:
    result = check_config(tmp_path, YOOMONEY_WALLET=None, YOOMONEY_NOTIFICATION_SECRET="")
    assert result.returncode == 0, result.stderr
    assert "enabled providers: none" in result.stdout


@pytest.mark.parametrize("token", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_production_without_admin_token_fails(tmp_path: Path, token: str | None) -> None:
    result = check_config(tmp_path, ADMIN_API_TOKEN=token)
    assert_fails_naming(result, "ADMIN_API_TOKEN")
    assert_no_secret(result)


def test_development_without_admin_token_passes(tmp_path: Path) -> None:
    assert check_config(tmp_path, ENVIRONMENT="development", ADMIN_API_TOKEN=None).returncode == 0


@pytest.mark.parametrize("url", ["pay.example.org", "ftp://pay.example.org", "https://", "javascript:alert(1)"])
def test_malformed_public_base_url_fails(tmp_path: Path, url: str) -> None:
    assert_fails_naming(check_config(tmp_path, PUBLIC_BASE_URL=url), "PUBLIC_BASE_URL")


@pytest.mark.parametrize("where", ["missing.toml", "."], ids=["missing", "directory"])
def test_unreadable_plans_file_fails(tmp_path: Path, where: str) -> None:
    assert_fails_naming(check_config(tmp_path, PLANS_FILE=str(tmp_path / where)), "PLANS_FILE")


def test_plans_file_with_a_bad_price_fails(tmp_path: Path) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text("[plans.month]\nperiod_days = 30\nprices = { RUB = 299.0 }\n", encoding="utf-8")
    assert_fails_naming(check_config(tmp_path, PLANS_FILE=str(plans)), "PLANS_FILE")


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_half_configured_yoomoney_names_the_missing_secret(tmp_path: Path, secret: str | None) -> None:
    result = check_config(tmp_path, YOOMONEY_NOTIFICATION_SECRET=secret)
    assert_fails_naming(result, "YOOMONEY_NOTIFICATION_SECRET")
    assert "YOOMONEY_WALLET" not in result.stderr


def test_half_configured_yoomoney_names_the_missing_wallet_not_the_secret(tmp_path: Path) -> None:
    result = check_config(tmp_path, YOOMONEY_WALLET=None)
    assert_fails_naming(result, "YOOMONEY_WALLET")
    assert_no_secret(result)


@pytest.mark.parametrize("port", ["eighty", "8080.5", "70000", "-1"])
def test_bad_web_port_fails(tmp_path: Path, port: str) -> None:
    assert_fails_naming(check_config(tmp_path, WEB_PORT=port), "WEB_PORT")


@pytest.mark.parametrize("uri", ["mongo://db.example.org/ymds", "http://db.example.org", "db.example.org:27017"])
def test_mongodb_uri_with_a_bad_scheme_fails(tmp_path: Path, uri: str) -> None:
    assert_fails_naming(check_config(tmp_path, MONGODB_URI=uri), "MONGODB_URI")


def test_mongodb_uri_error_does_not_print_the_database_password(tmp_path: Path) -> None:
    result = check_config(tmp_path, MONGODB_URI="mongo://ymds:db-pass-77e0a1@db.example.org/ymds")
    assert_fails_naming(result, "MONGODB_URI")
    assert_no_secret(result, "db-pass-77e0a1")


def test_redis_url_with_a_bad_scheme_fails(tmp_path: Path) -> None:
    assert_fails_naming(check_config(tmp_path, REDIS_URL="http://127.0.0.1:6379/0"), "REDIS_URL")


def test_no_link_key_at_all_fails(tmp_path: Path) -> None:
    assert_fails_naming(check_config(tmp_path, LINK_SECRET=None, BOT_TOKEN=None), "LINK_SECRET")


def test_bot_token_alone_is_enough_for_links(tmp_path: Path) -> None:
    result = check_config(tmp_path, LINK_SECRET=None, BOT_TOKEN="123456:bot-token-secret")
    assert result.returncode == 0, result.stderr
    assert_no_secret(result, "bot-token-secret")


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"ADMIN_API_TOKEN={ADMIN_TOKEN}\n", encoding="utf-8")
    result = check_config(tmp_path, ADMIN_API_TOKEN=None)
    assert result.returncode == 0, result.stderr
    assert_no_secret(result)
    (tmp_path / ".env").write_text("WEB_PORT=eighty\n", encoding="utf-8")
    assert_fails_naming(check_config(tmp_path), "WEB_PORT")


# --- Settings in-process ---

@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting inherited from the test runner's own environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_comma_separated_lists_are_parsed_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADMIN_IDS", "111, 222,333 ,")
    clean_env.setenv("RETRY_INTERVALS", "10,60, 300")
    clean_env.setenv("TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2")
    settings = Settings(_env_file=None)
    assert settings.admin_ids == [111, 222, 333]
    assert settings.retry_intervals == [10, 60, 300]
    assert settings.trusted_proxies == ["10.0.0.1", "10.0.0.2"]


def test_single_admin_id_and_empty_list(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADMIN_IDS", "42")
    clean_env.setenv("TRUSTED_PROXIES", "")
    settings = Settings(_env_file=None)
    assert (settings.admin_ids, settings.trusted_proxies) == ([42], [])


def test_non_integer_admin_id_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ADMIN_IDS", "111,admin")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_empty_strings_of_the_example_file_mean_unset(clean_env: pytest.MonkeyPatch) -> None:
    """Every variable .env.example leaves empty is accepted empty and reads as unset."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    empty = [line[:-1] for line in lines if line and not line.startswith("#") and line.endswith("=")]
    assert "YOOMONEY_NOTIFICATION_SECRET" in empty and "BOT_TOKEN" in empty
    for name in empty:
        clean_env.setenv(name, "")
    settings = Settings(_env_file=None)
    for name in empty:
        assert getattr(settings, name.lower()) in (None, []), name
    assert settings.enabled_providers == []


def test_link_key_is_link_secret_when_set(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, link_secret=LINK_SECRET, bot_token="123:token")
    assert settings.link_key == LINK_SECRET.encode()


def test_link_key_derives_from_bot_token_without_being_the_token(clean_env: pytest.MonkeyPatch) -> None:
    key = Settings(_env_file=None, bot_token="123456:token-a").link_key
    assert key not in (b"123456:token-a", b"")
    assert b"token-a" not in key
    assert key == Settings(_env_file=None, bot_token="123456:token-a", link_secret="").link_key  # stable
    assert key != Settings(_env_file=None, bot_token="123456:token-b").link_key


def test_no_link_key_at_all_is_a_config_error(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="LINK_SECRET"):
        Settings(_env_file=None, bot_token="", link_secret="  ").link_key  # noqa: B018


def test_secrets_are_hidden_in_the_settings_repr(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, admin_api_token=ADMIN_TOKEN, yoomoney_notification_secret=YM_SECRET)
    assert ADMIN_TOKEN not in repr(settings) and YM_SECRET not in str(settings)
