"""aiogram only where a bot runs (issue 20): `ymds web` (without webhook mode) and `ymds worker`, started as real
processes, take a payment and tell the user without ever importing aiogram, nor does `ymds scheduler` once it holds
its lease; `ymds bot` and webhook mode still do.

Each process runs with PYTHONPROFILEIMPORTTIME=1, so its log lists every module it imported, including those its
jobs and routes import late."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis

from bench.deployment import (
    Deployment,
    bot_answers,
    deployment,
    free_port,
    invoices,
    notifications,
    service_env,
    start,
    subscription_active,
    until,
    was_told,
)
from tests.conftest import REDIS_TEST_URL

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 30
AIOGRAM_IMPORT = re.compile(rb"^import time:.*\|\s+aiogram(\.\S+)?\s*$", re.MULTILINE)
SETTINGS_IMPORT = re.compile(rb"^import time:.*\|\s+settings\s*$", re.MULTILINE)


def imported_aiogram(log: Path) -> bool:
    text = log.read_bytes()
    assert SETTINGS_IMPORT.search(text), f"{log.name} holds no import profile"
    return AIOGRAM_IMPORT.search(text) is not None


async def test_the_web_and_the_worker_pay_and_tell_without_aiogram(redis_conn: redis.Redis, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    async with deployment(REDIS_TEST_URL, workers=1, bot=True, logs=tmp_path) as running:
        [label] = await invoices(running.base, 1)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{running.base}/notify/yoomoney", data=notifications([label], "lean")[0],
                                    headers={"Content-Type": "application/x-www-form-urlencoded"}) as answer:
                assert answer.status == 200

            async def paid_and_told() -> bool:
                return await subscription_active(session, running, 1) and await was_told(session, running, 1)

            await until(paid_and_told, "the payment was not fulfilled and told", DEADLINE_SECONDS)
        await bot_answers(running, 1)
        await scheduler_ticked(running, tmp_path / "scheduler.log")
    assert not imported_aiogram(tmp_path / "web.log")
    assert not imported_aiogram(tmp_path / "scheduler.log")
    assert not imported_aiogram(tmp_path / "worker-1.log")
    assert imported_aiogram(tmp_path / "bot.log")


async def scheduler_ticked(running: Deployment, log: Path) -> None:
    """`ymds scheduler` against the deployment's stores, until it holds the lease (and ticks)."""
    port = int(urlsplit(running.mongodb_uri).port or 0)
    env = {**service_env(port, REDIS_TEST_URL, free_port(), running.telegram), "SCHEDULER_INTERVAL_SECONDS": "1"}
    async with AsyncExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ymds-lean-")))
        await start(stack, str(Path(sys.executable).with_name("ymds")), "scheduler", log=log, cwd=home, env=env)

        async def started() -> bool:
            return b"renewal scheduler took the lease" in await asyncio.to_thread(log.read_bytes)

        await until(started, "the scheduler did not start", DEADLINE_SECONDS)


@pytest.mark.parametrize(("webhook_mode", "expected"), [("true", True), ("false", False)])
def test_webhook_mode_alone_brings_aiogram_into_the_web_app(webhook_mode: str, expected: bool):
    """What `ymds web` builds (the app, its providers, the runner), in a fresh interpreter."""
    code = (
        "import sys\n"
        "from settings import Settings\n"
        "from webhook_server.app import create_app\n"
        "from webhook_server.runner import serve_web\n"
        "create_app(Settings(_env_file=None, environment='development', public_base_url='http://shop.test',\n"
        "                    mongodb_uri='memory://', redis_url='memory://', plans_file='plans.toml',\n"
        f"                    bot_token='123456:ABC-lean', webhook_mode={webhook_mode == 'true'}))\n"
        "print('aiogram' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    assert done.stdout.strip() == str(expected)
