"""What an export covers, read from the index: the ledger events of one lot, of a passport's whole
upstream chain, or of one participant in a time range, as plain records that the writers (EPCIS
2.0 here, UNTP beside it) turn into documents without further I/O.

Scopes:

- **lot**: every event of the lot's history: its commissioning or the transformation that
  produced it, each custody event, each transformation or binding that consumed it, and every
  correction declared about any of them.
- **passport**: the whole upstream chain: every upstream lot's commissioning and custody events,
  every upstream transformation and the binding itself, and every correction of any of them.
  Transformations outside the chain (a lot split between two passports: the other branch) are
  not part of it.
- **participant**: the events the participant signed (commissioning, custody events, steps,
  corrections) or was a party to (a shipment to it, a receipt or rejection of its shipment),
  whose block time is in ``[since, until)`` (the EPCIS query's GE_eventTime / LT_eventTime).
  Declarations are in it when their own block time is in the range and they correct one of the
  participant's events. The index has no per-participant table: the lots are found by the
  ledger's indexed topics (two ``eth_getLogs`` calls, ``participant_lots``), their histories
  then come from the index.

A custody record carries the grams the lot held when it moved: the ledger moves whole lots, and
that figure follows from the lot's recorded quantity and the ``remaining`` of each consumption
before the hand-off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from eth_utils import to_checksum_address
from web3 import Web3

from mine2cell.chain.rpc import JsonRpc
from mine2cell.errors import InvalidInput
from mine2cell.index.events import HANDOFF_KINDS, decode_log, topic0
from mine2cell.index.store import LotEvent, Store
from mine2cell.provenance.model import Correction, EventRef, LotNode, ParticipantHistory, Step


class Custody(NamedTuple):
    """A custody event: ``ship`` (sender -> recipient), ``receive``, ``reject``, ``recall``, on a
    lot holding ``quantity`` grams at that moment."""

    lot: bytes
    kind: Literal["ship", "receive", "reject", "recall"]
    sender: str
    recipient: str
    quantity: int
    event: EventRef


# A commissioned lot (a LotNode with its origin), a custody event, or a step (transformation or
# passport binding).
Record = LotNode | Custody | Step


def evidence_of(record: Record) -> EventRef:
    if isinstance(record, LotNode):
        assert record.origin is not None, "only commissioned lots are records"
        return record.origin.event
    return record.event


@dataclass
class Records:
    """The events of a scope (each once, in chain order) and the corrections declared about them
    (each with the record it declares erroneous), with the participants they name."""

    events: list[Record] = field(default_factory=list)
    declarations: list[tuple[Correction, Record]] = field(default_factory=list)
    participants: dict[str, ParticipantHistory] = field(default_factory=dict)

    def accounts(self) -> set[str]:
        found: set[str] = set()
        for record in self.events:
            found.add(evidence_of(record).actor)
            if isinstance(record, Custody):
                found.update((record.sender, record.recipient))
        found.update(c.event.actor for c, _ in self.declarations)
        return found


def _position(event: EventRef) -> tuple[int, int]:
    return (event.block_number, event.log_index)


class _Collector:
    """Records gathered from lot histories, each once, with their corrections."""

    def __init__(self) -> None:
        self.events: dict[bytes, Record] = {}
        self.corrections: dict[bytes, tuple[Correction, ...]] = {}

    def lot(
        self,
        lot: bytes,
        history: Sequence[LotEvent],
        lots: dict[bytes, LotNode],
        steps: dict[bytes, Step],
        wanted: set[str] | None = None,
    ) -> None:
        """Add the events of one lot's ``history`` (with its commissioned node in ``lots`` and
        steps by id in ``steps``); ``wanted``: only events this participant signed or was a
        party to."""
        held = 0
        shipped_to = ""
        for item in history:
            record: Record | None = None
            event_id = item.event.event_id
            if item.kind == "commission":
                held = item.quantity or 0
                node = lots.get(lot)
                if node is not None and node.origin is not None:
                    record = node
            elif item.kind == "produce":
                held = item.quantity or 0
                record = steps.get(event_id)
            elif item.kind == "consume":
                held = item.remaining if item.remaining is not None else held
                record = steps.get(event_id)
            else:
                kind = HANDOFF_KINDS_BY_NAME[item.kind]
                # The history names the counterparty of a shipment (its recipient) and of a
                # receipt or rejection (the sender); a recall is of the latest shipment.
                if kind == "ship":
                    sender, recipient = item.event.actor, item.counterparty or ""
                    shipped_to = recipient
                elif kind == "recall":
                    sender, recipient = item.event.actor, shipped_to
                else:
                    sender, recipient = item.counterparty or "", item.event.actor
                record = Custody(lot, kind, sender, recipient, held, item.event)
            if record is None:
                continue
            if wanted is not None and not _involves(record, wanted):
                continue
            self.events[event_id] = record
            if item.corrections:
                self.corrections[event_id] = item.corrections

    def records(self, participants: dict[str, ParticipantHistory]) -> Records:
        events = sorted(self.events.values(), key=lambda r: _position(evidence_of(r)))
        declarations = sorted(
            (
                (correction, self.events[target])
                for target, corrections in self.corrections.items()
                for correction in corrections
            ),
            key=lambda pair: _position(pair[0].event),
        )
        found = Records(events, declarations)
        found.participants = {a: p for a, p in participants.items() if a in found.accounts()}
        return found


# The history's custody kinds are the handoff kinds themselves.
HANDOFF_KINDS_BY_NAME: dict[str, Literal["ship", "receive", "reject", "recall"]] = {
    kind: kind for kind in HANDOFF_KINDS.values()
}


def _involves(record: Record, accounts: set[str]) -> bool:
    if isinstance(record, Custody):
        return bool({record.sender, record.recipient} & accounts)
    return evidence_of(record).actor in accounts


def lot_records(store: Store, lot: bytes) -> Records | None:
    """Every event of ``lot``'s history with its corrections; None when the index has no such
    lot."""
    history = store.history(lot)
    if not history:
        return None
    # The downstream graph holds the steps that produced the lot and that consumed it.
    graph = store.downstream([lot])
    collector = _Collector()
    collector.lot(lot, history, graph.lots, graph.steps)
    return collector.records(store.participants())


def passport_records(store: Store, passport: bytes) -> Records | None:
    """The passport's whole upstream chain; None when the index holds no such binding."""
    graph = store.upstream(passport)
    if graph is None:
        return None
    # The graph's steps are the chain's: a consumption of an upstream lot by a step outside the
    # chain finds no step there and is left out.
    collector = _Collector()
    for lot in graph.lots:
        collector.lot(lot, store.history(lot), graph.lots, graph.steps)
    return collector.records(store.participants())


def participant_records(
    store: Store,
    account: str,
    lots: Iterable[bytes],
    *,
    since: int = 0,
    until: int | None = None,
) -> Records:
    """The events of ``account`` on ``lots`` (see ``participant_lots``) whose block time is in
    ``[since, until)``, and the declarations made in that range about its events."""
    account = to_checksum_address(account)
    wanted: set[str] = {account}
    histories = {lot: store.history(lot) for lot in dict.fromkeys(lots)}
    # A step is read from a graph holding it: downstream of one of its outputs (small: what was
    # made from it), or of one of its inputs for a binding, which has no outputs.
    seeds: dict[bytes, bytes] = {}
    for lot, history in histories.items():
        for item in history:
            if item.step is None or item.event.actor != account:
                continue
            if item.kind == "produce" or item.step not in seeds:
                seeds[item.step] = lot
    graph = store.downstream(list(dict.fromkeys(seeds.values()))) if seeds else None
    lot_nodes = dict(graph.lots) if graph is not None else {}
    steps = dict(graph.steps) if graph is not None else {}
    collector = _Collector()
    for lot, history in histories.items():
        if lot not in lot_nodes and any(
            item.kind == "commission" and item.event.actor == account for item in history
        ):
            node = store.lot(lot)
            if node is not None:
                lot_nodes[lot] = node
        collector.lot(lot, history, lot_nodes, steps, wanted)
    everything = collector.records(store.participants())
    end = 2**63 if until is None else until

    def within(event: EventRef) -> bool:
        return since <= event.timestamp < end

    found = Records(
        [r for r in everything.events if within(evidence_of(r))],
        [(c, r) for c, r in everything.declarations if within(c.event)],
    )
    found.participants = {a: p for a, p in everything.participants.items() if a in found.accounts()}
    return found


# Where a participant is named by an indexed topic (position 2 or 3) of the ledger's events.
_TOPIC_2 = (
    "LotCommissioned",
    "LotShipped",
    "LotReceived",
    "ShipmentRejected",
    "ShipmentRecalled",
)
_TOPIC_3 = (
    "LotShipped",
    "LotReceived",
    "ShipmentRejected",
    "ShipmentRecalled",
    "LotConsumed",
    "LotProduced",
)


def participant_lots(
    w3: Web3, ledger: str, account: str, *, from_block: int, to_block: int
) -> list[bytes]:
    """The lots ``account`` commissioned, shipped, received, rejected, recalled, consumed or
    produced in blocks ``from_block..to_block``, read from the node by indexed topics."""
    rpc = JsonRpc(w3, "a participant's export")
    topic = "0x" + bytes.fromhex(to_checksum_address(account)[2:]).rjust(32, b"\0").hex()
    found: dict[bytes, None] = {}
    for position, names in ((2, _TOPIC_2), (3, _TOPIC_3)):
        topics: list[object] = [[topic0(name) for name in names]]
        topics += [None] * (position - 1) + [topic]
        raw = rpc.call(
            "eth_getLogs",
            [
                {
                    "address": to_checksum_address(ledger),
                    "fromBlock": hex(from_block),
                    "toBlock": hex(to_block),
                    "topics": topics,
                }
            ],
        )
        for item in raw:
            log = decode_log(item)
            if log is not None and "lot" in log.args:
                found[bytes(log.args["lot"])] = None
    return list(found)


def participant_scope(
    store: Store,
    w3: Web3,
    ledger: str,
    account: str,
    *,
    from_block: int,
    since: int = 0,
    until: int | None = None,
) -> Records:
    """``participant_records`` of the lots the node names for ``account``, up to the index's
    checkpoint (so that the two agree)."""
    checkpoint = store.checkpoint()
    if checkpoint is None:
        return Records()
    lots = participant_lots(
        w3, ledger, account, from_block=from_block, to_block=checkpoint.block_number
    )
    return participant_records(store, account, lots, since=since, until=until)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_instant(text: str, field: str) -> int:
    """Unix seconds of ``YYYY-MM-DD`` (00:00 UTC) or of an ISO 8601 date-time with an offset."""
    text = text.strip()
    try:
        if _DATE.match(text):
            return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            field,
            f"{text!r} is not a date (YYYY-MM-DD) or a date-time with an offset "
            "(2026-11-22T08:00:00Z)",
        )
    return int(moment.timestamp())
