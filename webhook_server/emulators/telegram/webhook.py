"""How the fake Bot API delivers updates to a webhook, as Telegram does.

setWebhook's documentation: "In case of an unsuccessful request (a request with response HTTP status code
different from 2XY), we will repeat the request and give up after a reasonable amount of attempts." Telegram
sends the updates of one chat in order, one at a time: while an update of a chat is not delivered, the later
ones of that chat wait behind it (other chats go on). getWebhookInfo shows the waiting count and the last error.

Telegram redelivers on its own timer, which it does not document. The fake redelivers when told to
(`redeliver()`, `POST /fake/redeliver`) and, before a new update of a chat, the ones of that chat still
waiting; after `max_attempts` failed attempts it gives an update up (kept in `given_up`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_ATTEMPTS = 8  # "a reasonable amount of attempts": Telegram gives no number
DELIVERY_TIMEOUT_SECONDS = 60  # Telegram waits about a minute for the answer, then counts a failure
Target = Callable[[], dict[str, Any] | None]  # the webhook now: {"url", "secret_token"}, or None


@dataclass(slots=True)
class Attempt:
    update_id: int
    status: int | None  # the HTTP status, None when the connection failed
    error: str = ""


@dataclass(slots=True)
class WebhookOutbox:
    max_attempts: int = MAX_ATTEMPTS
    waiting: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # per chat, oldest first
    failures: dict[int, int] = field(default_factory=dict)  # update_id → failed attempts so far
    attempts: list[Attempt] = field(default_factory=list)  # every delivery attempt, in order
    given_up: list[dict[str, Any]] = field(default_factory=list)
    last_error_date: int | None = None
    last_error_message: str | None = None
    _busy: set[int] = field(default_factory=set)  # chats with a delivery in flight

    @property
    def pending(self) -> int:
        return sum(len(updates) for updates in self.waiting.values())

    def attempts_of(self, update_id: int) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.update_id == update_id]

    async def send(self, update: dict[str, Any], target: Target, on_change: Callable[[], Awaitable[None]]) -> None:
        """Queue `update` behind its chat's waiting ones and deliver the chat's queue as far as it goes."""
        chat = chat_of(update)
        self.waiting.setdefault(chat, []).append(update)
        await self._drain(chat, target, on_change)

    async def redeliver(self, target: Target, on_change: Callable[[], Awaitable[None]]) -> int:
        """One more attempt for every chat's waiting updates (in order); how many still wait afterwards."""
        for chat in list(self.waiting):
            await self._drain(chat, target, on_change)
        return self.pending

    async def _drain(self, chat: int, target: Target, on_change: Callable[[], Awaitable[None]]) -> None:
        if chat in self._busy:
            return  # the delivery in flight goes on to this update when it is answered
        self._busy.add(chat)
        try:
            while self.waiting.get(chat):
                update = self.waiting[chat][0]
                webhook = target()
                if webhook is None:
                    return  # deleteWebhook: the updates wait for getUpdates
                if not await self._attempt(update, webhook):
                    self._count_failure(chat, update)
                    return
                self.waiting[chat].pop(0)
                await on_change()
        finally:
            self._busy.discard(chat)
            if not self.waiting.get(chat):
                self.waiting.pop(chat, None)

    async def _attempt(self, update: dict[str, Any], webhook: dict[str, Any]) -> bool:
        headers = {SECRET_HEADER: webhook["secret_token"]} if webhook.get("secret_token") else {}
        timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                    webhook["url"], json=update, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            self._note(Attempt(update["update_id"], None, f"Connection failed: {type(err).__name__}"))
            return False
        if 200 <= status < 300:
            self.attempts.append(Attempt(update["update_id"], status))
            return True
        self._note(Attempt(update["update_id"], status, f"Wrong response from the webhook: {status}"))
        return False

    def _note(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        self.last_error_date, self.last_error_message = int(time.time()), attempt.error

    def _count_failure(self, chat: int, update: dict[str, Any]) -> None:
        update_id = update["update_id"]
        self.failures[update_id] = self.failures.get(update_id, 0) + 1
        if self.failures[update_id] >= self.max_attempts:
            self.waiting[chat].pop(0)
            self.given_up.append(update)

    def take_all(self) -> list[dict[str, Any]]:
        """deleteWebhook: what still waits goes to getUpdates, oldest first."""
        updates = sorted((u for queue in self.waiting.values() for u in queue), key=lambda u: u["update_id"])
        self.waiting.clear()
        return updates


def chat_of(update: dict[str, Any]) -> int:
    """The chat an update belongs to, for Telegram's one-at-a-time order per chat (0: none)."""
    for body in update.values():
        if not isinstance(body, dict):
            continue
        chat = body.get("chat") or (body.get("message") or {}).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        person = body.get("from") or body.get("user")
        if isinstance(person, dict) and isinstance(person.get("id"), int):
            return int(person["id"])
    return 0
