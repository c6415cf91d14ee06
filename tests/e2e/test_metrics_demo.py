"""`ymds demo` as a real process: it fills a METRICS_TOKEN, prints it in its welcome, and /metrics answers
only that Bearer token; an owner's METRICS_TOKEN wins over the demo's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.e2e.demo_process import DEADLINE_SECONDS, YMDS, demo_env
from tests.webhook_server.test_redis_faults import free_port

METRICS_LINE = re.compile(r"metrics:\s+(http://\S+/metrics) \(Authorization: Bearer (\S+)\)")


@asynccontextmanager
async def demo_welcome(tmp_path: Path, **env: str) -> AsyncIterator[list[str]]:
    """`ymds demo` on a free loopback port; the lines it printed up to its payment link."""
    process = await asyncio.create_subprocess_exec(
        str(YMDS), "demo", "--host", "127.0.0.1", "--port", str(free_port()), cwd=tmp_path,
        env=demo_env(tmp_path, **env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    stdout = process.stdout

    async def until_link() -> list[str]:
        lines: list[str] = []
        while not any("/pay/" in line for line in lines):
            line = (await stdout.readline()).decode()
            if not line:
                raise AssertionError(f"ymds demo exited before printing a payment link: {lines}")
            lines.append(line.rstrip("\n"))
        return lines

    try:
        yield await asyncio.wait_for(until_link(), DEADLINE_SECONDS)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), DEADLINE_SECONDS)


def metrics_line(lines: list[str]) -> tuple[str, str]:
    found = [match for line in lines if (match := METRICS_LINE.search(line))]
    assert len(found) == 1, lines
    return found[0].group(1), found[0].group(2)


async def status_of(session: aiohttp.ClientSession, url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def test_the_demo_prints_its_metrics_token_and_metrics_ask_for_it(tmp_path):
    async with demo_welcome(tmp_path) as lines, aiohttp.ClientSession() as session:
        url, token = metrics_line(lines)
        assert not any("WARNING" in line for line in lines), "on loopback the demo does not warn"
        assert await status_of(session, url, None) == 401
        assert await status_of(session, url, token + "x") == 401
        assert await status_of(session, url, token) == 200


async def test_an_owners_metrics_token_wins_over_the_demos(tmp_path):
    owner = "owner-metrics-token-0123456789"
    async with demo_welcome(tmp_path, METRICS_TOKEN=owner) as lines, aiohttp.ClientSession() as session:
        url, token = metrics_line(lines)
        assert token == owner
        assert await status_of(session, url, owner) == 200
        assert await status_of(session, url, "demo-metrics-token") == 401
