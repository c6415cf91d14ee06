"""A MongoDB wire-protocol front for mongomock, so the benchmark can run web, workers and bot as separate
processes sharing one database, as they run in production.

    python -m bench.mongo_wire --port 27117

No MongoDB server can be installed on these machines. This process answers pymongo (and so motor and
Beanie) over TCP with OP_MSG, and OP_QUERY for the first handshake, and executes each command on one
in-memory mongomock client, one command at a time. It understands the commands our code sends; any other
answers CommandNotFound. Equality lookups on indexed fields go through indexes of its own (bench.mongo_index),
as a MongoDB server's would, instead of mongomock's scans. It counts the commands it runs by name, and
answers `{"benchCommandCounts": 1}` with those counts, so that the benchmark can say how many round trips a
payment takes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

import bson
import mongomock
from pymongo import ReturnDocument

from bench.mongo_index import IndexedDatabase

log = logging.getLogger(__name__)

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
HEADER = struct.Struct("<iiii")
CHECKSUM_PRESENT, MORE_TO_COME = 1, 2
MAX_WIRE_VERSION = 17  # MongoDB 6.0
DUPLICATE_KEY = 11000
Document = dict[str, Any]


class CommandFailed(Exception):
    def __init__(self, code: int, message: str, code_name: str) -> None:
        super().__init__(message)
        self.code, self.code_name = code, code_name


def parse_op_msg(payload: bytes) -> tuple[int, Document]:
    """(flags, command): the body section with each document-sequence section added under its identifier."""
    (flags,) = struct.unpack_from("<I", payload)
    end = len(payload) - (4 if flags & CHECKSUM_PRESENT else 0)
    offset, body, sequences = 4, None, {}
    while offset < end:
        kind = payload[offset]
        offset += 1
        if kind == 0:
            (size,) = struct.unpack_from("<i", payload, offset)
            body = bson.decode(payload[offset:offset + size])
            offset += size
        else:
            (size,) = struct.unpack_from("<i", payload, offset)
            section_end = offset + size
            name_end = payload.index(b"\0", offset + 4)
            name = payload[offset + 4:name_end].decode()
            sequences[name] = bson.decode_all(payload[name_end + 1:section_end])
            offset = section_end
    if body is None:
        raise CommandFailed(40571, "OP_MSG without a body section", "InvalidOptions")
    body.update(sequences)
    return flags, body


def parse_op_query(payload: bytes) -> Document:
    name_end = payload.index(b"\0", 4)
    offset = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", payload, offset)
    query = bson.decode(payload[offset:offset + size])
    return dict(query.get("$query", query))


def op_msg(request_id: int, reply: Document) -> bytes:
    payload = struct.pack("<I", 0) + b"\0" + bson.encode(reply)
    return HEADER.pack(HEADER.size + len(payload), 0, request_id, OP_MSG) + payload


def op_reply(request_id: int, reply: Document) -> bytes:
    payload = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply)
    return HEADER.pack(HEADER.size + len(payload), 0, request_id, OP_REPLY) + payload


def cursor(namespace: str, documents: list[Document]) -> Document:
    """Every result in the first batch: the client never needs getMore."""
    return {"cursor": {"firstBatch": documents, "id": 0, "ns": namespace}, "ok": 1.0}


def write_error(index: int, err: mongomock.DuplicateKeyError) -> Document:
    return {"index": index, "code": DUPLICATE_KEY, "errmsg": str(err)}


class Database:
    """Executes commands on one mongomock client."""

    def __init__(self) -> None:
        self.client = mongomock.MongoClient()
        self.databases: dict[str, IndexedDatabase] = {}
        self.connections = 0
        self.counts: Counter[str] = Counter()
        self.commands: dict[str, Callable[[mongomock.Database, Document], Document]] = {
            "benchCommandCounts": self.command_counts,
            "hello": self.hello, "ismaster": self.hello, "isMaster": self.hello,
            "ping": ok, "endSessions": ok, "buildInfo": build_info,
            "insert": insert, "find": find, "update": update, "delete": delete, "findAndModify": find_and_modify,
            "aggregate": aggregate, "count": count, "distinct": distinct,
            "createIndexes": create_indexes, "listIndexes": list_indexes, "dropIndexes": drop_indexes,
            "listCollections": list_collections, "create": create, "drop": drop,
            "killCursors": kill_cursors,
        }

    def run(self, command: Document) -> Document:
        name = next(iter(command))
        self.counts[name] += 1
        handler = self.commands.get(name)
        if handler is None:
            return failure(CommandFailed(59, f"no such command: '{name}'", "CommandNotFound"))
        db_name = command.get("$db", "admin")
        database = self.databases.get(db_name)
        if database is None:
            database = self.databases[db_name] = IndexedDatabase(self.client[db_name])
        try:
            return handler(database, command)  # type: ignore[arg-type]  # a mongomock.Database seen through indexes
        except CommandFailed as err:
            return failure(err)
        except mongomock.DuplicateKeyError as err:
            return failure(CommandFailed(DUPLICATE_KEY, str(err), "DuplicateKey"))
        except mongomock.OperationFailure as err:
            return failure(CommandFailed(err.code or 2, str(err), "BadValue"))
        finally:
            database.refresh()

    def command_counts(self, _db: mongomock.Database, _command: Document) -> Document:
        """The commands run so far, by name (this one included), and the lookups no index answered."""
        scans = sum((database.scans() for database in self.databases.values()), Counter())
        return {"counts": dict(self.counts), "scans": dict(scans), "ok": 1.0}

    def hello(self, _db: mongomock.Database, _command: Document) -> Document:
        return {
            "helloOk": True, "ismaster": True, "isWritablePrimary": True, "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000,
            "localTime": datetime.datetime.now(datetime.UTC), "logicalSessionTimeoutMinutes": 30,
            "connectionId": self.connections, "minWireVersion": 0, "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False, "ok": 1.0,
        }


def failure(err: CommandFailed) -> Document:
    return {"ok": 0.0, "errmsg": str(err), "code": err.code, "codeName": err.code_name}


def ok(_db: mongomock.Database, _command: Document) -> Document:
    return {"ok": 1.0}


def build_info(_db: mongomock.Database, _command: Document) -> Document:
    return {"version": "6.0.0", "versionArray": [6, 0, 0, 0], "maxBsonObjectSize": 16 * 1024 * 1024, "ok": 1.0}


def insert(db: mongomock.Database, command: Document) -> Document:
    collection, errors, inserted = db[command["insert"]], [], 0
    for index, document in enumerate(command["documents"]):
        try:
            collection.insert_one(document)
            inserted += 1
        except mongomock.DuplicateKeyError as err:
            errors.append(write_error(index, err))
            if command.get("ordered", True):
                break
    return {"n": inserted, "ok": 1.0, **({"writeErrors": errors} if errors else {})}


def find(db: mongomock.Database, command: Document) -> Document:
    sort, limit = command.get("sort") or {}, abs(command.get("limit") or 0)
    projection = command.get("projection") or {}
    included = all(value in (1, True) and "." not in name for name, value in projection.items())
    if len(sort) == 1 and limit and not command.get("skip") and included:
        [(field, direction)] = sort.items()
        first = db[command["find"]].first_sorted(command.get("filter", {}), field, direction < 0, limit)
        if first is not None:  # an index led by the sort field answers a page, as MongoDB's would
            if projection:  # the fields named (as Beanie names its model's), and _id
                first = [{name: value for name, value in document.items() if name in projection or name == "_id"}
                         for document in first]
            return cursor(f"{db.name}.{command['find']}", first)
    found = db[command["find"]].find(command.get("filter", {}), command.get("projection"))
    if command.get("sort"):
        found = found.sort(list(command["sort"].items()))
    if command.get("skip"):
        found = found.skip(command["skip"])
    if command.get("limit"):
        found = found.limit(abs(command["limit"]))
    return cursor(f"{db.name}.{command['find']}", list(found))


def update(db: mongomock.Database, command: Document) -> Document:
    collection = db[command["update"]]
    matched = modified = 0
    upserted: list[Document] = []
    errors: list[Document] = []
    for index, statement in enumerate(command["updates"]):
        options = {"upsert": statement.get("upsert", False)}
        if statement.get("arrayFilters"):
            options["array_filters"] = statement["arrayFilters"]
        change = statement["u"]
        try:
            if isinstance(change, dict) and not any(key.startswith("$") for key in change):
                options.pop("array_filters", None)
                result = collection.replace_one(statement["q"], change, **options)
            elif statement.get("multi"):
                result = collection.update_many(statement["q"], change, **options)
            else:
                result = collection.update_one(statement["q"], change, **options)
        except mongomock.DuplicateKeyError as err:
            errors.append(write_error(index, err))
            if command.get("ordered", True):
                break
            continue
        matched += result.matched_count
        modified += result.modified_count
        if result.upserted_id is not None:
            upserted.append({"index": index, "_id": result.upserted_id})
    reply: Document = {"n": matched + len(upserted), "nModified": modified, "ok": 1.0}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    return reply


def delete(db: mongomock.Database, command: Document) -> Document:
    collection, removed = db[command["delete"]], 0
    for statement in command["deletes"]:
        if statement.get("limit", 0) == 1:
            removed += collection.delete_one(statement["q"]).deleted_count
        else:
            removed += collection.delete_many(statement["q"]).deleted_count
    return {"n": removed, "ok": 1.0}


def find_and_modify(db: mongomock.Database, command: Document) -> Document:
    collection = db[command["findAndModify"]]
    query, sort = command.get("query", {}), list(command.get("sort", {}).items()) or None
    projection = command.get("fields")
    if command.get("remove"):
        value = collection.find_one_and_delete(query, projection=projection, sort=sort)
        return {"lastErrorObject": {"n": int(value is not None)}, "value": value, "ok": 1.0}
    change = command["update"]
    returned = ReturnDocument.AFTER if command.get("new") else ReturnDocument.BEFORE
    options: Document = {"projection": projection, "sort": sort, "upsert": command.get("upsert", False),
                         "return_document": returned}
    existed = collection.find_one(query, sort=sort) is not None
    if isinstance(change, dict) and not any(key.startswith("$") for key in change):
        value = collection.find_one_and_replace(query, change, **options)
    else:
        if command.get("arrayFilters"):
            options["array_filters"] = command["arrayFilters"]
        value = collection.find_one_and_update(query, change, **options)
    touched = existed or options["upsert"]
    return {"lastErrorObject": {"n": int(touched), "updatedExisting": existed}, "value": value, "ok": 1.0}


def aggregate(db: mongomock.Database, command: Document) -> Document:
    name = command["aggregate"]
    return cursor(f"{db.name}.{name}", list(db[name].aggregate(command["pipeline"])))


def count(db: mongomock.Database, command: Document) -> Document:
    collection = db[command["count"]]
    options = {key: command[key] for key in ("skip", "limit") if command.get(key)}
    return {"n": collection.count_documents(command.get("query") or {}, **options), "ok": 1.0}


def distinct(db: mongomock.Database, command: Document) -> Document:
    return {"values": db[command["distinct"]].distinct(command["key"], command.get("query") or {}), "ok": 1.0}


INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "background")


def create_indexes(db: mongomock.Database, command: Document) -> Document:
    collection = db[command["createIndexes"]]
    before = len(collection.index_information()) if command["createIndexes"] in db.list_collection_names() else 0
    for spec in command["indexes"]:
        options = {key: spec[key] for key in INDEX_OPTIONS if key in spec}
        collection.create_index(list(spec["key"].items()), name=spec["name"], **options)
    return {"numIndexesBefore": before, "numIndexesAfter": len(collection.index_information()), "ok": 1.0}


def list_indexes(db: mongomock.Database, command: Document) -> Document:
    name = command["listIndexes"]
    if name not in db.list_collection_names():
        raise CommandFailed(26, f"ns does not exist: {db.name}.{name}", "NamespaceNotFound")
    specs = [{"v": 2, "name": index, **{key: value for key, value in info.items() if key != "key"},
              "key": dict(info["key"])} for index, info in db[name].index_information().items()]
    return cursor(f"{db.name}.{name}", specs)


def drop_indexes(db: mongomock.Database, command: Document) -> Document:
    collection, index = db[command["dropIndexes"]], command["index"]
    if index == "*":
        collection.drop_indexes()
    else:
        collection.drop_index(index)
    return {"ok": 1.0}


def list_collections(db: mongomock.Database, command: Document) -> Document:
    names = db.list_collection_names(filter=command.get("filter") or None)
    return cursor(f"{db.name}.$cmd.listCollections",
                  [{"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}} for name in names])


def create(db: mongomock.Database, command: Document) -> Document:
    db.create_collection(command["create"])
    return {"ok": 1.0}


def drop(db: mongomock.Database, command: Document) -> Document:
    db.drop_collection(command["drop"])
    return {"ok": 1.0}


def kill_cursors(_db: mongomock.Database, command: Document) -> Document:
    return {"cursorsKilled": command.get("cursors", []), "ok": 1.0}


async def serve(database: Database, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    database.connections += 1
    try:
        while True:
            header = await reader.readexactly(HEADER.size)
            length, request_id, _, opcode = HEADER.unpack(header)
            payload = await reader.readexactly(length - HEADER.size)
            if opcode == OP_MSG:
                flags, command = parse_op_msg(payload)
                reply = database.run(command)
                if not flags & MORE_TO_COME:
                    writer.write(op_msg(request_id, reply))
            elif opcode == OP_QUERY:
                writer.write(op_reply(request_id, database.run(parse_op_query(payload))))
            else:
                log.warning("opcode %d not understood; closing the connection", opcode)
                break
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main_async(port: int) -> None:
    database = Database()
    server = await asyncio.start_server(lambda r, w: serve(database, r, w), "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mongo_wire", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args.port))


if __name__ == "__main__":
    main()
