"""`python -m bench`: throughput, latency and CPU of the notification routes against a hello-world route, the
floor (one insert, one find, one RQ enqueue) and paytechuz; end to end fulfilment with 1 and 2 `ymds worker`
processes on the real Redis, against RQ's own no-op job; the database and Redis commands per payment; the peak
RSS of each process. Prints tables, and the targets (issue 20) beside the figures.

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
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
from rq.registry import FinishedJobRegistry

from bench.counts import database_commands, describe, per_unit, redis_commands
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


# Issue 20's targets
HELLO_RATIO, FLOOR_RATIO, PAYTECHUZ_RATIO, NOOP_JOB_RATIO = 8.0, 1.5, 0.5, 2.5
DATABASE_COMMANDS_PER_PAYMENT = 8
RSS_MB = {"web": 80, "worker": 80, "bot": 180}
OPEN_LOOP_P99_MS = 25.0


@asynccontextmanager
async def bench_server(*args: str) -> AsyncIterator[tuple[str, int]]:
    """bench.server (hello-world, or the floor with `--floor ...`) on a free port: its base URL and pid."""
    port = free_port()
    async with AsyncExitStack() as stack:
        process = await start(stack, sys.executable, "-m", "bench.server", "--port", str(port), *args, log=None,
                              ready_line=b"ready")
        yield f"http://127.0.0.1:{port}", process.pid


def floor_forms(count: int) -> list[bytes]:
    return [f"operation_id=floor-{n}&label=L{n % INVOICE_POOL}&amount=299.00".encode() for n in range(count)]


def payme_calls(method: str, params: list[dict[str, object]]) -> list[bytes]:
    return [json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": p}).encode()
            for n, p in enumerate(params)]


async def payme_rows(url: str, field: str, accounts: list[str], fresh: list[str], requests: int,
                     name: str, pids: dict[str, int], clients: int = CONCURRENCY) -> list[Measurement]:
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
    return [(f"{name}: Payme CheckPerformTransaction, {clients} client(s)", *check),
            (f"{name}: Payme CreateTransaction", *create), (f"{name}: Payme PerformTransaction", *perform)]


async def paytechuz_rows(requests: int, pairs: int) -> list[Measurement]:
    """The same Payme load against paytechuz's FastAPI webhook (the [bench] extra); none when it is absent."""
    if importlib.util.find_spec("paytechuz") is None or importlib.util.find_spec("uvicorn") is None:
        return []
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


Measurement = tuple[str, Result, dict[str, float]]  # the load's name, its result, CPU ms per request by process


async def measured(pids: dict[str, int], load: Awaitable[Result]) -> tuple[Result, dict[str, float]]:
    """The load's result and the CPU milliseconds each server process spent per request meanwhile."""
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    result = await load
    return result, {role: (cpu_seconds(pid) - before[role]) * 1000 / result.requests for role, pid in pids.items()}


def row(measurement: Measurement) -> str:
    name, result, cpu = measurement
    parts = " + ".join(f"{role} {ms:.2f}" for role, ms in cpu.items())
    total = f"{sum(cpu.values()):.2f} ms" + (f" ({parts})" if len(cpu) > 1 else "")
    return (f"| {name} | {result.requests} | {result.rate:,.0f}/s | {result.percentile(50):.1f} ms | "
            f"{result.percentile(99):.1f} ms | {result.errors} | {total} |")


async def noop_job_ms(redis_url: str, jobs: int) -> float:
    """CPU milliseconds RQ's SimpleWorker spends per no-op job, in burst mode (bench.noop_jobs)."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.noop_jobs", "--redis-url", redis_url,
                                                   "--jobs", str(jobs), stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"bench.noop_jobs exited with {process.returncode}")
    return float(out)


@dataclass
class EndToEnd:
    line: str
    cpu_ms: dict[str, float]
    database: dict[str, float]
    redis: dict[str, float]
    scans: dict[str, float]


async def run(requests: int, redis_url: str) -> None:
    pairs, warm_up, bot_users = min(PAYME_PAIRS, requests), min(WARM_UP, requests), min(BOT_USERS, requests)
    lines = ["| load | requests | throughput | p50 | p99 | non-200 | server CPU per request |",
             "|---|---|---|---|---|---|---|"]
    loads: dict[str, Measurement] = {}

    async with bench_server() as (base, pid):
        await closed_loop(f"{base}/hello", [b"x"] * warm_up, CONCURRENCY, FORM)
        loads["hello"] = (f"hello-world, {CONCURRENCY} clients", *await measured(
            {"hello": pid}, closed_loop(f"{base}/hello", [b"x=1"] * requests, CONCURRENCY, FORM)))

    rss: dict[str, float] = {}
    async with deployment(redis_url, workers=0) as running:
        # No worker runs here: the route alone, its fulfilment jobs waiting in Redis. A few invoices are paid
        # again and again (each notification a new operation, all but the first of an invoice kept as extra).
        base, pids = running.base, running.server_pids()
        async with bench_server("--floor", "--mongodb-uri", running.mongodb_uri, "--redis-url", redis_url
                                ) as (floor_base, floor_pid):
            floor_pids = {"floor": floor_pid, "database": pids["database"]}
            await closed_loop(f"{floor_base}/floor", floor_forms(warm_up), CONCURRENCY, FORM)
            loads["floor"] = (f"floor (1 insert, 1 find, 1 RQ enqueue), {CONCURRENCY} clients", *await measured(
                floor_pids, closed_loop(f"{floor_base}/floor", floor_forms(warm_up + requests)[warm_up:],
                                        CONCURRENCY, FORM)))
        labels = await invoices(base, INVOICE_POOL)
        await closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, warm_up), "warm"), CONCURRENCY, FORM)
        redis_before = redis_commands(running.redis)
        database_before, _ = await database_commands(running.mongodb_uri)
        loads["notify"] = (f"POST /notify/yoomoney, {CONCURRENCY} clients", *await measured(
            pids, closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, requests), "c"), CONCURRENCY,
                              FORM)))
        redis_per_notification = per_unit(redis_before, redis_commands(running.redis), requests)
        database_per_notification = per_unit(database_before, (await database_commands(running.mongodb_uri))[0],
                                             requests)
        half = loads["notify"][1].rate / 2
        loads["paced"] = (f"POST /notify/yoomoney at {half:,.0f}/s (half the 32 clients' throughput)",
                          *await measured(pids, fixed_rate(f"{base}/notify/yoomoney",
                                                           notifications(cycle(labels, requests), "r"), half, FORM)))
        unpaid = await invoices(base, INVOICE_POOL)  # Check refuses the invoices the notifications claimed
        ours = await payme_rows(f"{base}/notify/payme", "order_id", unpaid, await invoices(base, pairs),
                                requests, "open-ymds", pids)
        rss["web"] = running.peak_rss("web")
    loads["notify 2"] = await two_web_processes(redis_url, requests, warm_up)
    theirs = await paytechuz_rows(requests, pairs)
    lines += [row(loads[name]) for name in ("hello", "floor", "notify", "notify 2", "paced")]
    lines += [row(m) for m in ours + theirs]
    if not theirs:
        lines.append("| paytechuz: not installed (pip install -e '.[bench]') | | | | | | |")

    noop_ms = await noop_job_ms(redis_url, requests)
    e2e_lines = ["| end to end | payments | payments/s (to active) | subscriptions active | notices/s (to told) | "
                 "users told | CPU ms per payment |", "|---|---|---|---|---|---|---|"]
    e2e: dict[int, EndToEnd] = {}
    for workers in (1, 2):
        async with deployment(redis_url, workers, bot=True) as running:
            e2e[workers] = await end_to_end(running, requests, workers)
            e2e_lines.append(e2e[workers].line)
            await bot_answers(running, bot_users)
            for role in ("web", "worker", "bot", "database"):
                rss[role] = max(rss.get(role, 0.0), running.peak_rss(role))

    print(f"open-ymds benchmark on {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
          f"{time.strftime('%Y-%m-%d')}")
    print("\n".join(lines))
    print("\n" + "\n".join(e2e_lines))
    print(f"\nRQ's own no-op job (SimpleWorker, burst, {requests} jobs): {noop_ms:.2f} ms of CPU each.")
    one = e2e[1]
    print(f"Database commands per notification (the route alone): {describe(database_per_notification)}; "
          f"per payment (1 worker, end to end): {describe(one.database)}.")
    if one.scans:
        print(f"Lookups per payment no index answered (a MongoDB server scans these too): {describe(one.scans)}.")
    print(f"Redis commands per notification (the route alone): {describe(redis_per_notification)}; "
          f"per payment, end to end: {describe(one.redis)}.")
    print("\n| process | peak RSS |\n|---|---|")
    print(f"| `ymds web` | {rss['web']:.0f} MB |\n| `ymds worker` (the largest) | {rss['worker']:.0f} MB |\n"
          f"| `ymds bot` ({bot_users} users sent /start) | {rss['bot']:.0f} MB |\n"
          f"| the database stand-in (bench.mongo_wire, not part of open-ymds) | {rss['database']:.0f} MB |")
    bare, with_aiogram = import_rss_mb(""), import_rss_mb("aiogram")
    print(f"\nA Python process that imports nothing: {bare:.0f} MB; one that imports only aiogram (which builds the "
          f"models of the whole Bot API): {with_aiogram:.0f} MB.")
    print("\n" + "\n".join(target_lines(loads, ours, theirs, noop_ms, one, rss)))


async def two_web_processes(redis_url: str, requests: int, warm_up: int) -> Measurement:
    """The same closed loop against WEB_PROCESSES=2 (two processes on one port, SO_REUSEPORT)."""
    async with deployment(redis_url, workers=0, web_processes=2) as running:
        base = running.base
        pids = {f"web {n}": pid for n, pid in enumerate(running.pids["web"], 1)}
        pids["database"] = running.pids["database"][0]
        labels = await invoices(base, INVOICE_POOL)
        await closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, warm_up), "warm"), CONCURRENCY, FORM)
        return (f"POST /notify/yoomoney, 2 web processes, {CONCURRENCY} clients", *await measured(
            pids, closed_loop(f"{base}/notify/yoomoney", notifications(cycle(labels, requests), "c2"), CONCURRENCY,
                              FORM)))


def times(figure: float, unit: float) -> str:
    """'3.2×'; with a small --requests a process's CPU can be below the clock tick, and then has no ratio."""
    return f"{figure / unit:.2f}×" if unit else "–"


def target_lines(loads: dict[str, Measurement], ours: list[Measurement], theirs: list[Measurement], noop_ms: float,
                 one: EndToEnd, rss: dict[str, float]) -> list[str]:
    """Issue 20's table: each figure, its target (a ratio to a figure of this same run) and whether it is met."""
    lines = ["| target | measured | target | met |", "|---|---|---|---|"]

    def add(figure: str, measured_: str, target: str, met: bool) -> None:
        lines.append(f"| {figure} | {measured_} | {target} | {'yes' if met else 'no'} |")

    web, hello, floor = loads["notify"][2]["web"], loads["hello"][2]["hello"], loads["floor"][2]["floor"]
    bound = max(HELLO_RATIO * hello, FLOOR_RATIO * floor)
    add("`POST /notify/yoomoney` web CPU per request",
        f"{web:.2f} ms: {times(web, hello)} hello-world's {hello:.2f} ms, "
        f"{times(web, floor)} the floor's {floor:.2f} ms",
        f"≤ {bound:.2f} ms (≤ {HELLO_RATIO:g}× hello-world, or ≤ {FLOOR_RATIO:g}× the floor if higher)", web <= bound)
    if theirs:
        mine = [m[2]["web"] for m in ours]
        peer = [m[2]["paytechuz"] for m in theirs]
        add("Payme Check / Create / Perform, web CPU per request",
            " / ".join(f"{a:.2f}" for a in mine) + " ms against paytechuz's " + " / ".join(f"{b:.2f}" for b in peer)
            + " ms: " + " / ".join(times(a, b) for a, b in zip(mine, peer, strict=True)),
            f"≤ {PAYTECHUZ_RATIO:g}× paytechuz's",
            all(a <= PAYTECHUZ_RATIO * b for a, b in zip(mine, peer, strict=True)))
    else:
        add("Payme Check / Create / Perform, web CPU per request", "paytechuz not installed", "", False)
    worker = one.cpu_ms["worker"]
    add("worker CPU per payment (both jobs, 1 worker)", f"{worker:.2f} ms: {times(worker, noop_ms)} RQ's no-op job's "
        f"{noop_ms:.2f} ms", f"≤ {NOOP_JOB_RATIO:g}× one no-op RQ job", worker <= NOOP_JOB_RATIO * noop_ms)
    commands = sum(one.database.values())
    add("database commands per payment, end to end", describe(one.database), f"≤ {DATABASE_COMMANDS_PER_PAYMENT}",
        commands <= DATABASE_COMMANDS_PER_PAYMENT)
    add("peak RSS web / worker / bot", " / ".join(f"{rss[r]:.0f}" for r in RSS_MB) + " MB",
        " / ".join(f"≤ {mb}" for mb in RSS_MB.values()) + " MB", all(rss[r] <= mb for r, mb in RSS_MB.items()))
    paced = loads["paced"][1]
    add("p99 under an open loop at half the route's closed-loop throughput",
        f"{paced.percentile(99):.1f} ms at {paced.requests / paced.seconds:,.0f}/s", f"≤ {OPEN_LOOP_P99_MS:g} ms",
        paced.percentile(99) <= OPEN_LOOP_P99_MS)
    return lines


def import_rss_mb(module: str) -> float:
    """The resident set of a fresh interpreter after importing `module` (nothing when empty)."""
    script = (f"import {module}\n" if module else "") + (
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])")
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout) / 1024


async def end_to_end(running: Deployment, requests: int, workers: int) -> EndToEnd:
    """Notifications for `requests` fresh invoices until every fulfilment job finished (payments/s), then until
    every payment notice went out through the fake Bot API (workers take fulfilment first); then checks through
    the admin API that each user's subscription is active and through the fake Bot API that each was told. The
    database and Redis commands in that time are counted, the bench's own polling left out."""
    labels = await invoices(running.base, requests)
    pids = {f"{role} {n + 1}" if len(running.pids[role]) > 1 else role: pid
            for role in ("web", "worker", "database") for n, pid in enumerate(running.pids[role])}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    (database_before, scans_before), redis_before = (await database_commands(running.mongodb_uri),
                                                     redis_commands(running.redis))
    started = time.perf_counter()
    await closed_loop(f"{running.base}/notify/yoomoney", notifications(labels, f"e2e{workers}"), CONCURRENCY, FORM)
    fulfilled, polls = await finished_jobs(running, FULFILMENT_QUEUE, requests, started)
    active_after = time.perf_counter() - started
    notified, more_polls = await finished_jobs(running, NOTICES_QUEUE, requests, started)
    told_after = time.perf_counter() - started
    cpu_ms = {name: (cpu_seconds(pid) - before[name]) * 1000 / requests for name, pid in pids.items()}
    database_after, scans_after = await database_commands(running.mongodb_uri)
    database, scans = per_unit(database_before, database_after, requests), per_unit(scans_before, scans_after, requests)
    redis_counts = per_unit(redis_before, redis_commands(running.redis), requests, Counter(zcard=polls + more_polls))
    active = await count_users(running, range(1, requests + 1), subscription_active)
    told = await count_users(running, range(1, requests + 1), was_told)
    cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu_ms.items())
    line = (f"| {workers} × `ymds worker` | {fulfilled} | {fulfilled / active_after:,.0f}/s | {active} | "
            f"{notified / told_after:,.0f}/s | {told} | {cpu} |")
    return EndToEnd(line, cpu_ms, database, redis_counts, scans)


async def finished_jobs(running: Deployment, queue: str, expected: int, started: float) -> tuple[int, int]:
    """Waits (within E2E_DEADLINE_SECONDS of `started`) until `expected` jobs of `queue` finished: how many did,
    and how many times it asked Redis (one ZCARD each)."""
    finished = FinishedJobRegistry(queue, connection=running.redis)
    polls = 1
    while finished.get_job_count(cleanup=False) < expected and time.perf_counter() < started + E2E_DEADLINE_SECONDS:
        polls += 1
        await asyncio.sleep(0.05)  # polling Redis for the last job, bounded by the deadline
    return int(finished.get_job_count(cleanup=False)), polls + 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests per load, and payments per end-to-end run (default 1000, as published)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.redis_url))


if __name__ == "__main__":
    main()
