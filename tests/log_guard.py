"""A pytest plugin (tests/conftest.py loads it): every log record of the whole run, from every thread, kept raw
(before any masking) so tests/test_payout_logs.py can grep them for card numbers and payout secrets. That
check runs last, whatever the order of the files.

On pytest-xdist workers each process keeps its own records and its copy of the check sees only those; so
every worker hands its records to the controller at its end, and the controller runs the guard module's
checks once more over the records of the whole run, failing the session if one fails."""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

GUARD_MODULE = "test_payout_logs.py"
GUARD_IMPORT = "tests.test_payout_logs"
GUARD_PATH = f"tests/{GUARD_MODULE}"
WORKER_LOG = "ymds_suite_log"  # the key of a worker's records in xdist's workeroutput


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


def _attach() -> None:
    root = logging.getLogger()
    if SUITE_LOG not in root.handlers:
        root.addHandler(SUITE_LOG)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


@pytest.fixture(autouse=True)
def _keep_every_log_record() -> Iterator[None]:
    """Re-attached before each test: `logs.configure` (the CLI, the log tests) replaces the root's handlers.
    After the test the handlers it added go: they write to that test's captured stream, which pytest closes,
    and a worker thread that logs later would meet a closed file."""
    _attach()
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    _attach()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == GUARD_MODULE)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its records go to the controller
        workeroutput[WORKER_LOG] = SUITE_LOG.lines


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The xdist controller: a worker finished; keep its records."""
    SUITE_LOG.lines.extend(getattr(node, "workeroutput", {}).get(WORKER_LOG, []))


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[object]:
    """The xdist controller, once every worker is done: the guard module's checks (its test functions that
    take no fixture) over the records of all of them; a failure is reported as a failed test of the run."""
    result = yield
    if getattr(session.config, "workerinput", None) is None and session.config.pluginmanager.has_plugin("dsession"):
        _attach()  # the controller ran no test, so nothing attached the capture here (its own probe needs it)
        for name, check in vars(importlib.import_module(GUARD_IMPORT)).items():
            if name.startswith("test_") and callable(check) and not inspect.signature(check).parameters:
                _report(session, f"{GUARD_PATH}::{name}[every worker]", check)
    return result


def _report(session: pytest.Session, nodeid: str, check: Any) -> None:
    try:
        check()
    except pytest.skip.Exception:
        return
    except AssertionError as failure:
        report = pytest.TestReport(nodeid, (GUARD_PATH, None, nodeid), {}, "failed", str(failure), "call", [])
        session.config.hook.pytest_runtest_logreport(report=report)
