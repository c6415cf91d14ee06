"""A pytest plugin (tests/conftest.py loads it) for running the suite on pytest-xdist workers (`-n`, in addopts).

Every worker is a process of its own, with its own Redis server (tests/redis_server.py), its own in-memory
database and its own free ports, so tests need no grouping to run side by side. Two things help the
wall-clock time: more workers than cores, since most tests spend their time waiting on sockets and on
other processes rather than computing; and the tests that start processes (`ymds` services, the demo,
Chromium) go out first, so that no worker is left with a long one at the end while the others are idle.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

WORKERS_PER_CORE = 2
MAX_AUTO_WORKERS = 8
E2E = Path(__file__).resolve().parent / "e2e"
STARTS_PROCESSES = ("create_subprocess_exec", "subprocess.run", "subprocess.Popen", "running_demo", "deployment(")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core (at least two, at most eight), but no more than the test files asked
    for, and none (one process, no xdist) for a single file, where starting workers would cost more than it
    saves; `-n N` chooses exactly."""
    workers = max(2, min(MAX_AUTO_WORKERS, WORKERS_PER_CORE * (os.cpu_count() or 1)))
    files = sum(_test_files(Path(arg.split("::", 1)[0])) for arg in config.args)
    return 0 if files <= 1 else min(workers, files)


def _test_files(path: Path) -> int:
    if path.is_dir():
        return sum(1 for _ in path.rglob("test_*.py"))
    return 1


def _starts_processes(item: pytest.Item, seen: dict[Path, bool]) -> bool:
    if item.path not in seen:
        module = getattr(item, "module", None)
        try:
            source = inspect.getsource(module) if module is not None else ""
        except (OSError, TypeError):
            source = ""
        seen[item.path] = E2E in item.path.parents or any(marker in source for marker in STARTS_PROCESSES)
    return seen[item.path]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that start processes first, each kept in its order (a stable sort; every worker sorts alike,
    as xdist requires). tests/log_guard.py then moves its guard module to the end."""
    seen: dict[Path, bool] = {}
    items.sort(key=lambda item: not _starts_processes(item, seen))
