"""Logging for every ymds process: one JSON object a line, a request id carried from the web route into the
RQ job it enqueued, and a filter that masks card numbers, tokens and secrets wherever they appear."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from billing.luhn import luhn_valid

request_id: ContextVar[str] = ContextVar("request_id", default="")

MASK = "***"
# 13 to 19 digits (spaces or dashes between groups) starting like a card scheme (2 Mir/Mastercard, 3 Amex/JCB,
# 4 Visa, 5 Mastercard, 6 Maestro/UnionPay); only those passing the Luhn check are masked.
_CARD = re.compile(r"(?<![0-9])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])")
_SECRET_KEY = r"[a-z_]*(?:secret|token|password|passwd|sha1_hash|sig|signature|key|hmac|sign_string)[a-z_]*"
_KEYED = re.compile(  # key=value (forms, query strings) and "key": "value" (JSON)
    rf"(?i)(\b{_SECRET_KEY}=|[\"']{_SECRET_KEY}[\"']\s*:\s*[\"']?)([^\s&\"',;}}]+)"
)
_AUTH = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return match.group(0)
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


class SecretMasker(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets masked.

    Known secret values (from the settings) are replaced wherever they appear; so are card numbers that
    pass the Luhn check (keeping the first six and last four digits), Authorization credentials, and the
    values of key=value pairs whose key names a secret.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _AUTH.sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _KEYED.sub(lambda m: f"{m.group(1)}{MASK}", text)
        return _CARD.sub(_mask_card, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if rid := getattr(record, "request_id", "") or request_id.get():
            entry["request_id"] = rid
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One line an event, as a person reads a console: the time, the level when it is not INFO, the message."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone().strftime("%H:%M:%S")  # the reader's local time
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        line = f"{moment} {level}{record.getMessage()}"
        return f"{line}\n{record.exc_text}" if record.exc_text else line


# The housekeeping of RQ's workers and aiohttp's access log: every few seconds or every request, not events
# of a payment. Quiet below WARNING in the text format; in JSON a log shipper filters what it wants.
HOUSEKEEPING = ("rq.worker", "rq.scheduler", "rq.queue", "aiohttp.access")


def configure(secrets: Iterable[str] = (), level: int = logging.INFO, stream: TextIO | None = None,
              log_format: str = "auto") -> logging.Handler:
    """Send every logger's records through the masker to one handler on stderr: JSON lines, or readable text
    (`log_format` "text", or "auto" on a terminal)."""
    target = stream or sys.stderr
    text = log_format == "text" or (log_format == "auto" and target.isatty())
    handler = logging.StreamHandler(target)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    handler.addFilter(SecretMasker(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in HOUSEKEEPING:
        logging.getLogger(name).setLevel(logging.WARNING if text else logging.NOTSET)
    return handler
