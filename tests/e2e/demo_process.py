"""Running `ymds demo` as a real process for the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.webhook_server.test_redis_faults import free_port

YMDS = Path(sys.executable).with_name("ymds")
DEADLINE_SECONDS = 30
CUSTOM = {
    "ADMIN_API_TOKEN": "owner-admin-token",
    "YOOMONEY_NOTIFICATION_SECRET": "owner-yoomoney-secret",
    "LINK_SECRET": "owner-link-secret",
}
CUSTOM_PLANS = """
[plans.week]
title = "1 week"
period_days = 7
prices = { RUB = 9900 }
"""


@dataclass(slots=True)
class Demo:
    base: str
    link: str
    env: dict[str, str]
    process: asyncio.subprocess.Process
    donation_link: str = ""  # printed next to the payment link
    printed: list[str] = field(default_factory=list)  # what the demo printed up to the donation link


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    plans = tmp_path / "owner-plans.toml"
    plans.write_text(CUSTOM_PLANS)
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PLANS_FILE": str(plans), **CUSTOM, **extra}


@asynccontextmanager
async def running_demo(tmp_path: Path, *args: str, **extra_env: str) -> AsyncIterator[Demo]:
    """Start `ymds demo` on a free port, wait for its printed payment link, stop it afterwards."""
    if not YMDS.exists():
        raise AssertionError(f"{YMDS} missing: install the project with pip install -e .")
    port = free_port()
    env = demo_env(tmp_path, **extra_env)
    process = await asyncio.create_subprocess_exec(
        str(YMDS), "demo", "--port", str(port), *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    stdout = process.stdout

    printed: list[str] = []

    async def read_link(pattern: str) -> str:
        while True:
            line = (await stdout.readline()).decode()
            printed.append(line)
            if not line:
                raise AssertionError(f"ymds demo exited before printing a link like {pattern}")
            if match := re.search(pattern, line):
                return match.group(1)

    try:
        link = await asyncio.wait_for(read_link(r"(http://\S+/pay/\S+)"), DEADLINE_SECONDS)
        donation_link = await asyncio.wait_for(read_link(r"(http://\S+/donate\?\S+)"), DEADLINE_SECONDS)
        yield Demo(f"http://127.0.0.1:{port}", link, env, process, donation_link, printed)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), DEADLINE_SECONDS)
