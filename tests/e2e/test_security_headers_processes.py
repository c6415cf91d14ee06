"""`ymds web` as systemd runs it (a real process, its database behind MongoDB's wire protocol, the real
Redis): none of the demo's emulator routes, which pay any invoice without a secret, is served; its answers
carry the security headers and no Server version; /metrics answers only METRICS_TOKEN."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
import redis

from bench.deployment import free_port, service_env, start, wait_ready
from tests.conftest import REDIS_TEST_URL
from webhook_server.demo import EMULATOR_ROOT
from webhook_server.emulators import EMULATORS

METRICS_TOKEN = "web-metrics-token-0123456789abcdef"
CONCURRENCY = 8  # well under WEB_MAX_SLOW_CONNECTIONS_PER_IP: this test is one client, not a flood
EMULATOR_TAILS = ("", "/", "/widget.js", "/widget/pay", "/api", "/quickpay/confirm", "/checkout", "/pay")


@pytest.fixture
async def web(redis_conn: redis.Redis, tmp_path: Path) -> AsyncIterator[str]:
    """`ymds web` with METRICS_TOKEN set; its base URL."""
    async with AsyncExitStack() as stack:
        mongodb_port, web_port = free_port(), free_port()
        env = {**service_env(mongodb_port, REDIS_TEST_URL, web_port, "http://127.0.0.1:9"),
               "METRICS_TOKEN": METRICS_TOKEN}
        env.pop("BOT_TOKEN")
        await start(stack, sys.executable, "-m", "bench.mongo_wire", "--port", str(mongodb_port), log=None,
                    ready_line=b"ready")
        await start(stack, str(Path(sys.executable).with_name("ymds")), "web", log=tmp_path / "web.log",
                    cwd=tmp_path, env=env)
        base = f"http://127.0.0.1:{web_port}"
        await wait_ready(f"{base}/readyz")
        yield base


async def test_ymds_web_serves_no_emulator(web: str):
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession() as session:
        async def status(method: str, path: str) -> int:
            async with gate, session.request(method, web + path, data={"outcome": "pay"}) as response:
                await response.read()
                return response.status

        paths = [f"{EMULATOR_ROOT}/{name}{tail}" for name in EMULATORS for tail in EMULATOR_TAILS]
        statuses = await asyncio.gather(*(status(method, path) for path in paths for method in ("GET", "POST")))
        assert set(statuses) == {404}


async def test_ymds_web_sends_the_headers_and_guards_its_metrics(web: str):
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/static/ymds.css", "/no/such/page"):
            async with session.get(web + path) as response:
                assert response.headers["X-Frame-Options"] == "DENY"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
                assert not re.search(r"\d|python|aiohttp", response.headers.get("Server", ""), re.I)
        async with session.get(f"{web}/metrics") as refused:
            assert refused.status == 401
        async with session.get(f"{web}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as allowed:
            assert allowed.status == 200 and "ymds_queue_depth" in await allowed.text()
