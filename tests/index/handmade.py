"""Ledger logs built by hand, with no node, for the store tests: a small chain of blocks, each
holding one transaction whose logs are the given events in order, and a supply chain written on
it."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak, to_checksum_address

from mine2cell.chain.artifacts import load_artifact
from mine2cell.index.events import LedgerLog
from mine2cell.index.store import Checkpoint, Store
from mine2cell.provenance.model import EventRef

Event = tuple[str, dict[str, Any]]
Blocks = dict[int, tuple[bytes, int]]

GENESIS_TIME = 1_750_000_000
UINT64_MAX = 2**64 - 1
UINT96_MAX = 2**96 - 1

MINE, PROCESSOR, CELL_MAKER, AUDITOR = 1, 4, 8, 16
CO_HYDROXIDE, CO_SULFATE, LI_CARBONATE, CAM_NMC = 101, 102, 201, 701
PRIMARY = 0
DID_NOT_OCCUR, INCORRECT_DATA = 1, 2
PASS, FAIL = 1, 2


def event_id(label: str) -> bytes:
    return keccak(text=f"event {label}")


def lot(label: str) -> bytes:
    return keccak(text=f"lot {label}")


def passport(label: str) -> bytes:
    return keccak(text=f"passport {label}")


def document(label: str) -> bytes:
    return keccak(text=f"document {label}")


def account(label: str) -> str:
    return to_checksum_address(keccak(text=f"account {label}")[-20:])


def site(name: str) -> bytes:
    return name.encode("ascii").ljust(32, b"\0")


@functools.cache
def _event_arguments() -> dict[str, frozenset[str]]:
    return {
        item["name"]: frozenset(i["name"] for i in item["inputs"])
        for item in load_artifact("Ledger").abi
        if item.get("type") == "event"
    }


def event(name: str, **args: Any) -> Event:
    """An event with the arguments ``decode_log`` gives it (checked against the ledger's ABI, so
    that hand-made logs cannot drift from decoded ones)."""
    assert set(args) == _event_arguments()[name], (name, sorted(args))
    return name, args


class HandmadeChain:
    """Blocks numbered from 1, on a branch named ``fork``: two branches share no block hash, no
    transaction hash and no timestamp above the block they were forked at."""

    def __init__(self, fork: str = "canonical") -> None:
        self.fork = fork
        self.logs: list[LedgerLog] = []
        self.blocks: Blocks = {}
        self.head = 0

    def branch(self, at_block: int, fork: str) -> HandmadeChain:
        """Another branch with this one's blocks up to ``at_block`` and nothing after."""
        other = HandmadeChain(fork)
        other.logs = [log for log in self.logs if log.block_number <= at_block]
        other.blocks = {n: h for n, h in self.blocks.items() if n <= at_block}
        other.head = at_block
        return other

    def mine(self, *events: Event) -> list[LedgerLog]:
        """A new block with one transaction logging these events; its logs."""
        self.head += 1
        number = self.head
        block_hash = keccak(text=f"{self.fork} block {number}")
        timestamp = GENESIS_TIME + 12 * number + (0 if self.fork == "canonical" else 5)
        self.blocks[number] = (block_hash, timestamp)
        tx_hash = keccak(text=f"{self.fork} transaction in block {number}")
        logs = [
            LedgerLog(name, args, tx_hash, index, number, block_hash, timestamp)
            for index, (name, args) in enumerate(events)
        ]
        self.logs += logs
        return logs

    def checkpoint(self, block: int | None = None) -> Checkpoint:
        number = self.head if block is None else block
        return Checkpoint(number, self.blocks[number][0])

    def page(
        self, first: int = 1, last: int | None = None
    ) -> tuple[list[LedgerLog], Blocks, Checkpoint]:
        """What a sync of blocks ``first``..``last`` hands the store: the logs, their blocks and
        the last one, and the checkpoint."""
        end = self.head if last is None else last
        logs = [log for log in self.logs if first <= log.block_number <= end]
        numbers = {log.block_number for log in logs} | {end}
        return logs, {n: self.blocks[n] for n in numbers}, self.checkpoint(end)

    def ingest_into(self, store: Store, first: int = 1, last: int | None = None) -> int:
        return store.ingest(*self.page(first, last))


def ref(log: LedgerLog, actor: str) -> EventRef:
    """The evidence a store should give for ``log``."""
    assert log.timestamp is not None
    return EventRef(
        log.args["eventId"],
        log.tx_hash,
        log.block_number,
        log.block_hash,
        log.log_index,
        log.timestamp,
        actor,
    )


# -- the ledger's events -------------------------------------------------------------------------


def accredited(who: str, roles: int, facility: str, country: str, index: int) -> Event:
    return event(
        "ParticipantAccredited",
        participant=who,
        eventId=event_id(f"accredit {who} {roles}"),
        index=index,
        roles=roles,
        facility=site(facility),
        country=country.encode("ascii"),
    )


def revoked(who: str, previous_roles: int) -> Event:
    return event(
        "ParticipantRevoked",
        participant=who,
        eventId=event_id(f"revoke {who}"),
        previousRoles=previous_roles,
    )


def certified(who: str, scheme: str, valid_until: int) -> Event:
    return event(
        "CertificationRecorded",
        participant=who,
        scheme=site(scheme),
        eventId=event_id(f"certify {who} {scheme}"),
        validUntil=valid_until,
        documentHash=document(f"{scheme} certificate"),
    )


def commissioned(
    lot_id: bytes,
    actor: str,
    *,
    material: int,
    quantity: int,
    facility: str,
    country: str,
    footprint: int = 5000,
) -> Event:
    return event(
        "LotCommissioned",
        lot=lot_id,
        actor=actor,
        eventId=event_id(f"commission {lot_id.hex()}"),
        material=material,
        quantity=quantity,
        feedstock=PRIMARY,
        footprint=footprint,
        documentHash=document(f"assay {lot_id.hex()}"),
        facility=site(facility),
        country=country.encode("ascii"),
    )


def handed(kind: str, lot_id: bytes, sender: str, recipient: str) -> Event:
    """A custody event: kind is the event name (LotShipped, LotReceived, ...)."""
    return event(
        kind,
        lot=lot_id,
        **{"from": sender, "to": recipient},
        eventId=event_id(f"{kind} {lot_id.hex()} {sender} {recipient}"),
    )


def transformed(step: bytes, actor: str, inputs: int, outputs: int, footprint: int) -> Event:
    return event(
        "LotsTransformed",
        eventId=step,
        actor=actor,
        inputs=inputs,
        outputs=outputs,
        footprint=footprint,
    )


def bound(passport_id: bytes, step: bytes, actor: str, inputs: int, footprint: int) -> Event:
    return event(
        "PassportBound",
        passport=passport_id,
        eventId=step,
        actor=actor,
        inputs=inputs,
        footprint=footprint,
        documentHash=document(f"bill of materials {passport_id.hex()}"),
    )


def consumed(lot_id: bytes, step: bytes, actor: str, quantity: int, remaining: int) -> Event:
    return event(
        "LotConsumed",
        lot=lot_id,
        eventId=step,
        actor=actor,
        quantity=quantity,
        remaining=remaining,
    )


def produced(lot_id: bytes, step: bytes, actor: str, material: int, quantity: int) -> Event:
    return event(
        "LotProduced",
        lot=lot_id,
        eventId=step,
        actor=actor,
        material=material,
        quantity=quantity,
        documentHash=document(f"assay {lot_id.hex()}"),
    )


def corrected(target: bytes, actor: str, reason: int, corrective: tuple[bytes, ...]) -> Event:
    return event(
        "EventCorrected",
        target=target,
        eventId=event_id(f"correct {target.hex()} by {actor}"),
        actor=actor,
        reason=reason,
        corrective=corrective,
    )


def attested(passport_id: bytes, auditor: str, verdict: int) -> Event:
    return event(
        "PassportAttested",
        passport=passport_id,
        eventId=event_id(f"attest {passport_id.hex()}"),
        auditor=auditor,
        verdict=verdict,
        reportHash=document(f"audit report {passport_id.hex()}"),
    )


def operation_failed(index: int) -> Event:
    return event("OperationFailed", index=index, reason=b"\x12\x34\x56\x78")


# -- a supply chain --------------------------------------------------------------------------------

MINE_CD, MINE_AU, REFINER, CELL, AUDITOR_ACCOUNT = (
    account(name) for name in ("mine cd", "mine au", "refiner", "cell", "auditor")
)
ORE_CD, ORE_AU, SPARE_ORE = lot("ore cd"), lot("ore au"), lot("spare ore")
CAM, SIDE_PRODUCT = lot("cathode material"), lot("side product")
REFINE, SIDE_STEP = event_id("refine"), event_id("side step")
BIND_1, BIND_2 = event_id("bind 1"), event_id("bind 2")
PASSPORT_1, PASSPORT_2 = passport("1"), passport("2")


@dataclass
class SupplyChain:
    """Two mines' ore refined into cathode material that two passports are bound to; a spare lot
    nobody uses, a side product of the Congolese ore, corrections and attestations. ``logs``
    names the interesting logs."""

    chain: HandmadeChain
    logs: dict[str, LedgerLog] = field(default_factory=dict)

    def mine(self, **named: Event) -> None:
        for name, log in zip(named, self.chain.mine(*named.values()), strict=True):
            self.logs[name] = log

    def block_of(self, name: str) -> int:
        return self.logs[name].block_number


def supply_chain() -> SupplyChain:
    sc = SupplyChain(HandmadeChain())
    sc.mine(  # block 1
        accredit_mine_cd=accredited(MINE_CD, MINE, "KOLWEZI-NORTH", "CD", 1),
        accredit_mine_au=accredited(MINE_AU, MINE, "MURRIN-EAST", "AU", 2),
        accredit_refiner=accredited(REFINER, PROCESSOR, "KOKKOLA-REFINERY", "FI", 3),
        accredit_cell=accredited(CELL, CELL_MAKER, "SKELLEFTEA-CELLS", "SE", 4),
        accredit_auditor=accredited(AUDITOR_ACCOUNT, AUDITOR, "ANTWERP-AUDIT", "BE", 5),
    )
    sc.mine(certify_refiner=certified(REFINER, "RMAP", 2_000_000_000))  # block 2
    sc.mine(  # block 3
        commission_cd=commissioned(
            ORE_CD,
            MINE_CD,
            material=CO_HYDROXIDE,
            quantity=1000,
            facility="KOLWEZI-NORTH",
            country="CD",
        ),
        commission_au=commissioned(
            ORE_AU,
            MINE_AU,
            material=LI_CARBONATE,
            quantity=2000,
            facility="MURRIN-EAST",
            country="AU",
            footprint=3000,
        ),
        commission_spare=commissioned(
            SPARE_ORE,
            MINE_AU,
            material=LI_CARBONATE,
            quantity=500,
            facility="MURRIN-EAST",
            country="AU",
        ),
    )
    sc.mine(  # block 4
        ship_cd=handed("LotShipped", ORE_CD, MINE_CD, REFINER),
        receive_cd=handed("LotReceived", ORE_CD, MINE_CD, REFINER),
        ship_au=handed("LotShipped", ORE_AU, MINE_AU, REFINER),
        receive_au=handed("LotReceived", ORE_AU, MINE_AU, REFINER),
    )
    sc.mine(  # block 5: a batch whose first operation failed, then a transformation
        failed=operation_failed(0),
        refine=transformed(REFINE, REFINER, 2, 1, 700),
        refine_in_cd=consumed(ORE_CD, REFINE, REFINER, 600, 400),
        refine_in_au=consumed(ORE_AU, REFINE, REFINER, 2000, 0),
        refine_out=produced(CAM, REFINE, REFINER, CAM_NMC, 2400),
    )
    sc.mine(  # block 6: the rest of the Congolese ore goes elsewhere
        side=transformed(SIDE_STEP, REFINER, 1, 1, 100),
        side_in=consumed(ORE_CD, SIDE_STEP, REFINER, 400, 0),
        side_out=produced(SIDE_PRODUCT, SIDE_STEP, REFINER, CO_SULFATE, 400),
    )
    sc.mine(  # block 7
        ship_cam=handed("LotShipped", CAM, REFINER, CELL),
        receive_cam=handed("LotReceived", CAM, REFINER, CELL),
    )
    sc.mine(  # block 8
        bind_1=bound(PASSPORT_1, BIND_1, CELL, 1, 900),
        bind_1_in=consumed(CAM, BIND_1, CELL, 1000, 1400),
    )
    sc.mine(  # block 9
        bind_2=bound(PASSPORT_2, BIND_2, CELL, 1, 800),
        bind_2_in=consumed(CAM, BIND_2, CELL, 1400, 0),
    )
    commission_cd = sc.logs["commission_cd"].args["eventId"]
    commission_spare = sc.logs["commission_spare"].args["eventId"]
    receive_cam = sc.logs["receive_cam"].args["eventId"]
    sc.mine(  # block 10
        correct_cd=corrected(commission_cd, MINE_CD, INCORRECT_DATA, (event_id("fixed"),)),
        correct_spare=corrected(commission_spare, MINE_AU, DID_NOT_OCCUR, ()),
        correct_refine=corrected(
            REFINE, AUDITOR_ACCOUNT, INCORRECT_DATA, (event_id("a"), event_id("b"))
        ),
        correct_receive_cam=corrected(receive_cam, CELL, DID_NOT_OCCUR, ()),
    )
    sc.mine(  # block 11
        attest_1=attested(PASSPORT_1, AUDITOR_ACCOUNT, PASS),
        attest_2=attested(PASSPORT_2, AUDITOR_ACCOUNT, FAIL),
    )
    sc.mine(  # block 12
        revoke_mine_au=revoked(MINE_AU, MINE),
        certify_mine_cd=certified(MINE_CD, "IRMA", 1_900_000_000),
    )
    return sc


# Rows the supply chain stores, by table (its OperationFailed log is not kept).
SUPPLY_CHAIN_COUNTS = {
    "participant_changes": 6,
    "certifications": 2,
    "commissions": 3,
    "steps": 4,
    "consumptions": 5,
    "productions": 2,
    "handoffs": 6,
    "corrections": 4,
    "attestations": 2,
}
