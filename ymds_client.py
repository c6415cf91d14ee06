"""The owner's side of open-ymds' remote procedures: ask for payment links and a subscription's status
over the Redis our worker listens to. Needs only `redis` and `rq`, none of our code or settings.

    client = YmdsClient("redis://localhost:6379/0")
    for link in client.subscribe_links(user_id, "en"):
        print(link["title"], link["amounts"], link["pay_url"])
    if client.subscription_status(user_id)["active"]:
        ...

Each call enqueues a job by its name on RPC_QUEUE and waits for its result until `timeout`. A job that no
worker takes within the timeout is dropped by RQ, so a late worker never acts on a question nobody waits for.
"""

from __future__ import annotations

import math
from typing import Any

from redis import Redis
from rq import Queue
from rq.results import Result

RPC_QUEUE = "ymds-rpc"
SUBSCRIBE_LINKS = "billing.owner_rpc.generate_subscribe_link"
SUBSCRIPTION_STATUS = "billing.owner_rpc.subscription_status"
DEFAULT_TIMEOUT_SECONDS = 5
RESULT_TTL_SECONDS = 60  # the answer is read at once; nobody needs it a minute later
FAILURE_TTL_SECONDS = 3600  # a failure stays an hour for `ymds jobs` to show
JOB_TIMEOUT_SECONDS = 30


class YmdsError(Exception):
    """Base of the client's errors."""


class YmdsTimeout(YmdsError):
    """No answer in time: no `ymds worker` is running on this Redis, or it is busy."""


class YmdsRefused(YmdsError):
    """open-ymds refused the arguments (a bad user id or language); the message says why."""


class YmdsFailed(YmdsError):
    """The job failed on the worker; the message is its error's last line."""


class YmdsClient:
    def __init__(self, redis_url: str, *, queue: str = RPC_QUEUE, connection: Redis | None = None) -> None:
        self.connection = connection if connection is not None else Redis.from_url(redis_url)
        self._queue = Queue(queue, connection=self.connection)

    def subscribe_links(self, user_id: int, language: str | None = None, *,
                        timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[dict[str, Any]]:
        """One signed payment link per plan: [{"plan", "title", "amounts", "pay_url", "expires_at"}]; amounts
        are integer minor units per currency, expires_at an ISO 8601 UTC time."""
        links: list[dict[str, Any]] = self.call(SUBSCRIBE_LINKS, user_id, language, timeout=timeout)
        return links

    def subscription_status(self, user_id: int, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> dict[str, Any]:
        """{"active": bool, "status": "none"|"active"|"past_due"|"expired", "plan", "current_period_end",
        "auto_renew"}."""
        status: dict[str, Any] = self.call(SUBSCRIPTION_STATUS, user_id, timeout=timeout)
        return status

    def call(self, function: str, *args: Any, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Any:
        """Enqueue `function` (a dotted path the worker imports) and wait up to `timeout` seconds for it."""
        wait = max(1, math.ceil(timeout))  # RQ blocks on the result stream in whole seconds
        job = self._queue.enqueue(function, *args, ttl=wait, result_ttl=RESULT_TTL_SECONDS,
                                  failure_ttl=FAILURE_TTL_SECONDS, job_timeout=JOB_TIMEOUT_SECONDS)
        result = job.latest_result(timeout=wait)
        if result is None:
            raise YmdsTimeout(f"no answer from open-ymds within {wait} s on queue {self._queue.name!r}: "
                              f"is `ymds worker` running on this Redis?")
        if result.type is Result.Type.SUCCESSFUL:
            return result.return_value
        error = _last_line(result.exc_string)
        if error.startswith(("billing.owner_rpc.RequestRefused:", "RequestRefused:")):
            raise YmdsRefused(error.partition(":")[2].strip())
        raise YmdsFailed(error or f"job {job.id} failed")

    def close(self) -> None:
        self.connection.close()


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""
