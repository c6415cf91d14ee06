"""`python -m bench`: throughput and latency of the notification route against a hello-world route, end to end
fulfilment with 1 and 2 in-process RQ workers on the real Redis, and peak RSS. Prints a table.

    python -m bench [--requests 3000] [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import aiohttp
import redis
from rq.registry import FinishedJobRegistry

from bench.load import Result, closed_loop, fixed_rate
from bench.server import BENCH_ADMIN_TOKEN, BENCH_PAYME_KEY, BENCH_SECRET
from billing.providers.payme.protocol import basic_auth
from billing.money import Money
from billing.providers.yoomoney import build_notification
from rq_access import FULFILMENT_QUEUE

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
PAYME_PAIRS = 300
CONCURRENCY = 32
STARTUP_DEADLINE_SECONDS = 30
E2E_DEADLINE_SECONDS = 300
INVOICE_POOL = 100


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def server(*args: str) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.server", "--port", str(port), *args, stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), STARTUP_DEADLINE_SECONDS)
    assert line.strip() == b"ready", line
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        await process.wait()


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def invoices(base: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {BENCH_ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async def one(user_id: int) -> str:
            async with session.post(f"{base}/api/invoices", json={"user_id": user_id, "plan": "month"},
                                    headers=headers) as response:
                return str((await response.json())["label"])

        labels = []
        for start in range(0, count, 200):
            labels += await asyncio.gather(*(one(n + 1) for n in range(start, min(count, start + 200))))
        return labels


def notifications(labels: list[str], tag: str) -> list[bytes]:
    return [urlencode(build_notification(BENCH_SECRET, operation_id=f"{tag}-{n}", paid=Money(29900, "RUB"),
                                         label=label)).encode() for n, label in enumerate(labels)]


def payme_calls(method: str, params: list[dict[str, object]]) -> list[bytes]:
    return [json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": p}).encode()
            for n, p in enumerate(params)]


async def payme_rows(url: str, field: str, accounts: list[str], fresh: list[str], requests: int,
                     name: str, clients: int = CONCURRENCY) -> list[str]:
    """CheckPerformTransaction back to back over `accounts`, then Create for each fresh account and Perform."""
    auth = {"Authorization": basic_auth(BENCH_PAYME_KEY)}
    checks = [{"amount": 3500000, "account": {field: account}} for account in cycle(accounts, requests)]
    check = await closed_loop(url, payme_calls("CheckPerformTransaction", checks), clients, JSON, auth)
    now_ms = int(time.time() * 1000)
    ids = [f"{n:024x}" for n in range(1, len(fresh) + 1)]
    creates = [{"id": payme_id, "time": now_ms, "amount": 3500000, "account": {field: account}}
               for payme_id, account in zip(ids, fresh, strict=True)]
    create = await closed_loop(url, payme_calls("CreateTransaction", creates), clients, JSON, auth)
    perform = await closed_loop(url, payme_calls("PerformTransaction", [{"id": i} for i in ids]), clients, JSON, auth)
    return [row(f"{name}: Payme CheckPerformTransaction, {clients} client(s)", check),
            row(f"{name}: Payme CreateTransaction", create), row(f"{name}: Payme PerformTransaction", perform)]


async def paytechuz_rows(requests: int) -> list[str]:
    """The same Payme load against paytechuz's FastAPI webhook (the [bench] extra), or a line saying it is absent."""
    if importlib.util.find_spec("paytechuz") is None or importlib.util.find_spec("uvicorn") is None:
        return ["| paytechuz: not installed (pip install -e '.[bench]') | | | | | |"]
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.paytechuz_server", "--port", str(port), "--orders", str(INVOICE_POOL + PAYME_PAIRS),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        assert (await asyncio.wait_for(process.stdout.readline(), STARTUP_DEADLINE_SECONDS)).strip() == b"ready"
        url = f"http://127.0.0.1:{port}/payments/payme/webhook"
        for _ in range(STARTUP_DEADLINE_SECONDS * 10):  # uvicorn binds just after "ready"
            try:
                await closed_loop(url, [b"{}"], 1, JSON)
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.1)
        orders = [str(n) for n in range(1, INVOICE_POOL + 1)]
        fresh = [str(n) for n in range(INVOICE_POOL + 1, INVOICE_POOL + PAYME_PAIRS + 1)]
        # One client: its async handler runs synchronous SQLAlchemy on the event loop, and with 32 clients a
        # request holding SQLite's write lock stalls every other (requests time out).
        return await payme_rows(url, "id", orders, fresh, requests, "paytechuz (FastAPI, SQLite)", clients=1)
    finally:
        process.terminate()
        await process.wait()


def cycle(labels: list[str], count: int) -> list[str]:
    return [labels[n % len(labels)] for n in range(count)]


def row(name: str, result: Result) -> str:
    return (f"| {name} | {result.requests} | {result.rate:,.0f}/s | {result.percentile(50):.1f} ms | "
            f"{result.percentile(99):.1f} ms | {result.errors} |")


async def run(requests: int, redis_url: str) -> None:
    flush = redis.Redis.from_url(redis_url)
    flush.flushdb()
    lines = ["| load | requests | throughput | p50 | p99 | non-200 |", "|---|---|---|---|---|---|"]

    async with server("--hello") as (base, _pid):
        await closed_loop(f"{base}/hello", [b"x"] * 500, CONCURRENCY, FORM)
        hello = await closed_loop(f"{base}/hello", [b"x=1"] * requests, CONCURRENCY, FORM)
        lines.append(row(f"hello-world, {CONCURRENCY} clients", hello))

    async with server("--redis-url", redis_url) as (base, web_pid):
        # A few invoices paid again and again (each notification a new operation): mongomock scans instead of
        # using indexes, so thousands of invoices would measure mongomock rather than the route.
        labels = await invoices(base, INVOICE_POOL)
        await closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, 500), "warm"), CONCURRENCY, FORM)
        notify = await closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, requests), "c"),
                                   CONCURRENCY, FORM)
        lines.append(row(f"POST /notify/yoomoney, {CONCURRENCY} clients", notify))
        paced = await fixed_rate(f"{base}/notify/yoomoney", notifications(cycle(labels, requests), "r"), 1000, FORM)
        lines.append(row("POST /notify/yoomoney at 1,000/s", paced))
        lines += await payme_rows(f"{base}/notify/payme", "order_id", labels, await invoices(base, PAYME_PAIRS),
                                  requests, "open-ymds")
        web_rss = peak_rss_mb(web_pid)
    flush.flushdb()
    lines += await paytechuz_rows(requests)

    e2e_lines = ["| end to end | payments | payments/s | peak RSS |", "|---|---|---|---|"]
    for workers in (1, 2):
        async with server("--redis-url", redis_url, "--workers", str(workers)) as (base, pid):
            labels = await invoices(base, requests)
            finished = FinishedJobRegistry(FULFILMENT_QUEUE, connection=flush)
            started = time.perf_counter()
            await closed_loop(f"{base}/notify/yoomoney", notifications(labels, f"e2e{workers}"), CONCURRENCY, FORM)
            deadline = started + E2E_DEADLINE_SECONDS
            while finished.count < requests and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)  # polling Redis for the last fulfilment, bounded by the deadline
            elapsed = time.perf_counter() - started
            e2e_lines.append(f"| {workers} in-process worker(s) | {finished.count} | {finished.count / elapsed:,.0f}/s "
                             f"| {peak_rss_mb(pid):.0f} MB |")
        flush.flushdb()

    demo_rss = await demo_with_bot_rss(requests)
    e2e_lines.append(f"| `ymds demo` with the bot (web, worker and bot in one process), {requests} payments | "
                     f"| | {demo_rss:.0f} MB |")

    print(f"open-ymds benchmark on {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
          f"{time.strftime('%Y-%m-%d')}")
    print("\n".join(lines))
    print(f"\nnotification route / hello-world throughput: {notify.rate / hello.rate:.0%}; "
          f"web process peak RSS {web_rss:.0f} MB\n")
    print("\n".join(e2e_lines))


async def demo_with_bot_rss(requests: int) -> float:
    """Peak RSS of `ymds demo` running the bot (against `ymds fake-telegram`) after `requests` payments."""
    ymds = os.path.join(os.path.dirname(sys.executable), "ymds")
    telegram_port, demo_port = free_port(), free_port()
    env = {**os.environ, "BOT_TOKEN": "123456:BENCH", "TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
           "ADMIN_API_TOKEN": BENCH_ADMIN_TOKEN, "YOOMONEY_NOTIFICATION_SECRET": BENCH_SECRET}
    processes = [await asyncio.create_subprocess_exec(ymds, "fake-telegram", "--port", str(telegram_port), env=env,
                                                      stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)]
    try:
        assert processes[0].stdout is not None
        await asyncio.wait_for(processes[0].stdout.readline(), STARTUP_DEADLINE_SECONDS)
        demo = await asyncio.create_subprocess_exec(ymds, "demo", "--port", str(demo_port), env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        processes.append(demo)
        assert demo.stdout is not None
        async with asyncio.timeout(STARTUP_DEADLINE_SECONDS):
            while b"/pay/" not in await demo.stdout.readline():
                pass
        base = f"http://127.0.0.1:{demo_port}"
        labels = await invoices(base, INVOICE_POOL)
        await closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, requests), "bot"), CONCURRENCY, FORM)
        return peak_rss_mb(demo.pid)
    finally:
        for process in processes:
            process.terminate()
            await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.redis_url))


if __name__ == "__main__":
    main()
