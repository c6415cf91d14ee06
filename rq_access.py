"""Redis and RQ: the connection, the queue names, the enqueue helpers and the worker classes.

`REDIS_URL=memory://` selects an in-process fakeredis server (the demo); anything else is a real
Redis. Job ids derive from (provider, operation_id), so a duplicate enqueue is refused by RQ.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import redis
from redis import Redis
from redis.exceptions import LockError
from rq import Callback, Queue, Retry, SimpleWorker
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

import logs
from billing import jobs
from billing.errors import LedgerUnavailable
from billing.payouts import CREATE_RETRIES

log = logging.getLogger(__name__)

FULFILMENT_QUEUE = "ymds-fulfilment"
NOTICES_QUEUE = "ymds-notices"
RPC_QUEUE = "ymds-rpc"  # the owner's own bot asks here (billing/owner_rpc.py, ymds_client.py)
EVENTS_QUEUE = "ymds-events"  # outbound events to the owner's systems: a slow receiver never delays a payment
# the order a worker takes jobs in: payments first, then the owner bot's questions (someone waits for the answer),
# the user's notices, and last the events to the owner's systems
QUEUE_NAMES = (FULFILMENT_QUEUE, RPC_QUEUE, NOTICES_QUEUE, EVENTS_QUEUE)
MEMORY_URL = "memory://"
JOB_TIMEOUT_SECONDS = 120
RESULT_TTL_SECONDS = 7 * 24 * 3600
ALERT_RETRY_INTERVALS = [10, 60, 300]


@lru_cache(maxsize=1)
def _memory_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


def connect(url: str, *, blocking_reads: bool = False) -> Redis:
    """A Redis client for REDIS_URL. Short timeouts make an outage fail a request fast instead of
    hanging it; a worker (`blocking_reads`) waits on BLPOP for minutes, so its reads have no timeout."""
    if url == MEMORY_URL:
        import fakeredis

        return fakeredis.FakeRedis(server=_memory_server())
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=None if blocking_reads else 5, health_check_interval=30
    )


def job_id(kind: str, provider: str, operation_id: str) -> str:
    """RQ allows only [A-Za-z0-9_-] in ids; operation ids may hold anything, so hash them."""
    digest = hashlib.sha256(f"{provider}\x00{operation_id}".encode()).hexdigest()[:40]
    return f"{kind}-{provider}-{digest}"


class RqQueues:
    """The domain's FulfilmentQueue and NoticeQueue over RQ, with the retry policy from settings."""

    def __init__(self, connection: Redis, *, max_retries: int, retry_intervals: list[int]) -> None:
        self.connection = connection
        self.fulfilment = Queue(FULFILMENT_QUEUE, connection=connection)
        self.notices = Queue(NOTICES_QUEUE, connection=connection)
        self.events = Queue(EVENTS_QUEUE, connection=connection)
        self._retry = Retry(max=max_retries, interval=retry_intervals) if max_retries else None
        self.retry_intervals = retry_intervals

    async def enqueue_fulfilment(self, provider: str, operation_id: str, label: str) -> None:
        await self._from_loop(self.fulfilment, job_id("fulfil", provider, operation_id), jobs.fulfil_payment,
                              provider, operation_id, label, alert=True)

    async def enqueue_reversal(self, provider: str, operation_id: str, reason: str) -> None:
        await self._from_loop(self.fulfilment, job_id("reverse", provider, operation_id), jobs.reverse,
                              provider, operation_id, reason, alert=True)

    def enqueue_payment_notice(self, provider: str, operation_id: str) -> None:
        self._enqueue_once(
            self.notices, job_id("notice", provider, operation_id), jobs.notify_payment, provider, operation_id
        )

    async def enqueue_hold_notice(self, provider: str, operation_id: str) -> None:
        await self._from_loop(self.notices, job_id("hold-notice", provider, operation_id), jobs.notify_hold,
                              provider, operation_id)

    async def enqueue_extra(self, provider: str, operation_id: str) -> None:
        await self._from_loop(self.fulfilment, job_id("extra", provider, operation_id), jobs.settle_extra_payment,
                              provider, operation_id, alert=True)

    def enqueue_extra_from_job(self, provider: str, operation_id: str) -> None:
        self._enqueue_once(self.fulfilment, job_id("extra", provider, operation_id), jobs.settle_extra_payment,
                           provider, operation_id, alert=True)

    async def enqueue_receipt_notice(self, provider: str, operation_id: str) -> None:
        await self._from_loop(self.notices, job_id("receipt-notice", provider, operation_id), jobs.notify_receipt,
                              provider, operation_id)

    def enqueue_receipt_notice_from_job(self, provider: str, operation_id: str) -> None:
        self._enqueue_once(self.notices, job_id("receipt-notice", provider, operation_id), jobs.notify_receipt,
                           provider, operation_id)

    def enqueue_fiscal_receipt(self, provider: str, operation_id: str) -> None:
        self._enqueue_once(self.fulfilment, job_id("fiscal-receipt", provider, operation_id),
                           jobs.submit_fiscal_receipt, provider, operation_id, alert=True)

    def enqueue_reversal_notice(self, provider: str, operation_id: str) -> None:
        self._enqueue_once(
            self.notices, job_id("reversal-notice", provider, operation_id), jobs.notify_reversal,
            provider, operation_id,
        )

    def enqueue_chat_access(self, user_id: int, period_end: int) -> None:
        self._enqueue_once(self.notices, f"chat-access-{user_id}-{period_end}", jobs.grant_chat_access, user_id,
                           period_end, alert=True)

    # no failure alert: a removal that failed (429 past its retries, the bot without rights, which the admin chat
    # hears of once a day) is sent round again by the scheduler's next sweep
    def enqueue_chat_removal(self, user_id: int, chat_id: int, reason: str, since: int) -> None:
        self._enqueue_once(self.notices, f"chat-removal-{user_id}-{abs(chat_id)}-{reason}-{since}",
                           jobs.remove_from_chat, user_id, chat_id, reason)

    async def schedule_chat_removal(self, user_id: int, chat_id: int, reason: str, since: int) -> None:
        await self._from_loop(self.notices, f"chat-removal-{user_id}-{abs(chat_id)}-{reason}-{since}",
                              jobs.remove_from_chat, user_id, chat_id, reason)

    async def enqueue_refund_check(self, provider: str, refund_id: str, check: int) -> None:
        await self._from_loop(self.fulfilment, job_id("refund-check", provider, f"{refund_id}:{check}"),
                              jobs.check_pending_refund, provider, refund_id, check, alert=True)

    async def enqueue_event_delivery(self, event_id: str, number: int) -> None:
        """One delivery attempt of an outbound event (billing/events/delivery.py); its redeliveries are scheduled
        by the event's own record, so RQ's retries only cover a job that crashed (the database away)."""
        await self._from_loop(self.events, f"event-{event_id}-{number}", jobs.deliver_event, event_id, number,
                              alert=True)

    async def enqueue_renewal(self, user_id: int, period: int, run: str) -> None:
        await self._from_loop(self.fulfilment, f"renew-{user_id}-{period}-{run}", jobs.renew, user_id, period, run,
                              alert=True)

    async def enqueue_renewal_notice(self, user_id: int, period: int, notice: str) -> None:
        await self._from_loop(self.notices, f"renewal-notice-{user_id}-{period}-{notice.replace(':', '-')}",
                              jobs.notify_renewal, user_id, period, notice)

    async def enqueue_forget_method(self, user_id: int, method_key: str) -> None:
        await self._from_loop(self.fulfilment, f"forget-method-{user_id}-{method_key}", jobs.forget_method,
                              user_id, alert=True)

    async def enqueue_stranded(self, operations: list[tuple[str, str, str]]) -> int:
        """Fulfilment for each (provider, operation_id, label) whose job is gone (Redis lost it, or its result
        expired). A job that exists in any state is left as it is: a failed one has told the admins once and
        waits for them (`ymds jobs`, `ymds jobs requeue`), and requeueing it on every sweep would tell them every
        minute.
        Returns how many were queued."""

        def enqueue() -> int:
            ids = [job_id("fulfil", provider, operation_id) for provider, operation_id, _ in operations]
            with self.connection.pipeline(transaction=False) as pipe:
                for id_ in ids:
                    pipe.exists(Job.key_for(id_))
                present = pipe.execute()
            gone = [operation for operation, exists in zip(operations, present, strict=True) if not exists]
            for provider, operation_id, label in gone:
                self._enqueue_once(self.fulfilment, job_id("fulfil", provider, operation_id), jobs.fulfil_payment,
                                   provider, operation_id, label, alert=True)
            return len(gone)

        try:
            return await asyncio.to_thread(enqueue)
        except redis.RedisError as err:
            raise LedgerUnavailable(f"redis: {type(err).__name__}") from err

    async def _from_loop(self, queue: Queue, id_: str, func: Any, *args: str | int, alert: bool = False) -> None:
        """Enqueue from the event loop without blocking it; a Redis failure becomes LedgerUnavailable."""
        try:
            await asyncio.to_thread(self._enqueue_once, queue, id_, func, *args, alert=alert)
        except redis.RedisError as err:
            raise LedgerUnavailable(f"redis: {type(err).__name__}") from err

    def _enqueue_once(self, queue: Queue, id_: str, func: Any, *args: str | int, alert: bool = False) -> None:
        """Enqueue unless a job with this id exists; a failed or stopped one is sent round again.

        With `alert`, a job that fails for good (no retry left) tells the admin chat through a notice job.
        """
        try:
            queue.enqueue(
                func, *args, job_id=id_, unique=True, retry=self._retry, meta={"request_id": logs.request_id.get()},
                job_timeout=JOB_TIMEOUT_SECONDS, result_ttl=RESULT_TTL_SECONDS, failure_ttl=RESULT_TTL_SECONDS,
                on_failure=Callback(alert_when_failed_for_good) if alert else None,
            )
        except DuplicateJobError:
            existing = Job.fetch(id_, connection=self.connection)
            if existing.get_status() in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
                log.info("job %s had %s; requeued", id_, existing.get_status())
                existing.requeue()

    async def enqueue_payout(self, label: str, round_: int = 0) -> None:
        """The payout job, once per claim and round (an admin's "send again" is a new round); RQ retries it
        CREATE_RETRIES times with growing delays."""
        retry = Retry(max=CREATE_RETRIES, interval=self.retry_intervals[:CREATE_RETRIES])
        await self._payout_job(self.fulfilment, job_id("payout", "konsol", f"{label}:{round_}" if round_ else label),
                               jobs.create_payout, label, retry=retry, alert=True)

    async def enqueue_payout_poll(self, label: str, step: int, delay_seconds: int, series: str = "") -> None:
        """One look at a payout; `series` keeps apart the look-ups of an id an admin gave for an unknown claim."""
        key = f"{label}:{series}:{step}" if series else f"{label}:{step}"
        await self._payout_job(self.fulfilment, job_id("payout-poll", "konsol", key), jobs.poll_payout,
                               label, step, delay_seconds=delay_seconds)

    async def enqueue_payout_notice(self, label: str, event: str, detail: str = "") -> None:
        await self._payout_job(self.notices, job_id("payout-notice", "konsol", f"{label}:{event}"),
                               jobs.notify_payout, label, event, detail, retry=self._retry)

    async def enqueue_claim_expiry(self, label: str, delay_seconds: int) -> None:
        await self._payout_job(self.fulfilment, job_id("payout-expiry", "konsol", f"{label}:{delay_seconds}"),
                               jobs.expire_payout_claim, label, delay_seconds=delay_seconds)

    async def _payout_job(self, queue: Queue, id_: str, func: Any, *args: str | int, retry: Retry | None = None,
                          delay_seconds: int = 0, alert: bool = False) -> None:
        """Enqueue (or schedule) a payout job unless one with this id exists; a Redis failure becomes
        LedgerUnavailable."""
        options: dict[str, Any] = {
            "job_id": id_, "unique": True, "retry": retry, "meta": {"request_id": logs.request_id.get()},
            "job_timeout": JOB_TIMEOUT_SECONDS, "result_ttl": RESULT_TTL_SECONDS, "failure_ttl": RESULT_TTL_SECONDS,
            "on_failure": Callback(alert_when_failed_for_good) if alert else None,
        }

        def enqueue() -> None:
            try:
                if delay_seconds:
                    queue.enqueue_in(timedelta(seconds=delay_seconds), func, *args, **options)
                else:
                    queue.enqueue(func, *args, **options)
            except DuplicateJobError:
                existing = Job.fetch(id_, connection=self.connection)
                if existing.get_status() in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
                    existing.requeue()

        try:
            await asyncio.to_thread(enqueue)
        except redis.RedisError as err:
            raise LedgerUnavailable(f"redis: {type(err).__name__}") from err

    def enqueue_failure_alert(self, failed: Job, error: str) -> None:
        """One alert per final failure: a job requeued by hand that fails again alerts again."""
        failure = failed.ended_at.strftime("%Y%m%d%H%M%S%f") if failed.ended_at else "0"
        self._enqueue_once(self.notices, f"alert-{failed.id}-{failure}", jobs.alert_job_failure,
                           failed.id, describe(failed), error)

    def depth(self) -> int:
        return sum(len(queue) for queue in (self.fulfilment, self.notices, self.events))


def describe(job: Job) -> str:
    """A job as an operator reads it: the function's short name and its arguments (ids, never secrets)."""
    return f"{job.func_name.rsplit('.', 1)[-1]}({', '.join(map(str, job.args))})"


def alert_when_failed_for_good(job: Job, connection: Redis, exc_type: type, exc_value: BaseException,
                               traceback: Any) -> None:
    """RQ's failure callback: runs at every failure; only the last one, with no retry left, alerts."""
    if job.retries_left:
        return
    error = f"{exc_type.__name__}: {exc_value}".splitlines()[0][:300]
    RqQueues(connection, max_retries=len(ALERT_RETRY_INTERVALS), retry_intervals=ALERT_RETRY_INTERVALS
             ).enqueue_failure_alert(job, error)


@dataclass(frozen=True, slots=True)
class FailedJob:
    id: str
    queue: str
    description: str
    ended_at: str
    error: str


def failed_jobs(connection: Redis) -> list[FailedJob]:
    """Every job in the failed-job registries, oldest first."""
    found = []
    for name in QUEUE_NAMES:
        registry = FailedJobRegistry(name, connection=connection)
        for job in Job.fetch_many(registry.get_job_ids(), connection=connection):
            if job is None:
                continue
            last_line = (job.latest_result().exc_string if job.latest_result() else "") or ""
            found.append(FailedJob(job.id, name, describe(job), job.ended_at.isoformat() if job.ended_at else "",
                                   last_line.strip().splitlines()[-1] if last_line.strip() else ""))
    return sorted(found, key=lambda job: job.ended_at)


def failed_job_count(connection: Redis) -> int:
    """How many jobs wait in the failed-job registries (cheap: one ZCARD per queue)."""
    return sum(FailedJobRegistry(name, connection=connection).count for name in QUEUE_NAMES)


def requeue_failed(connection: Redis, ids: list[str] | None = None) -> list[str]:
    """Send failed jobs round again (all of them when `ids` is None); returns the ids requeued."""
    requeued = []
    for name in QUEUE_NAMES:
        registry = FailedJobRegistry(name, connection=connection)
        for id_ in registry.get_job_ids():
            if ids is None or id_ in ids:
                registry.requeue(id_)
                requeued.append(id_)
    return requeued


class DueJobs:
    """Moves scheduled jobs (retries waiting out their delay) whose time has come back to their queues, as
    RQ's scheduler process does; for the in-process worker, whose Redis another process may not reach."""

    def __init__(self, connection: Redis) -> None:
        # RQScheduler sets its logger's level; keep the one logs.configure chose (quiet in a text console)
        level = logging.getLogger("rq.scheduler").getEffectiveLevel()
        self._scheduler = RQScheduler(list(QUEUE_NAMES), connection=connection, logging_level=level)

    def enqueue_due(self) -> None:
        if self._scheduler.acquire_locks():
            self._scheduler.enqueue_scheduled_jobs()


class YmdsWorker(SimpleWorker):
    """Runs jobs in this process (one database client for all of them), logging under the request id of the
    web request that enqueued each job."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        token = logs.request_id.set(str(job.meta.get("request_id", "")))
        try:
            super().execute_job(job, queue)
        finally:
            logs.request_id.reset(token)


class ThreadWorker(YmdsWorker):
    """A worker that can run outside the main thread (the demo, the tests): no signal handlers,
    timer-based job timeouts, and a stop that works without a signal."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        return None

    def stop_after_current_job(self) -> None:
        """RQ's request_stop expects to run as a signal handler in the worker's own thread; from another
        thread, setting the flag its work loop checks before each dequeue is the warm shutdown."""
        self._stop_requested = True


def make_worker(connection: Redis, *, in_thread: bool = False) -> YmdsWorker:
    queues = [Queue(name, connection=connection) for name in QUEUE_NAMES]
    worker_class = ThreadWorker if in_thread else YmdsWorker
    return worker_class(queues, connection=connection)


class RedisLease:
    """The renewal scheduler's lease: a Redis lock with an expiry (redis-py's Lock, whose renewals check the
    owner atomically), so a second `ymds scheduler` waits while the first lives and takes over within
    `ttl_seconds` when it dies."""

    def __init__(self, connection: Redis, *, ttl_seconds: float, name: str = "ymds:renewal-scheduler") -> None:
        self._lock = connection.lock(name, timeout=ttl_seconds, blocking=False, thread_local=False)

    def hold(self) -> bool:
        try:
            if self._lock.owned():
                return bool(self._lock.reacquire())
            return bool(self._lock.acquire(blocking=False))
        except LockError:  # it expired and another instance took it between the two calls
            return False

    def release(self) -> None:
        if self._lock.owned():
            self._lock.release()
