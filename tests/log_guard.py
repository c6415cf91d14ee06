"""A pytest plugin (tests/conftest.py loads it): every log record of the whole run, from every thread, kept raw
(before any masking) so tests/test_payout_logs.py can grep them for card numbers and payout secrets. That
check runs last, whatever the order of the files."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

GUARD_MODULE = "test_payout_logs.py"


class SuiteLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = f"{record.msg!s} {record.args!r}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        with self._guard:
            self.lines.append(f"{record.levelname} {record.name}: {text}")


SUITE_LOG = SuiteLog()


@pytest.fixture(autouse=True)
def _keep_every_log_record() -> Iterator[None]:
    """Re-attached before each test: `logs.configure` (the CLI, the log tests) replaces the root's handlers."""
    root = logging.getLogger()
    if SUITE_LOG not in root.handlers:
        root.addHandler(SUITE_LOG)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == GUARD_MODULE)
