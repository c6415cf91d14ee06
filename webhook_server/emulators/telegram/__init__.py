"""A fake Telegram Bot API: `POST /bot{token}/{method}` as Telegram speaks it, for the tests and `ymds demo`.

It answers the methods the bot calls with minimal valid objects, records every call, holds
`getUpdates` open until an update is queued, can be told to fail a method (429 with
`retry_after`, 403 "bot was blocked", 5xx, a refused answerCallbackQuery), keeps channels and supergroups
with their members, invite links and bans (chats.py), and delivers updates to a
webhook when one is set, redelivering those not answered 2xx as Telegram does (webhook.py). Like
Telegram it refuses a second answer to one callback query (a redelivered button press).
A person drives it from a browser at `/` (a small chat page: type /subscribe, press the buttons);
tests drive it through its Python methods or `POST /fake/send`, `POST /fake/press`,
`GET /fake/messages`. Not a payment provider, so it is not in EMULATORS: run it with
`ymds fake-telegram`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from webhook_server.emulators.telegram.chat_page import render_chat
from webhook_server.emulators.telegram.chats import FakeChats
from webhook_server.emulators.telegram.stars import FakeStars
from webhook_server.emulators.telegram.webhook import WebhookOutbox

log = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_FORMAT = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,100}")
MAX_POLL_SECONDS = 50
MAX_CALLBACK_DATA_BYTES = 64
PAGE_USER_ID = 777
JSON_FIELDS = ("reply_markup", "allowed_updates", "commands", "prices", "scope", "entities")


class ApiError(Exception):
    """An error answer in the Bot API's format, with the HTTP status aiogram classifies it by."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


@dataclass(frozen=True, slots=True)
class ApiCall:
    method: str  # as the client spelled it, e.g. "sendMessage"
    params: dict[str, Any]  # form fields; JSON-valued fields (reply_markup, ...) decoded


@dataclass(slots=True)
class Failure:
    method: str
    status: int
    description: str
    retry_after: int | None = None
    chat_id: int | None = None  # only calls for this chat fail
    times: int = 1


BLOCKED = "Forbidden: bot was blocked by the user"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


@dataclass(slots=True)
class FakeTelegram:
    token: str | None = None  # when set, other tokens get 401 Unauthorized
    bot_username: str = "ymds_test_bot"
    calls: list[ApiCall] = field(default_factory=list)
    chats: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # what each chat shows, both sides
    webhook: dict[str, Any] | None = None
    commands: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    stars: FakeStars = field(default_factory=FakeStars)  # Telegram Stars: invoices, payments, refunds
    groups: FakeChats = field(default_factory=FakeChats)  # channels and supergroups: members, invite links, bans
    outbox: WebhookOutbox = field(default_factory=WebhookOutbox)  # webhook deliveries and redeliveries
    callback_answers: dict[str, int] = field(default_factory=dict)  # query id (of user_presses) → answers taken
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[Failure] = field(default_factory=list)
    _next_update_id: int = 100000001
    _next_message_id: int = 1
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _closing: bool = False

    # ---- the HTTP app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.route("*", "/bot{token}/{method}", self.api),
            web.get("/", self.chat_page),
            web.get("/fake/messages", self.messages_view),
            web.post("/fake/send", self.send_view),
            web.post("/fake/press", self.press_view),
            web.post("/fake/redeliver", self.redeliver_view),
            *self.stars.routes(self), *self.groups.routes(),
        ])
        app.on_shutdown.append(self._wake_pollers)
        return app

    async def api(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if not TOKEN_FORMAT.fullmatch(token) or (self.token is not None and token != self.token):
            return ApiError(401, "Unauthorized").response()
        try:
            params = await _read_params(request)
        except ValueError:
            return ApiError(400, "Bad Request: can't parse request body").response()
        call = ApiCall(method, params)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        handler = self._methods().get(method.lower())
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            self._raise_injected(method, params)
            result = await handler(params, int(token.split(":", 1)[0]))
        except ApiError as err:
            return err.response()
        return web.json_response({"ok": True, "result": result})

    def _methods(self) -> dict[str, Callable[[dict[str, Any], int], Awaitable[Any]]]:
        return {
            "getme": self._get_me, "sendmessage": self._send_message, "editmessagetext": self._edit_text,
            "editmessagereplymarkup": self._edit_markup, "answercallbackquery": self._answer_callback,
            "deletemessage": _true, "setmycommands": self._set_commands, "deletemycommands": _true,
            "setwebhook": self._set_webhook, "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._webhook_info, "getupdates": self._get_updates, "close": _true,
            **self.stars.methods(self), **self.groups.methods(self),
        }

    def _raise_injected(self, method: str, params: dict[str, Any]) -> None:
        for failure in self._failures:
            chat = params.get("chat_id")
            if failure.method.lower() == method.lower() and failure.chat_id in (None, _int_or_none(chat)):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise ApiError(failure.status, failure.description, failure.retry_after)

    # ---- Bot API methods ----------------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        return self._bot_user(bot_id)

    def _bot_user(self, bot_id: int) -> dict[str, Any]:
        return {"id": bot_id, "is_bot": True, "first_name": "YMDS", "username": self.bot_username}

    async def _send_message(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        chat_id = _required_int(params, "chat_id")
        text = str(params.get("text") or "")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        markup = params.get("reply_markup")
        _check_markup(markup)
        message = {"message_id": self._new_message_id(), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                   "from": self._bot_user(bot_id), "text": text}
        if markup:
            message["reply_markup"] = markup
        await self._show(chat_id, message)
        return message

    async def _edit_text(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        message = self._find_message(params)
        text = str(params.get("text") or "")
        markup = params.get("reply_markup")
        _check_markup(markup)
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise ApiError(400, "Bad Request: message is not modified: specified new message content and reply "
                                "markup are exactly the same as a current content and reply markup of the message")
        message["text"] = text
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        await self._show(message["chat"]["id"], None)
        return message

    async def _edit_markup(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        message = self._find_message(params)
        markup = params.get("reply_markup")
        _check_markup(markup)
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        await self._show(message["chat"]["id"], None)
        return message

    async def _answer_callback(self, params: dict[str, Any], bot_id: int) -> bool:
        """A query the fake issued is answered once; Telegram refuses a second answer as it does a late one."""
        query_id = str(params.get("callback_query_id") or "")
        if not query_id:
            raise ApiError(400, "Bad Request: query_id is empty")
        if query_id in self.callback_answers:
            if self.callback_answers[query_id]:
                raise ApiError(400, QUERY_TOO_OLD)
            self.callback_answers[query_id] += 1
        return True

    async def _set_commands(self, params: dict[str, Any], bot_id: int) -> bool:
        self.commands[str(params.get("language_code") or "")] = list(params.get("commands") or [])
        return True

    async def _set_webhook(self, params: dict[str, Any], bot_id: int) -> bool:
        if not params.get("url"):
            return await self._delete_webhook(params, bot_id)
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": str(params["url"]), "secret_token": secret}
        return True

    async def _delete_webhook(self, params: dict[str, Any], bot_id: int) -> bool:
        self.webhook = None
        waiting = self.outbox.take_all()
        if str(params.get("drop_pending_updates")) == "true":
            self._updates.clear()
        else:
            async with self._changed:
                self._updates.extend(waiting)
                self._changed.notify_all()
        return True

    async def _webhook_info(self, params: dict[str, Any], bot_id: int) -> dict[str, Any]:
        url = self.webhook["url"] if self.webhook else ""
        info: dict[str, Any] = {"url": url, "has_custom_certificate": False,
                                "pending_update_count": self.outbox.pending if self.webhook else len(self._updates)}
        if self.webhook and self.outbox.last_error_date is not None:
            info.update(last_error_date=self.outbox.last_error_date, last_error_message=self.outbox.last_error_message)
        return info

    async def _get_updates(self, params: dict[str, Any], bot_id: int) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
                                "to delete the webhook first")
        offset = _int_or_none(params.get("offset")) or 0
        timeout = min(_int_or_none(params.get("timeout")) or 0, MAX_POLL_SECONDS)
        async with self._changed:
            if offset:
                self._updates[:] = [update for update in self._updates if update["update_id"] >= offset]
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: bool(self._updates) or self._closing)
            except TimeoutError:
                pass
            return list(self._updates)

    def _find_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, message_id = _required_int(params, "chat_id"), _required_int(params, "message_id")
        for message in self.chats.get(chat_id, []):
            if message.get("message_id") == message_id and message.get("from", {}).get("is_bot"):
                return message
        raise ApiError(400, "Bad Request: message to edit not found")

    def _new_message_id(self) -> int:
        self._next_message_id += 1
        return self._next_message_id

    async def _show(self, chat_id: int, message: dict[str, Any] | None) -> None:
        async with self._changed:
            if message is not None:
                self.chats.setdefault(chat_id, []).append(message)
            self._changed.notify_all()

    async def _wake_pollers(self, app: web.Application) -> None:
        async with self._changed:
            self._closing = True
            self._changed.notify_all()

    # ---- what users do ------------------------------------------------------------------------

    async def user_sends(self, user_id: int, text: str, *, language_code: str | None = "en",
                         first_name: str = "Ivan") -> dict[str, Any]:
        """A user writes to the bot: the update is queued for getUpdates (or posted to the webhook)."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        message: dict[str, Any] = {"message_id": self._new_message_id(), "date": int(time.time()),
                                   "chat": {"id": user_id, "type": "private", "first_name": first_name},
                                   "from": user, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        await self._show(user_id, message)
        return await self.queue_update({"message": message})

    async def user_presses(self, user_id: int, message_id: int, data: str, *,
                           language_code: str | None = "en") -> dict[str, Any]:
        """A user presses a callback button under one of the bot's messages."""
        message = self._find_message({"chat_id": user_id, "message_id": message_id})
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Ivan"}
        if language_code:
            user["language_code"] = language_code
        query = {"id": f"cq{self._next_update_id}", "from": user, "message": message,
                 "chat_instance": str(user_id), "data": data}
        self.callback_answers[query["id"]] = 0
        return await self.queue_update({"callback_query": query})

    async def queue_update(self, body: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, **body}
        self._next_update_id += 1
        if self.webhook is not None:
            await self._deliver(update)
            return update
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return update

    async def _deliver(self, update: dict[str, Any]) -> None:
        await self.outbox.send(update, lambda: self.webhook, self._notify)

    async def redeliver(self) -> int:
        """Telegram's next attempt at every update the webhook did not take; how many still wait."""
        return await self.outbox.redeliver(lambda: self.webhook, self._notify)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---- for tests ----------------------------------------------------------------------------

    def fail(self, method: str, status: int, description: str, *, retry_after: int | None = None,
             chat_id: int | None = None, times: int = 1) -> None:
        """Make the next `times` calls of `method` (for `chat_id`, if given) fail with this answer."""
        self._failures.append(Failure(method, status, description, retry_after, chat_id, times))

    def rate_limit(self, method: str, retry_after: int, *, chat_id: int | None = None, times: int = 1) -> None:
        self.fail(method, 429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after,
                  chat_id=chat_id, times=times)

    def fail_callback_answers(self, *, times: int = 1) -> None:
        """The next `times` answerCallbackQuery calls are refused, as Telegram refuses a late answer."""
        self.fail("answerCallbackQuery", 400, QUERY_TOO_OLD, times=times)

    def block(self, chat_id: int, *, times: int = 1) -> None:
        """The user blocked the bot: sending to them is 403."""
        self.fail("sendMessage", 403, BLOCKED, chat_id=chat_id, times=times)

    def sent(self, method: str = "sendMessage", chat_id: int | None = None) -> list[dict[str, Any]]:
        """The params of every call of `method` (to `chat_id`, if given), failed ones included."""
        return [call.params for call in self.calls if call.method.lower() == method.lower()
                and (chat_id is None or _int_or_none(call.params.get("chat_id")) == chat_id)]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [message for message in self.chats.get(chat_id, []) if message.get("from", {}).get("is_bot")]

    # the deadline is the wait's own (as asyncio.wait_for's), not a caller's asyncio.timeout
    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10) -> T:  # noqa: ASYNC109
        """Wait (bounded) until predicate() is truthy; re-checked on every call the fake receives."""
        async with asyncio.timeout(timeout), self._changed:
            while not (result := predicate()):
                await self._changed.wait()
        return result

    # ---- the person's chat page ---------------------------------------------------------------

    async def send_view(self, request: web.Request) -> web.StreamResponse:
        form = await _read_params(request)
        user_id = _int_or_none(form.get("user_id")) or PAGE_USER_ID
        language = str(form.get("language_code") or "en")
        update = await self.user_sends(user_id, str(form.get("text") or ""), language_code=language)
        if "redirect" in form:
            raise web.HTTPSeeOther(f"/?user_id={user_id}&language_code={language}")
        return web.json_response(update)

    async def press_view(self, request: web.Request) -> web.StreamResponse:
        form = await _read_params(request)
        user_id = _int_or_none(form.get("user_id")) or PAGE_USER_ID
        language = str(form.get("language_code") or "en")
        try:
            update = await self.user_presses(user_id, _required_int(form, "message_id"), str(form.get("data")),
                                             language_code=language)
        except ApiError as err:
            return err.response()
        if "redirect" in form:
            raise web.HTTPSeeOther(f"/?user_id={user_id}&language_code={language}")
        return web.json_response(update)

    async def redeliver_view(self, request: web.Request) -> web.Response:
        return web.json_response({"pending": await self.redeliver(), "given_up": len(self.outbox.given_up)})

    async def messages_view(self, request: web.Request) -> web.Response:
        chat_id = _int_or_none(request.query.get("chat_id")) or PAGE_USER_ID
        return web.json_response({"messages": self.chats.get(chat_id, [])})

    async def chat_page(self, request: web.Request) -> web.Response:
        user_id = _int_or_none(request.query.get("user_id")) or PAGE_USER_ID
        language = request.query.get("language_code", "en")
        page = render_chat(user_id, language, self.chats.get(user_id, []), self.stars.controls(user_id, language))
        return web.Response(text=page, content_type="text/html")


async def _true(params: dict[str, Any], bot_id: int) -> bool:
    return True


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus a form, multipart or JSON body, as Telegram accepts; JSON-valued fields decoded."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = json.loads(await request.read() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("JSON body must be an object")
        return {**params, **body}
    if request.can_read_body:
        form = await request.post()
        params.update({name: value for name, value in form.items() if isinstance(value, str)})
    for name in JSON_FIELDS:
        if isinstance(params.get(name), str):
            params[name] = json.loads(params[name])
    return params


def _check_markup(markup: Any) -> None:
    if not markup:
        return
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if "url" in button and not str(button["url"]).startswith(("http://", "https://", "tg://")):
                raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _required_int(params: dict[str, Any], name: str) -> int:
    value = _int_or_none(params.get(name))
    if value is None:
        raise ApiError(400, f"Bad Request: {name} is empty")
    return value

