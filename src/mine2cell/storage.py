"""Local SQLite databases (the relay's outbox, the index): opening them durably and migrating
their schema with versioned migrations (yoyo), and saying plainly when their storage fails.

A disk that fills, a directory mounted read-only, a file overwritten or truncated: SQLite reports
these as result codes, which become a ``StorageError`` naming the file and the fix. A write that
fails leaves nothing behind (SQLite rolls its transaction back), so what was committed before
stays and nothing half-written appears.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path
from types import TracebackType

from yoyo import get_backend, read_migrations

from mine2cell.errors import ConfigurationError, StorageError

# How long a writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT_MS = 30_000

# SQLite's primary result codes for failures of the storage itself (an extended code carries its
# primary code in the low byte).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26
_HEADER = b"SQLite format 3\x00"


def _not_writable(path: Path) -> str | None:
    """Why nothing can be written at ``path`` (a directory or a file), or None."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return f"is not writable by this user (uid {os.getuid()})"
    return None


def _full(path: Path) -> bool:
    try:
        return os.statvfs(path).f_bavail == 0
    except OSError:
        return False


def _read_only(path: Path, what: str, why: str) -> StorageError:
    """``what`` (the database's directory, or the file) ``why`` (from ``_not_writable``)."""
    fix = "mount it read-write" if "read-only" in why else "give this user write access to it"
    return StorageError(
        path,
        "read-only",
        f"{what} {why}"
        + (": mine2cell writes its outbox and index there" if what != "the file" else ""),
        f"{fix} (or give a writable --data-dir / MINE2CELL_DATA_DIR), then retry",
    )


def storage_error(path: Path, exc: BaseException, if_corrupted: str) -> StorageError | None:
    """The StorageError that ``exc``, raised while using the database at ``path``, stands for;
    None when it is not a failure of the storage (a constraint, a busy timeout, a bug)."""
    directory = path.parent
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return StorageError(path, "corrupted", f"the file is corrupted ({exc})", if_corrupted)
        if primary == _SQLITE_FULL:
            full = True
        elif primary in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN):
            full = False
        else:
            return None
    elif isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
    ):
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    else:
        return None
    if full or _full(directory):
        return StorageError(
            path,
            "no-space",
            "no space left on device: the change was not written (SQLite writes one whole or not "
            "at all)",
            f"free space on the file system holding {directory}, then retry",
        )
    why = _not_writable(directory)
    if why is not None:
        return _read_only(path, f"the directory {directory}", why)
    why = _not_writable(path) if path.exists() else None
    if why is not None:
        return _read_only(path, "the file", why)
    return StorageError(
        path,
        "unavailable",
        f"cannot be read or written ({exc})",
        "check the disk and its file system (the kernel log names the fault), then retry",
    )


def damage(path: Path) -> str | None:
    """Why the existing file at ``path`` cannot be the database SQLite last wrote there, or None.
    Checked before SQLite opens it, because SQLite takes an empty file for a new database (an
    outbox would start empty) and reads a shortened one until it trips over a missing page."""
    try:
        size = path.stat().st_size
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return None  # the write-ahead log completes the file; SQLite checks it on open
        with path.open("rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return None
    if size == 0:
        return "it is empty (0 bytes): it was truncated"
    if len(header) < 100 or not header.startswith(_HEADER):
        return "it is not a SQLite database (its header is missing or overwritten)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is current only when its two change counters agree.
    if pages and header[24:28] == header[92:96] and size < pages * page_size:
        return f"it holds {size:,} bytes of the {pages * page_size:,} its header records: truncated"
    return None


def _apply_migrations(path: Path, package: str) -> None:
    backend = get_backend(f"sqlite:///{path}")
    try:
        with as_file(files(package) / "migrations") as folder:
            migrations = read_migrations(str(folder))
            # Only a schema that needs migrating takes yoyo's lock (a row written, retried for
            # 10 s when it cannot be): opening an up-to-date database writes nothing.
            if backend.to_apply(migrations):
                with backend.lock():
                    backend.apply_migrations(backend.to_apply(migrations))
    finally:
        backend.connection.close()


def _create(path: Path, package: str) -> None:
    """A new database, migrated beside ``path`` and moved there complete: a file at the path is
    always a database that was whole once, so an empty or shortened one is damage, never a
    creation in progress (and a database another process created meanwhile is kept)."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.new")
    try:
        _apply_migrations(fresh, package)
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.rename(fresh, path)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{fresh}{suffix}").unlink(missing_ok=True)


def migrate(path: Path, package: str, if_corrupted: str = "move it aside and start again") -> None:
    """Bring the database at ``path`` to the newest schema in ``package``'s ``migrations``
    folder, creating it if missing. Safe to run from several processes at once (yoyo takes a
    lock). ``if_corrupted`` tells the user how to recover this database from damage."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        why = _not_writable(path.parent)
        if why is not None:
            raise _read_only(path, f"the directory {path.parent}", why)
        damaged = damage(path)
        if damaged is not None:
            raise StorageError(path, "corrupted", f"the file is corrupted: {damaged}", if_corrupted)
        if path.exists():
            _apply_migrations(path, package)
        else:
            _create(path, package)
    except (sqlite3.DatabaseError, OSError) as exc:
        error = storage_error(path, exc, if_corrupted)
        if error is not None:
            raise error from exc
        raise ConfigurationError(
            f"the database {path} cannot be opened or migrated: {exc}"
        ) from exc


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
        if storage_error(path, exc, "") is not None:
            raise  # the caller's guard names the fix
        raise ConfigurationError(f"the database {path} cannot be opened: {exc}") from exc
    return conn


class _Guard:
    """The lock held around every use of a database's connection. Leaving it turns SQLite's
    storage failures (disk full, read-only, corrupted file, I/O error) into a StorageError that
    names the file and the fix; any other error (a constraint, a busy timeout) passes as it is."""

    def __init__(self, path: Path, if_corrupted: str) -> None:
        self._lock = threading.RLock()
        self._path = path
        self._if_corrupted = if_corrupted

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
        if exc is not None and not isinstance(exc, StorageError):
            error = storage_error(self._path, exc, self._if_corrupted)
            if error is not None:
                raise error from exc


class Database:
    """One SQLite file, migrated on open, with one connection that threads share under a lock.
    Subclasses say in ``IF_CORRUPTED`` how their file is recovered from damage."""

    IF_CORRUPTED = "move it aside and start again"

    def __init__(self, path: Path, package: str) -> None:
        self.path = path
        migrate(path, package, self.IF_CORRUPTED)
        self._lock = _Guard(path, self.IF_CORRUPTED)
        with self._lock:
            self._conn = connect(path)

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
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (a full disk does): the error to report is
                # the first one, not "no transaction is active".
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
