"""The stored graph, as the provenance engine reads it: lots, the steps that consumed and produced
them, custody hand-offs, participants' accreditation and certification history, corrections.

Records are named tuples (a passport's graph holds thousands of them, and a tuple is built four
times faster than a frozen dataclass). A store (``mine2cell.index``) loads these from the indexed
logs; the engine
(``mine2cell.provenance.engine``) computes from them with no I/O. Masses are integer grams,
footprints integer grams of CO2e, times unix seconds of the block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple


class EventRef(NamedTuple):
    """Where an event is on chain: its evidence."""

    event_id: bytes
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    log_index: int
    timestamp: int
    actor: str


class Origin(NamedTuple):
    """How a commissioned lot entered the ledger: mined (feedstock 0) or recycled (1 pre-consumer,
    2 post-consumer), at a facility in a country."""

    feedstock: int
    footprint: int
    facility: bytes
    country: str
    document_hash: bytes
    event: EventRef


class LotNode(NamedTuple):
    """A lot: its material, the quantity it was created with, and either its origin (commissioned)
    or the step that produced it."""

    lot: bytes
    material: int
    quantity: int
    origin: Origin | None = None
    produced_by: bytes | None = None  # event id of the producing step


class Consumed(NamedTuple):
    lot: bytes
    quantity: int


class Produced(NamedTuple):
    lot: bytes
    material: int
    quantity: int
    document_hash: bytes = bytes(32)  # of the output's off-chain documents


class Step(NamedTuple):
    """A transformation (inputs consumed, outputs produced) or a passport binding (inputs only)."""

    kind: Literal["transform", "bind"]
    event: EventRef
    footprint: int
    inputs: tuple[Consumed, ...]
    outputs: tuple[Produced, ...] = ()
    passport: bytes | None = None  # for a binding
    document_hash: bytes = bytes(32)  # a binding's off-chain documents


class Handoff(NamedTuple):
    """A custody event on a lot: ``ship`` (sender -> recipient), ``receive``, ``reject``,
    ``recall``."""

    lot: bytes
    kind: Literal["ship", "receive", "reject", "recall"]
    sender: str
    recipient: str
    event: EventRef


class RoleChange(NamedTuple):
    """An accreditation (roles set) or a revocation (roles 0) at a point of the chain."""

    roles: int
    block_number: int
    log_index: int
    event: EventRef


class CertificationRecord(NamedTuple):
    scheme: bytes
    valid_until: int
    document_hash: bytes
    event: EventRef


@dataclass(frozen=True)
class ParticipantHistory:
    account: str
    facility: bytes
    country: str
    role_changes: tuple[RoleChange, ...]  # in chain order
    certifications: tuple[CertificationRecord, ...]  # in chain order


class Correction(NamedTuple):
    """An EPCIS errorDeclaration: event ``target`` declared erroneous."""

    target: bytes
    reason: int  # 1 did not occur, 2 incorrect data
    corrective: tuple[bytes, ...]
    event: EventRef


EventKind = Literal["commission", "ship", "receive", "reject", "recall", "transform", "bind"]
LapseCode = Literal["signer-not-accredited", "certification-missing", "certification-expired"]


class Lapse(NamedTuple):
    """An event signed by a participant without roles or a valid certification at the time
    (``mine2cell.provenance.standing``): a ``kind`` event on ``lot`` (None for a step)."""

    code: LapseCode
    kind: EventKind
    lot: bytes | None
    event: EventRef


class LapseGroup(NamedTuple):
    """The ``size`` events ``actor`` signed in one kind of lapse, the first and the last."""

    code: LapseCode
    actor: str
    size: int
    first: Lapse
    last: Lapse


class Attestation(NamedTuple):
    passport: bytes
    verdict: int  # 1 pass, 2 fail
    report_hash: bytes
    event: EventRef


@dataclass(frozen=True)
class Graph:
    """A part of the stored graph that is closed under what a query needs: for a passport, every
    lot upstream of its binding with the steps that produced them; for a downstream query, every
    step and lot downstream of the start. Participants, custody and corrections cover those
    lots' and steps' events.

    ``lapses`` are the standing lapses of those events as a store found them when it indexed
    them, grouped by signer and kind of lapse (in chain order of their first event), or None.
    With None, ``handoffs`` holds every custody event of the lots and the engine finds the
    lapses itself; with stored lapses, a store may load only the custody events a report cites:
    for each lot its last one when that is a shipment (the lot is in transit), and every one of
    a lot that has a corrected custody event.
    """

    lots: dict[bytes, LotNode] = field(default_factory=dict)
    steps: dict[bytes, Step] = field(default_factory=dict)  # by event id
    consumers: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)  # lot -> step ids
    handoffs: dict[bytes, tuple[Handoff, ...]] = field(default_factory=dict)  # by lot
    participants: dict[str, ParticipantHistory] = field(default_factory=dict)
    corrections: dict[bytes, tuple[Correction, ...]] = field(default_factory=dict)  # by target
    attestations: dict[bytes, tuple[Attestation, ...]] = field(default_factory=dict)  # passport
    passports: dict[bytes, bytes] = field(default_factory=dict)  # passport -> binding step id
    lapses: tuple[LapseGroup, ...] | None = None
