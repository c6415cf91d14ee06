"""The load side of the benchmark: bounded numbers of requests over loopback, latencies measured per request."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)  # a stalled server fails the run instead of hanging it
OPEN_LOOP_CONNECTIONS = 128  # below the server's listen backlog; a request waiting for a connection is queueing


@dataclass(frozen=True, slots=True)
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: int) -> float:
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[p - 1] * 1000


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, content_type: str,
                      headers: dict[str, str] | None = None) -> Result:
    """`concurrency` clients sending back to back until every body was sent once."""
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:

        async def client() -> None:
            nonlocal errors
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                async with session.post(url, data=body, headers={**(headers or {}), "Content-Type": content_type}
                                        ) as response:
                    answer = await response.read()
                    errors += response.status != 200 or b'"error"' in answer
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return Result(len(bodies), time.perf_counter() - started, latencies, errors)


async def fixed_rate(url: str, bodies: list[bytes], rate: float, content_type: str) -> Result:
    """Open loop: one request every 1/rate seconds, whatever the answers' pace, so queueing shows in latency."""
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=OPEN_LOOP_CONNECTIONS),
                                     timeout=REQUEST_TIMEOUT) as session:

        async def one(body: bytes) -> None:
            nonlocal errors
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"Content-Type": content_type}) as response:
                answer = await response.read()
                errors += response.status != 200 or b'"error"' in answer
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        tasks = []
        for index, body in enumerate(bodies):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load generator, not waiting for a result
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        return Result(len(bodies), time.perf_counter() - started, latencies, errors)
