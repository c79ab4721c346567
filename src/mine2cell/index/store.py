"""Where the index keeps the ledger's logs, and how the provenance engine's graphs are read back.

``Store`` is the interface; ``SqliteStore`` the default implementation (one file, WAL). Every
implementation passes the shared tests in tests/index/store_contract.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from mine2cell import storage
from mine2cell.index.events import HANDOFF_KINDS, LedgerLog
from mine2cell.provenance.model import (
    Attestation,
    CertificationRecord,
    Consumed,
    Correction,
    EventKind,
    EventRef,
    Graph,
    Handoff,
    Lapse,
    LapseCode,
    LapseGroup,
    LotNode,
    Origin,
    ParticipantHistory,
    Produced,
    RoleChange,
    Step,
)
from mine2cell.provenance.standing import Participants, in_chain_order, lapses_of


@dataclass(frozen=True)
class Checkpoint:
    """Everything up to and including this block is in the store."""

    block_number: int
    block_hash: bytes


class Store(Protocol):
    def checkpoint(self) -> Checkpoint | None: ...

    def stored_blocks(self, at_or_below: int, limit: int) -> list[tuple[int, bytes]]:
        """(number, hash) of stored blocks, highest first."""
        ...

    def ingest(
        self,
        logs: Sequence[LedgerLog],
        blocks: Mapping[int, tuple[bytes, int]],
        checkpoint: Checkpoint,
    ) -> int:
        """Store logs (ignoring any already stored: same tx hash and log index), the blocks they
        are in (number -> (hash, timestamp)) and the new checkpoint, all or nothing. Returns the
        number of logs newly stored."""
        ...

    def rollback(self, to_block: int) -> None:
        """Forget everything above ``to_block`` (a fork point); -1 forgets everything."""
        ...

    def upstream(self, passport: bytes) -> Graph | None:
        """The passport's binding and every lot and step upstream of it; None if not bound."""
        ...

    def downstream(self, lots: Sequence[bytes]) -> Graph:
        """Every step and lot downstream of these lots (the lots themselves included)."""
        ...

    def ancestry(self, lots: Sequence[bytes]) -> Graph:
        """These lots and every lot and step upstream of them."""
        ...

    def report_epoch(self) -> int:
        """How many times stored reports were invalidated; read it before the graph a report
        is computed from, and hand it to ``save_report``."""
        ...

    def report(self, passport: bytes, variant: str) -> bytes | None:
        """The passport's stored report for ``variant``, while no event has changed it."""
        ...

    def save_report(self, passport: bytes, variant: str, document: bytes, epoch: int) -> bool:
        """Keep a report computed after ``report_epoch()`` returned ``epoch``; not kept (False)
        when reports were invalidated since."""
        ...

    def lots_of_facility(self, facility: bytes) -> list[bytes]: ...

    def lot(self, lot: bytes) -> LotNode | None: ...

    def history(self, lot: bytes) -> list[LotEvent]: ...

    def participants(
        self, accounts: Sequence[str] | None = None
    ) -> dict[str, ParticipantHistory]: ...

    def bound(self, passport: bytes) -> bool: ...

    def attestations(self, passport: bytes) -> tuple[Attestation, ...]: ...

    def passports(self) -> list[bytes]: ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


# In the order a page is stored: productions before consumptions (a consumption looks up the
# step that produced its lot), lapses last (found from the rows before them).
_TABLES = (
    "participant_changes",
    "certifications",
    "commissions",
    "steps",
    "productions",
    "consumptions",
    "handoffs",
    "corrections",
    "attestations",
    "lapses",
)
MMAP_BYTES = 1 << 30

# The upstream walk, over steps: the seed's steps and, recursively, the producers of their inputs.
_UP_STEPS = (
    " UNION SELECT c.producer FROM up CROSS JOIN consumptions c ON c.event_id = up.id"
    " WHERE c.producer IS NOT NULL"
)
_HANDOFF_COLUMNS = (
    "h.tx_hash, h.log_index, h.block_number, h.event_id, h.lot, h.kind, h.sender, h.recipient"
)
_LAPSE_COLUMNS = (
    "l.tx_hash, l.log_index, l.block_number, l.event_id, l.code, l.kind, l.lot, l.actor"
)
_LAPSE_FIELDS = "tx_hash, log_index, block_number, event_id, code, kind, lot, actor"


RefMaker = Callable[[bytes, bytes, int, int, str], EventRef]


class LotEvent(NamedTuple):
    """One event in a lot's history, in chain order.

    ``kind``: commission, produce (an output of ``step``), ship, receive, reject, recall, or
    consume (an input of ``step``, leaving ``remaining`` grams). ``counterparty``: the recipient
    of a shipment, the sender for the other hand-offs. ``corrections``: the events declaring
    this one erroneous."""

    kind: str
    event: EventRef
    quantity: int | None
    remaining: int | None
    counterparty: str | None
    step: bytes | None
    step_kind: str | None
    passport: bytes | None
    corrections: tuple[Correction, ...]


def _event_refs(blocks: Mapping[int, tuple[bytes, int]]) -> RefMaker:
    """Evidence for stored rows: ref(event id, tx hash, block, log index, actor), the block's
    hash and time from ``blocks`` (number -> (hash, timestamp))."""

    def ref(event_id: bytes, tx: bytes, block: int, index: int, actor: str) -> EventRef:
        block_hash, timestamp = blocks[block]
        return EventRef(event_id, tx, block, block_hash, index, timestamp, actor)

    return ref


def _corrections(rows: Iterable[Sequence[Any]], ref: RefMaker) -> dict[bytes, list[Correction]]:
    """Stored correction rows (tx, index, block, event id, target, actor, reason, corrective)
    by the event they correct."""
    found: dict[bytes, list[Correction]] = defaultdict(list)
    for tx, index, block, eid, target, actor, reason, corrective in rows:
        raw = bytes(corrective)
        found[bytes(target)].append(
            Correction(
                bytes(target),
                reason,
                tuple(raw[i : i + 32] for i in range(0, len(raw), 32)),
                ref(eid, tx, block, index, actor),
            )
        )
    return found


def _country(value: bytes) -> str:
    return value.decode("ascii", errors="replace")


class SqliteStore(storage.Database):
    """The index in one SQLite file (WAL: readers never wait for the writer)."""

    IF_CORRUPTED = (
        "the index holds nothing the chain does not: rebuild it from the chain with "
        "`mine2cell sync --rebuild`"
    )

    def __init__(self, path: Path) -> None:
        super().__init__(path, __package__ or "mine2cell.index")
        # The index can always be rebuilt from the chain: a commit need not survive a power
        # failure (the checkpoint commits with its rows, so nothing is half-applied).
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA temp_store = MEMORY")
        # Reads map the file rather than copy pages through a small cache: a passport's graph
        # is a thousand lookups scattered over the whole file.
        self._conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for a multi-query read."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # -- following the chain ---------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT block_number, block_hash FROM checkpoint WHERE id = 1"
            ).fetchone()
        return None if row is None else Checkpoint(row[0], bytes(row[1]))

    def stored_blocks(self, at_or_below: int, limit: int) -> list[tuple[int, bytes]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC LIMIT ?",
                (at_or_below, limit),
            ).fetchall()
        return [(n, bytes(h)) for n, h in rows]

    def ingest(
        self,
        logs: Sequence[LedgerLog],
        blocks: Mapping[int, tuple[bytes, int]],
        checkpoint: Checkpoint,
    ) -> int:
        rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for log in logs:
            table, values = self._row(log)
            if table:
                rows[table].append((log.tx_hash, log.log_index, log.block_number, *values))
        stored = 0
        with self._write() as conn:
            for table in _TABLES:
                table_rows = rows.get(table)
                if not table_rows:
                    continue
                before = conn.total_changes
                if table == "consumptions":
                    conn.executemany(
                        "INSERT OR IGNORE INTO consumptions VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                        "(SELECT p.event_id FROM productions p WHERE p.lot = ?))",
                        [(*row, row[4]) for row in table_rows],
                    )
                else:
                    marks = ",".join("?" * len(table_rows[0]))
                    conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", table_rows)
                stored += conn.total_changes - before
            conn.executemany(
                "INSERT OR REPLACE INTO blocks (number, hash, timestamp) VALUES (?, ?, ?)",
                [(n, h, ts) for n, (h, ts) in blocks.items()],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO lapses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                self._lapse_rows(conn, rows, blocks),
            )
            self._follow_custody(conn, {row[4] for row in rows.get("handoffs", ())})
            self._invalidate_reports(conn, rows)
            conn.execute(
                "INSERT INTO checkpoint (id, block_number, block_hash, updated_at) "
                "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET block_number = excluded."
                "block_number, block_hash = excluded.block_hash, updated_at = excluded.updated_at",
                (checkpoint.block_number, checkpoint.block_hash, time.time()),
            )
        return stored

    def _invalidate_reports(
        self, conn: sqlite3.Connection, rows: Mapping[str, list[tuple[Any, ...]]]
    ) -> None:
        """Forget the reports that a page's events change: an attestation changes its passport's,
        a custody event on a lot already consumed the reports of the passports downstream of the
        lot, a correction any report (rare: all are forgotten). A new lot or step cannot be
        upstream of a passport bound before it."""
        passports = {row[4] for row in rows.get("attestations", ())}
        everything = bool(rows.get("corrections"))
        self._fill(conn, "q_start", {row[4] for row in rows.get("handoffs", ())})
        consumed = conn.execute(
            "SELECT 1 FROM q_start q CROSS JOIN consumptions c ON c.lot = q.id LIMIT 1"
        ).fetchone()
        if not (passports or everything or consumed):
            return
        conn.execute("UPDATE report_epoch SET epoch = epoch + 1")
        if everything:
            conn.execute("DELETE FROM reports")
            return
        if consumed:
            passports.update(
                r[0]
                for r in conn.execute(
                    "WITH RECURSIVE down(lot) AS (SELECT id FROM q_start UNION"
                    " SELECT p.lot FROM down CROSS JOIN consumptions c ON c.lot = down.lot"
                    " CROSS JOIN productions p ON p.event_id = c.event_id)"
                    " SELECT s.passport FROM down CROSS JOIN consumptions c ON c.lot = down.lot"
                    " CROSS JOIN steps s ON s.event_id = c.event_id WHERE s.passport IS NOT NULL"
                )
            )
        conn.executemany("DELETE FROM reports WHERE passport = ?", [(p,) for p in passports])

    @staticmethod
    def _follow_custody(conn: sqlite3.Connection, lots: Iterable[bytes]) -> None:
        """Bring ``in_transit`` up to date for lots whose custody events changed: a lot is in
        transit when its last custody event, whatever order pages came in, is a shipment."""
        params = [(lot,) for lot in lots]
        conn.executemany("DELETE FROM in_transit WHERE lot = ?", params)
        conn.executemany(
            "INSERT INTO in_transit SELECT h.lot, h.tx_hash, h.log_index, h.block_number "
            "FROM handoffs h WHERE h.rowid = (SELECT x.rowid FROM handoffs x WHERE x.lot = ? "
            "ORDER BY x.block_number DESC, x.log_index DESC LIMIT 1) AND h.kind = 'ship'",
            params,
        )

    def _lapse_rows(
        self,
        conn: sqlite3.Connection,
        rows: Mapping[str, list[tuple[Any, ...]]],
        blocks: Mapping[int, tuple[bytes, int]],
    ) -> list[tuple[Any, ...]]:
        """The lapses among a page's signed events, against the participants' histories as
        stored (this page's records included)."""
        events: list[tuple[EventKind, bytes | None, EventRef]] = []
        ref = _event_refs(blocks)
        for tx, index, block, eid, lot, actor, *_ in rows.get("commissions", ()):
            events.append(("commission", lot, ref(eid, tx, block, index, actor)))
        for tx, index, block, eid, lot, kind, sender, recipient in rows.get("handoffs", ()):
            actor = sender if kind in ("ship", "recall") else recipient
            events.append((kind, lot, ref(eid, tx, block, index, actor)))
        for tx, index, block, eid, kind, actor, *_ in rows.get("steps", ()):
            events.append((kind, None, ref(eid, tx, block, index, actor)))
        if not events:
            return []
        participants = Participants(
            self._histories(conn, {event.actor for _, _, event in events}).values()
        )
        return [
            (e.tx_hash, e.log_index, e.block_number, e.event_id, code, kind, lot, e.actor)
            for code, kind, lot, e in lapses_of(events, participants)
        ]

    @staticmethod
    def _row(log: LedgerLog) -> tuple[str | None, tuple[Any, ...]]:
        a = log.args
        name = log.name
        if name == "ParticipantAccredited":
            return "participant_changes", (
                a["eventId"],
                a["participant"],
                "accredit",
                a["roles"],
                a["facility"],
                _country(a["country"]),
            )
        if name == "ParticipantRevoked":
            return "participant_changes", (a["eventId"], a["participant"], "revoke", 0, None, None)
        if name == "CertificationRecorded":
            return "certifications", (
                a["eventId"],
                a["participant"],
                a["scheme"],
                str(a["validUntil"]),
                a["documentHash"],
            )
        if name == "LotCommissioned":
            return "commissions", (
                a["eventId"],
                a["lot"],
                a["actor"],
                a["material"],
                str(a["quantity"]),
                a["feedstock"],
                str(a["footprint"]),
                a["documentHash"],
                a["facility"],
                _country(a["country"]),
            )
        if name in HANDOFF_KINDS:
            return "handoffs", (
                a["eventId"],
                a["lot"],
                HANDOFF_KINDS[name],
                a["from"],
                a["to"],
            )
        if name == "LotsTransformed":
            return "steps", (
                a["eventId"],
                "transform",
                a["actor"],
                a["inputs"],
                a["outputs"],
                str(a["footprint"]),
                None,
                None,
            )
        if name == "PassportBound":
            return "steps", (
                a["eventId"],
                "bind",
                a["actor"],
                a["inputs"],
                0,
                str(a["footprint"]),
                a["passport"],
                a["documentHash"],
            )
        if name == "LotConsumed":
            return "consumptions", (
                a["eventId"],
                a["lot"],
                a["actor"],
                str(a["quantity"]),
                str(a["remaining"]),
            )
        if name == "LotProduced":
            return "productions", (
                a["eventId"],
                a["lot"],
                a["actor"],
                a["material"],
                str(a["quantity"]),
                a["documentHash"],
            )
        if name == "EventCorrected":
            return "corrections", (
                a["eventId"],
                a["target"],
                a["actor"],
                a["reason"],
                b"".join(a["corrective"]),
            )
        if name == "PassportAttested":
            return "attestations", (
                a["eventId"],
                a["passport"],
                a["auditor"],
                a["verdict"],
                a["reportHash"],
            )
        return None, ()  # OperationFailed and the like: nothing to keep

    def rollback(self, to_block: int) -> None:
        with self._write() as conn:
            touched = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT lot FROM handoffs WHERE block_number > ?", (to_block,)
                )
            ]
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table} WHERE block_number > ?", (to_block,))
            self._follow_custody(conn, touched)
            conn.execute("DELETE FROM reports")
            conn.execute("UPDATE report_epoch SET epoch = epoch + 1")
            conn.execute("DELETE FROM blocks WHERE number > ?", (to_block,))
            row = conn.execute("SELECT hash FROM blocks WHERE number = ?", (to_block,)).fetchone()
            if row is None:
                conn.execute("DELETE FROM checkpoint")
            else:
                conn.execute(
                    "UPDATE checkpoint SET block_number = ?, block_hash = ?, updated_at = ?",
                    (to_block, row[0], time.time()),
                )

    # -- reading graphs --------------------------------------------------------------------------

    def upstream(self, passport: bytes) -> Graph | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT event_id FROM steps WHERE passport = ?", (passport,)
            ).fetchone()
            if row is None:
                return None
            self._fill(conn, "q_steps", ())
            conn.execute(
                f"INSERT INTO q_steps WITH RECURSIVE up(id) AS (SELECT ?{_UP_STEPS})"
                " SELECT id FROM up",
                (row[0],),
            )
            self._fill(conn, "q_lots", ())
            conn.execute(
                "INSERT OR IGNORE INTO q_lots SELECT c.lot FROM q_steps q "
                "CROSS JOIN consumptions c ON c.event_id = q.id"
            )
            graph = self._graph(conn)
            graph.attestations.update(self._attestations(conn, [passport]))
            return graph

    def ancestry(self, lots: Sequence[bytes]) -> Graph:
        with self._read() as conn:
            self._fill(conn, "q_lots", lots)
            self._fill(conn, "q_steps", ())
            conn.execute(
                "INSERT INTO q_steps WITH RECURSIVE up(id) AS ("
                " SELECT p.event_id FROM q_lots q CROSS JOIN productions p ON p.lot = q.id"
                f"{_UP_STEPS}) SELECT id FROM up"
            )
            conn.execute(
                "INSERT OR IGNORE INTO q_lots SELECT c.lot FROM q_steps q "
                "CROSS JOIN consumptions c ON c.event_id = q.id"
            )
            return self._graph(conn)

    def downstream(self, lots: Sequence[bytes]) -> Graph:
        with self._read() as conn:
            self._fill(conn, "q_start", lots)
            self._fill(conn, "q_lots", ())
            conn.execute(
                "INSERT INTO q_lots WITH RECURSIVE down(lot) AS ("
                " SELECT id FROM q_start"
                " UNION"
                " SELECT p.lot FROM down CROSS JOIN consumptions c ON c.lot = down.lot"
                " CROSS JOIN productions p ON p.event_id = c.event_id"
                ") SELECT lot FROM down"
            )
            # The steps consuming any of these lots (transformations and bindings), and the
            # steps that produced them.
            self._fill(conn, "q_steps", ())
            conn.execute(
                "INSERT OR IGNORE INTO q_steps SELECT c.event_id FROM q_lots q "
                "CROSS JOIN consumptions c ON c.lot = q.id"
            )
            conn.execute(
                "INSERT OR IGNORE INTO q_steps SELECT p.event_id FROM q_lots q "
                "CROSS JOIN productions p ON p.lot = q.id"
            )
            graph = self._graph(conn)
            graph.attestations.update(self._attestations(conn, list(graph.passports)))
            return graph

    @staticmethod
    def _fill(conn: sqlite3.Connection, table: str, values: Iterable[bytes]) -> None:
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (id BLOB PRIMARY KEY)")
        conn.execute(f"DELETE FROM {table}")
        conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?)", ((v,) for v in values))

    def _graph(self, conn: sqlite3.Connection) -> Graph:
        """The graph of the lots in the temp table q_lots and the steps in q_steps, which holds
        the step that produced each of those lots that was produced."""
        # Each query reads from a small temp table of ids into an indexed table (CROSS JOIN keeps
        # SQLite from scanning the big table instead), so the cost follows the size of the
        # graph, not of the ledger. Rows are read first and objects built after, so that the
        # blocks they refer to are read in one query.
        commissions = conn.execute(
            "SELECT c.tx_hash, c.log_index, c.block_number, c.event_id, c.lot, c.actor, "
            "c.material, c.quantity, c.feedstock, c.footprint, c.document_hash, c.facility, "
            "c.country FROM q_lots q CROSS JOIN commissions c ON c.lot = q.id"
        ).fetchall()
        lot_ids = {r[0] for r in conn.execute("SELECT id FROM q_lots")}
        consumed = conn.execute(
            "SELECT c.event_id, c.lot, c.quantity FROM q_steps q "
            "CROSS JOIN consumptions c ON c.event_id = q.id ORDER BY c.block_number, c.log_index"
        ).fetchall()
        outputs_rows = conn.execute(
            "SELECT p.event_id, p.lot, p.material, p.quantity, p.document_hash FROM q_steps q "
            "CROSS JOIN productions p ON p.event_id = q.id ORDER BY p.block_number, p.log_index"
        ).fetchall()
        step_rows = conn.execute(
            "SELECT s.tx_hash, s.log_index, s.block_number, s.event_id, s.kind, s.actor, "
            "s.footprint, s.passport, s.document_hash FROM q_steps q "
            "CROSS JOIN steps s ON s.event_id = q.id"
        ).fetchall()
        # Lapses by signer and kind: how many, and the first and the last in chain order (an
        # aggregate's other columns come from the row of its min() or max()).
        position = "block_number * 1048576 + log_index"  # a log index is below 2^20
        lapse_rows = conn.execute(
            f"WITH found AS MATERIALIZED (SELECT {_LAPSE_COLUMNS} FROM q_lots q"
            " CROSS JOIN lapses l ON l.lot = q.id"
            f" UNION ALL SELECT {_LAPSE_COLUMNS} FROM q_steps q"
            " CROSS JOIN lapses l ON l.event_id = q.id WHERE l.lot IS NULL)"
            f" SELECT {_LAPSE_FIELDS}, count(*), 1, min({position}) FROM found"
            " GROUP BY actor, code"
            f" UNION ALL SELECT {_LAPSE_FIELDS}, count(*), 0, max({position}) FROM found"
            " GROUP BY actor, code"
        ).fetchall()
        # Custody: the shipments of the lots in transit.
        handoff_rows = conn.execute(
            f"SELECT {_HANDOFF_COLUMNS} FROM q_lots q CROSS JOIN in_transit t ON t.lot = q.id"
            " CROSS JOIN handoffs h ON h.tx_hash = t.tx_hash AND h.log_index = t.log_index"
        ).fetchall()
        # Corrections of the graph's events, and all custody events of a lot with a corrected
        # one: one index probe per event, none when no event of the ledger was ever corrected.
        correction_rows: list[Any] = []
        if conn.execute("SELECT 1 FROM corrections LIMIT 1").fetchone() is not None:
            columns = "x.tx_hash, x.log_index, x.block_number, x.event_id, x.target, x.actor, "
            columns += "x.reason, x.corrective"
            correction_rows = conn.execute(
                f"SELECT {columns} FROM q_lots q CROSS JOIN commissions c ON c.lot = q.id"
                " CROSS JOIN corrections x ON x.target = c.event_id"
                f" UNION ALL SELECT {columns} FROM q_steps q"
                " CROSS JOIN corrections x ON x.target = q.id"
                f" UNION ALL SELECT {columns} FROM q_lots q CROSS JOIN handoffs h ON h.lot = q.id"
                " CROSS JOIN corrections x ON x.target = h.event_id"
                " ORDER BY 3, 2"
            ).fetchall()
            handoff_rows += conn.execute(
                f"SELECT {_HANDOFF_COLUMNS} FROM q_lots q CROSS JOIN handoffs h ON h.lot = q.id"
                " WHERE EXISTS (SELECT 1 FROM handoffs y CROSS JOIN corrections x"
                " ON x.target = y.event_id WHERE y.lot = q.id)"
            ).fetchall()
            handoff_rows = sorted(set(handoff_rows), key=lambda r: (r[2], r[1]))
        actors = {r[5] for r in commissions} | {r[5] for r in step_rows}
        actors |= {r[6] for r in handoff_rows} | {r[7] for r in handoff_rows}
        actors |= {r[5] for r in correction_rows} | {r[7] for r in lapse_rows}
        change_rows, certification_rows = self._participant_rows(conn, actors)
        block_numbers = {r[2] for r in commissions} | {r[2] for r in step_rows}
        block_numbers |= {r[2] for r in handoff_rows} | {r[2] for r in correction_rows}
        block_numbers |= {r[2] for r in change_rows} | {r[2] for r in certification_rows}
        block_numbers |= {r[2] for r in lapse_rows}
        blocks = self._block_rows(conn, block_numbers)
        ref = _event_refs(blocks)

        # SQLite returns BLOBs as bytes, TEXT as str and INTEGER as int: rows are used as they
        # come, but for the uint96/uint256 values stored as decimal TEXT.
        lots: dict[bytes, LotNode] = {}
        for r in commissions:  # the bulk of a passport's graph: ref() inlined
            tx, index, block, eid, lot, actor, material, qty, feedstock, fp, doc, fac, country = r
            block_hash, timestamp = blocks[block]
            event = EventRef(eid, tx, block, block_hash, index, timestamp, actor)
            origin = Origin(feedstock, int(fp), fac, country, doc, event)
            lots[lot] = LotNode(lot, material, int(qty), origin)
        inputs: dict[bytes, list[Consumed]] = defaultdict(list)
        consumers: dict[bytes, list[bytes]] = defaultdict(list)
        for eid, lot, qty in consumed:
            inputs[eid].append(Consumed(lot, int(qty)))
            consumers[lot].append(eid)
        outputs: dict[bytes, list[Produced]] = defaultdict(list)
        for eid, lot, material, qty, doc in outputs_rows:
            quantity = int(qty)
            outputs[eid].append(Produced(lot, material, quantity, bytes(doc)))
            if lot in lot_ids:
                lots[lot] = LotNode(lot, material, quantity, None, eid)
        steps: dict[bytes, Step] = {}
        passports: dict[bytes, bytes] = {}
        for tx, index, block, eid, kind, actor, fp, passport, doc in step_rows:
            steps[eid] = Step(
                kind,
                ref(eid, tx, block, index, actor),
                int(fp),
                tuple(inputs[eid]),
                tuple(outputs[eid]),
                passport,
                bytes(doc) if doc is not None else bytes(32),
            )
            if passport is not None:
                passports[passport] = eid
        handoffs: dict[bytes, list[Handoff]] = defaultdict(list)
        for tx, index, block, eid, lot, kind, sender, recipient in handoff_rows:
            actor = sender if kind in ("ship", "recall") else recipient
            handoffs[lot].append(
                Handoff(lot, kind, sender, recipient, ref(eid, tx, block, index, actor))
            )
        corrections = _corrections(correction_rows, ref)
        firsts: dict[tuple[str, LapseCode], tuple[Lapse, int]] = {}
        lasts: dict[tuple[str, LapseCode], Lapse] = {}
        for tx, index, block, eid, code, kind, lot, actor, size, first, _ in lapse_rows:
            lapse = Lapse(code, kind, lot, ref(eid, tx, block, index, actor))
            if first:
                firsts[(actor, code)] = (lapse, size)
            else:
                lasts[(actor, code)] = lapse
        lapses = in_chain_order(
            LapseGroup(key[1], key[0], size, first, lasts[key])
            for key, (first, size) in firsts.items()
        )
        return Graph(
            lots=lots,
            steps=steps,
            consumers={lot: tuple(ids) for lot, ids in consumers.items()},
            handoffs={lot: tuple(items) for lot, items in handoffs.items()},
            participants=self._participants(change_rows, certification_rows, ref),
            corrections={t: tuple(items) for t, items in corrections.items()},
            passports=passports,
            lapses=lapses,
        )

    def _block_rows(
        self, conn: sqlite3.Connection, numbers: Iterable[int]
    ) -> dict[int, tuple[bytes, int]]:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS q_blocks (number INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM q_blocks")
        conn.executemany("INSERT OR IGNORE INTO q_blocks VALUES (?)", ((n,) for n in numbers))
        return {
            number: (bytes(block_hash), timestamp)
            for number, block_hash, timestamp in conn.execute(
                "SELECT b.number, b.hash, b.timestamp FROM q_blocks q "
                "CROSS JOIN blocks b ON b.number = q.number"
            )
        }

    def _participant_rows(
        self, conn: sqlite3.Connection, accounts: Iterable[str]
    ) -> tuple[list[Any], list[Any]]:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS q_accounts (account TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM q_accounts")
        conn.executemany("INSERT OR IGNORE INTO q_accounts VALUES (?)", ((a,) for a in accounts))
        changes = conn.execute(
            "SELECT p.tx_hash, p.log_index, p.block_number, p.event_id, p.account, p.roles, "
            "p.facility, p.country FROM q_accounts q CROSS JOIN participant_changes p "
            "ON p.account = q.account ORDER BY p.block_number, p.log_index"
        ).fetchall()
        certifications = conn.execute(
            "SELECT c.tx_hash, c.log_index, c.block_number, c.event_id, c.account, c.scheme, "
            "c.valid_until, c.document_hash FROM q_accounts q CROSS JOIN certifications c "
            "ON c.account = q.account ORDER BY c.block_number, c.log_index"
        ).fetchall()
        return changes, certifications

    def _histories(
        self, conn: sqlite3.Connection, accounts: Iterable[str]
    ) -> dict[str, ParticipantHistory]:
        """The accreditation and certification histories of ``accounts``, with evidence."""
        change_rows, certification_rows = self._participant_rows(conn, accounts)
        blocks = self._block_rows(
            conn, {r[2] for r in change_rows} | {r[2] for r in certification_rows}
        )
        return self._participants(change_rows, certification_rows, _event_refs(blocks))

    @staticmethod
    def _participants(
        change_rows: Sequence[Any],
        certification_rows: Sequence[Any],
        ref: RefMaker,
    ) -> dict[str, ParticipantHistory]:
        changes: dict[str, list[RoleChange]] = defaultdict(list)
        facility: dict[str, bytes] = {}
        country: dict[str, str] = {}
        certs: dict[str, list[CertificationRecord]] = defaultdict(list)
        for tx, index, block, eid, account, roles, fac, ctry in change_rows:
            changes[account].append(
                RoleChange(roles, block, index, ref(eid, tx, block, index, account))
            )
            if fac is not None:
                facility[account] = bytes(fac)
                country[account] = ctry
        for tx, index, block, eid, account, scheme, valid_until, doc in certification_rows:
            certs[account].append(
                CertificationRecord(
                    bytes(scheme), int(valid_until), bytes(doc), ref(eid, tx, block, index, account)
                )
            )
        return {
            account: ParticipantHistory(
                account,
                facility.get(account, bytes(32)),
                country.get(account, ""),
                tuple(changes[account]),
                tuple(certs[account]),
            )
            for account in sorted(changes.keys() | certs.keys())
        }

    def _attestations(
        self, conn: sqlite3.Connection, passports: Sequence[bytes]
    ) -> dict[bytes, tuple[Attestation, ...]]:
        rows = [
            (passport, *row)
            for passport in passports
            for row in conn.execute(
                "SELECT a.tx_hash, a.log_index, a.block_number, a.event_id, a.auditor, a.verdict, "
                "a.report_hash FROM attestations a WHERE a.passport = ? "
                "ORDER BY a.block_number, a.log_index",
                (passport,),
            )
        ]
        ref = _event_refs(self._block_rows(conn, {r[3] for r in rows}))
        found: dict[bytes, list[Attestation]] = defaultdict(list)
        for passport, tx, index, block, eid, auditor, verdict, report in rows:
            event = ref(eid, tx, block, index, auditor)
            found[passport].append(Attestation(passport, verdict, report, event))
        return {p: tuple(items) for p, items in found.items()}

    # -- reports ---------------------------------------------------------------------------------

    def report_epoch(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT epoch FROM report_epoch").fetchone()[0])

    def report(self, passport: bytes, variant: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT document FROM reports WHERE passport = ? AND variant = ?",
                (passport, variant),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def save_report(self, passport: bytes, variant: str, document: bytes, epoch: int) -> bool:
        with self._write() as conn:
            if conn.execute("SELECT epoch FROM report_epoch").fetchone()[0] != epoch:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO reports (passport, variant, document) VALUES (?, ?, ?)",
                (passport, variant, document),
            )
        return True

    # -- small reads -----------------------------------------------------------------------------

    def lots_of_facility(self, facility: bytes) -> list[bytes]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT lot FROM commissions WHERE facility = ? ORDER BY block_number, log_index",
                (facility,),
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def lot(self, lot: bytes) -> LotNode | None:
        with self._read() as conn:
            self._fill(conn, "q_lots", [lot])
            self._fill(conn, "q_steps", ())
            conn.execute(
                "INSERT INTO q_steps SELECT event_id FROM productions WHERE lot = ?", (lot,)
            )
            return self._graph(conn).lots.get(lot)

    def history(self, lot: bytes) -> list[LotEvent]:
        """Every event that touched ``lot``, in chain order (empty when the lot is unknown)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT block_number, log_index, tx_hash, event_id, actor, 'commission', "
                "quantity, NULL, NULL, NULL, NULL, NULL FROM commissions WHERE lot = ?1 "
                "UNION ALL SELECT p.block_number, p.log_index, p.tx_hash, p.event_id, p.actor, "
                "'produce', p.quantity, NULL, NULL, p.event_id, s.kind, s.passport "
                "FROM productions p JOIN steps s ON s.event_id = p.event_id WHERE p.lot = ?1 "
                "UNION ALL SELECT block_number, log_index, tx_hash, event_id, "
                "CASE WHEN kind IN ('ship', 'recall') THEN sender ELSE recipient END, kind, "
                "NULL, NULL, CASE WHEN kind = 'ship' THEN recipient ELSE sender END, NULL, NULL, "
                "NULL FROM handoffs WHERE lot = ?1 "
                "UNION ALL SELECT c.block_number, c.log_index, c.tx_hash, c.event_id, c.actor, "
                "'consume', c.quantity, c.remaining, NULL, c.event_id, s.kind, s.passport "
                "FROM consumptions c JOIN steps s ON s.event_id = c.event_id WHERE c.lot = ?1 "
                "ORDER BY 1, 2",
                (lot,),
            ).fetchall()
            ids = {r[3] for r in rows}
            correction_rows = [
                row
                for event_id in ids
                for row in conn.execute(
                    "SELECT tx_hash, log_index, block_number, event_id, target, actor, reason, "
                    "corrective FROM corrections WHERE target = ? "
                    "ORDER BY block_number, log_index",
                    (event_id,),
                )
            ]
            ref = _event_refs(
                self._block_rows(conn, {r[0] for r in rows} | {r[2] for r in correction_rows})
            )
        corrections = _corrections(correction_rows, ref)
        return [
            LotEvent(
                kind,
                ref(eid, tx, block, index, actor),
                None if quantity is None else int(quantity),
                None if remaining is None else int(remaining),
                counterparty,
                None if step is None else bytes(step),
                step_kind,
                None if passport is None else bytes(passport),
                tuple(corrections.get(bytes(eid), ())),
            )
            for (
                block,
                index,
                tx,
                eid,
                actor,
                kind,
                quantity,
                remaining,
                counterparty,
                step,
                step_kind,
                passport,
            ) in rows
        ]

    def participants(self, accounts: Sequence[str] | None = None) -> dict[str, ParticipantHistory]:
        """The histories of ``accounts`` (checksummed), or of every participant ever accredited
        or certified, by account."""
        with self._read() as conn:
            if accounts is None:
                accounts = [
                    r[0]
                    for r in conn.execute(
                        "SELECT account FROM participant_changes UNION "
                        "SELECT account FROM certifications"
                    )
                ]
            return self._histories(conn, accounts)

    def bound(self, passport: bytes) -> bool:
        """Whether the index holds the passport's binding."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM steps WHERE passport = ?", (passport,)
            ).fetchone()
        return row is not None

    def attestations(self, passport: bytes) -> tuple[Attestation, ...]:
        """Auditors' attestations of the passport, in chain order."""
        with self._read() as conn:
            return self._attestations(conn, [passport]).get(passport, ())

    def passports(self) -> list[bytes]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT passport FROM steps WHERE passport IS NOT NULL "
                "ORDER BY block_number, log_index"
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Rows of each kind of ledger log stored."""
        with self._lock:
            counts = {
                table: int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in _TABLES
                if table != "lapses"  # found from the others
            }
        return counts
