"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import os

import redis
from aiohttp import web
from pymongo.errors import PyMongoError

from db import ping
from webhook_server.keys import DB_CLIENT, REDIS

READY_TIMEOUT_SECONDS = 3


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "pid": os.getpid()})  # which of WEB_PROCESSES' processes answered


async def readyz(request: web.Request) -> web.Response:
    checks = {"mongodb": await _check(ping(request.app[DB_CLIENT])),
              "redis": await _check(asyncio.to_thread(request.app[REDIS].ping))}
    ready = all(value == "ok" for value in checks.values())
    return web.json_response({"status": "ready" if ready else "unavailable", "checks": checks},
                             status=200 if ready else 503)


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except (PyMongoError, redis.RedisError, TimeoutError) as err:
        return f"error: {type(err).__name__}"
    return "ok"
