"""Round trips counted: the commands Redis ran (its INFO commandstats) and the ones the database stand-in ran
(bench.mongo_wire counts them by name), as deltas over a load."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis
from pymongo import MongoClient

# Not the load's: pymongo's monitors (hello every 10 s per client), the counting itself, sessions closing.
NOT_THE_LOADS = {"hello", "ismaster", "isMaster", "benchCommandCounts", "endSessions", "info",
                 "buildInfo", "listIndexes", "createIndexes", "listCollections", "create"}  # and start-up


def redis_commands(connection: redis.Redis) -> Counter[str]:
    stats = connection.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(figures["calls"]) for name, figures in stats.items()})


def _database_commands(mongodb_uri: str) -> tuple[Counter[str], Counter[str]]:
    with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        answer = client.admin.command("benchCommandCounts")
    return Counter(answer["counts"]), Counter(answer["scans"])


async def database_commands(mongodb_uri: str) -> tuple[Counter[str], Counter[str]]:
    """The commands the stand-in ran, by name; and its lookups that no index answered (a collection scan on a
    MongoDB server too), by collection and the fields asked for."""
    return await asyncio.to_thread(_database_commands, mongodb_uri)


def per_unit(before: Counter[str], after: Counter[str], units: int, bench_own: Counter[str] | None = None
             ) -> dict[str, float]:
    """Commands of each name per unit of the load, the largest first; the bench's own and NOT_THE_LOADS left out."""
    delta = after - before - (bench_own or Counter())
    return {name: calls / units for name, calls in delta.most_common() if name not in NOT_THE_LOADS}


def describe(counts: dict[str, float]) -> str:
    """'9.0 (find 4.0, insert 2.0, ...)'"""
    parts = ", ".join(f"{name} {calls:.1f}" for name, calls in counts.items() if calls >= 0.05)
    return f"{sum(counts.values()):.1f} ({parts})"
