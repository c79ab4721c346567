"""The provenance report (schema ``mine2cell.provenance/1``, as the index keeps it) read into typed
records for the page.

The page shows rounded figures, so masses and shares are read as floats from the report's rounded
decimal strings (milligrams, 4-decimal percentages); the exact fractions stay in the JSON report.
Participants (the facility and country of an account) are not in the report: the route looks them
up on the ledger and passes them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from mine2cell.provenance.report import PROVENANCE_SCHEMA


class Evidence(NamedTuple):
    """Where an event is on chain."""

    event_id: str
    tx_hash: str
    block_number: int
    log_index: int
    timestamp: int | None
    actor: str


class Origin(NamedTuple):
    facility_id: str
    facility: str  # its label
    country: str
    feedstock: int  # 0 mined, 1 pre-consumer recycled, 2 post-consumer recycled


class Lot(NamedTuple):
    id: str
    label: str
    material: int
    material_name: str
    quantity: int  # grams recorded
    grams: float  # grams of it in the battery
    origin: Origin | None  # set for commissioned lots
    produced_by: str | None  # the producing step's event id
    event: Evidence  # its commissioning, or the producing step's


class Step(NamedTuple):
    """A transformation or the binding."""

    id: str  # event id
    kind: str  # "transform" | "bind"
    stage: str
    footprint: int  # grams CO2e recorded for the event
    base: int
    attributed: float  # grams of its output in the battery

    event: Evidence

    @property
    def fraction(self) -> float:
        """The battery's part of the step's output."""
        return self.attributed / self.base if self.base else 0.0


class Edge(NamedTuple):
    lot: str
    step: str
    grams: int  # recorded by the step


class Share(NamedTuple):
    key: str
    share: float  # of 1
    percent: str  # as the report rounded it


class Element(NamedTuple):
    element: str | None
    annex_x: bool
    grams: float
    share: float
    percent: str
    recycled_percent: str
    pre_consumer_percent: str
    post_consumer_percent: str


class Facility(NamedTuple):
    id: str
    label: str
    country: str
    actor: str
    grams: float
    share: float
    percent: str


class Flag(NamedTuple):
    code: str
    message: str
    event: Evidence | None
    lot: tuple[str, str] | None  # id, label
    account: str | None


class Attestation(NamedTuple):
    verdict: str  # "pass" | "fail"
    report_hash: str
    event: Evidence


class Stage(NamedTuple):
    stage: str
    kg: float
    kg_text: str


class Participant(NamedTuple):
    """An account as the ledger knows it."""

    facility: str
    country: str


@dataclass(frozen=True)
class Report:
    passport_id: str
    passport: str  # its label
    as_of: int | None
    binding: Evidence
    grams_bound: int
    origin_grams: float
    elements: tuple[Element, ...]
    countries: tuple[Share, ...]
    facilities: tuple[Facility, ...]
    recycled_percent: str
    pre_consumer_percent: str
    post_consumer_percent: str
    footprint_kg: str
    stages: tuple[Stage, ...]
    lots: tuple[Lot, ...]
    steps: tuple[Step, ...]  # the binding first, each step before its producers
    inputs: tuple[Edge, ...]  # lot consumed by step
    outputs: tuple[Edge, ...]  # step produced lot
    flags: tuple[Flag, ...]
    attestations: tuple[Attestation, ...]  # in chain order

    @property
    def latest_attestation(self) -> Attestation | None:
        return self.attestations[-1] if self.attestations else None

    def actors(self) -> set[str]:
        """Every account the page may name: the steps' signers and the auditors."""
        found = {step.event.actor for step in self.steps}
        found.update(a.event.actor for a in self.attestations)
        return found


def _evidence(value: Mapping[str, Any]) -> Evidence:
    return Evidence(
        event_id=value["event_id"],
        tx_hash=value["tx_hash"],
        block_number=int(value["block_number"]),
        log_index=int(value["log_index"]),
        timestamp=value.get("timestamp"),
        actor=value["actor"],
    )


def _lot(value: Mapping[str, Any]) -> Lot:
    origin = value["origin"]
    return Lot(
        id=value["lot"]["id"],
        label=value["lot"]["label"],
        material=int(value["material"]["code"]),
        material_name=value["material"]["name"],
        quantity=int(value["quantity"]),
        grams=float(value["grams"]["grams"]),
        origin=None
        if origin is None
        else Origin(
            facility_id=origin["facility"]["id"],
            facility=origin["facility"]["label"],
            country=origin["country"],
            feedstock=int(origin["feedstock"]),
        ),
        produced_by=value["produced_by"],
        event=_evidence(value["event"]),
    )


def _step(value: Mapping[str, Any]) -> Step:
    return Step(
        id=value["event"]["event_id"],
        kind=value["kind"],
        stage=value["stage"],
        footprint=int(value["footprint"]),
        base=int(value["base"]),
        attributed=float(value["attributed"]["grams"]),
        event=_evidence(value["event"]),
    )


def _percent(value: Mapping[str, Any]) -> float:
    return float(value["percent"]) / 100


def read_report(document: Mapping[str, Any]) -> Report:
    """The page's reading of a ``mine2cell.provenance/1`` report."""
    if document.get("schema") != PROVENANCE_SCHEMA:
        raise ValueError(f"not a {PROVENANCE_SCHEMA} report: {document.get('schema')!r}")
    dag = document["dag"]
    recycled = document["recycled"]
    footprint = document["footprint"]
    return Report(
        passport_id=document["passport"]["id"],
        passport=document["passport"]["label"],
        as_of=document.get("as_of"),
        binding=_evidence(document["binding"]),
        grams_bound=int(document["grams_bound"]),
        origin_grams=float(document["origin_grams"]["grams"]),
        elements=tuple(
            Element(
                element=e["element"],
                annex_x=bool(e["annex_x"]),
                grams=float(e["grams"]["grams"]),
                share=_percent(e["share"]),
                percent=e["share"]["percent"],
                recycled_percent=e["recycled"]["total"]["percent"],
                pre_consumer_percent=e["recycled"]["pre_consumer"]["percent"],
                post_consumer_percent=e["recycled"]["post_consumer"]["percent"],
            )
            for e in document["elements"]
        ),
        countries=tuple(
            Share(c["country"], _percent(c["share"]), c["share"]["percent"])
            for c in document["countries"]
        ),
        facilities=tuple(
            Facility(
                id=f["facility"]["id"],
                label=f["facility"]["label"],
                country=f["country"],
                actor=f["actor"],
                grams=float(f["grams"]["grams"]),
                share=_percent(f["share"]),
                percent=f["share"]["percent"],
            )
            for f in document["facilities"]
        ),
        recycled_percent=recycled["total"]["percent"],
        pre_consumer_percent=recycled["pre_consumer"]["percent"],
        post_consumer_percent=recycled["post_consumer"]["percent"],
        footprint_kg=footprint["total"]["kg"],
        stages=tuple(
            Stage(s["stage"], float(s["co2e"]["kg"]), s["co2e"]["kg"]) for s in footprint["stages"]
        ),
        lots=tuple(_lot(lot) for lot in dag["lots"]),
        steps=tuple(_step(step) for step in dag["steps"]),
        inputs=tuple(Edge(e["lot"], e["step"], int(e["grams"])) for e in dag["inputs"]),
        outputs=tuple(Edge(e["lot"], e["step"], int(e["grams"])) for e in dag["outputs"]),
        flags=tuple(
            Flag(
                code=f["code"],
                message=f["message"],
                event=None if f["event"] is None else _evidence(f["event"]),
                lot=None if f["lot"] is None else (f["lot"]["id"], f["lot"]["label"]),
                account=f["account"],
            )
            for f in document["flags"]
        ),
        attestations=tuple(
            sorted(
                (
                    Attestation(a["verdict"], a["report_hash"], _evidence(a["event"]))
                    for a in document["attestations"]
                ),
                key=lambda a: (a.event.block_number, a.event.log_index),
            )
        ),
    )
