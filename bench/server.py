"""The servers the benchmark compares our routes with, each in its own process:

- hello-world, a minimal aiohttp route: the edge's limit on this machine;
- the floor, the least a durable notification route can do: one insert and one find through motor (on the same
  database stand-in) and one RQ enqueue (from a thread, as ours, so the loop never blocks on Redis).

    python -m bench.server --port 8200
    python -m bench.server --port 8201 --floor --mongodb-uri mongodb://127.0.0.1:27117/ --redis-url redis://...
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import parse_qs

from aiohttp import web

FLOOR_QUEUE = "bench-floor"


def nothing(*_args: str) -> None:
    """The job the floor enqueues (no worker runs it)."""


def hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="OK")

    app = web.Application()
    app.add_routes([web.post("/hello", hello)])
    return app


def floor_app(mongodb_uri: str, redis_url: str) -> web.Application:
    from motor.motor_asyncio import AsyncIOMotorClient
    from redis import Redis
    from rq import Queue

    queue = Queue(FLOOR_QUEUE, connection=Redis.from_url(redis_url))
    operations = AsyncIOMotorClient(mongodb_uri)["bench_floor"]["operations"]

    async def prepare(_app: web.Application) -> None:
        await operations.create_index("operation_id", unique=True)

    async def floor(request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        operation_id, label = form["operation_id"][0], form["label"][0]
        await operations.insert_one({"operation_id": operation_id, "label": label, "amount": form["amount"][0]})
        await operations.find_one({"operation_id": operation_id})
        await asyncio.to_thread(queue.enqueue, "bench.server.nothing", operation_id, job_id=operation_id, unique=True)
        return web.Response(text="OK")

    app = web.Application()
    app.on_startup.append(prepare)
    app.add_routes([web.post("/floor", floor)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--mongodb-uri")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    app = floor_app(args.mongodb_uri, args.redis_url) if args.floor else hello_app()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=lambda _: print("ready", flush=True))


if __name__ == "__main__":
    main()
