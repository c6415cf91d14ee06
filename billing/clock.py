"""Time as the domain sees it: timezone-aware UTC, injectable for tests of time rules."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
