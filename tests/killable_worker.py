"""A real RQ worker process for the SIGKILL test: it takes one job, says so, and hangs inside it until killed.

    python -m tests.killable_worker REDIS_URL
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from billing import runtime
from billing.plans import load_plans
from billing.ports import LogNotifier
from rq_access import RqQueues, connect, make_worker

ROOT = Path(__file__).resolve().parent.parent  # not from tests.conftest: that would start a test Redis


def hang(coro: Coroutine[Any, Any, Any]) -> Any:
    """The job has begun: tell the test, then never finish (the process is killed here)."""
    coro.close()
    print("in job", flush=True)
    threading.Event().wait()


def main() -> None:
    connection = connect(sys.argv[1], blocking_reads=True)
    queues = RqQueues(connection, max_retries=0, retry_intervals=[])
    runtime.install(runtime.JobRuntime(run=hang, notices=queues, notifier=LogNotifier(),
                                       plans=load_plans(ROOT / "plans.toml")))
    make_worker(connection).work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
