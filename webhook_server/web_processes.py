"""`ymds web` with WEB_PROCESSES > 1: that many `ymds web` child processes on one port, supervised by this one.

Each child binds WEB_HOST:WEB_PORT itself with SO_REUSEPORT (Linux), and the kernel spreads new connections among
them, so one port uses as many cores as there are children. Nothing is shared between them but MongoDB and Redis:
every guarantee (the durable record before the answer, the unique indexes, the conditional updates) lives there,
so a request is the same whichever child takes it. The children are fresh interpreters (`ymds web --reuse-port`),
each opening its own database and Redis clients, as `ymds web` alone does.

The supervisor binds nothing and holds no client. SIGTERM and SIGINT are passed on to every child, which stops
gracefully (in-flight requests finish), and the supervisor exits when all have; a child still running after the
grace period is killed. SIGHUP (TLS reload) is passed on. A child that dies is started again after
RESTART_DELAY_SECONDS; one that keeps dying at start (MAX_FAILED_STARTS in a row, each within MIN_UPTIME_SECONDS:
a bad setting, the port taken) stops the whole service with an error instead of a restart loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

log = logging.getLogger(__name__)
CHILD_FLAG = "--reuse-port"
RESTART_DELAY_SECONDS = 1.0
MIN_UPTIME_SECONDS = 10.0
MAX_FAILED_STARTS = 3
STOP_GRACE_SECONDS = 35.0  # the children's own shutdown grace (runner.SHUTDOWN_GRACE_SECONDS) and a margin


def child_command() -> list[str]:
    """The command this process was started with (the `ymds` script, or ymds.py under `python -m`), as a child:
    run as a script, so that nothing in the working directory can stand in for our modules."""
    return [sys.executable, os.path.abspath(sys.argv[0]), "web", CHILD_FLAG]


def supervise(processes: int, command: Sequence[str] | None = None) -> int:
    """Run `processes` children until SIGTERM or SIGINT; 0 after a requested stop, 1 when a child kept failing."""
    return asyncio.run(Supervisor(processes, command or child_command()).run())


class Supervisor:
    def __init__(self, processes: int, command: Sequence[str]) -> None:
        self._count = processes
        self._command = list(command)
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()
        self._failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._signal_children, signal.SIGHUP)
        log.info("starting %d web processes", self._count)
        slots = [asyncio.create_task(self._keep_running(slot)) for slot in range(self._count)]
        try:
            await self._stop.wait()
            await asyncio.gather(*slots)  # each slot returns at once, a child it was starting registered first
            await self._stop_children()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        return 1 if self._failed else 0

    async def _keep_running(self, slot: int) -> None:
        """One child at a time in this slot, started again whenever it dies, until the service stops."""
        loop = asyncio.get_running_loop()
        failed_starts = 0
        while not self._stop.is_set():
            started = loop.time()
            child = await asyncio.create_subprocess_exec(*self._command, env=os.environ.copy())
            self._children[slot] = child
            log.info("web process %d started (pid %d)", slot + 1, child.pid)
            if await _first(child.wait(), self._stop.wait()) == 1:
                return  # stopping: _stop_children ends the child
            failed_starts = failed_starts + 1 if loop.time() - started < MIN_UPTIME_SECONDS else 0
            log.error("web process %d (pid %d) exited with %s", slot + 1, child.pid, child.returncode)
            if failed_starts >= MAX_FAILED_STARTS:
                log.error("web process %d failed %d times at start; stopping the service", slot + 1, failed_starts)
                self._failed = True
                self._stop.set()
                return
            await _first(asyncio.sleep(RESTART_DELAY_SECONDS), self._stop.wait())

    def _signal_children(self, signum: int) -> None:
        for child in self._children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    async def _stop_children(self) -> None:
        self._signal_children(signal.SIGTERM)
        for child in self._children.values():
            try:
                await asyncio.wait_for(child.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.error("web process (pid %d) did not stop in %s s; killed", child.pid, STOP_GRACE_SECONDS)
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        log.info("web processes stopped")


async def _first(*waits: Coroutine[Any, Any, Any]) -> int:
    """Await the given coroutines until one finishes; the index of the one that did (the others are cancelled)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return next(index for index, task in enumerate(tasks) if task in done)
