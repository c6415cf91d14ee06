"""RQ's own cost: the CPU one `SimpleWorker` in burst mode spends per no-op job, the unit the benchmark gives the
workers' CPU per payment in.

    python -m bench.noop_jobs --redis-url redis://127.0.0.1:6379/14 --jobs 1000

Prints the milliseconds of this process's CPU per job while the worker ran (the jobs are queued before).
"""

from __future__ import annotations

import argparse
import logging
import time

from redis import Redis
from rq import Queue, SimpleWorker

NOOP_QUEUE = "bench-noop"


def nothing() -> None:
    """The job: nothing at all."""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.noop_jobs", description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    connection = Redis.from_url(args.redis_url)
    queue = Queue(NOOP_QUEUE, connection=connection)
    with connection.pipeline() as pipe:
        for _ in range(args.jobs):
            queue.enqueue("bench.noop_jobs.nothing", pipeline=pipe)  # by name: this runs as __main__
        pipe.execute()
    worker = SimpleWorker([queue], connection=connection)
    started = time.process_time()
    worker.work(burst=True, logging_level=logging.WARNING)
    print(f"{(time.process_time() - started) * 1000 / args.jobs:.3f}", flush=True)


if __name__ == "__main__":
    main()
