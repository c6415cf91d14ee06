"""Indexes for the benchmark's database stand-in (bench.mongo_wire): mongomock scans every document for every
lookup and every unique-key check, so without them the end-to-end figures measure mongomock's scans rather than
our code. A MongoDB server answers these lookups through its indexes; so does this, for equality on the fields of
a prefix of one of the collection's indexes (the longest it can), or on `_id`.

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
from collections import Counter
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
    """For each prefix of each index's key, the ids filed under its values; and the documents an update may be
    changing (candidates for every lookup until the command ends)."""

    def __init__(self, store: mongomock.store.CollectionStore) -> None:
        self.store = store
        self.entries: dict[tuple[str, ...], dict[tuple[Hashable, ...], set[Hashable]]] = {}
        self.multikey: dict[tuple[str, ...], set[Hashable]] = {}  # an array in a field: a candidate always
        self.touched: dict[Hashable, Document] = {}
        self.order: dict[Hashable, int] = {}  # when each document was first stored: mongomock's natural order
        self.expired_at = 0.0
        self.scans: Counter[str] = Counter()  # lookups no index answered, by the fields they asked for
        self.writes = 0  # documents stored, changed or removed: the sorted orders below are as of a count
        self.sorted_cache: dict[tuple[str, bool], tuple[int, list[Document]]] = {}

    def file(self, key: Hashable, document: Document) -> None:
        self.writes += 1
        self.order.setdefault(key, len(self.order))
        for prefix, entries in self.entries.items():
            values: list[Hashable] = []
            for field in prefix:
                try:
                    value = helpers.get_value_by_dot(document, field)
                except KeyError:
                    break  # a missing field never equals the non-null values the index answers for
                if isinstance(value, list):
                    self.multikey[prefix].add(key)
                    break
                filed = index_key(value)
                if filed is None:
                    break
                values.append(filed)
            else:
                entries.setdefault(tuple(values), set()).add(key)

    def cover(self, prefixes: set[tuple[str, ...]]) -> None:
        """Index `prefixes` too (from createIndexes): files every stored document under them."""
        new = prefixes - set(self.entries)
        if new:
            for prefix in new:
                self.entries[prefix], self.multikey[prefix] = {}, set()
            for key, document in self.store._documents.items():
                self.file(key, document)

    def refresh(self) -> None:
        """After a command: every prefix of every index is covered, and the documents the command handed out
        are filed under their values now."""
        self.cover({tuple(field for field, _ in index["key"][:n]) for index in self.store.indexes.values()
                    for n in range(1, len(index["key"]) + 1)})
        for key, document in self.touched.items():
            if self.store._documents.get(key) is document:
                self.file(key, document)
        self.touched.clear()

    def expire(self) -> None:
        if time.monotonic() - self.expired_at >= EXPIRY_INTERVAL_SECONDS:
            self.expired_at = time.monotonic()
            before = len(self.store._documents)
            self.store._remove_expired_documents()
            self.writes += before - len(self.store._documents)

    def candidates(self, filter: Document) -> list[Document] | None:
        """The documents that may match `filter`, in the stored order; None when no index answers it."""
        documents = self.store._documents
        wanted = equalities(filter)
        if "_id" in wanted:
            keys = {store_key(filter["_id"])} if "_id" in filter else {store_key(wanted["_id"])}
        else:
            usable = [prefix for prefix in self.entries if all(field in wanted for field in prefix)]
            if not usable:
                return None
            prefix = max(usable, key=len)
            keys = self.entries[prefix].get(tuple(wanted[field] for field in prefix), set()) | self.multikey[prefix]
        keys = keys | set(self.touched)
        ordered = sorted(keys, key=lambda key: self.order.get(key, -1)) if len(keys) > 1 else keys
        return [documents[key] for key in ordered if key in documents]


    def sorted_by(self, field: str, descending: bool) -> list[Document] | None:
        """The documents ordered by `field` as MongoDB walks an index led by it (missing or null first when
        ascending; ties in the stored order, as mongomock's stable sort keeps them), for a sort with a limit:
        the first documents that match are then the answer, without filtering every document first. None
        when no index leads with the field or its values are not of one comparable kind."""
        if (field,) not in self.entries:
            return None
        cached = self.sorted_cache.get((field, descending))
        if cached is not None and cached[0] == self.writes:
            return cached[1]
        try:
            ordered = sorted(self.store._documents.values(), key=lambda document: _sort_key(document, field),
                             reverse=descending)
        except TypeError:
            return None
        self.sorted_cache[(field, descending)] = (self.writes, ordered)
        return ordered


def _sort_key(document: Document, field: str) -> tuple[int, Any]:
    try:
        value = helpers.get_value_by_dot(document, field)
    except KeyError:
        value = None
    if value is None:
        return (0, 0)
    if isinstance(value, list | dict):
        raise TypeError("an array or a document: MongoDB's order is not a plain comparison")
    return (1, index_key(value))


def equalities(filter: Document) -> dict[str, Hashable]:
    """field → the value it must equal, for the filter's top-level conditions (and those under `$and`)."""
    found: dict[str, Hashable] = {}
    for field, wanted in filter.items():
        if field == "$and":
            for part in wanted:
                found.update(equalities(part))
            continue
        if field.startswith("$"):
            continue
        if isinstance(wanted, dict) and set(wanted) == {"$eq"}:
            wanted = wanted["$eq"]
        filed = index_key(wanted)
        if filed is not None:
            found[field] = filed
    return found


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
        self._indexes.writes += 1

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

    def first_sorted(self, filter: Document, field: str, descending: bool, limit: int) -> list[Document] | None:
        """The first `limit` documents matching `filter` in the order of `field`, walked through the order an
        index gives; None when no index leads with the field (mongomock then filters and sorts everything)."""
        self._indexes.expire()
        ordered = self._indexes.sorted_by(field, descending)
        if ordered is None:
            return None
        found = []
        for document in ordered:
            if filter_applies(filter, document):
                found.append(document)
                if len(found) == limit:
                    break
        return found

    def _iter_documents(self, filter: Document) -> Iterator[Document]:
        self._indexes.expire()
        found = self._indexes.candidates(filter)
        if found is None:
            self._indexes.scans[f"{self._name} {{{', '.join(sorted(filter))}}}"] += 1
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

    def scans(self) -> Counter[str]:
        """The lookups that scanned a collection, by collection and the fields asked for."""
        return sum((collection._indexes.scans for collection in self._collections.values()), Counter())
