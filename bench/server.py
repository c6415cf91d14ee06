"""A server process for the benchmark: our web app (in-memory MongoDB, the real Redis) or a hello-world app.

    python -m bench.server --port 8200 --redis-url redis://127.0.0.1:6379/14 [--workers N] [--hello]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from billing.plans import load_plans
from settings import Settings
from webhook_server.app import create_app
from webhook_server.keys import PLANS, QUEUES
from webhook_server.runner import InProcessWorker

ROOT = Path(__file__).resolve().parents[1]
BENCH_SECRET = "bench-yoomoney-secret"
BENCH_ADMIN_TOKEN = "bench-admin-token"
BENCH_PAYME_KEY = "bench-payme-key"


def bench_settings(redis_url: str) -> Settings:
    return Settings(
        _env_file=None, environment="development", admin_api_token=BENCH_ADMIN_TOKEN, link_secret="bench-link",
        mongodb_uri="memory://", redis_url=redis_url, plans_file=ROOT / "plans.toml", job_max_retries=0,
        yoomoney_wallet="4100118000000000", yoomoney_notification_secret=BENCH_SECRET,
        payme_merchant_id="5e730e8e0b852a417aa49ceb", payme_key=BENCH_PAYME_KEY,
    )


def hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="OK")

    app = web.Application()
    app.add_routes([web.post("/hello", hello)])
    return app


def ymds_app(redis_url: str, workers: int) -> web.Application:
    settings = bench_settings(redis_url)
    app = create_app(settings, plans=load_plans(settings.plans_file))

    async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
        running = [InProcessWorker(app[QUEUES], asyncio.get_running_loop(), app[PLANS]) for _ in range(workers)]
        for worker in running:
            worker.start()
        yield
        for worker in running:
            await worker.stop()

    if workers:
        app.cleanup_ctx.append(workers_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--hello", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app = hello_app() if args.hello else ymds_app(args.redis_url, args.workers)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=lambda _: print("ready", flush=True))


if __name__ == "__main__":
    main()
