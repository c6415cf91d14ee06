"""WEB_PROCESSES: `ymds web` started as an operator starts it runs that many processes on one port, each answering
(SO_REUSEPORT), restarts one that dies, and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
import redis

from bench.deployment import free_port, pid_answering, service_env, start, wait_ready, web_pids
from settings import ConfigError
from tests.conftest import REDIS_TEST_URL, make_settings
from webhook_server.web_processes import Supervisor

DEADLINE_SECONDS = 60


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Web:
    def __init__(self, base: str, process: asyncio.subprocess.Process) -> None:
        self.base = base
        self.process = process

    async def pids_seen(self, count: int, *, besides: frozenset[int] = frozenset()) -> set[int]:
        return await web_pids(self.base, count, besides=besides, seconds=DEADLINE_SECONDS)


@pytest.fixture
async def web(redis_conn: redis.Redis, tmp_path: Path) -> AsyncIterator[Web]:
    async with AsyncExitStack() as stack:
        mongodb_port, web_port = free_port(), free_port()
        env = {**service_env(mongodb_port, REDIS_TEST_URL, web_port, "http://127.0.0.1:9"), "WEB_PROCESSES": "2"}
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ymds-web-processes-")))
        await start(stack, sys.executable, "-m", "bench.mongo_wire", "--port", str(mongodb_port),
                    log=tmp_path / "database.log", ready_line=b"ready")
        process = await start(stack, str(Path(sys.executable).with_name("ymds")), "web", log=tmp_path / "web.log",
                              cwd=home, env=env)
        base = f"http://127.0.0.1:{web_port}"
        await wait_ready(f"{base}/readyz")
        yield Web(base, process)


async def test_two_processes_answer_on_one_port_a_dead_one_is_replaced_and_sigterm_stops_all(web: Web):
    first, second = await web.pids_seen(2)
    assert {parent_of(first), parent_of(second)} == {web.process.pid}, "both are the supervisor's children"

    os.kill(first, signal.SIGKILL)
    [replacement] = await web.pids_seen(1, besides=frozenset({first, second}))
    assert parent_of(replacement) == web.process.pid

    web.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(DEADLINE_SECONDS):
        assert await web.process.wait() == 0
    assert not alive(second) and not alive(replacement), "SIGTERM stopped every web process"
    with pytest.raises(aiohttp.ClientConnectionError):
        await pid_answering(web.base)


async def test_a_child_that_keeps_failing_at_start_stops_the_service_instead_of_looping():
    supervisor = Supervisor(2, [sys.executable, "-c", "raise SystemExit(3)"])
    async with asyncio.timeout(DEADLINE_SECONDS):
        assert await supervisor.run() == 1


def test_processes_sharing_a_port_need_a_fixed_port():
    with pytest.raises(ConfigError, match="WEB_PROCESSES"):
        make_settings(web_processes=2, web_port=0).validate_for_run()
    make_settings(web_processes=2, web_port=8080).validate_for_run()
