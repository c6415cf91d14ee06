"""Time as the domain sees it: timezone-aware UTC, injectable for tests of time rules."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ScaledClock:
    """A clock that runs `speed` times faster than the wall clock from the moment it is made (the demo's
    `--clock-speed`, to watch a month of renewals in seconds); monotonic, so it never runs backwards."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        self._speed = speed
        self._start = start or utc_now()
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._origin) * self._speed)
