"""What the provenance engine answers: exact reports and their JSON form.

Every mass, share and footprint is an exact :class:`~fractions.Fraction`; rounding happens only
when a report is written as JSON, and the exact value is written beside the rounded one.

JSON value encodings (used by every ``to_json`` below):

- ``Share``: ``{"num": "0x2", "den": "0x5", "percent": "40.0000"}``, a fraction of 1 and its
  percentage rounded half away from zero to 4 decimals.
- ``Grams``: ``{"num", "den", "grams": "1234.567"}``, exact grams and the same rounded to 3 decimals
  (milligrams).
- ``CO2e``: ``{"num", "den", "grams": "1234.567", "kg": "1.235"}``, exact grams of CO2e, rounded to
  3 decimals in grams and in kilograms.
- ids (lots, passports, facilities, events, transactions, blocks): ``"0x"`` + hex; lots, passports
  and facilities also carry ``"label"``, the lot number they were made from where there is one.
- ``Evidence`` (an event on chain): ``{"event_id", "tx_hash", "block_number", "block_hash",
  "log_index", "timestamp", "actor"}``.
- an element is its name (``"cobalt"``) or ``null`` when no material on the path names one.

``num`` and ``den`` are the reduced fraction's numerator and denominator as ``0x`` hex strings
(:func:`fraction_from_json` reads them back). Not JSON numbers, because exact values get large:
a sum over 800 mine lots of random quantities has a denominator of some 16,000 bits, beyond what
JavaScript's ``JSON.parse`` keeps (2**53) and what Python's ``json`` writes or reads by default
(4,300 decimal digits); hex conversion has no such limit, and ``BigInt("0x...")`` reads it. Being
reduced, equal values have equal strings, so two reports can be compared field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import Any, Literal, NamedTuple

from mine2cell.ids import show_id
from mine2cell.materials import describe
from mine2cell.provenance.model import Attestation, EventRef, Origin

Stage = Literal["extraction", "recycling", "processing", "cell manufacturing"]
STAGES: tuple[Stage, ...] = ("extraction", "recycling", "processing", "cell manufacturing")

FlagCode = Literal[
    "high-risk-origin",
    "certification-missing",
    "certification-expired",
    "in-transit",
    "corrected-event",
    "signer-not-accredited",
]

PROVENANCE_SCHEMA = "mine2cell.provenance/1"
DOWNSTREAM_SCHEMA = "mine2cell.downstream/1"
SUMMARY_SCHEMA = "mine2cell.provenance-summary/1"

# -- exact values as JSON --------------------------------------------------------------------------


def decimal(numerator: int, denominator: int, places: int) -> str:
    """``numerator / denominator`` as a decimal string with ``places`` decimals, rounded half away
    from zero, by integer arithmetic (no float ever sees the value)."""
    whole, rest = divmod(abs(numerator) * 10**places, denominator)
    if 2 * rest >= denominator:
        whole += 1
    sign = "-" if numerator < 0 and whole else ""
    if places == 0:
        return f"{sign}{whole}"
    digits = str(whole).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def ratio_json(numerator: int, denominator: int) -> dict[str, Any]:
    """A share given as a reduced numerator and a positive denominator."""
    return {
        "num": hex(numerator),
        "den": hex(denominator),
        "percent": decimal(numerator * 100, denominator, 4),
    }


def share_json(value: Fraction) -> dict[str, Any]:
    return ratio_json(value.numerator, value.denominator)


def grams_json(value: Fraction | int) -> dict[str, Any]:
    n, d = (value, 1) if isinstance(value, int) else (value.numerator, value.denominator)
    return {"num": hex(n), "den": hex(d), "grams": decimal(n, d, 3)}


def co2e_json(value: Fraction | int) -> dict[str, Any]:
    n, d = (value, 1) if isinstance(value, int) else (value.numerator, value.denominator)
    return _co2e_json(n, d)


def _co2e_json(n: int, d: int) -> dict[str, Any]:
    return {
        "num": hex(n),
        "den": hex(d),
        "grams": decimal(n, d, 3),
        "kg": decimal(n, d * 1000, 3),
    }


def fraction_from_json(value: Mapping[str, Any]) -> Fraction:
    """The exact value of a Share, Grams or CO2e written by ``to_json``."""
    return Fraction(int(value["num"], 16), int(value["den"], 16))


def _part_json(part: Fraction, whole: int) -> dict[str, Any]:
    """``part / whole`` as a Share, reduced with one gcd of small integers: ``part`` is already
    reduced, so only ``whole`` can share factors with its numerator."""
    if not whole:
        return ratio_json(0, 1)
    g = gcd(part.numerator, whole)
    return ratio_json(part.numerator // g, part.denominator * (whole // g))


def hex_id(value: bytes) -> str:
    return "0x" + value.hex()


def labelled(value: bytes) -> dict[str, str]:
    return {"id": hex_id(value), "label": show_id(value)}


def evidence_json(event: EventRef) -> dict[str, Any]:
    return {
        "event_id": hex_id(event.event_id),
        "tx_hash": hex_id(event.tx_hash),
        "block_number": event.block_number,
        "block_hash": hex_id(event.block_hash),
        "log_index": event.log_index,
        "timestamp": event.timestamp,
        "actor": event.actor,
    }


def _material_json(code: int) -> dict[str, Any]:
    return {"code": code, "name": describe(code)}


# -- origin shares ---------------------------------------------------------------------------------


class FacilityShare(NamedTuple):
    """Mass attributed to one origin facility (a mine or a recycler's plant), as commissioned by
    ``actor`` in ``country``."""

    facility: bytes
    country: str
    actor: str
    grams: Fraction
    share: Fraction

    def to_json(self) -> dict[str, Any]:
        return {
            "facility": labelled(self.facility),
            "country": self.country,
            "actor": self.actor,
            "grams": grams_json(self.grams),
            "share": share_json(self.share),
        }


class CountryShare(NamedTuple):
    country: str
    grams: Fraction
    share: Fraction

    def to_json(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "grams": grams_json(self.grams),
            "share": share_json(self.share),
        }


@dataclass(frozen=True)
class RecycledContent:
    """Shares of a mass that came from recycled feedstock (EU 2023/1542 Art. 8)."""

    pre_consumer: Fraction
    post_consumer: Fraction

    @property
    def total(self) -> Fraction:
        return self.pre_consumer + self.post_consumer

    def to_json(self) -> dict[str, Any]:
        return {
            "pre_consumer": share_json(self.pre_consumer),
            "post_consumer": share_json(self.post_consumer),
            "total": share_json(self.total),
        }


@dataclass(frozen=True)
class ElementProvenance:
    """The origin mass traced for one element (``None``: no material on the path names one)."""

    element: str | None
    annex_x: bool  # under the due-diligence duty of EU 2023/1542 Annex X
    grams: Fraction
    share: Fraction  # of all origin mass
    recycled: RecycledContent
    facilities: tuple[FacilityShare, ...]  # shares within this element
    countries: tuple[CountryShare, ...]  # shares within this element

    def to_json(self) -> dict[str, Any]:
        return {
            "element": self.element,
            "annex_x": self.annex_x,
            "grams": grams_json(self.grams),
            "share": share_json(self.share),
            "recycled": self.recycled.to_json(),
            "facilities": [f.to_json() for f in self.facilities],
            "countries": [c.to_json() for c in self.countries],
        }


# -- carbon footprint ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageFootprint:
    stage: Stage
    grams: Fraction  # CO2e

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "co2e": co2e_json(self.grams)}


class StepFootprint(NamedTuple):
    """One event's contribution to the footprint: the battery's part of the event's output mass
    (``attributed`` of ``base`` grams) carries the same part of the event's recorded
    ``footprint``.

    ``base`` is the lot's quantity for a commissioning, all outputs of a transformation, the
    grams bound for the binding (whose whole footprint is the battery's).
    """

    event: EventRef
    kind: Literal["commission", "transform", "bind"]
    stage: Stage
    footprint: int  # grams CO2e recorded for the whole event
    attributed: Fraction  # grams
    base: int  # grams

    @property
    def fraction(self) -> Fraction:
        return self.attributed / self.base if self.base else Fraction(0)

    @property
    def grams(self) -> Fraction:
        """Grams of CO2e attributed to the battery."""
        return Fraction(*self._co2e())

    def _co2e(self) -> tuple[int, int]:
        if not self.base:
            return (0, 1)
        n = self.attributed.numerator * self.footprint
        d = self.attributed.denominator * self.base
        g = gcd(n, d)
        return (n // g, d // g)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": hex_id(self.event.event_id),
            "kind": self.kind,
            "actor": self.event.actor,
            "stage": self.stage,
            "footprint": self.footprint,
            "attributed": grams_json(self.attributed),
            "base": self.base,
            "fraction": _part_json(self.attributed, self.base),
            "co2e": _co2e_json(*self._co2e()),
        }


@dataclass(frozen=True)
class Footprint:
    """The raw-material carbon footprint of one battery (EU 2023/1542 Art. 7); ``total`` is exactly
    the sum of ``stages`` and of ``steps``."""

    total: Fraction  # grams CO2e
    stages: tuple[StageFootprint, ...]  # every stage, in STAGES order
    steps: tuple[StepFootprint, ...]  # in chain order

    @property
    def kg(self) -> Fraction:
        return self.total / 1000

    def stage(self, stage: Stage) -> Fraction:
        return next(s.grams for s in self.stages if s.stage == stage)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": co2e_json(self.total),
            "stages": [s.to_json() for s in self.stages],
            "steps": [s.to_json() for s in self.steps],
        }


# -- the upstream DAG ------------------------------------------------------------------------------


class LotView(NamedTuple):
    """A lot upstream of the battery and the grams of it that went into the battery."""

    lot: bytes
    material: int
    quantity: int
    grams: Fraction
    by_element: tuple[tuple[str | None, Fraction], ...]  # grams per element context
    origin: Origin | None
    produced_by: bytes | None
    event: EventRef  # the commissioning event, or the producing step's

    @property
    def weight(self) -> Fraction:
        """The fraction of the lot that went into the battery."""
        return self.grams / self.quantity if self.quantity else Fraction(0)

    def to_json(self) -> dict[str, Any]:
        origin = self.origin
        return {
            "lot": labelled(self.lot),
            "material": _material_json(self.material),
            "quantity": self.quantity,
            "weight": _part_json(self.grams, self.quantity),
            "grams": grams_json(self.grams),
            "by_element": [
                {"element": element, "grams": grams_json(grams)}
                for element, grams in self.by_element
            ],
            "origin": None
            if origin is None
            else {
                "facility": labelled(origin.facility),
                "country": origin.country,
                "feedstock": origin.feedstock,
                "footprint": origin.footprint,
                "document_hash": hex_id(origin.document_hash),
            },
            "produced_by": None if self.produced_by is None else hex_id(self.produced_by),
            "event": evidence_json(self.event),
        }


class StepView(NamedTuple):
    """A transformation or the binding: ``attributed`` of its ``base`` grams of output went into
    the battery (the binding's base is the grams it bound, all of them the battery's)."""

    event: EventRef
    kind: Literal["transform", "bind"]
    stage: Stage
    footprint: int
    base: int
    attributed: Fraction

    @property
    def fraction(self) -> Fraction:
        return self.attributed / self.base if self.base else Fraction(0)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": evidence_json(self.event),
            "kind": self.kind,
            "stage": self.stage,
            "footprint": self.footprint,
            "base": self.base,
            "attributed": grams_json(self.attributed),
            "fraction": _part_json(self.attributed, self.base),
        }


class Edge(NamedTuple):
    """Material moving along the DAG: ``lot -> step`` (consumed) or ``step -> lot`` (produced),
    in grams as recorded by the step ``step``."""

    lot: bytes
    step: bytes
    grams: int

    def to_json(self) -> dict[str, Any]:
        return {"lot": hex_id(self.lot), "step": hex_id(self.step), "grams": self.grams}


@dataclass(frozen=True)
class UpstreamDag:
    lots: tuple[LotView, ...]  # downstream first (the binding's inputs first), then upstream
    steps: tuple[StepView, ...]  # the binding first, then upstream
    inputs: tuple[Edge, ...]  # lot consumed by step
    outputs: tuple[Edge, ...]  # step produced lot (only lots upstream of the battery)

    def to_json(self) -> dict[str, Any]:
        return {
            "lots": [lot.to_json() for lot in self.lots],
            "steps": [step.to_json() for step in self.steps],
            "inputs": [edge.to_json() for edge in self.inputs],
            "outputs": [edge.to_json() for edge in self.outputs],
        }


# -- due diligence ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A due-diligence finding on the chain; ``event``, ``lot`` and ``account`` say where."""

    code: FlagCode
    message: str
    event: EventRef | None = None
    lot: bytes | None = None
    account: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "event": None if self.event is None else evidence_json(self.event),
            "lot": None if self.lot is None else labelled(self.lot),
            "account": self.account,
        }


def attestation_json(attestation: Attestation) -> dict[str, Any]:
    return {
        "verdict": {1: "pass", 2: "fail"}.get(attestation.verdict, str(attestation.verdict)),
        "report_hash": hex_id(attestation.report_hash),
        "event": evidence_json(attestation.event),
    }


# -- the reports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicSummary:
    """What the public tier of a passport shows: no accounts, facilities, lots or events.

    ``to_json()`` gives::

        {
          "schema": "mine2cell.provenance-summary/1",
          "passport": {"id", "label"},
          "elements": [{"element", "annex_x", "share": Share}],
          "countries": [{"country", "share": Share}],
          "recycled": Recycled,
          "recycled_by_element": [{"element", "recycled": Recycled}],
          "footprint": CO2e,
          "flags": {code: count},
          "attestations": int
        }
    """

    passport: bytes
    elements: tuple[tuple[str | None, bool, Fraction], ...]  # element, annex_x, share
    countries: tuple[CountryShare, ...]
    recycled: RecycledContent
    recycled_by_element: tuple[tuple[str | None, RecycledContent], ...]
    footprint: Fraction  # grams CO2e
    flags: Mapping[str, int]  # count per flag code
    attestations: int

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SUMMARY_SCHEMA,
            "passport": labelled(self.passport),
            "elements": [
                {"element": element, "annex_x": annex_x, "share": share_json(share)}
                for element, annex_x, share in self.elements
            ],
            "countries": [
                {"country": c.country, "share": share_json(c.share)} for c in self.countries
            ],
            "recycled": self.recycled.to_json(),
            "recycled_by_element": [
                {"element": element, "recycled": content.to_json()}
                for element, content in self.recycled_by_element
            ],
            "footprint": co2e_json(self.footprint),
            "flags": dict(sorted(self.flags.items())),
            "attestations": self.attestations,
        }


@dataclass(frozen=True)
class PassportProvenance:
    """Where the raw materials of one battery come from, and what its chain shows.

    ``origin_grams`` is the mass of commissioned (mined or recycled) material attributed to the
    battery; every share below is a share of it (or of one element's part of it) and each group of
    shares sums to exactly 1.

    ``to_json()`` gives (see the module docstring for Share, Grams, CO2e and Evidence)::

        {
          "schema": "mine2cell.provenance/1",
          "passport": {"id", "label"},
          "binding": Evidence,
          "as_of": int | null,               # the time the caller computed the report for
          "grams_bound": int,                # grams of cell/CAM lots the binding consumed
          "origin_grams": Grams,
          "elements": [{"element", "annex_x", "grams": Grams, "share": Share,
                        "recycled": Recycled, "facilities": [Facility], "countries": [Country]}],
          "facilities": [Facility],          # {"facility": {"id","label"}, "country", "actor",
                                             #  "grams": Grams, "share": Share}
          "countries": [Country],            # {"country", "grams": Grams, "share": Share}
          "recycled": Recycled,              # {"pre_consumer", "post_consumer", "total"}: Share
          "footprint": {"total": CO2e,                           # = sum of stages, exactly
                        "stages": [{"stage", "co2e": CO2e}],     # all four, in STAGES order
                        "steps": [Contribution]},                # every event, in chain order
          "dag": {"lots": [DagLot],          # the binding's inputs first, then as reached upstream
                  "steps": [DagStep],        # the binding first, each step before its producers
                  "inputs": [{"lot", "step", "grams"}],      # lot consumed by step (recorded)
                  "outputs": [{"lot", "step", "grams"}]},    # step produced lot (in the DAG)
          "flags": [{"code", "message", "event": Evidence | null, "lot": {"id","label"} | null,
                     "account": str | null}],  # in chain order of the event, then by code
          "attestations": [{"verdict": "pass" | "fail", "report_hash", "event": Evidence}]
        }

        Contribution = {"event_id", "kind": "commission" | "transform" | "bind", "actor",
                        "stage", "footprint": int,        # g CO2e recorded for the whole event
                        "attributed": Grams, "base": int, # the battery's grams of the event's
                        "fraction": Share,                #   output (lot, all outputs, grams
                        "co2e": CO2e}                     #   bound) and their ratio
        DagLot = {"lot": {"id","label"}, "material": {"code","name"}, "quantity": int,
                  "weight": Share,                        # the fraction of the lot in the battery
                  "grams": Grams,                         # weight * quantity
                  "by_element": [{"element", "grams": Grams}],
                  "origin": {"facility", "country", "feedstock", "footprint",
                             "document_hash"} | null,     # set for commissioned lots
                  "produced_by": hex | null, "event": Evidence}
        DagStep = {"event": Evidence, "kind": "transform" | "bind", "stage", "footprint",
                   "base": int, "attributed": Grams, "fraction": Share}

    Lists of shares are ordered by mass, largest first (ties by id); ``elements`` puts the
    unspecified element (null) last.
    """

    passport: bytes
    binding: EventRef
    as_of: int | None
    grams_bound: int
    origin_grams: Fraction
    elements: tuple[ElementProvenance, ...]
    facilities: tuple[FacilityShare, ...]
    countries: tuple[CountryShare, ...]
    recycled: RecycledContent
    footprint: Footprint
    dag: UpstreamDag
    flags: tuple[Flag, ...]
    attestations: tuple[Attestation, ...]

    def element(self, name: str | None) -> ElementProvenance:
        return next(e for e in self.elements if e.element == name)

    def public_summary(self) -> PublicSummary:
        counts: dict[str, int] = {}
        for flag in self.flags:
            counts[flag.code] = counts.get(flag.code, 0) + 1
        return PublicSummary(
            passport=self.passport,
            elements=tuple((e.element, e.annex_x, e.share) for e in self.elements),
            countries=self.countries,
            recycled=self.recycled,
            recycled_by_element=tuple((e.element, e.recycled) for e in self.elements),
            footprint=self.footprint.total,
            flags=counts,
            attestations=len(self.attestations),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PROVENANCE_SCHEMA,
            "passport": labelled(self.passport),
            "binding": evidence_json(self.binding),
            "as_of": self.as_of,
            "grams_bound": self.grams_bound,
            "origin_grams": grams_json(self.origin_grams),
            "elements": [e.to_json() for e in self.elements],
            "facilities": [f.to_json() for f in self.facilities],
            "countries": [c.to_json() for c in self.countries],
            "recycled": self.recycled.to_json(),
            "footprint": self.footprint.to_json(),
            "dag": self.dag.to_json(),
            "flags": [f.to_json() for f in self.flags],
            "attestations": [attestation_json(a) for a in self.attestations],
        }


# -- downstream ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownstreamLot:
    """A lot holding ``content`` grams of the start material (of ``quantity`` grams in all)."""

    lot: bytes
    material: int
    quantity: int
    content: Fraction
    produced_by: bytes | None  # None for a start lot

    def to_json(self) -> dict[str, Any]:
        return {
            "lot": labelled(self.lot),
            "material": _material_json(self.material),
            "quantity": self.quantity,
            "content": grams_json(self.content),
            "share": _part_json(self.content, self.quantity),
            "produced_by": None if self.produced_by is None else hex_id(self.produced_by),
        }


@dataclass(frozen=True)
class DownstreamStep:
    event: EventRef
    kind: Literal["transform", "bind"]
    content: Fraction  # grams of start material the step consumed

    def to_json(self) -> dict[str, Any]:
        return {
            "event": evidence_json(self.event),
            "kind": self.kind,
            "content": grams_json(self.content),
        }


@dataclass(frozen=True)
class DownstreamPassport:
    passport: bytes
    binding: EventRef
    content: Fraction  # grams of start material in the battery

    def to_json(self) -> dict[str, Any]:
        return {
            "passport": labelled(self.passport),
            "binding": evidence_json(self.binding),
            "content": grams_json(self.content),
        }


@dataclass(frozen=True)
class Downstream:
    """Where the material of some start lots (a lot, or every lot of a mine) went.

    ``to_json()`` gives::

        {
          "schema": "mine2cell.downstream/1",
          "start": [{"id", "label"}],
          "start_grams": int,
          "lots": [{"lot", "material", "quantity", "content": Grams, "share": Share,
                    "produced_by": hex | null}],      # start lots first, then in flow order
          "steps": [{"event": Evidence, "kind", "content": Grams}],
          "passports": [{"passport", "binding": Evidence, "content": Grams}]
        }
    """

    start: tuple[bytes, ...]
    start_grams: int
    lots: tuple[DownstreamLot, ...]
    steps: tuple[DownstreamStep, ...]
    passports: tuple[DownstreamPassport, ...]

    def lot(self, lot: bytes) -> DownstreamLot:
        return next(view for view in self.lots if view.lot == lot)

    def passport(self, passport: bytes) -> DownstreamPassport:
        return next(view for view in self.passports if view.passport == passport)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": DOWNSTREAM_SCHEMA,
            "start": [labelled(lot) for lot in self.start],
            "start_grams": self.start_grams,
            "lots": [lot.to_json() for lot in self.lots],
            "steps": [step.to_json() for step in self.steps],
            "passports": [p.to_json() for p in self.passports],
        }
