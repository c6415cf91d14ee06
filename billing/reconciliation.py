"""What every `ymds reconcile PROVIDER --from --to` shares: reading the period, and running the comparison
against the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from db import init_db
from settings import ConfigError, Settings

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MEMORY = "memory://"


class Report(Protocol):
    @property
    def mismatches(self) -> Sequence[object]: ...  # read here only: any report's own list of mismatches

    def lines(self) -> list[str]: ...


def parse_moment(text: str, option: str) -> datetime:
    """Epoch milliseconds, or an ISO 8601 date or date-time (UTC when it has no offset)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return EPOCH + timedelta(milliseconds=int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give a date (2025-01-31), a date-time or epoch milliseconds") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_period(start_text: str, end_text: str) -> tuple[datetime, datetime]:
    start, end = parse_moment(start_text, "--from"), parse_moment(end_text, "--to")
    if end <= start:
        raise ConfigError("--to must be after --from")
    return start, end


def require_database(settings: Settings) -> None:
    if settings.mongodb_uri == MEMORY:
        raise ConfigError("MONGODB_URI: memory:// holds nothing outside its own process; point it at the database")


def with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Open the configured database (never memory://, which holds nothing outside its process), do the
    one-shot command's work, close it."""
    require_database(settings)

    async def run() -> T:
        client = await init_db(settings.mongodb_uri, settings.mongodb_db)
        try:
            return await work()
        finally:
            client.close()

    return asyncio.run(run())


def run_report(settings: Settings, compare: Callable[[], Awaitable[Report]]) -> tuple[int, list[str]]:
    """Open the database, compare, close: exit status (0 all agree, 1 mismatches) and the lines to print."""
    report = with_database(settings, compare)
    return (1 if report.mismatches else 0), report.lines()
