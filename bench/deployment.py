"""The production shape for the benchmark: `ymds web`, N `ymds worker` and `ymds bot` as separate processes,
sharing the real Redis and one database (bench.mongo_wire), with `ymds fake-telegram` as the Bot API.

Every process is started exactly as an operator starts it (the `ymds` command, settings in the
environment), so the figures include what production runs: the JSON logs, the metrics, the request ids.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import redis
from rq import Worker

from billing.money import Money
from billing.providers.yoomoney import build_notification

STARTUP_DEADLINE_SECONDS = 30
ROOT = Path(__file__).resolve().parents[1]
BENCH_SECRET = "bench-yoomoney-secret"
BENCH_ADMIN_TOKEN = "bench-admin-token"
BENCH_PAYME_KEY = "bench-payme-key"
BENCH_BOT_TOKEN = "123456:BENCH"
ADMIN = {"Authorization": f"Bearer {BENCH_ADMIN_TOKEN}"}
PLAN_PRICE = Money(29900, "RUB")  # plans.toml's month


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of the process's resident set (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise LookupError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Deployment:
    base: str
    telegram: str
    redis: redis.Redis
    mongodb_uri: str
    pids: dict[str, list[int]] = field(default_factory=dict)

    def peak_rss(self, role: str) -> float:
        """The largest peak among the processes of one role."""
        return max(peak_rss_mb(pid) for pid in self.pids[role])

    def server_pids(self) -> dict[str, int]:
        """The processes that answer a notification: the web process and the database."""
        return {"web": self.pids["web"][0], "database": self.pids["database"][0]}


def service_env(mongodb_port: int, redis_url: str, web_port: int, telegram: str) -> dict[str, str]:
    return {
        **os.environ, "ENVIRONMENT": "development",
        "ADMIN_API_TOKEN": BENCH_ADMIN_TOKEN, "LINK_SECRET": "bench-link", "PUBLIC_BASE_URL": "http://127.0.0.1",
        "MONGODB_URI": f"mongodb://127.0.0.1:{mongodb_port}/?directConnection=true", "REDIS_URL": redis_url,
        "PLANS_FILE": str(ROOT / "plans.toml"), "WEB_PORT": str(web_port), "JOB_MAX_RETRIES": "0",
        "YOOMONEY_WALLET": "4100118000000000", "YOOMONEY_NOTIFICATION_SECRET": BENCH_SECRET,
        "PAYME_MERCHANT_ID": "5e730e8e0b852a417aa49ceb", "PAYME_KEY": BENCH_PAYME_KEY,
        "BOT_TOKEN": BENCH_BOT_TOKEN, "TELEGRAM_API_URL": telegram,
        # the whole load comes from one address by design: the per-address limit on connections still sending
        # a request (slow-client protection) would refuse it with 503
        "WEB_MAX_SLOW_CONNECTIONS_PER_IP": "100000",
    }


async def start(stack: AsyncExitStack, *args: str, log: Path | None, cwd: Path = ROOT,
                env: dict[str, str] | None = None, ready_line: bytes | None = None) -> asyncio.subprocess.Process:
    """Start a process in `cwd` that is terminated when `stack` closes, its stderr (the logs) going to `log`;
    with `ready_line`, wait until it prints it."""
    stderr = stack.enter_context(log.open("ab")) if log else asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE if ready_line else asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )

    async def stop() -> None:
        if process.returncode is None:
            process.terminate()
        await process.wait()

    stack.push_async_callback(stop)
    if ready_line is not None:
        assert process.stdout is not None
        async with asyncio.timeout(STARTUP_DEADLINE_SECONDS):
            while ready_line not in await process.stdout.readline():
                if process.stdout.at_eof():
                    raise RuntimeError(f"{args} exited before it was ready")
    return process


async def until(probe: Callable[[], Awaitable[bool]], what: str, seconds: float = STARTUP_DEADLINE_SECONDS) -> None:
    """Ask `probe` every 0.1 s until it says yes; after `seconds`, a TimeoutError saying what did not happen."""
    deadline = time.monotonic() + seconds
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {seconds:g} s")
        await asyncio.sleep(0.1)  # polling another process's state, bounded by the deadline


async def wait_ready(url: str) -> None:
    """Until `url` answers 200 (a process that is starting refuses connections first)."""
    async with aiohttp.ClientSession() as session:
        async def answers() -> bool:
            try:
                async with session.get(url) as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await until(answers, f"{url} did not answer 200")


async def pid_answering(base: str) -> int:
    """The pid in /healthz's answer, over a new connection (with WEB_PROCESSES the kernel picks a process per
    connection)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.get(f"{base}/healthz") as response:
            if response.status != 200:
                raise RuntimeError(f"/healthz answered {response.status}")
            return int((await response.json())["pid"])


async def web_pids(base: str, count: int, *, besides: frozenset[int] = frozenset(),
                   seconds: float = STARTUP_DEADLINE_SECONDS) -> set[int]:
    """Ask /healthz until `count` different processes (none of `besides`) have answered, within `seconds`."""
    seen: set[int] = set()

    async def enough() -> bool:
        seen.add(await pid_answering(base))
        return len(seen - besides) >= count

    await until(enough, f"{count} web processes did not answer", seconds)
    return seen - besides


@asynccontextmanager
async def deployment(redis_url: str, workers: int, *, bot: bool = False, web_processes: int = 1,
                     logs: Path | None = None, extra_env: dict[str, str] | None = None) -> AsyncIterator[Deployment]:
    """The database, the fake Bot API, `ymds web` (WEB_PROCESSES=`web_processes`), `workers` × `ymds worker` and,
    with `bot`, `ymds bot`; with `logs`, each process's log goes to a file there named after it; `extra_env` adds
    settings to every service (its MONGODB_URI_OPTIONS, e.g. "&connectTimeoutMS=600000", go on the URI). With
    more than one web process, the "web" pids are the processes that answer (the supervisor's children)."""
    ymds = str(Path(sys.executable).with_name("ymds"))
    connection = redis.Redis.from_url(redis_url)
    strangers = len(Worker.all(connection=connection))  # registrations whose key expired are not counted
    if strangers:
        raise RuntimeError(f"{strangers} RQ worker(s) already listen on {redis_url}; they would take this run's jobs: "
                           "stop them or give another --redis-url")
    connection.flushdb()
    async with AsyncExitStack() as stack:
        mongodb_port, telegram_port, web_port = free_port(), free_port(), free_port()
        telegram = f"http://127.0.0.1:{telegram_port}"
        env = {**service_env(mongodb_port, redis_url, web_port, telegram), "WEB_PROCESSES": str(web_processes),
               **(extra_env or {})}
        env["MONGODB_URI"] += env.pop("MONGODB_URI_OPTIONS", "")
        def log(name: str) -> Path | None:
            return logs / f"{name}.log" if logs else None

        # The services run in an empty directory, so that no .env of the checkout's adds settings to theirs.
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ymds-bench-")))
        database = await start(stack, sys.executable, "-m", "bench.mongo_wire", "--port", str(mongodb_port),
                               log=log("database"), ready_line=b"ready")
        await start(stack, ymds, "fake-telegram", "--port", str(telegram_port), log=log("telegram"), cwd=home,
                    env=env, ready_line=b"fake Telegram")
        web = await start(stack, ymds, "web", log=log("web"), cwd=home, env=env)
        await wait_ready(f"http://127.0.0.1:{web_port}/readyz")
        answering = [web.pid] if web_processes == 1 else sorted(await web_pids(f"http://127.0.0.1:{web_port}",
                                                                               web_processes))
        running = Deployment(f"http://127.0.0.1:{web_port}", telegram, connection, env["MONGODB_URI"],
                             {"database": [database.pid], "web": answering, "worker": [], "bot": []})
        for n in range(workers):
            worker = await start(stack, ymds, "worker", log=log(f"worker-{n + 1}"), cwd=home, env=env)
            running.pids["worker"].append(worker.pid)
        await wait_for_workers(connection, workers)
        if bot:
            running.pids["bot"].append((await start(stack, ymds, "bot", log=log("bot"), cwd=home, env=env)).pid)
        yield running
    connection.flushdb()


async def wait_for_workers(connection: redis.Redis, count: int) -> None:
    async def registered() -> bool:
        return bool(Worker.count(connection=connection) >= count)

    await until(registered, f"{count} RQ worker(s) did not register")


async def invoices(base: str, count: int) -> list[str]:
    """Month invoices for users 1..count through the admin API; their labels."""
    async with aiohttp.ClientSession() as session:
        async def one(user_id: int) -> str:
            async with session.post(f"{base}/api/invoices", json={"user_id": user_id, "plan": "month"},
                                    headers=ADMIN) as response:
                return str((await response.json())["label"])

        labels = []
        for start in range(0, count, 200):
            labels += await asyncio.gather(*(one(n + 1) for n in range(start, min(count, start + 200))))
        return labels


def notifications(labels: list[str], tag: str) -> list[bytes]:
    """A correctly signed YooMoney notification paying each label in full (operation ids `tag`-n)."""
    return [urlencode(build_notification(BENCH_SECRET, operation_id=f"{tag}-{n}", paid=PLAN_PRICE,
                                         label=label)).encode() for n, label in enumerate(labels)]


async def count_users(running: Deployment, users: Iterable[int],
                      check: Callable[[aiohttp.ClientSession, Deployment, int], Awaitable[bool]]) -> int:
    """How many of `users` pass `check`, asked 50 at a time."""
    async with aiohttp.ClientSession() as session:
        ids, passed = list(users), 0
        for start in range(0, len(ids), 50):
            passed += sum(await asyncio.gather(*(check(session, running, user) for user in ids[start:start + 50])))
        return passed


async def subscription_active(session: aiohttp.ClientSession, running: Deployment, user_id: int) -> bool:
    async with session.get(f"{running.base}/api/users/{user_id}/subscription", headers=ADMIN) as response:
        return response.status == 200 and (await response.json())["status"] == "active"


async def was_told(session: aiohttp.ClientSession, running: Deployment, user_id: int) -> bool:
    """The bot wrote to the user (the chat also holds what the user sent: a /start alone is not an answer)."""
    async with session.get(f"{running.telegram}/fake/messages", params={"chat_id": user_id}) as response:
        return any(message.get("from", {}).get("is_bot") for message in (await response.json())["messages"])


async def bot_answers(running: Deployment, users: int) -> None:
    """`users` people send /start to the bot (new users, above the paying ones); waits for every answer."""
    first = 1_000_000
    async with aiohttp.ClientSession() as session:
        for user in range(first, first + users):
            async with session.post(f"{running.telegram}/fake/send", data={"user_id": user, "text": "/start"}):
                pass
    async def all_answered() -> bool:
        return await count_users(running, range(first, first + users), was_told) == users

    await until(all_answered, f"the bot did not answer {users} /start")
