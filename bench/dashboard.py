"""The admin dashboard's pages with a small and a large ledger, in one run: `ymds web` against the database
stand-in, first with 1 % of --payments applied payments (at least two pages of them; with their invoices and
subscriptions), then with all of them. Each page is fetched repeatedly by a signed-in owner; the web process's
CPU per page is our code's cost and must not grow with the database (every list is a page at a time through an
index with a cursor; the overview groups in the database). The stand-in's CPU is reported apart: mongomock scans
where MongoDB walks an index, so its column grows with the data in a way a MongoDB server's would not.

    python -m bench.dashboard [--payments 20000] [--redis-url redis://127.0.0.1:6379/14] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pymongo

from bench.deployment import Deployment, cpu_seconds, deployment
from billing.dashboard import PAGE_SIZE

ADMIN_ID = 4242
CSV_PAGE = "payments CSV, one day"
FETCHES = 40  # CPU time moves in 10 ms ticks: forty fetches give 0.25 ms steps per page
OVERVIEW_FETCHES = 5  # the stand-in aggregates in Python, seconds a fetch with the large ledger
TARGET_RATIO = 1.5  # the web CPU per page with all payments, against 1 % of them
PROVIDERS = ("yookassa", "cloudpayments", "payme", "click", "yoomoney")
BATCH = 500  # small enough that the single-threaded stand-in answers its heartbeats between them
YEAR_MINUTES = 365 * 24 * 60
SPREAD = 7919  # a prime stride, so the first thousand payments already fall all over the year


def seed_rows(start: int, stop: int, now: datetime) -> tuple[list[dict], list[dict], list[dict]]:
    """Applied payments spread over a year, each with its paid invoice; one subscriber per ten payments."""
    operations, invoices, subscriptions = [], [], []
    for n in range(start, stop):
        at = now - timedelta(minutes=(n * SPREAD) % YEAR_MINUTES)  # any count of payments spans the whole year
        provider = PROVIDERS[n % len(PROVIDERS)]
        currency = "UZS" if provider in ("payme", "click") else "RUB"
        amount = 3500000 if currency == "UZS" else 29900
        label, user_id = f"inv_{n:024x}", 1 + n // 10
        operations.append({"provider": provider, "operation_id": f"op{n}", "label": label, "amount": amount,
                           "currency": currency, "status": "applied", "recorded_at": at, "applied_at": at,
                           "notified_at": at,
                           "was_applied": False})
        invoices.append({"label": label, "user_id": user_id, "plan": "month", "amounts": {currency: amount},
                         "period_days": 30, "status": "paid", "created_at": at, "expires_at": at, "provider": provider,
                         "paid_at": at, "paid_by": f"{provider}:op{n}", "paid_amount": amount,
                         "paid_currency": currency, "kind": "plan", "refunded_amount": 0, "refund_keys": []})
        if n % 10 == 0:
            subscriptions.append({"user_id": user_id, "plan": "month", "status": "active",
                                  "current_period_end": at + timedelta(days=30), "applied_operations": [],
                                  "reversed_operations": [], "auto_renew": False, "version": 0, "started_at": at,
                                  "updated_at": at})
    return operations, invoices, subscriptions


def seed(database: pymongo.database.Database, start: int, stop: int, now: datetime) -> None:
    for first in range(start, stop, BATCH):
        operations, invoices, subscriptions = seed_rows(first, min(stop, first + BATCH), now)
        database.operations.insert_many(operations, ordered=False)
        database.invoices.insert_many(invoices, ordered=False)
        if subscriptions:
            database.subscriptions.insert_many(subscriptions, ordered=False)


async def sign_in(session: aiohttp.ClientSession, running: Deployment, database: pymongo.database.Database) -> None:
    token = secrets.token_urlsafe(32)
    database.admin_login_tokens.insert_one({"token_hash": hashlib.sha256(token.encode()).hexdigest(),
                                            "user_id": ADMIN_ID, "expires_at": datetime.now(UTC) + timedelta(minutes=5),
                                            "used_at": None})
    async with session.post(f"{running.base}/admin/login/link/{token}", allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"the bench's admin could not sign in: {response.status}")


def pages(now: datetime) -> dict[str, str]:
    day = (now - timedelta(days=1)).date().isoformat()
    deep = quote((now - timedelta(days=300)).isoformat())
    return {
        "overview": "/admin",
        "payments, first page": "/admin/payments",
        "payments, 300 days back": f"/admin/payments?before={deep}",
        "payments kept for review": "/admin/payments?status=extra",
        "invoices, first page": "/admin/invoices",
        "invoices paid, 300 days back": f"/admin/invoices?status=paid&before={deep}",
        "a subscriber's page": "/admin/users/1",
        "find by invoice label": f"/admin/users?q=inv_{0:024x}",
        "renewals in dunning": "/admin/dunning",
        CSV_PAGE: f"/admin/export/payments.csv?from={day}&to={day}",
    }


def exported_rows(database: pymongo.database.Database, now: datetime) -> int:
    day = datetime.combine((now - timedelta(days=1)).date(), datetime.min.time(), UTC)
    return int(database.operations.count_documents({"recorded_at": {"$gte": day, "$lt": day + timedelta(days=1)}}))


IDLE_SECONDS = 15


async def idle_cpu_rate(running: Deployment, seconds: float) -> float:
    """The web process's CPU seconds per second while nobody asks it anything: its own timers (the stranded
    payments' sweep, the database driver's heartbeats) run whatever the page, and the longer the stand-in keeps a
    page waiting the more of them a fetch would be charged with."""
    web = running.pids["web"][0]
    before, started = cpu_seconds(web), time.perf_counter()
    await asyncio.sleep(seconds)  # measuring the process at rest over a fixed span, not waiting on a condition
    return (cpu_seconds(web) - before) / (time.perf_counter() - started)


async def measure(session: aiohttp.ClientSession, running: Deployment, path: str,
                  idle_rate: float) -> tuple[float, float, float]:
    """p50 wall milliseconds, web CPU ms (less what the process spends at rest over the same time) and database
    CPU ms per fetch, over `fetches` sequential fetches."""
    web, database = running.pids["web"][0], running.pids["database"][0]
    walls = []
    web_before, database_before, began = cpu_seconds(web), cpu_seconds(database), time.perf_counter()
    fetches = OVERVIEW_FETCHES if path == "/admin" else FETCHES
    for _ in range(fetches):
        started = time.perf_counter()
        async with session.get(running.base + path, allow_redirects=False) as response:
            await response.read()
            if response.status != (303 if "/users?q=" in path else 200):  # a found user is a redirect
                raise RuntimeError(f"{path} answered {response.status}")
        walls.append((time.perf_counter() - started) * 1000)
    at_rest = idle_rate * (time.perf_counter() - began)
    return (statistics.median(walls), max(cpu_seconds(web) - web_before - at_rest, 0.0) * 1000 / fetches,
            (cpu_seconds(database) - database_before) * 1000 / fetches)


@asynccontextmanager
async def signed_in(running: Deployment) -> AsyncIterator[tuple[aiohttp.ClientSession, pymongo.database.Database]]:
    # the stand-in answers one command at a time: while it works through another process's scan, a heartbeat
    # waits, and pymongo's default 20 s would drop the connection in the middle of a seeding insert
    patient = 600_000
    client: pymongo.MongoClient = pymongo.MongoClient(running.mongodb_uri, tz_aware=True, connectTimeoutMS=patient,
                                                      socketTimeoutMS=patient, serverSelectionTimeoutMS=patient)
    database = client["ymds"]
    # unsafe: the cookie jar keeps cookies of an IP address (127.0.0.1) only when told to; no total timeout:
    # with a large ledger the stand-in's scans can keep a page waiting for minutes (MongoDB would not)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=3600)) as session:
        await sign_in(session, running, database)
        yield session, database
    client.close()


async def run(payments: int, redis_url: str, logs: Path | None = None, idle_seconds: float = IDLE_SECONDS,
              skip: tuple[str, ...] = ()) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    small = max(payments // 100, 2 * PAGE_SIZE)  # full pages already, so the comparison is of data, not rows shown
    # the stand-in scans where MongoDB walks an index, so with the large ledger one command can keep the web
    # process's heartbeat waiting for seconds: a patient connection keeps the server selectable meanwhile
    settings = {"ADMIN_IDS": str(ADMIN_ID), "MONGODB_URI_OPTIONS": "&connectTimeoutMS=600000&socketTimeoutMS=600000"}
    async with deployment(redis_url, 0, extra_env=settings, logs=logs) as running, \
            signed_in(running) as (session, database):
        started = time.perf_counter()
        seed(database, 0, small, now)
        idle = [await idle_cpu_rate(running, idle_seconds)]
        chosen = {name: path for name, path in pages(now).items() if name not in skip}
        before = {name: await measure(session, running, path, idle[0]) for name, path in chosen.items()}
        exported = [exported_rows(database, now)]
        seed(database, small, payments, now)
        seeded = time.perf_counter() - started
        idle.append(await idle_cpu_rate(running, idle_seconds))
        after = {name: await measure(session, running, path, idle[1]) for name, path in chosen.items()}
        exported.append(exported_rows(database, now))
    print(f"Admin dashboard: {small:,} then {payments:,} applied payments (with their invoices, "
          f"{payments // 10:,} subscriptions), {FETCHES} fetches per page ({OVERVIEW_FETCHES} of the overview); "
          f"seeding took {seeded:.0f} s; the web process at rest spent {idle[0] * 1000:.1f} then "
          f"{idle[1] * 1000:.1f} ms of CPU a second, taken off each page's figure for the time it took\n")
    print(f"| page | p50 at {small:,} | p50 at {payments:,} | web CPU at {small:,} | web CPU at {payments:,} | "
          f"ratio | target | met | database CPU at {small:,} / {payments:,} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in before:
        (wall_a, web_a, db_a), (wall_b, web_b, db_b) = before[name], after[name]
        ratio_text, met = compare(web_a, web_b)
        if name == CSV_PAGE:  # an export is as long as its period: compared per row exported, not per page
            rows_a, rows_b = exported[0], exported[1]
            ratio_text, met = compare(web_a / max(rows_a, 1), web_b / max(rows_b, 1))
            met += f" (per row: {rows_a} then {rows_b} rows)"
        print(f"| {name} | {wall_a:.1f} ms | {wall_b:.1f} ms | {web_a:.2f} ms | {web_b:.2f} ms | {ratio_text} | "
              f"≤ {TARGET_RATIO}× | {met} | {db_a:.1f} / {db_b:.1f} ms |")


def compare(small: float, large: float) -> tuple[str, str]:
    """The ratio and whether it meets the target; none when the small ledger's CPU stayed under one tick."""
    if small == 0:
        return "—", "— (under one CPU tick with the small ledger)"
    ratio = large / small
    return f"{ratio:.2f}×", "yes" if ratio <= TARGET_RATIO else "no"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--payments", type=int, default=20_000,
                        help="the large ledger (default 20,000: the stand-in scans in Python, so 100,000 takes it "
                             "minutes per page; the small one is 1 %% of it, at least a page of rows)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--logs", type=Path, help="a folder for each process's log")
    parser.add_argument("--skip", action="append", default=[], metavar="PAGE",
                        help="leave a page out (e.g. overview: the stand-in groups 100,000 rows in Python for minutes)")
    parser.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS,
                        help="how long the web process's CPU at rest is measured, at each ledger size")
    args = parser.parse_args()
    if args.payments < 100:
        parser.error("--payments must be at least 100 (the small ledger is 1 % of it)")
    asyncio.run(run(args.payments, args.redis_url, args.logs, args.idle_seconds, tuple(args.skip)))


if __name__ == "__main__":
    main()
