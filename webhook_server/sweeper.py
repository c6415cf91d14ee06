"""A timer in each web process that sends stranded payments round again.

A verified notification is recorded before its job is queued; if Redis then loses the job (restarted
without persistence, flushed by hand) the provider has already been told 200 and will not deliver again.
The ledger still knows, so this sweeper re-enqueues the unfinished payments whose job is gone, and only
those: a job that failed for good has told the admins once and waits for them, so a sweep never makes it
fail (and alert) again every minute. Enqueues are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from billing.errors import LedgerUnavailable
from webhook_server.keys import LEDGER

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 60
STRANDED_AFTER = timedelta(minutes=2)  # well past the time a healthy queue takes to start a job


async def sweep_once(app: web.Application) -> int:
    """One sweep: how many stranded payments it sent round (0 when the database or Redis is down)."""
    try:
        return await app[LEDGER].requeue_stranded(STRANDED_AFTER)
    except LedgerUnavailable as err:
        log.warning("stranded operations not swept this time: %s", err)
        return 0


async def sweep_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        await sweep_once(app)


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(sweep_forever(app), name="ymds-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
