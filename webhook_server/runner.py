"""Running the services in a process: the web server, the RQ worker, and the demo's in-process worker."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from billing import runtime
from billing.clock import Clock, utc_now
from billing.events import outlet as events_outlet
from billing.ledger import Ledger
from billing.networks import parse_networks
from billing.plans import Catalogue
from billing.ports import LogNotifier
from billing.renewals.scheduler import run_scheduler
from billing.sweep import Sweeper, reconcilers
from bot.notifier import SEND_TIMEOUT_SECONDS, chats_for, notifier_for
from db import init_db
from rq_access import DueJobs, RqQueues, connect, make_worker
from settings import Settings
from webhook_server.event_sender import close_outlet, event_outlet
from webhook_server.payout_services import OwnSessionTransport, close_payout_services, payout_services
from webhook_server.providers import ProviderRegistry, build_providers
from webhook_server.renewal_services import PROVIDER_TIMEOUT_SECONDS, renewal_services, scheduler_lease
from webhook_server.slow_clients import GuardedSite, SlowClientGuard, SlowClientLimits
from webhook_server.tls import ReloadableTLS

log = logging.getLogger(__name__)
JOB_RESULT_TIMEOUT_SECONDS = 120
IDLE_WAKE_SECONDS = 2  # how long an idle in-process worker blocks on Redis before it checks for a stop
STOP_WAIT_SECONDS = JOB_RESULT_TIMEOUT_SECONDS + IDLE_WAKE_SECONDS


SHUTDOWN_GRACE_SECONDS = 30
KEEPALIVE_SECONDS = 75  # an idle kept-alive connection is closed after this (aiohttp's run_app default)
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


@dataclass
class WebServing:
    """A started `ymds web` server: its runner (cleanup() stops it gracefully), site and slow-client guard."""

    runner: web.AppRunner
    site: GuardedSite
    guard: SlowClientGuard

    @property
    def port(self) -> int:
        return self.site.port


async def start_web(app: web.Application, settings: Settings, *, ssl_context: ssl.SSLContext | None = None,
                    reuse_port: bool = False) -> WebServing:
    """Start serving `app` on WEB_HOST:WEB_PORT (0: a free port) with slow clients bounded (slow_clients.py);
    `reuse_port` for one of the WEB_PROCESSES processes (webhook_server/web_processes.py)."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_GRACE_SECONDS, keepalive_timeout=KEEPALIVE_SECONDS,
                           access_log_format=ACCESS_LOG_FORMAT)
    await runner.setup()
    guard = SlowClientGuard(SlowClientLimits.from_settings(settings, parse_networks(settings.trusted_proxies)))
    site = GuardedSite(runner, guard, settings.web_host, settings.web_port, ssl_context=ssl_context,
                       reuse_port=reuse_port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return WebServing(runner, site, guard)


def serve_web(app: web.Application, settings: Settings, *, reuse_port: bool = False) -> None:
    """`ymds web`: HTTPS when TLS_CERT/TLS_KEY are set (SIGHUP reloads them), plain HTTP behind a proxy.

    SIGTERM stops accepting connections and lets in-flight requests finish (up to the grace period)
    before the resources close.
    """
    asyncio.run(_serve_until_stopped(app, settings, reuse_port))


async def _serve_until_stopped(app: web.Application, settings: Settings, reuse_port: bool) -> None:
    tls = ReloadableTLS(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if tls is not None:
        tls.reload_on_sighup(loop)
    serving = await start_web(app, settings, ssl_context=tls.context if tls else None, reuse_port=reuse_port)
    log.info("serving on %s", serving.site.name)
    try:
        await stop.wait()
    finally:
        await serving.runner.cleanup()  # the graceful part: in-flight requests finish before the app closes


def queues_for(settings: Settings, *, blocking_reads: bool = False) -> RqQueues:
    connection = connect(settings.redis_url, blocking_reads=blocking_reads)
    return RqQueues(connection, max_retries=settings.job_max_retries, retry_intervals=settings.job_retry_intervals)


def run_worker(settings: Settings, plans: Catalogue, *, burst: bool = False) -> None:
    """`ymds worker`: one event loop and one database client for the whole process, then RQ's loop."""
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(init_db(settings.mongodb_uri, settings.mongodb_db))
    queues = queues_for(settings, blocking_reads=True)
    telegram = OwnSessionTransport(SEND_TIMEOUT_SECONDS)  # the notices' HTTP client
    notifier = notifier_for(settings, telegram)  # Telegram when BOT_TOKEN is set
    payouts = payout_services(settings, queues)  # konsol.pro, when KONSOL_API_TOKEN is set
    transport = OwnSessionTransport(PROVIDER_TIMEOUT_SECONDS)  # the saved-method chargers' HTTP client
    providers = build_providers(settings, transport, plans)
    renewals = renewal_services(settings, queues, providers, utc_now)
    outlet = event_outlet(settings, queues)  # outbound events, when EVENTS_URL is set (billing/events)
    events_outlet.install(outlet)
    runtime.install(runtime.JobRuntime(run=loop.run_until_complete, notices=queues, notifier=notifier,
                                       plans=plans, payouts=payouts, renewals=renewals,
                                       providers=providers.providers, chats=chats_for(notifier),
                                       grace_days=settings.grace_days))
    try:
        make_worker(queues.connection).work(burst=burst, with_scheduler=True)
    finally:
        runtime.uninstall()
        events_outlet.uninstall()
        loop.run_until_complete(close_outlet(outlet))
        loop.run_until_complete(telegram.close())
        loop.run_until_complete(close_payout_services(payouts))
        loop.run_until_complete(transport.close())
        client.close()
        loop.close()


def sweeper_for(settings: Settings, queues: RqQueues, providers: ProviderRegistry, clock: Clock) -> Sweeper:
    """The scheduler's reconciliation with every enabled provider that can be asked (billing/sweep.py)."""
    return Sweeper(reconcilers(providers), Ledger(queues, clock),
                   window=timedelta(hours=settings.reconcile_window_hours),
                   interval=timedelta(seconds=settings.reconcile_interval_seconds))


def run_scheduler_service(settings: Settings) -> None:
    """`ymds scheduler`: renewal ticks every SCHEDULER_INTERVAL_SECONDS while this instance holds the Redis
    lease (a second instance waits as a standby); SIGTERM and SIGINT stop it after the current tick."""

    async def serve() -> None:
        client = await init_db(settings.mongodb_uri, settings.mongodb_db)
        queues = queues_for(settings)
        transport = OwnSessionTransport(PROVIDER_TIMEOUT_SECONDS)
        providers = build_providers(settings, transport)
        services = renewal_services(settings, queues, providers, utc_now)
        sweeper = sweeper_for(settings, queues, providers, utc_now)
        lease = scheduler_lease(settings, queues.connection)
        events_outlet.install(event_outlet(settings, queues))  # expiry records its events; the worker sends them
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("scheduler started: a renewal tick every %s s, reconciliation with %s every %s s",
                 settings.scheduler_interval_seconds, ", ".join(r.name for r in sweeper.asked) or "no provider",
                 settings.reconcile_interval_seconds)
        try:
            await run_scheduler(services, lease, utc_now, interval=settings.scheduler_interval_seconds, stop=stop,
                                sweeper=sweeper)
        finally:
            events_outlet.uninstall()
            await transport.close()
            client.close()

    asyncio.run(serve())


def housekeeping_level() -> str:
    """The level logs.configure gave RQ's loggers; passed to work(), which would otherwise reset RQ's
    scheduler to INFO and bring its lock messages back into a text console."""
    return logging.getLevelName(logging.getLogger("rq.worker").getEffectiveLevel())


class InProcessWorker:
    """An RQ worker in a thread of this process whose jobs run on the given event loop.

    The demo and the tests use it: the in-memory database lives on one loop in one process, so jobs
    are handed to that loop instead of opening their own connection.
    """

    def __init__(self, queues: RqQueues, loop: asyncio.AbstractEventLoop, plans: Catalogue, **extra: Any) -> None:
        self._queues = queues
        self._loop = loop
        self.runtime = runtime.JobRuntime(run=self._run_on_loop, notices=queues, notifier=extra.pop(
            "notifier", LogNotifier()), plans=plans, **extra)
        self._thread: threading.Thread | None = None
        self._worker: Any = None
        self._stopping = threading.Event()

    def _run_on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(JOB_RESULT_TIMEOUT_SECONDS)

    async def drain(self) -> bool:
        """Run every queued job (and the jobs they enqueue) to completion; True if any ran."""
        runtime.install(self.runtime)
        worker = make_worker(self._queues.connection, in_thread=True)
        return await asyncio.to_thread(worker.work, burst=True, logging_level="WARNING")

    def start(self) -> None:
        """Work continuously in a daemon thread (the demo)."""
        runtime.install(self.runtime)
        self._worker = make_worker(self._queues.connection, in_thread=True)
        self._thread = threading.Thread(target=self._work_until_stopped, name="ymds-worker", daemon=True)
        self._thread.start()

    def _work_until_stopped(self) -> None:
        # An idle worker returns after IDLE_WAKE_SECONDS, so a stop is noticed that soon, and jobs whose
        # retry delay has passed are moved back to their queues (RQ's scheduler is a separate process,
        # which cannot reach an in-memory Redis).
        scheduler = DueJobs(self._queues.connection)
        while not self._stopping.is_set():
            scheduler.enqueue_due()
            self._worker.work(max_idle_time=IDLE_WAKE_SECONDS, logging_level=housekeeping_level())

    async def stop(self) -> None:
        """Stop after the current job, and wait for that job while this loop still runs it."""
        if self._worker is None or self._thread is None:
            return
        self._stopping.set()
        self._worker.stop_after_current_job()
        await asyncio.to_thread(self._thread.join, STOP_WAIT_SECONDS)
