"""The relay's durable outbox (SQLite): an operation is stored, committed and synced before it is
acknowledged, and every step of its way to the chain is written down before the next is taken,
so a crash at any point leaves enough behind to finish the work exactly once.

States of an operation: ``pending`` (accepted, waiting for a batch) -> ``submitted`` (in a batch
whose transaction is signed and stored, maybe sent) -> ``confirmed`` (recorded on chain) or
``rejected`` (the ledger refused it; the decoded reason is kept). A batch whose transaction can no
longer be mined puts its operations back to ``pending``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from mine2cell import storage
from mine2cell.errors import InvalidInput


class State(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OperationStatus:
    """Where an accepted operation is on its way to the chain."""

    event_id: bytes
    kind: str
    actor: str
    nonce: int
    state: State
    accepted_at: float
    updated_at: float
    tx_hash: bytes | None = None
    block_number: int | None = None
    block_hash: bytes | None = None
    error: str | None = None
    reason: str | None = None

    def confirmations(self, head: int) -> int:
        if self.block_number is None:
            return 0
        return max(0, head - self.block_number + 1)

    def as_json(self, head: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "eventId": "0x" + self.event_id.hex(),
            "type": self.kind,
            "actor": self.actor,
            "nonce": str(self.nonce),
            "status": self.state.value,
            "acceptedAt": self.accepted_at,
            "updatedAt": self.updated_at,
        }
        if self.tx_hash is not None:
            data["txHash"] = "0x" + self.tx_hash.hex()
        if self.block_number is not None:
            data["blockNumber"] = self.block_number
            if self.block_hash is not None:
                data["blockHash"] = "0x" + self.block_hash.hex()
            if head is not None:
                data["confirmations"] = self.confirmations(head)
        if self.state is State.REJECTED:
            data["error"] = self.error
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class Accepted:
    """The acknowledgement of an operation: its event id, its status, and whether this call stored
    it (False: it was already in the outbox, and nothing changed)."""

    event_id: bytes
    status: OperationStatus
    stored: bool


@dataclass(frozen=True)
class NewOperation:
    event_id: bytes
    kind: str
    actor: str
    nonce: int
    deadline: int
    document: dict[str, Any]
    calldata: bytes
    gas_bound: int


@dataclass(frozen=True)
class PendingOperation:
    seq: int
    event_id: bytes
    kind: str
    document: dict[str, Any]
    calldata: bytes
    gas_bound: int
    accepted_at: float
    attempts: int


@dataclass(frozen=True)
class StoredTransaction:
    tx_hash: bytes
    raw: bytes
    max_fee: int
    priority_fee: int
    signed_at: float
    sent_at: float | None


@dataclass(frozen=True)
class Batch:
    id: int
    relayer: str
    nonce: int
    gas: int
    state: str
    event_ids: tuple[bytes, ...]
    transactions: tuple[StoredTransaction, ...]  # oldest first
    created_at: float
    tx_hash: bytes | None = None
    block_number: int | None = None
    block_hash: bytes | None = None

    @property
    def latest(self) -> StoredTransaction:
        return self.transactions[-1]


_STATUS_COLUMNS = (
    "o.event_id, o.kind, o.actor, o.nonce, o.state, o.accepted_at, o.updated_at, o.error, "
    "o.reason, o.tx_hash, o.block_number, o.block_hash, "
    "(SELECT t.tx_hash FROM transactions t WHERE t.batch_id = o.batch_id "
    " ORDER BY t.signed_at DESC LIMIT 1)"
)


def _status(row: Sequence[Any]) -> OperationStatus:
    (event_id, kind, actor, nonce, state, accepted, updated, error, reason) = row[:9]
    tx_hash, block_number, block_hash, latest_tx = row[9:]
    state = State(state)
    if state is State.SUBMITTED:
        tx_hash = latest_tx
    return OperationStatus(
        event_id=bytes(event_id),
        kind=kind,
        actor=actor,
        nonce=int(nonce),
        state=state,
        accepted_at=accepted,
        updated_at=updated,
        tx_hash=None if tx_hash is None else bytes(tx_hash),
        block_number=block_number,
        block_hash=None if block_hash is None else bytes(block_hash),
        error=error,
        reason=reason,
    )


class Outbox(storage.Database):
    """One ledger's outbox in a SQLite file. Several processes may share the file (WAL); one
    instance may be shared by threads."""

    # Never replaced, not even when damaged: it holds operations that were acknowledged.
    IF_CORRUPTED = (
        "it holds the operations this service acknowledged, so mine2cell will not start on it "
        "nor replace it: stop every mine2cell process on this data directory, keep a copy of the "
        "file, and restore it from a backup (`sqlite3 FILE .recover` saves what is readable)"
    )

    def __init__(self, path: Path) -> None:
        super().__init__(path, __package__ or "mine2cell.relay")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- accepting -----------------------------------------------------------------------------

    def accept(self, operations: Sequence[NewOperation]) -> list[Accepted | InvalidInput]:
        """Store operations not seen before, in one transaction; when this returns they are on
        disk. An operation already stored (same event id) is left as it is. Per operation: the
        acknowledgement, or InvalidInput when another operation not rejected already holds its
        signer's nonce."""
        now = time.time()
        results: list[Accepted | InvalidInput] = []
        with self._write() as conn:
            for op in operations:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO operations (event_id, kind, actor, nonce, deadline, "
                    "document, calldata, gas_bound, accepted_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        op.event_id,
                        op.kind,
                        op.actor,
                        str(op.nonce),
                        min(op.deadline, 2**63 - 1),
                        json.dumps(op.document, separators=(",", ":")),
                        op.calldata,
                        op.gas_bound,
                        now,
                        now,
                    ),
                )
                status = self._status_in(conn, op.event_id)
                if status is not None:
                    results.append(Accepted(op.event_id, status, cursor.rowcount == 1))
                    continue
                (holder, state) = conn.execute(
                    "SELECT event_id, state FROM operations WHERE actor = ? AND nonce = ? "
                    "AND state != 'rejected'",
                    (op.actor, str(op.nonce)),
                ).fetchone()
                results.append(
                    InvalidInput(
                        "message.nonce",
                        f"nonce {op.nonce} of {op.actor} is already held by operation "
                        f"0x{bytes(holder).hex()} ({state}); sign again with another nonce",
                    )
                )
        return results

    def reserved_nonces(self, actor: str) -> set[int]:
        """Nonces of ``actor`` held by operations in the outbox that were not rejected."""
        rows = self._read(
            "SELECT nonce FROM operations WHERE actor = ? AND state != 'rejected'", (actor,)
        )
        return {int(r[0]) for r in rows}

    # -- reading -------------------------------------------------------------------------------

    def _status_in(self, conn: sqlite3.Connection, event_id: bytes) -> OperationStatus | None:
        row = conn.execute(
            f"SELECT {_STATUS_COLUMNS} FROM operations o WHERE o.event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else _status(row)

    def status(self, event_id: bytes) -> OperationStatus | None:
        with self._lock:
            return self._status_in(self._conn, event_id)

    def statuses(self, event_ids: Sequence[bytes]) -> dict[bytes, OperationStatus]:
        found: dict[bytes, OperationStatus] = {}
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            rows = self._read(
                f"SELECT {_STATUS_COLUMNS} FROM operations o WHERE o.event_id IN "
                f"({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                status = _status(row)
                found[status.event_id] = status
        return found

    def counts(self) -> dict[State, int]:
        rows = self._read("SELECT state, COUNT(*) FROM operations GROUP BY state")
        counts = dict.fromkeys(State, 0)
        counts.update({State(state): n for state, n in rows})
        return counts

    def recent(self, limit: int = 20, state: State | None = None) -> list[OperationStatus]:
        where = "WHERE o.state = ?" if state is not None else ""
        params: list[Any] = [state.value] if state is not None else []
        rows = self._read(
            f"SELECT {_STATUS_COLUMNS} FROM operations o {where} ORDER BY o.seq DESC LIMIT ?",
            [*params, limit],
        )
        return [_status(row) for row in rows]

    def pending(self, max_operations: int, max_gas: int) -> list[PendingOperation]:
        """The oldest pending operations that fit in one batch, in the order they were accepted
        (so an operation that depends on an earlier one comes after it)."""
        rows = self._read(
            "SELECT seq, event_id, kind, document, calldata, gas_bound, accepted_at, attempts "
            "FROM operations WHERE state = 'pending' ORDER BY seq LIMIT ?",
            (max_operations,),
        )
        batch: list[PendingOperation] = []
        gas = 0
        for seq, event_id, kind, document, calldata, gas_bound, accepted_at, attempts in rows:
            if batch and gas + gas_bound > max_gas:
                break
            gas += gas_bound
            batch.append(
                PendingOperation(
                    seq,
                    bytes(event_id),
                    kind,
                    json.loads(document),
                    bytes(calldata),
                    gas_bound,
                    accepted_at,
                    attempts,
                )
            )
        return batch

    def oldest_pending_at(self) -> float | None:
        rows = self._read("SELECT MIN(accepted_at) FROM operations WHERE state = 'pending'")
        return rows[0][0] if rows else None

    def _batch(self, conn: sqlite3.Connection, row: Sequence[Any]) -> Batch:
        (batch_id, relayer, nonce, gas, state, created, tx_hash, block_number, block_hash) = row
        members = conn.execute(
            "SELECT event_id FROM batch_operations WHERE batch_id = ? ORDER BY position",
            (batch_id,),
        ).fetchall()
        txs = conn.execute(
            "SELECT tx_hash, raw, max_fee, priority_fee, signed_at, sent_at FROM transactions "
            "WHERE batch_id = ? ORDER BY signed_at",
            (batch_id,),
        ).fetchall()
        return Batch(
            id=batch_id,
            relayer=relayer,
            nonce=nonce,
            gas=gas,
            state=state,
            event_ids=tuple(bytes(m[0]) for m in members),
            transactions=tuple(
                StoredTransaction(bytes(h), bytes(r), int(mf), int(pf), s, sent)
                for h, r, mf, pf, s, sent in txs
            ),
            created_at=created,
            tx_hash=None if tx_hash is None else bytes(tx_hash),
            block_number=block_number,
            block_hash=None if block_hash is None else bytes(block_hash),
        )

    _BATCH_COLUMNS = "id, relayer, nonce, gas, state, created_at, tx_hash, block_number, block_hash"

    def batches(self, state: str, since_block: int | None = None) -> list[Batch]:
        """Batches in ``state`` (by nonce); for mined ones, only those at ``since_block`` or
        later."""
        sql = f"SELECT {self._BATCH_COLUMNS} FROM batches WHERE state = ?"
        params: list[Any] = [state]
        if since_block is not None:
            sql += " AND block_number >= ?"
            params.append(since_block)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY nonce, id", params).fetchall()
            return [self._batch(self._conn, row) for row in rows]

    def batch(self, batch_id: int) -> Batch:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {self._BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            return self._batch(self._conn, row)

    # -- the relay's steps -----------------------------------------------------------------------

    def reject(self, rejections: dict[bytes, tuple[str, str]]) -> None:
        """Mark operations rejected: event id -> (error name, reason)."""
        if not rejections:
            return
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "UPDATE operations SET state = 'rejected', error = ?, reason = ?, "
                "batch_id = NULL, updated_at = ? WHERE event_id = ? AND state = 'pending'",
                [(err, reason, now, eid) for eid, (err, reason) in rejections.items()],
            )

    def confirm_elsewhere(self, event_id: bytes, tx_hash: bytes, block: int, bhash: bytes) -> None:
        """An operation found already recorded on chain (by an earlier run, or another relay)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE operations SET state = 'confirmed', batch_id = NULL, tx_hash = ?, "
                "block_number = ?, block_hash = ?, updated_at = ? WHERE event_id = ?",
                (tx_hash, block, bhash, time.time(), event_id),
            )

    def create_batch(
        self,
        *,
        relayer: str,
        nonce: int,
        gas: int,
        event_ids: Sequence[bytes],
        transaction: StoredTransaction,
    ) -> int:
        """Write a batch, its members and its signed transaction, and mark the members submitted,
        in one transaction: from here on a restart finds the transaction and settles it."""
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO batches (relayer, nonce, gas, size, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'sending', ?, ?)",
                (relayer, nonce, gas, len(event_ids), now, now),
            )
            batch_id = cursor.lastrowid
            assert batch_id is not None
            conn.executemany(
                "INSERT INTO batch_operations (batch_id, position, event_id) VALUES (?, ?, ?)",
                [(batch_id, i, eid) for i, eid in enumerate(event_ids)],
            )
            conn.executemany(
                "UPDATE operations SET state = 'submitted', batch_id = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE event_id = ?",
                [(batch_id, now, eid) for eid in event_ids],
            )
            self._insert_transaction(conn, batch_id, transaction)
        return batch_id

    @staticmethod
    def _insert_transaction(conn: sqlite3.Connection, batch_id: int, tx: StoredTransaction) -> None:
        # A batch rebuilt after its block left the chain (same nonce, calls and fees) is signed
        # into the very bytes of the dropped batch's transaction: the row moves to the new batch,
        # to be sent again. Ignoring it would leave the new batch without a transaction.
        conn.execute(
            "INSERT INTO transactions (tx_hash, batch_id, raw, max_fee, priority_fee, signed_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tx_hash) DO UPDATE SET "
            "batch_id = excluded.batch_id, signed_at = excluded.signed_at, sent_at = NULL "
            "WHERE transactions.batch_id != excluded.batch_id",
            (tx.tx_hash, batch_id, tx.raw, str(tx.max_fee), str(tx.priority_fee), tx.signed_at),
        )

    def add_transaction(self, batch_id: int, transaction: StoredTransaction) -> None:
        """A replacement (higher fees, same nonce and data) for a batch's stuck transaction."""
        with self._write() as conn:
            self._insert_transaction(conn, batch_id, transaction)

    def mark_sent(self, tx_hash: bytes) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE transactions SET sent_at = COALESCE(sent_at, ?) WHERE tx_hash = ?",
                (time.time(), tx_hash),
            )

    def settle_batch(
        self,
        batch_id: int,
        *,
        tx_hash: bytes,
        block_number: int,
        block_hash: bytes,
        gas_used: int,
        failures: dict[int, tuple[str, str]],
    ) -> None:
        """A batch's transaction was mined: each member is confirmed, or rejected with the reason
        the ledger logged for its position."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE batches SET state = 'mined', tx_hash = ?, block_number = ?, "
                "block_hash = ?, gas_used = ?, updated_at = ? WHERE id = ?",
                (tx_hash, block_number, block_hash, gas_used, now, batch_id),
            )
            members = conn.execute(
                "SELECT position, event_id FROM batch_operations WHERE batch_id = ?", (batch_id,)
            ).fetchall()
            for position, event_id in members:
                if position in failures:
                    error, reason = failures[position]
                    conn.execute(
                        "UPDATE operations SET state = 'rejected', error = ?, reason = ?, "
                        "tx_hash = ?, block_number = ?, block_hash = ?, updated_at = ? "
                        "WHERE event_id = ? AND batch_id = ?",
                        (error, reason, tx_hash, block_number, block_hash, now, event_id, batch_id),
                    )
                else:
                    conn.execute(
                        "UPDATE operations SET state = 'confirmed', error = NULL, reason = NULL, "
                        "tx_hash = ?, block_number = ?, block_hash = ?, updated_at = ? "
                        "WHERE event_id = ? AND batch_id = ?",
                        (tx_hash, block_number, block_hash, now, event_id, batch_id),
                    )

    def requeue_batch(self, batch_id: int, state: str, note: str) -> None:
        """The batch's transaction will never be mined (``dropped``), was mined but reverted as a
        whole (``reverted``), or its block left the chain (``dropped``): its members go back to
        pending, to be simulated afresh. Members keep their batch id when settled, so those
        settled from a vanished block are found too."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                "UPDATE batches SET state = ?, note = ?, updated_at = ? WHERE id = ?",
                (state, note, now, batch_id),
            )
            # A member rejected in a vanished block whose nonce its signer has since given to
            # another operation stays rejected (without the vanished transaction): two live
            # operations may not hold one nonce, and the newer one is the signer's choice.
            conn.execute(
                "UPDATE operations SET batch_id = NULL, tx_hash = NULL, block_number = NULL, "
                "block_hash = NULL, updated_at = ? WHERE batch_id = ? AND state = 'rejected' "
                "AND EXISTS (SELECT 1 FROM operations other WHERE other.actor = operations.actor "
                "AND other.nonce = operations.nonce AND other.state != 'rejected')",
                (now, batch_id),
            )
            conn.execute(
                "UPDATE operations SET state = 'pending', batch_id = NULL, tx_hash = NULL, "
                "block_number = NULL, block_hash = NULL, error = NULL, reason = NULL, "
                "updated_at = ? WHERE batch_id = ?",
                (now, batch_id),
            )

    def confirmed_elsewhere(self, since_block: int) -> list[tuple[bytes, int, bytes]]:
        """(event id, block number, block hash) of operations confirmed from a transaction that
        is not one of this relay's batches, at ``since_block`` or later."""
        rows = self._read(
            "SELECT event_id, block_number, block_hash FROM operations WHERE state = 'confirmed' "
            "AND batch_id IS NULL AND block_number >= ?",
            (since_block,),
        )
        return [(bytes(e), int(n), bytes(b)) for e, n, b in rows]

    def calldata(self, event_id: bytes) -> bytes:
        return bytes(
            self._read("SELECT calldata FROM operations WHERE event_id = ?", (event_id,))[0][0]
        )

    def document(self, event_id: bytes) -> dict[str, Any]:
        row = self._read("SELECT document FROM operations WHERE event_id = ?", (event_id,))[0]
        return dict(json.loads(row[0]))

    def requeue(self, event_ids: Sequence[bytes]) -> None:
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "UPDATE operations SET state = 'pending', batch_id = NULL, tx_hash = NULL, "
                "block_number = NULL, block_hash = NULL, updated_at = ? WHERE event_id = ?",
                [(now, eid) for eid in event_ids],
            )
