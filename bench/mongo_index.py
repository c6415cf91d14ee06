"""Indexes for the benchmark's database stand-in (bench.mongo_wire): mongomock scans every document for every
lookup and every unique-key check, so without them the end-to-end figures measure mongomock's scans rather than
our code. A MongoDB server answers these lookups through its indexes; so does this, for equality on the first
field of each index the collection has (and `_id`).

An index here is only a hint: it names the documents that may match, and mongomock's own filter decides among
them, so a stale entry costs a check and never a wrong answer. What must never happen is a matching document
missing from the hint. Hence: every document stored goes through `IndexedStore.__setitem__`; a document mongomock
changes in place (an update) was handed out by `IndexedCollection._iter_documents`, so it stays a candidate for
every lookup until the command ends and `Indexes.refresh` files it under its new values.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Hashable, Iterator
from typing import Any

import bson
import mongomock
from mongomock import helpers
from mongomock.filtering import filter_applies

Document = dict[str, Any]
EXPIRY_INTERVAL_SECONDS = 1.0  # MongoDB's TTL monitor deletes once a minute; mongomock scans on every access


def store_key(document_id: Any) -> Hashable:
    return helpers.hashdict(document_id) if isinstance(document_id, dict) else document_id


def index_key(value: Any) -> Hashable | None:
    """The key a value is filed under, or None when equality on it is not answered from the index."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).replace(tzinfo=None) if value.tzinfo else value
    if value is None or isinstance(value, dict | list | re.Pattern | bson.Regex):
        return None
    try:
        hash(value)
    except TypeError:
        return None
    return value


class Indexes:
    """value → ids for each indexed field of one collection, and the documents an update may be changing."""

    def __init__(self, store: mongomock.store.CollectionStore) -> None:
        self.store = store
        self.fields: set[str] = set()
        self.entries: dict[str, dict[Hashable, set[Hashable]]] = {}
        self.touched: dict[Hashable, Document] = {}
        self.order: dict[Hashable, int] = {}  # when each document was first stored: mongomock's natural order
        self.expired_at = 0.0

    def file(self, key: Hashable, document: Document) -> None:
        self.order.setdefault(key, len(self.order))
        for field in self.fields:
            try:
                value = helpers.get_value_by_dot(document, field)
            except KeyError:
                continue
            for element in value if isinstance(value, list) else [value]:
                filed = index_key(element)
                if filed is not None:
                    self.entries[field].setdefault(filed, set()).add(key)

    def cover(self, fields: set[str]) -> None:
        """Index `fields` too (createIndexes, or the first lookup): files every stored document under them."""
        new = fields - self.fields
        if new:
            self.fields |= new
            for field in new:
                self.entries[field] = {}
            for key, document in self.store._documents.items():
                self.file(key, document)

    def refresh(self) -> None:
        """After a command: the first field of every index is covered, and the documents the command handed out
        are filed under their values now."""
        self.cover({index["key"][0][0] for index in self.store.indexes.values()})
        for key, document in self.touched.items():
            if self.store._documents.get(key) is document:
                self.file(key, document)
        self.touched.clear()

    def expire(self) -> None:
        if time.monotonic() - self.expired_at >= EXPIRY_INTERVAL_SECONDS:
            self.expired_at = time.monotonic()
            self.store._remove_expired_documents()

    def candidates(self, filter: Document) -> list[Document] | None:
        """The documents that may match `filter`, in the stored order; None when no index answers it."""
        documents = self.store._documents
        if "_id" in filter and index_key(filter["_id"]) is not None:
            found = documents.get(store_key(filter["_id"]))
            keys: set[Hashable] = set(self.touched)
            if found is not None:
                keys.add(store_key(filter["_id"]))
        else:
            keys_or_none = self.lookup(filter)
            if keys_or_none is None:
                return None
            keys = keys_or_none | set(self.touched)
        ordered = sorted(keys, key=lambda key: self.order.get(key, -1)) if len(keys) > 1 else keys
        return [documents[key] for key in ordered if key in documents]

    def lookup(self, filter: Document) -> set[Hashable] | None:
        for field, wanted in filter.items():
            if field == "$and":
                for part in wanted:
                    found = self.lookup(part)
                    if found is not None:
                        return found
                continue
            if isinstance(wanted, dict) and set(wanted) == {"$eq"}:
                wanted = wanted["$eq"]
            if field in self.fields and index_key(wanted) is not None:
                return set(self.entries[field].get(index_key(wanted), ()))
        return None


class IndexedStore:
    """The collection's mongomock store, seen through its indexes: each document stored is filed, and the TTL
    indexes' scan runs at most once a second instead of on every access."""

    def __init__(self, store: mongomock.store.CollectionStore, indexes: Indexes) -> None:
        self._real, self._indexes = store, indexes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setitem__(self, key: Hashable, document: Document) -> None:
        self._real._documents[key] = document
        self._indexes.file(key, document)

    def __delitem__(self, key: Hashable) -> None:
        del self._real._documents[key]

    def __contains__(self, key: Hashable) -> bool:
        self._indexes.expire()
        return key in self._real._documents

    def __getitem__(self, key: Hashable) -> Document:
        self._indexes.expire()
        return self._real._documents[key]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        self._indexes.expire()
        return len(self._real._documents)

    @property
    def is_empty(self) -> bool:
        return len(self) == 0

    @property
    def documents(self) -> Iterator[Document]:
        self._indexes.expire()
        yield from self._real._documents.values()


class IndexedCollection(mongomock.Collection):
    """A mongomock collection whose lookups go through `Indexes` when an indexed field is asked for by equality."""

    def __init__(self, database: mongomock.Database, name: str, indexes: Indexes) -> None:
        super().__init__(database, name=name, read_preference=database.read_preference,
                         codec_options=database.codec_options, _db_store=database._store)
        self._indexes = indexes

    @property
    def _store(self) -> IndexedStore:  # type: ignore[override]
        return IndexedStore(self._db_store[self._name], self._indexes)

    def _iter_documents(self, filter: Document) -> Iterator[Document]:
        self._indexes.expire()
        found = self._indexes.candidates(filter)
        if found is None:
            found = list(self._indexes.store._documents.values())
            if not found:
                filter_applies(filter, {})  # validates the filter, as mongomock does
        for document in found:
            if filter_applies(filter, document):
                self._indexes.touched[store_key(document["_id"])] = document
                yield document


class IndexedDatabase:
    """A mongomock database whose collections are `IndexedCollection`s sharing one `Indexes` per collection."""

    def __init__(self, database: mongomock.Database) -> None:
        self._real = database
        self._collections: dict[str, IndexedCollection] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __getitem__(self, name: str) -> IndexedCollection:
        collection = self._collections.get(name)
        if collection is None or collection._indexes.store is not self._real._store[name]:
            store = self._real._store[name]
            collection = self._collections[name] = IndexedCollection(self._real, name, Indexes(store))
            collection._indexes.refresh()
        return collection

    def refresh(self) -> None:
        for collection in self._collections.values():
            collection._indexes.refresh()
