"""The SQLite store: the shared store tests, and what is particular to one SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from mine2cell.index.store import SqliteStore
from tests.index.handmade import PASSPORT_1, SUPPLY_CHAIN_COUNTS, supply_chain
from tests.index.store_contract import StoreContract


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "index" / "index.sqlite"


@pytest.fixture
def sqlite_store(store_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(store_path)
    try:
        yield opened
    finally:
        opened.close()


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store(self, sqlite_store: SqliteStore) -> SqliteStore:
        return sqlite_store

    @pytest.fixture
    def other_store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        opened = SqliteStore(tmp_path / "other" / "index.sqlite")
        try:
            yield opened
        finally:
            opened.close()


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def test_the_file_is_in_wal_journal_mode(sqlite_store: SqliteStore, store_path: Path) -> None:
    with _read_only(store_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_store_on_the_same_file_sees_the_committed_rows(
    sqlite_store: SqliteStore, store_path: Path
) -> None:
    reader = SqliteStore(store_path)
    try:
        assert reader.checkpoint() is None
        sc = supply_chain()

        sc.chain.ingest_into(sqlite_store)

        assert reader.counts() == SUPPLY_CHAIN_COUNTS
        assert reader.checkpoint() == sc.chain.checkpoint()
        assert reader.upstream(PASSPORT_1) == sqlite_store.upstream(PASSPORT_1)
    finally:
        reader.close()


def test_a_reopened_store_keeps_its_rows_and_checkpoint(store_path: Path) -> None:
    sc = supply_chain()
    first = SqliteStore(store_path)
    sc.chain.ingest_into(first)
    graph = first.upstream(PASSPORT_1)
    first.close()

    reopened = SqliteStore(store_path)
    try:
        assert reopened.counts() == SUPPLY_CHAIN_COUNTS
        assert reopened.checkpoint() == sc.chain.checkpoint()
        assert reopened.upstream(PASSPORT_1) == graph
    finally:
        reopened.close()


def test_the_schema_migrations_are_applied_once_however_often_the_file_is_opened(
    sqlite_store: SqliteStore, store_path: Path
) -> None:
    again = SqliteStore(store_path)
    again.close()
    SqliteStore(store_path).close()

    migrations = sorted(
        p.name for p in (Path(__file__).parents[2] / "src/mine2cell/index/migrations").iterdir()
    )
    with _read_only(store_path) as conn:
        applied = [r[0] for r in conn.execute("SELECT migration_id FROM _yoyo_migration")]
    assert applied == [name.removesuffix(".sql") for name in migrations if name.endswith(".sql")]


def test_an_ingest_that_fails_midway_leaves_nothing_behind(sqlite_store: SqliteStore) -> None:
    sc = supply_chain()
    logs, blocks, checkpoint = sc.chain.page(last=5)
    sc.chain.ingest_into(sqlite_store, last=3)
    before = sqlite_store.counts()
    # A block without a hash breaks a NOT NULL constraint after the rows were written.
    broken = {**blocks, 5: cast(tuple[bytes, int], (None, 0))}

    with pytest.raises(sqlite3.IntegrityError):
        sqlite_store.ingest(logs, broken, checkpoint)

    assert sqlite_store.counts() == before
    assert sqlite_store.checkpoint() == sc.chain.checkpoint(3)
    assert [n for n, _ in sqlite_store.stored_blocks(10**9, 100)] == [3, 2, 1]
