"""Local SQLite databases (the relay's outbox, the index): opening them durably and migrating
their schema with versioned migrations (yoyo)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

from yoyo import get_backend, read_migrations

from mine2cell.errors import ConfigurationError

# How long a writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT_MS = 30_000


def migrate(path: Path, package: str) -> None:
    """Bring the database at ``path`` to the newest schema in ``package``'s ``migrations``
    folder. Safe to run from several processes at once (yoyo takes a lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        backend = get_backend(f"sqlite:///{path}")
        with as_file(files(package) / "migrations") as folder:
            migrations = read_migrations(str(folder))
            with backend.lock():
                backend.apply_migrations(backend.to_apply(migrations))
    except sqlite3.DatabaseError as exc:
        raise ConfigurationError(
            f"the database {path} cannot be opened or migrated ({exc}); if it is corrupted, move "
            "it aside and start again"
        ) from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot write the database {path}: {exc}") from exc


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, full sync: a
    committed write survives a crash of the process or of the machine."""
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise ConfigurationError(f"the database {path} cannot be opened: {exc}") from exc
    return conn


class Database:
    """One SQLite file, migrated on open, with one connection that threads share under a lock."""

    def __init__(self, path: Path, package: str) -> None:
        self.path = path
        migrate(path, package)
        self._conn = connect(path)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE), committed on success."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
