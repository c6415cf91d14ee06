"""The owner's receiver of outbound events, on loopback: it checks each request's signature with the README's own
snippet (never our signing module), answers as the test scripts it, and keeps what it got."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verifier() -> Any:
    """`verify_ymds_signature` as the README's Events section prints it, run as written."""
    section = README.read_text(encoding="utf-8").split("\n## Events\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Events section shows a verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md#events", "exec"), namespace)  # the README's own snippet, run as written
    return namespace["verify_ymds_signature"]


@dataclass
class Received:
    event: dict[str, Any]
    body: bytes
    signature: str
    event_id_header: str
    verified: bool
    answered: int


@dataclass
class EventReceiver:
    secret: str
    answers: list[int] = field(default_factory=list)  # statuses to answer, in turn, to good requests; then 200
    got: list[Received] = field(default_factory=list)
    clock: Callable[[], float] | None = None  # the receiver's wall clock (Unix seconds); None: time.time
    def __post_init__(self) -> None:
        self._verify = readme_verifier()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hooks/ymds", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("Ymds-Signature", "")
        now = self.clock() if self.clock is not None else None
        verified = bool(self._verify(self.secret, signature, body, now=now))
        status = 400 if not verified else self.answers.pop(0) if self.answers else 200
        self.got.append(Received(json.loads(body), body, signature, request.headers.get("Ymds-Event-Id", ""),
                                 verified, status))
        return web.json_response({"received": status < 300}, status=status)

    def accepted(self) -> list[dict[str, Any]]:
        """The events taken with a 2xx, in order."""
        return [r.event for r in self.got if r.answered < 300]

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.got]
