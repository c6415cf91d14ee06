"""`python -m bench`: throughput and latency of the notification routes against a hello-world route and
paytechuz, end to end fulfilment with 1 and 2 `ymds worker` processes on the real Redis, and the peak RSS of
each process. Prints tables.

    python -m bench [--requests 1000] [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from rq.registry import FinishedJobRegistry

from bench.deployment import (
    BENCH_PAYME_KEY,
    STARTUP_DEADLINE_SECONDS,
    Deployment,
    bot_answers,
    count_users,
    cpu_seconds,
    deployment,
    free_port,
    invoices,
    notifications,
    start,
    subscription_active,
    was_told,
)
from bench.load import Result, closed_loop, fixed_rate
from rq_access import FULFILMENT_QUEUE, NOTICES_QUEUE
from webhook_server.emulators.payme import basic_auth

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
PAYME_PAIRS = 300  # this, WARM_UP and BOT_USERS are capped at --requests
WARM_UP = 500
CONCURRENCY = 32
E2E_DEADLINE_SECONDS = 300
INVOICE_POOL = 100
BOT_USERS = 50


@asynccontextmanager
async def hello_server() -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    async with AsyncExitStack() as stack:
        process = await start(stack, sys.executable, "-m", "bench.server", "--port", str(port), log=None,
                              ready_line=b"ready")
        yield f"http://127.0.0.1:{port}", process.pid


def payme_calls(method: str, params: list[dict[str, object]]) -> list[bytes]:
    return [json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": p}).encode()
            for n, p in enumerate(params)]


async def payme_rows(url: str, field: str, accounts: list[str], fresh: list[str], requests: int,
                     name: str, pids: dict[str, int], clients: int = CONCURRENCY) -> list[str]:
    """CheckPerformTransaction back to back over `accounts`, then Create for each fresh account and Perform."""
    auth = {"Authorization": basic_auth(BENCH_PAYME_KEY)}
    checks = [{"amount": 3500000, "account": {field: account}} for account in cycle(accounts, requests)]
    check = await measured(pids, closed_loop(url, payme_calls("CheckPerformTransaction", checks), clients, JSON, auth))
    now_ms = int(time.time() * 1000)
    ids = [f"{n:024x}" for n in range(1, len(fresh) + 1)]
    creates = [{"id": payme_id, "time": now_ms, "amount": 3500000, "account": {field: account}}
               for payme_id, account in zip(ids, fresh, strict=True)]
    create = await measured(pids, closed_loop(url, payme_calls("CreateTransaction", creates), clients, JSON, auth))
    performs = payme_calls("PerformTransaction", [{"id": i} for i in ids])
    perform = await measured(pids, closed_loop(url, performs, clients, JSON, auth))
    return [row(f"{name}: Payme CheckPerformTransaction, {clients} client(s)", check),
            row(f"{name}: Payme CreateTransaction", create), row(f"{name}: Payme PerformTransaction", perform)]


async def paytechuz_rows(requests: int, pairs: int) -> list[str]:
    """The same Payme load against paytechuz's FastAPI webhook (the [bench] extra), or a line saying it is absent."""
    if importlib.util.find_spec("paytechuz") is None or importlib.util.find_spec("uvicorn") is None:
        return ["| paytechuz: not installed (pip install -e '.[bench]') | | | | | | |"]
    port = free_port()
    async with AsyncExitStack() as stack:
        process = await start(stack, sys.executable, "-m", "bench.paytechuz_server", "--port", str(port),
                              "--orders", str(INVOICE_POOL + pairs), log=None, ready_line=b"ready")
        url = f"http://127.0.0.1:{port}/payments/payme/webhook"
        for _ in range(STARTUP_DEADLINE_SECONDS * 10):  # uvicorn binds just after "ready"
            try:
                await closed_loop(url, [b"{}"], 1, JSON)
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.1)
        orders = [str(n) for n in range(1, INVOICE_POOL + 1)]
        fresh = [str(n) for n in range(INVOICE_POOL + 1, INVOICE_POOL + pairs + 1)]
        # One client: its async handler runs synchronous SQLAlchemy on the event loop, and with 32 clients a
        # request holding SQLite's write lock stalls every other (requests time out).
        return await payme_rows(url, "id", orders, fresh, requests, "paytechuz (FastAPI, SQLite)",
                                {"paytechuz": process.pid}, clients=1)


def cycle(labels: list[str], count: int) -> list[str]:
    return [labels[n % len(labels)] for n in range(count)]


async def measured(pids: dict[str, int], load: Awaitable[Result]) -> tuple[Result, dict[str, float]]:
    """The load's result and the CPU milliseconds each server process spent per request meanwhile."""
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    result = await load
    return result, {role: (cpu_seconds(pid) - before[role]) * 1000 / result.requests for role, pid in pids.items()}


def row(name: str, measurement: tuple[Result, dict[str, float]]) -> str:
    result, cpu = measurement
    parts = " + ".join(f"{role} {ms:.2f}" for role, ms in cpu.items())
    total = f"{sum(cpu.values()):.2f} ms" + (f" ({parts})" if len(cpu) > 1 else "")
    return (f"| {name} | {result.requests} | {result.rate:,.0f}/s | {result.percentile(50):.1f} ms | "
            f"{result.percentile(99):.1f} ms | {result.errors} | {total} |")


async def run(requests: int, redis_url: str) -> None:
    pairs, warm_up, bot_users = min(PAYME_PAIRS, requests), min(WARM_UP, requests), min(BOT_USERS, requests)
    lines = ["| load | requests | throughput | p50 | p99 | non-200 | server CPU per request |",
             "|---|---|---|---|---|---|---|"]

    async with hello_server() as (base, pid):
        await closed_loop(f"{base}/hello", [b"x"] * warm_up, CONCURRENCY, FORM)
        hello = await measured({"hello": pid}, closed_loop(f"{base}/hello", [b"x=1"] * requests, CONCURRENCY, FORM))
        lines.append(row(f"hello-world, {CONCURRENCY} clients", hello))

    rss: dict[str, float] = {}
    async with deployment(redis_url, workers=0) as running:
        # No worker runs here: the route alone, its fulfilment jobs waiting in Redis. A few invoices are paid
        # again and again (each notification a new operation, all but the first of an invoice kept as extra):
        # mongomock scans instead of using indexes, so thousands of invoices would measure mongomock rather
        # than the route.
        base = running.base
        labels = await invoices(base, INVOICE_POOL)
        await closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, warm_up), "warm"), CONCURRENCY, FORM)
        pids = running.server_pids()
        notify = await measured(pids, closed_loop(f"{base}/notify/yoomoney",
                                                  notifications(cycle(labels, requests), "c"), CONCURRENCY, FORM))
        lines.append(row(f"POST /notify/yoomoney, {CONCURRENCY} clients", notify))
        paced = await measured(pids, fixed_rate(f"{base}/notify/yoomoney",
                                                notifications(cycle(labels, requests), "r"), 1000, FORM))
        lines.append(row("POST /notify/yoomoney at 1,000/s", paced))
        unpaid = await invoices(base, INVOICE_POOL)  # Check refuses the invoices the notifications claimed
        lines += await payme_rows(f"{base}/notify/payme", "order_id", unpaid, await invoices(base, pairs),
                                  requests, "open-ymds", pids)
        rss["web"] = running.peak_rss("web")
    lines += await paytechuz_rows(requests, pairs)

    e2e_lines = ["| end to end | payments | payments/s (to active) | subscriptions active | notices/s (to told) | "
                 "users told | CPU ms per payment |", "|---|---|---|---|---|---|---|"]
    for workers in (1, 2):
        async with deployment(redis_url, workers, bot=True) as running:
            e2e_lines.append(await end_to_end(running, requests, workers))
            await bot_answers(running, bot_users)
            for role in ("web", "worker", "bot", "database"):
                rss[role] = max(rss.get(role, 0.0), running.peak_rss(role))

    print(f"open-ymds benchmark on {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
          f"{time.strftime('%Y-%m-%d')}")
    print("\n".join(lines))
    print(f"\nnotification route / hello-world: {notify[0].rate / hello[0].rate:.0%} of the throughput; "
          f"{sum(hello[1].values()) / notify[1]['web']:.0%} of the web process's CPU per request\n")
    print("\n".join(e2e_lines))
    print("\n| process | peak RSS |\n|---|---|")
    print(f"| `ymds web` | {rss['web']:.0f} MB |\n| `ymds worker` (the largest) | {rss['worker']:.0f} MB |\n"
          f"| `ymds bot` ({bot_users} users sent /start) | {rss['bot']:.0f} MB |\n"
          f"| the database stand-in (bench.mongo_wire, not part of open-ymds) | {rss['database']:.0f} MB |")
    bare, with_aiogram = import_rss_mb(""), import_rss_mb("aiogram")
    print(f"\nA Python process that imports nothing: {bare:.0f} MB; one that imports only aiogram (which builds the "
          f"models of the whole Bot API): {with_aiogram:.0f} MB.")


def import_rss_mb(module: str) -> float:
    """The resident set of a fresh interpreter after importing `module` (nothing when empty)."""
    script = (f"import {module}\n" if module else "") + (
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])")
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout) / 1024


async def end_to_end(running: Deployment, requests: int, workers: int) -> str:
    """Notifications for `requests` fresh invoices until every fulfilment job finished (payments/s), then until
    every payment notice went out through the fake Bot API (workers take fulfilment first); then checks through
    the admin API that each user's subscription is active and through the fake Bot API that each was told."""
    labels = await invoices(running.base, requests)
    pids = {f"{role} {n + 1}" if len(running.pids[role]) > 1 else role: pid
            for role in ("web", "worker", "database") for n, pid in enumerate(running.pids[role])}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    await closed_loop(f"{running.base}/notify/yoomoney", notifications(labels, f"e2e{workers}"), CONCURRENCY, FORM)
    fulfilled = await finished_jobs(running, FULFILMENT_QUEUE, requests, started)
    active_after = time.perf_counter() - started
    notified = await finished_jobs(running, NOTICES_QUEUE, requests, started)
    told_after = time.perf_counter() - started
    cpu = ", ".join(f"{name} {(cpu_seconds(pid) - before[name]) * 1000 / requests:.2f}" for name, pid in pids.items())
    active = await count_users(running, range(1, requests + 1), subscription_active)
    told = await count_users(running, range(1, requests + 1), was_told)
    return (f"| {workers} × `ymds worker` | {fulfilled} | {fulfilled / active_after:,.0f}/s | {active} | "
            f"{notified / told_after:,.0f}/s | {told} | {cpu} |")


async def finished_jobs(running: Deployment, queue: str, expected: int, started: float) -> int:
    """Waits (within E2E_DEADLINE_SECONDS of `started`) until `expected` jobs of `queue` finished."""
    finished = FinishedJobRegistry(queue, connection=running.redis)
    while finished.count < expected and time.perf_counter() < started + E2E_DEADLINE_SECONDS:
        await asyncio.sleep(0.05)  # polling Redis for the last job, bounded by the deadline
    return int(finished.count)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests per load, and payments per end-to-end run (default 1000, as published)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.redis_url))


if __name__ == "__main__":
    main()
