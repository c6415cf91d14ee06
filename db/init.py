"""Open the database: a real MongoDB URI, or mongomock-motor in memory for `memory://`."""

from __future__ import annotations

from typing import Any

from beanie import init_beanie
from motor.motor_asyncio import AsyncIOMotorClient

from db.models import DOCUMENT_MODELS
from db.payme import drop_retired_indexes
from db.payouts import settle_payout_rows

MEMORY_URI = "memory://"


async def init_db(uri: str, db_name: str) -> Any:
    """Connect, register the documents and create their indexes; returns the client."""
    if uri == MEMORY_URI:
        from mongomock_motor import AsyncMongoMockClient

        client: Any = AsyncMongoMockClient(tz_aware=True)
    else:
        client = AsyncIOMotorClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    await init_beanie(database=client[db_name], document_models=DOCUMENT_MODELS)
    await drop_retired_indexes(client[db_name])
    await settle_payout_rows(client[db_name])
    return client


async def ping(client: Any) -> None:
    """Raise when the database does not answer."""
    await client.admin.command("ping")
