"""bench/mongo_wire.py, the database the separate processes share in the benchmark and in
tests/e2e/test_production_processes.py: what the ledger relies on must come back through the wire as a real
MongoDB answers it (duplicate keys as DuplicateKeyError, conditional updates, upserts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from bench.mongo_wire import Database, serve


@pytest.fixture
async def collection() -> AsyncIterator[AsyncIOMotorCollection]:
    database = Database()
    server = await asyncio.start_server(lambda reader, writer: serve(database, reader, writer), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client: AsyncIOMotorClient = AsyncIOMotorClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                                                    serverSelectionTimeoutMS=5000)
    operations = client["ledger"]["operations"]
    await operations.create_index([("provider", 1), ("operation_id", 1)], unique=True, name="operation_unique")
    yield operations
    await asyncio.to_thread(client.close)  # its endSessions needs this loop, where the server runs, to answer
    server.close()
    await server.wait_closed()


async def test_a_second_insert_of_a_unique_key_is_a_duplicate_key_error(collection):
    await collection.insert_one({"provider": "yoomoney", "operation_id": "1", "amount": 29900})
    with pytest.raises(DuplicateKeyError):
        await collection.insert_one({"provider": "yoomoney", "operation_id": "1", "amount": 1})
    assert await collection.count_documents({}) == 1
    assert (await collection.find_one({"operation_id": "1"}))["amount"] == 29900


async def test_an_update_onto_a_taken_unique_key_is_a_duplicate_key_error(collection):
    await collection.insert_many([{"provider": "payme", "operation_id": "a"},
                                  {"provider": "payme", "operation_id": "b"}])
    with pytest.raises(DuplicateKeyError):
        await collection.update_one({"operation_id": "b"}, {"$set": {"operation_id": "a"}})
    with pytest.raises(DuplicateKeyError):
        await collection.find_one_and_update({"operation_id": "b"}, {"$set": {"operation_id": "a"}})
    assert sorted(await collection.distinct("operation_id")) == ["a", "b"]


async def test_conditional_updates_and_upserts_report_what_they_did(collection):
    await collection.insert_one({"provider": "click", "operation_id": "7", "status": "recorded"})
    moved = await collection.update_one({"operation_id": "7", "status": "recorded"}, {"$set": {"status": "applied"}})
    again = await collection.update_one({"operation_id": "7", "status": "recorded"}, {"$set": {"status": "applied"}})
    assert (moved.matched_count, moved.modified_count) == (1, 1)
    assert (again.matched_count, again.modified_count) == (0, 0), "the second transition finds nothing to move"
    upserted = await collection.find_one_and_update(
        {"provider": "click", "operation_id": "8"}, {"$setOnInsert": {"status": "recorded"}}, upsert=True,
        return_document=ReturnDocument.AFTER)
    assert upserted["status"] == "recorded"
    found = [doc["operation_id"] async for doc in collection.find({}).sort("operation_id", -1).limit(1)]
    assert found == ["8"]
    assert (await collection.delete_many({"provider": "click"})).deleted_count == 2


async def test_a_command_it_does_not_know_is_refused_by_name(collection):
    with pytest.raises(OperationFailure, match="no such command") as refused:
        await collection.database.command({"compact": "operations"})
    assert refused.value.code == 59


async def test_lookups_through_its_indexes_follow_updates_of_the_indexed_field(collection):
    await collection.create_index([("label", 1)], unique=True, name="label_unique")
    await collection.insert_many([{"provider": "yoomoney", "operation_id": str(n), "label": f"L{n}"} for n in range(3)])
    await collection.update_one({"label": "L1"}, {"$set": {"label": "moved"}})
    assert await collection.find_one({"label": "L1"}) is None
    assert (await collection.find_one({"label": "moved"}))["operation_id"] == "1"
    with pytest.raises(DuplicateKeyError):  # the unique check sees the value an update is writing
        await collection.update_one({"label": "L2"}, {"$set": {"label": "moved"}})
    with pytest.raises(DuplicateKeyError):
        await collection.find_one_and_update({"label": "L0"}, {"$set": {"label": "moved"}})
    await collection.delete_one({"label": "moved"})
    assert await collection.find_one({"label": "moved"}) is None
    assert [doc["label"] async for doc in collection.find({"provider": "yoomoney"})] == ["L0", "L2"]
    assert await collection.count_documents({"$and": [{"label": "L2"}, {"provider": "yoomoney"}]}) == 1


async def test_it_counts_the_commands_it_runs_by_name(collection):
    before = (await collection.database.command({"benchCommandCounts": 1}))["counts"]
    await collection.insert_one({"provider": "payme", "operation_id": "c"})
    await collection.find_one({"operation_id": "c"})
    after = (await collection.database.command({"benchCommandCounts": 1}))["counts"]
    assert after["insert"] - before.get("insert", 0) == 1
    assert after["find"] - before.get("find", 0) == 1


async def test_it_counts_the_lookups_no_index_answers(collection):
    await collection.insert_one({"provider": "payme", "operation_id": "s", "label": "L"})
    await collection.find_one({"provider": "payme", "operation_id": "s"})  # the unique index's whole key
    await collection.find_one({"label": "L"})  # no index on operations.label
    scans = (await collection.database.command({"benchCommandCounts": 1}))["scans"]
    assert scans == {"operations {label}": 1}


async def test_a_sorted_page_through_an_index_answers_as_mongomock_and_follows_writes(collection):
    """The dashboard's pages: a sort on an indexed field with a limit walks the index's order, first matches
    first, ties in the stored order; an insert, an update of the field or a delete changes the next answer."""
    await collection.create_index([("recorded_at", -1)], name="recorded")
    await collection.insert_many([{"provider": "p", "operation_id": str(n), "recorded_at": n % 7, "status": n % 2}
                                  for n in range(40)])

    async def page(filter: dict, direction: int = -1) -> list[str]:
        cursor = collection.find(filter).sort("recorded_at", direction).limit(5)
        return [doc["operation_id"] async for doc in cursor]

    assert await page({}) == ["6", "13", "20", "27", "34"]
    assert await page({"status": 0, "recorded_at": {"$lt": 6}}) == ["12", "26", "4", "18", "32"]
    assert await page({}, 1) == ["0", "7", "14", "21", "28"]
    await collection.insert_one({"provider": "p", "operation_id": "new", "recorded_at": 99})
    await collection.update_one({"operation_id": "13"}, {"$set": {"recorded_at": -1}})
    await collection.delete_one({"operation_id": "20"})
    assert await page({}) == ["new", "6", "27", "34", "5"]
    assert (await page({}, 1))[0] == "13"
    projected = collection.find({}, {"operation_id": 1}).sort("recorded_at", -1).limit(2)
    assert [set(doc) async for doc in projected] == [{"_id", "operation_id"}] * 2
