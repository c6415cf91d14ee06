"""The few Bot API calls of the processes that run no bot, over the HTTP session they already have.

`ymds worker` (the notices), `ymds scheduler` and `ymds web` without webhook mode (Stars refunds and their
reconciliation) call Telegram through this module instead of aiogram, whose import alone is most of a process's
memory. Nothing here imports aiogram. Telegram's error answers are told apart by aiogram's own rule
(`aiogram/client/session/base.py`, check_response): a `retry_after` first, then the status, so every caller sees
the outcome it saw through aiogram.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from billing.providers.base import HttpTransport, ProviderHTTPError
from settings import Settings

InlineKeyboard = Mapping[str, Any]  # {"inline_keyboard": [[{"text": ..., "callback_data" | "url": ...}]]}


class BotApiError(Exception):
    """Telegram did not do what was asked; `description` is Telegram's text (never the URL: it holds the token)."""

    def __init__(self, method: str, description: str) -> None:
        super().__init__(f"{method}: {description}")
        self.method = method
        self.description = description


class BotApiUnreachable(BotApiError):
    """No answer, none in time, or one that is not the Bot API's: Telegram may or may not have done it."""


class BotApiRetryAfter(BotApiError):
    """429 Too Many Requests: the same call may be made again after `retry_after` seconds."""

    def __init__(self, method: str, description: str, retry_after: int) -> None:
        super().__init__(method, description)
        self.retry_after = retry_after


class BotApiBadRequest(BotApiError):
    """400: the call itself is wrong for Telegram (chat not found, message too long): repeating it cannot help."""


class BotApiForbidden(BotApiError):
    """403: the bot may not write there (the user blocked it, or it was removed from the chat)."""


class BotApiServerError(BotApiError):
    """5xx: Telegram failed this time."""


class BotApi:
    """`{TELEGRAM_API_URL}/bot{token}/{method}`, its parameters a form as aiogram sends them (a bool as
    true/false, an object or a list as JSON), so Telegram and the fake see the bodies they saw through aiogram."""

    def __init__(self, transport: HttpTransport, token: str, api_url: str) -> None:
        self._transport = transport
        self._token = token
        self._base = api_url.rstrip("/")

    async def call(self, method: str, params: Mapping[str, Any]) -> Any:
        """The call's `result`; raises a BotApiError for anything else."""
        url = f"{self._base}/bot{self._token}/{method}"
        try:
            status, body = await self._transport.post_form(url, _form(params), {})
        except ProviderHTTPError as err:  # its text names the host only
            raise BotApiUnreachable(method, str(err)) from err
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            raise BotApiUnreachable(method, f"HTTP {status} without a Bot API answer")
        if 200 <= status <= 226 and body["ok"]:
            return body.get("result")
        raise _error(method, status, body)

    async def send_message(self, chat_id: int, text: str, reply_markup: InlineKeyboard | None = None) -> None:
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if reply_markup is not None:
            params["reply_markup"] = reply_markup
        await self.call("sendMessage", params)


def bot_api_for(settings: Settings, transport: HttpTransport) -> BotApi | None:
    """The Bot API at TELEGRAM_API_URL (Telegram, or a local fake) when BOT_TOKEN is set."""
    if settings.bot_token is None:
        return None
    return BotApi(transport, settings.bot_token.get_secret_value(), settings.telegram_api_url)


def _form(params: Mapping[str, Any]) -> dict[str, str]:
    return {name: _field(value) for name, value in params.items() if value is not None}


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # aiogram's own encoding of a nested value
    return str(value)


def _error(method: str, status: int, body: Mapping[str, Any]) -> BotApiError:
    description = str(body.get("description") or f"HTTP {status}")
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    retry_after = parameters.get("retry_after")
    if isinstance(retry_after, int) and not isinstance(retry_after, bool) and retry_after > 0:
        return BotApiRetryAfter(method, description, retry_after)
    if parameters.get("migrate_to_chat_id"):  # the group became a supergroup: aiogram's own class, not a 400
        return BotApiError(method, description)
    if status == 400:
        return BotApiBadRequest(method, description)
    if status == 403:
        return BotApiForbidden(method, description)
    if status >= 500:
        return BotApiServerError(method, description)
    return BotApiError(method, description)
