"""`ymds worker`'s loop: a real RQ SimpleWorker on the real Redis, one database client for all its jobs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from beanie import init_beanie
from mongomock_motor import AsyncMongoMockClient

from billing.clock import utc_now
from billing.invoices import create_invoice
from billing.ledger import Ledger
from billing.money import Money
from billing.providers.base import EventKind, VerifiedEvent
from db import Invoice, InvoiceStatus
from db.models import DOCUMENT_MODELS
from tests.conftest import make_settings
from webhook_server import runner

YMDS = Path(sys.executable).with_name("ymds")


def test_worker_opens_the_database_once_and_fulfils_every_queued_job(monkeypatch, redis_conn, plans):
    database = AsyncMongoMockClient(tz_aware=True)
    opened: list[str] = []

    async def open_database(uri: str, name: str) -> Any:
        opened.append(uri)
        await init_beanie(database=database[name], document_models=DOCUMENT_MODELS)
        return database

    settings = make_settings()

    async def seed() -> list[str]:
        await open_database("seed", settings.mongodb_db)
        ledger = Ledger(runner.queues_for(settings))
        labels = []
        for user_id in (1, 2, 3):
            invoice = await create_invoice(plans.get("month"), user_id, now=utc_now(), ttl_seconds=3600)
            await ledger.record(VerifiedEvent("yoomoney", f"op-{user_id}", invoice.label,
                                              Money(29900, "RUB"), EventKind.PAYMENT))
            labels.append(invoice.label)
        return labels

    labels = asyncio.run(seed())
    monkeypatch.setattr(runner, "init_db", open_database)
    runner.run_worker(settings, plans, burst=True)

    async def statuses() -> list[InvoiceStatus]:
        return [(await Invoice.find_one(Invoice.label == label)).status for label in labels]

    assert asyncio.run(statuses()) == [InvoiceStatus.PAID] * 3
    assert opened == ["seed", settings.mongodb_uri], "the worker opened the database once for three jobs"


def test_services_refuse_the_in_process_stores(tmp_path):
    for service in ("web", "worker"):
        result = subprocess.run(
            [str(YMDS), service], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={"PATH": "", "ENVIRONMENT": "development", "LINK_SECRET": "x",
                 "PLANS_FILE": str(Path(__file__).parents[1] / "plans.toml")},
        )
        assert result.returncode == 2
        assert "MONGODB_URI: memory:// lives inside one process" in result.stderr
