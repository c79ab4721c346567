"""The provenance engine on hand-built graphs: origin shares, recycled content, footprint and
due-diligence flags of a passport, and where a lot's material went.

Expected values are worked out by hand in the comments and written as literal Fractions; the
property tests check invariants on random DAGs (shares sum to 1, footprint stages add up, mass is
conserved where the steps conserve it, upstream and downstream agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mine2cell.codes import Role
from mine2cell.provenance.engine import (
    IncompleteGraph,
    UnknownLot,
    UnknownPassport,
    downstream,
    passport_provenance,
)
from mine2cell.provenance.model import (
    Attestation,
    CertificationRecord,
    Consumed,
    Correction,
    EventRef,
    Graph,
    Handoff,
    LotNode,
    Origin,
    ParticipantHistory,
    Produced,
    RoleChange,
    Step,
)
from mine2cell.provenance.report import (
    PassportProvenance,
    decimal,
    fraction_from_json,
)

# Material codes (mine2cell.materials)
CO_ORE, CO_HYDROXIDE, CO_SULFATE = 100, 101, 102
LI_CARBONATE = 201
NI_SULFATE = 302
MN_SULFATE = 500
BLACK_MASS, PCAM, CAM, CELL = 600, 700, 701, 800

MINE = "0x" + "11" * 20
MINE_2 = "0x" + "12" * 20
SALAR = "0x" + "13" * 20
RECYCLER = "0x" + "21" * 20
REFINER = "0x" + "31" * 20
CAM_MAKER = "0x" + "32" * 20
CELL_MAKER = "0x" + "41" * 20
AUDITOR = "0x" + "51" * 20
GOVERNOR = "0x" + "99" * 20

T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC, the time of block 0
BLOCK_TIME = 12
FAR_FUTURE = 4_102_444_800  # 2100-01-01
NO_RISK: frozenset[str] = frozenset()


HandoffKind = Literal["ship", "receive", "reject", "recall"]


def lot(name: str) -> bytes:
    return name.encode().ljust(32, b"\0")


def time_of(block: int) -> int:
    return T0 + BLOCK_TIME * block


@dataclass
class Chain:
    """Builds a Graph as the index would load it: each event in the next block, every actor
    accredited (block 1) and certified until 2100 (block 2) unless a test says otherwise."""

    graph: Graph = field(default_factory=Graph)
    block: int = 10
    serial: int = 0

    def event(self, actor: str, *, block: int | None = None) -> EventRef:
        if block is None:
            self.block += 1
            block = self.block
        self.serial += 1
        return EventRef(
            event_id=self.serial.to_bytes(32, "big"),
            tx_hash=(10_000 + self.serial).to_bytes(32, "big"),
            block_number=block,
            block_hash=block.to_bytes(32, "big"),
            log_index=0,
            timestamp=time_of(block),
            actor=actor,
        )

    def history(self, account: str) -> ParticipantHistory:
        return self.graph.participants.get(account) or ParticipantHistory(account, b"", "", (), ())

    def accredit(self, account: str, roles: int, *, block: int | None = None) -> None:
        event = self.event(GOVERNOR, block=block)
        history = self.history(account)
        change = RoleChange(roles, event.block_number, event.log_index, event)
        self.graph.participants[account] = ParticipantHistory(
            account,
            history.facility,
            history.country,
            (*history.role_changes, change),
            history.certifications,
        )

    def certify(
        self, account: str, valid_until: int, *, scheme: str = "RMAP", block: int | None = None
    ) -> None:
        event = self.event(GOVERNOR, block=block)
        history = self.history(account)
        record = CertificationRecord(lot(scheme), valid_until, b"\x0d" * 32, event)
        self.graph.participants[account] = ParticipantHistory(
            account,
            history.facility,
            history.country,
            history.role_changes,
            (*history.certifications, record),
        )

    def participant(
        self, account: str, roles: int, *, certified_until: int | None = FAR_FUTURE
    ) -> None:
        self.accredit(account, roles, block=1)
        if certified_until is not None:
            self.certify(account, certified_until, block=2)

    def commission(
        self,
        name: str,
        material: int,
        grams: int,
        *,
        footprint: int = 0,
        actor: str = MINE,
        facility: str = "KOL-MINE",
        country: str = "CD",
        feedstock: int = 0,
    ) -> bytes:
        lot_id = lot(name)
        event = self.event(actor)
        origin = Origin(feedstock, footprint, lot(facility), country, b"\x0d" * 32, event)
        self.graph.lots[lot_id] = LotNode(lot_id, material, grams, origin=origin)
        return lot_id

    def _consume(self, step_id: bytes, inputs: dict[bytes, int]) -> tuple[Consumed, ...]:
        for lot_id in inputs:
            self.graph.consumers[lot_id] = (*self.graph.consumers.get(lot_id, ()), step_id)
        return tuple(Consumed(lot_id, grams) for lot_id, grams in inputs.items())

    def transform(
        self,
        inputs: dict[bytes, int],
        outputs: dict[str, tuple[int, int]],  # name -> (material, grams)
        *,
        footprint: int = 0,
        actor: str = REFINER,
    ) -> bytes:
        event = self.event(actor)
        step_id = event.event_id
        produced = tuple(
            Produced(lot(name), material, grams) for name, (material, grams) in outputs.items()
        )
        self.graph.steps[step_id] = Step(
            "transform", event, footprint, self._consume(step_id, inputs), produced
        )
        for p in produced:
            self.graph.lots[p.lot] = LotNode(p.lot, p.material, p.quantity, produced_by=step_id)
        return step_id

    def bind(
        self,
        passport: str,
        inputs: dict[bytes, int],
        *,
        footprint: int = 0,
        actor: str = CELL_MAKER,
    ) -> bytes:
        event = self.event(actor)
        step_id = event.event_id
        self.graph.steps[step_id] = Step(
            "bind", event, footprint, self._consume(step_id, inputs), (), lot(passport)
        )
        self.graph.passports[lot(passport)] = step_id
        return step_id

    def handoff(self, lot_id: bytes, kind: HandoffKind, sender: str, recipient: str) -> EventRef:
        event = self.event(recipient if kind in ("receive", "reject") else sender)
        handoff = Handoff(lot_id, kind, sender, recipient, event)
        self.graph.handoffs[lot_id] = (*self.graph.handoffs.get(lot_id, ()), handoff)
        return event

    def correct(self, target: bytes, reason: int, *, actor: str = AUDITOR) -> None:
        event = self.event(actor)
        correction = Correction(target, reason, (b"\xcc" * 32,), event)
        self.graph.corrections[target] = (*self.graph.corrections.get(target, ()), correction)

    def attest(self, passport: str, verdict: int) -> None:
        event = self.event(AUDITOR)
        attestation = Attestation(lot(passport), verdict, b"\xaa" * 32, event)
        self.graph.attestations[lot(passport)] = (
            *self.graph.attestations.get(lot(passport), ()),
            attestation,
        )

    def provenance(
        self, passport: str = "BAT-1", *, high_risk: frozenset[str] = NO_RISK
    ) -> PassportProvenance:
        return passport_provenance(self.graph, lot(passport), high_risk_countries=high_risk)


def cast() -> Chain:
    chain = Chain()
    for account, roles in (
        (MINE, Role.MINE),
        (MINE_2, Role.MINE),
        (SALAR, Role.MINE),
        (RECYCLER, Role.RECYCLER),
        (REFINER, Role.PROCESSOR),
        (CAM_MAKER, Role.PROCESSOR),
        (CELL_MAKER, Role.CELL_MAKER),
        (AUDITOR, Role.AUDITOR),
    ):
        chain.participant(account, roles)
    return chain


def shares_by_facility(report: PassportProvenance) -> dict[str, Fraction]:
    return {f.facility.rstrip(b"\0").decode(): f.share for f in report.facilities}


def shares_by_country(report: PassportProvenance) -> dict[str, Fraction]:
    return {c.country: c.share for c in report.countries}


def stages(report: PassportProvenance) -> dict[str, Fraction]:
    return {s.stage: s.grams for s in report.footprint.stages}


def codes(report: PassportProvenance) -> list[str]:
    return [flag.code for flag in report.flags]


# -- a single mine lot -----------------------------------------------------------------------------


def single_mine_lot() -> Chain:
    chain = cast()
    ore = chain.commission("KOL-1", CO_SULFATE, 10_000, footprint=5_000)
    chain.bind("BAT-1", {ore: 2_500}, footprint=700)
    return chain


def test_a_single_mine_lot_is_the_whole_origin() -> None:
    report = single_mine_lot().provenance()
    # The battery took 2,500 g of the 10,000 g lot: weight 1/4, 2,500 g attributed.
    assert report.origin_grams == 2_500
    assert shares_by_facility(report) == {"KOL-MINE": 1}
    assert shares_by_country(report) == {"CD": 1}
    assert report.element("cobalt").share == 1
    assert report.element("cobalt").annex_x is True


def test_a_single_mine_lot_carries_its_consumed_fraction_of_the_footprint() -> None:
    report = single_mine_lot().provenance()
    # extraction: 1/4 of 5,000 = 1,250; the binding's 700 is the battery's own.
    assert stages(report) == {
        "extraction": Fraction(1_250),
        "recycling": Fraction(0),
        "processing": Fraction(0),
        "cell manufacturing": Fraction(700),
    }
    assert report.footprint.total == 1_950
    assert report.footprint.kg == Fraction(39, 20)


def test_a_single_mine_lot_appears_in_the_dag_with_its_weight() -> None:
    report = single_mine_lot().provenance()
    (view,) = report.dag.lots
    assert (view.lot, view.weight, view.grams) == (lot("KOL-1"), Fraction(1, 4), Fraction(2_500))
    assert [e.grams for e in report.dag.inputs] == [2_500]


# -- a split: outputs share inputs and footprint by mass -------------------------------------------


def split() -> Chain:
    chain = cast()
    hydroxide = chain.commission("KOL-1", CO_HYDROXIDE, 12_000, footprint=6_000)
    chain.transform(
        {hydroxide: 12_000},
        {"SUL-B": (CO_SULFATE, 6_000), "SUL-C": (CO_SULFATE, 2_000)},
        footprint=3_000,
    )
    chain.bind("BAT-1", {lot("SUL-B"): 1_500}, footprint=100)
    return chain


def test_a_split_allocates_the_input_by_output_mass() -> None:
    report = split().provenance()
    # weight(B) = 1,500 / 6,000 = 1/4; B is 6,000 of the step's 8,000 g of outputs, so the
    # battery holds 1/4 * 6/8 = 3/16 of the step, hence 3/16 of the 12,000 g consumed of KOL-1.
    weights = {view.lot: view.weight for view in report.dag.lots}
    assert weights == {lot("SUL-B"): Fraction(1, 4), lot("KOL-1"): Fraction(3, 16)}
    assert report.origin_grams == 2_250
    assert [step.fraction for step in report.dag.steps] == [1, Fraction(3, 16)]


def test_a_split_allocates_the_footprint_by_output_mass() -> None:
    report = split().provenance()
    # extraction 3/16 * 6,000 = 1,125; processing 3/16 * 3,000 = 1,125/2; binding 100.
    assert stages(report) == {
        "extraction": Fraction(1_125),
        "recycling": Fraction(0),
        "processing": Fraction(1_125, 2),
        "cell manufacturing": Fraction(100),
    }
    assert report.footprint.total == Fraction(3_575, 2)


def test_a_split_lists_only_the_output_in_the_battery() -> None:
    report = split().provenance()
    assert [(e.lot, e.grams) for e in report.dag.outputs] == [(lot("SUL-B"), 6_000)]
    assert [step.base for step in report.dag.steps] == [1_500, 8_000]


# -- a blend of three mines in two countries -------------------------------------------------------


def blend() -> Chain:
    chain = cast()
    m1 = chain.commission("M1", CO_HYDROXIDE, 4_000, footprint=800, facility="KOL", country="CD")
    m2 = chain.commission(
        "M2", CO_HYDROXIDE, 6_000, footprint=1_200, facility="TFM", country="CD", actor=MINE_2
    )
    m3 = chain.commission(
        "M3", CO_HYDROXIDE, 10_000, footprint=3_000, facility="MURRIN", country="AU", actor=SALAR
    )
    chain.transform({m1: 3_000, m2: 6_000, m3: 5_000}, {"SUL-1": (CO_SULFATE, 7_000)})
    chain.bind("BAT-1", {lot("SUL-1"): 2_100})
    return chain


def test_a_blend_gives_each_mine_its_share_by_mass() -> None:
    report = blend().provenance()
    # The battery took 2,100 / 7,000 = 3/10 of the sulfate, so 3/10 of each consumption:
    # M1 3/10 * 3,000 = 900 g, M2 3/10 * 6,000 = 1,800 g, M3 3/10 * 5,000 = 1,500 g; 4,200 g.
    assert report.origin_grams == 4_200
    assert shares_by_facility(report) == {
        "TFM": Fraction(3, 7),
        "MURRIN": Fraction(5, 14),
        "KOL": Fraction(3, 14),
    }
    assert sum(shares_by_facility(report).values()) == 1


def test_a_blend_gives_each_country_its_share_by_mass() -> None:
    report = blend().provenance()
    # CD: 900 + 1,800 = 2,700 of 4,200 = 9/14; AU: 1,500 of 4,200 = 5/14.
    assert shares_by_country(report) == {"CD": Fraction(9, 14), "AU": Fraction(5, 14)}


def test_a_blend_names_the_commissioning_actor_of_each_facility() -> None:
    report = blend().provenance()
    assert {f.facility.rstrip(b"\0"): f.actor for f in report.facilities} == {
        b"KOL": MINE,
        b"TFM": MINE_2,
        b"MURRIN": SALAR,
    }


def test_a_blend_weighs_each_mine_lot_by_its_consumed_fraction() -> None:
    report = blend().provenance()
    # M1 3/10 * 3,000/4,000 = 9/40; M2 3/10 * 6,000/6,000 = 3/10; M3 3/10 * 5,000/10,000 = 3/20.
    # extraction = 9/40 * 800 + 3/10 * 1,200 + 3/20 * 3,000 = 180 + 360 + 450 = 990.
    weights = {view.lot: view.weight for view in report.dag.lots if view.origin}
    assert weights == {
        lot("M1"): Fraction(9, 40),
        lot("M2"): Fraction(3, 10),
        lot("M3"): Fraction(3, 20),
    }
    assert report.footprint.stage("extraction") == 990


# -- recycled feed ---------------------------------------------------------------------------------


def recycled_feed() -> Chain:
    chain = cast()
    black_mass = chain.commission(
        "BM-1",
        BLACK_MASS,
        5_000,
        footprint=500,
        actor=RECYCLER,
        facility="HYDROVOLT",
        country="NO",
        feedstock=2,
    )
    scrap = chain.commission(
        "SCRAP-1",
        CO_HYDROXIDE,
        2_000,
        footprint=100,
        actor=RECYCLER,
        facility="HYDROVOLT",
        country="NO",
        feedstock=1,
    )
    ore = chain.commission("KOL-1", CO_HYDROXIDE, 3_000, footprint=900)
    chain.transform(
        {black_mass: 5_000, scrap: 2_000, ore: 3_000},
        {"SUL-1": (CO_SULFATE, 5_000)},
        footprint=1_000,
    )
    chain.bind("BAT-1", {lot("SUL-1"): 1_000})
    return chain


def test_black_mass_refined_into_cobalt_sulfate_is_post_consumer_cobalt() -> None:
    report = recycled_feed().provenance()
    # The battery holds 1/5 of the sulfate, so 1/5 of each input: black mass 1,000 g (cobalt, from
    # the sulfate downstream), scrap 400 g, ore 600 g; cobalt 2,000 g.
    cobalt = report.element("cobalt")
    assert [e.element for e in report.elements] == ["cobalt"]
    assert cobalt.grams == 2_000
    assert cobalt.recycled.post_consumer == Fraction(1, 2)  # 1,000 / 2,000


def test_pre_consumer_scrap_counts_as_pre_consumer_recycled_content() -> None:
    report = recycled_feed().provenance()
    cobalt = report.element("cobalt")
    assert cobalt.recycled.pre_consumer == Fraction(1, 5)  # 400 / 2,000
    assert cobalt.recycled.total == Fraction(7, 10)
    assert report.recycled.total == Fraction(7, 10)


def test_recycled_lots_count_in_the_recycling_stage() -> None:
    report = recycled_feed().provenance()
    # recycling 1/5 * 500 + 1/5 * 100 = 120; extraction 1/5 * 900 = 180; processing 1/5 * 1,000.
    assert stages(report) == {
        "extraction": Fraction(180),
        "recycling": Fraction(120),
        "processing": Fraction(200),
        "cell manufacturing": Fraction(0),
    }


def test_black_mass_split_into_cobalt_and_nickel_counts_for_both_elements() -> None:
    chain = cast()
    black_mass = chain.commission(
        "BM-1", BLACK_MASS, 10_000, actor=RECYCLER, country="NO", feedstock=2
    )
    chain.transform(
        {black_mass: 10_000}, {"CO-1": (CO_SULFATE, 2_000), "NI-1": (NI_SULFATE, 3_000)}
    )
    chain.bind("BAT-1", {lot("CO-1"): 1_000, lot("NI-1"): 1_500})
    report = chain.provenance()
    # Half of each output: the step's share is 1/2 * 2/5 = 1/5 as cobalt, 1/2 * 3/5 = 3/10 as
    # nickel, so 2,000 g of the black mass is cobalt feed and 3,000 g nickel feed.
    assert {e.element: e.grams for e in report.elements} == {"nickel": 3_000, "cobalt": 2_000}
    assert {e.element: e.share for e in report.elements} == {
        "nickel": Fraction(3, 5),
        "cobalt": Fraction(2, 5),
    }
    assert all(e.recycled.post_consumer == 1 for e in report.elements)
    (view,) = [v for v in report.dag.lots if v.lot == black_mass]
    assert view.by_element == (("cobalt", Fraction(2_000)), ("nickel", Fraction(3_000)))
    assert view.weight == Fraction(1, 2)


def test_a_mixed_material_with_no_element_downstream_is_unspecified() -> None:
    chain = cast()
    black_mass = chain.commission("BM-1", BLACK_MASS, 4_000, actor=RECYCLER, feedstock=2)
    chain.transform({black_mass: 4_000}, {"PCAM-1": (PCAM, 4_000)})
    chain.bind("BAT-1", {lot("PCAM-1"): 1_000})
    report = chain.provenance()
    (unspecified,) = report.elements
    assert unspecified.element is None
    assert unspecified.annex_x is False
    assert unspecified.grams == 1_000
    assert unspecified.recycled.post_consumer == 1


def test_manganese_is_reported_outside_the_annex_x_scope() -> None:
    chain = cast()
    manganese = chain.commission("MN-1", MN_SULFATE, 1_000, country="ZA")
    cobalt = chain.commission("CO-1", CO_SULFATE, 3_000)
    chain.transform({manganese: 1_000, cobalt: 3_000}, {"PCAM-1": (PCAM, 4_000)})
    chain.bind("BAT-1", {lot("PCAM-1"): 4_000})
    report = chain.provenance()
    assert [(e.element, e.annex_x, e.share) for e in report.elements] == [
        ("cobalt", True, Fraction(3, 4)),
        ("manganese", False, Fraction(1, 4)),
    ]


# -- multi-stage refining --------------------------------------------------------------------------


def multi_stage() -> Chain:
    chain = cast()
    ore = chain.commission("ORE-1", CO_ORE, 100_000, footprint=20_000)
    chain.transform({ore: 80_000}, {"HYD-1": (CO_HYDROXIDE, 20_000)}, footprint=10_000)
    chain.transform({lot("HYD-1"): 15_000}, {"SUL-1": (CO_SULFATE, 30_000)}, footprint=6_000)
    lithium = chain.commission(
        "LI-1",
        LI_CARBONATE,
        8_000,
        footprint=12_000,
        actor=SALAR,
        facility="ATACAMA",
        country="CL",
    )
    chain.transform(
        {lot("SUL-1"): 10_000, lithium: 4_000},
        {"CAM-1": (CAM, 12_000)},
        footprint=9_000,
        actor=CAM_MAKER,
    )
    chain.bind("BAT-1", {lot("CAM-1"): 3_000}, footprint=2_000)
    return chain


def test_multi_stage_refining_traces_each_element_to_its_mine() -> None:
    report = multi_stage().provenance()
    # CAM 3,000/12,000 = 1/4 -> sulfate 1/4 * 10,000/30,000 = 1/12, lithium 1/4 * 4,000/8,000
    # = 1/8 -> hydroxide 1/12 * 15,000/20,000 = 1/16 -> ore 1/16 * 80,000/100,000 = 1/20.
    # Cobalt: 1/20 * 100,000 = 5,000 g; lithium: 1/8 * 8,000 = 1,000 g.
    assert {e.element: e.grams for e in report.elements} == {"cobalt": 5_000, "lithium": 1_000}
    assert {e.element: e.share for e in report.elements} == {
        "cobalt": Fraction(5, 6),
        "lithium": Fraction(1, 6),
    }
    assert shares_by_country(report) == {"CD": Fraction(5, 6), "CL": Fraction(1, 6)}
    assert [c.country for c in report.element("lithium").countries] == ["CL"]


def test_multi_stage_refining_footprint_by_stage() -> None:
    report = multi_stage().provenance()
    # extraction: 1/20 * 20,000 + 1/8 * 12,000 = 1,000 + 1,500 = 2,500
    # processing: 1/16 * 10,000 + 1/12 * 6,000 + 1/4 * 9,000 = 625 + 500 + 2,250 = 3,375
    # cell manufacturing: the binding's 2,000
    assert stages(report) == {
        "extraction": Fraction(2_500),
        "recycling": Fraction(0),
        "processing": Fraction(3_375),
        "cell manufacturing": Fraction(2_000),
    }
    assert report.footprint.total == 7_875
    assert report.footprint.total == sum(stages(report).values())
    assert sum(step.grams for step in report.footprint.steps) == 7_875


def test_multi_stage_refining_lists_every_step_contribution_in_chain_order() -> None:
    report = multi_stage().provenance()
    assert [(s.kind, s.stage, s.fraction, s.grams) for s in report.footprint.steps] == [
        ("commission", "extraction", Fraction(1, 20), Fraction(1_000)),
        ("transform", "processing", Fraction(1, 16), Fraction(625)),
        ("transform", "processing", Fraction(1, 12), Fraction(500)),
        ("commission", "extraction", Fraction(1, 8), Fraction(1_500)),
        ("transform", "processing", Fraction(1, 4), Fraction(2_250)),
        ("bind", "cell manufacturing", Fraction(1), Fraction(2_000)),
    ]


def test_a_transformation_by_a_cell_maker_counts_as_cell_manufacturing() -> None:
    chain = cast()
    cam = chain.commission("CAM-1", CAM, 1_000)
    chain.transform({cam: 1_000}, {"CELL-1": (CELL, 1_000)}, footprint=400, actor=CELL_MAKER)
    chain.bind("BAT-1", {lot("CELL-1"): 500}, footprint=50)
    report = chain.provenance()
    # 1/2 of the cell step: 200, plus the binding's 50.
    assert report.footprint.stage("cell manufacturing") == 250
    assert report.footprint.stage("processing") == 0


# -- a lot reached by two paths --------------------------------------------------------------------


def diamond() -> Chain:
    chain = cast()
    ore = chain.commission("KOL-1", CO_HYDROXIDE, 10_000, footprint=1_000)
    chain.transform({ore: 10_000}, {"A": (CO_HYDROXIDE, 4_000), "B": (CO_HYDROXIDE, 6_000)})
    chain.transform({lot("A"): 2_000, lot("B"): 3_000}, {"SUL-1": (CO_SULFATE, 5_000)})
    chain.bind("BAT-1", {lot("SUL-1"): 1_000})
    return chain


def test_a_lot_reached_by_two_paths_accumulates_its_weight() -> None:
    report = diamond().provenance()
    # Sulfate 1/5 -> A 1/5 * 2,000/4,000 = 1/10, B 1/5 * 3,000/6,000 = 1/10; the split's share
    # is 1/10 * 4/10 + 1/10 * 6/10 = 1/10 (through A 1/25, through B 3/50), so KOL-1 is 1/10.
    weights = {view.lot: view.weight for view in report.dag.lots}
    assert weights[lot("KOL-1")] == Fraction(1, 10)
    assert report.origin_grams == 1_000
    assert report.footprint.stage("extraction") == 100


def test_a_step_reached_by_two_paths_appears_once() -> None:
    report = diamond().provenance()
    assert len(report.dag.steps) == 3
    assert len(report.dag.lots) == 4
    assert sorted(e.lot for e in report.dag.outputs) == [lot("A"), lot("B"), lot("SUL-1")]


# -- due-diligence flags ---------------------------------------------------------------------------


def test_a_clean_chain_raises_no_flags() -> None:
    chain = multi_stage()
    chain.handoff(lot("ORE-1"), "ship", MINE, REFINER)
    chain.handoff(lot("ORE-1"), "receive", MINE, REFINER)
    assert chain.provenance(high_risk=frozenset({"RU"})).flags == ()


def test_an_origin_in_a_high_risk_country_is_flagged() -> None:
    report = blend().provenance(high_risk=frozenset({"CD"}))
    assert [(f.code, f.lot) for f in report.flags] == [
        ("high-risk-origin", lot("M1")),
        ("high-risk-origin", lot("M2")),
    ]
    assert "CD" in report.flags[0].message


def test_lots_of_one_high_risk_facility_are_flagged_once_with_their_number() -> None:
    chain = cast()
    a = chain.commission("KOL-A", CO_HYDROXIDE, 1_000, facility="KOL", country="CD")
    b = chain.commission("KOL-B", CO_HYDROXIDE, 1_000, facility="KOL", country="CD")
    chain.transform({a: 1_000, b: 1_000}, {"SUL-1": (CO_SULFATE, 2_000)})
    chain.bind("BAT-1", {lot("SUL-1"): 2_000})

    (flag,) = chain.provenance(high_risk=frozenset({"CD"})).flags

    assert (flag.code, flag.lot, flag.account) == ("high-risk-origin", a, MINE)
    assert flag.message.startswith("2 lots were mined at facility KOL in CD, a high-risk country")
    assert "from lot KOL-A" in flag.message and "to lot KOL-B" in flag.message


def test_a_corrected_step_is_flagged_with_the_reason() -> None:
    chain = split()
    (step_id,) = [s for s, step in chain.graph.steps.items() if step.kind == "transform"]
    chain.correct(step_id, 2)
    (flag,) = chain.provenance().flags
    assert (flag.code, flag.event, flag.account) == (
        "corrected-event",
        chain.graph.steps[step_id].event,
        AUDITOR,
    )
    assert "incorrect data" in flag.message


def test_a_corrected_commissioning_is_flagged() -> None:
    chain = single_mine_lot()
    origin = chain.graph.lots[lot("KOL-1")].origin
    assert origin is not None
    chain.correct(origin.event.event_id, 1, actor=MINE)
    (flag,) = chain.provenance().flags
    assert (flag.code, flag.lot) == ("corrected-event", lot("KOL-1"))
    assert "did not occur" in flag.message


def test_a_corrected_handoff_is_flagged() -> None:
    chain = single_mine_lot()
    chain.handoff(lot("KOL-1"), "ship", MINE, CELL_MAKER)
    receipt = chain.handoff(lot("KOL-1"), "receive", MINE, CELL_MAKER)
    chain.correct(receipt.event_id, 2)
    assert codes(chain.provenance()) == ["corrected-event"]


def test_a_correction_of_an_event_off_the_path_is_not_flagged() -> None:
    chain = split()
    other = chain.commission("OTHER", CO_ORE, 1_000)
    origin = chain.graph.lots[other].origin
    assert origin is not None
    chain.correct(origin.event.event_id, 1)
    assert chain.provenance().flags == ()


def test_a_signer_without_certification_is_flagged() -> None:
    chain = Chain()
    chain.participant(MINE, Role.MINE, certified_until=None)
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)
    chain.bind("BAT-1", {ore: 1_000})
    (flag,) = chain.provenance().flags
    assert (flag.code, flag.account, flag.lot) == ("certification-missing", MINE, ore)


def test_a_certification_recorded_after_the_event_does_not_count() -> None:
    chain = Chain()
    chain.participant(MINE, Role.MINE, certified_until=None)
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)
    chain.certify(MINE, FAR_FUTURE)
    chain.bind("BAT-1", {ore: 1_000})
    assert codes(chain.provenance()) == ["certification-missing"]


def test_a_certification_expired_at_the_event_is_flagged() -> None:
    chain = Chain()
    chain.participant(MINE, Role.MINE, certified_until=time_of(5))
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)  # block 11, after the certificate
    chain.bind("BAT-1", {ore: 1_000})
    (flag,) = chain.provenance().flags
    assert (flag.code, flag.account) == ("certification-expired", MINE)
    assert "RMAP valid until 2026-01-01 00:01:00 UTC" in flag.message


def test_a_certification_valid_at_the_event_is_not_flagged_even_if_it_expired_since() -> None:
    chain = Chain()
    chain.participant(MINE, Role.MINE, certified_until=time_of(11))
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)  # block 11: valid to the second
    chain.bind("BAT-1", {ore: 1_000})  # block 12, the mine's certificate has expired by now
    assert chain.provenance().flags == ()


def test_a_renewed_certification_replaces_the_expired_one() -> None:
    chain = Chain()
    chain.participant(MINE, Role.MINE, certified_until=time_of(5))
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    chain.certify(MINE, FAR_FUTURE)
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)
    chain.bind("BAT-1", {ore: 1_000})
    assert chain.provenance().flags == ()


def test_a_certification_shortened_before_the_event_is_expired() -> None:
    chain = Chain()
    chain.participant(MINE, Role.MINE)
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    chain.certify(MINE, time_of(5))  # the same scheme, recorded again: it replaces the first
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)
    chain.bind("BAT-1", {ore: 1_000})
    assert codes(chain.provenance()) == ["certification-expired"]


def test_a_lot_shipped_and_never_received_is_in_transit() -> None:
    chain = single_mine_lot()
    shipment = chain.handoff(lot("KOL-1"), "ship", MINE, CELL_MAKER)
    (flag,) = chain.provenance().flags
    assert (flag.code, flag.event, flag.lot) == ("in-transit", shipment, lot("KOL-1"))


@pytest.mark.parametrize("closing", ["receive", "reject", "recall"])
def test_a_shipment_received_rejected_or_recalled_is_not_in_transit(closing: HandoffKind) -> None:
    chain = single_mine_lot()
    chain.handoff(lot("KOL-1"), "ship", MINE, CELL_MAKER)
    chain.handoff(lot("KOL-1"), closing, MINE, CELL_MAKER)
    assert chain.provenance().flags == ()


def test_a_second_shipment_left_open_is_in_transit() -> None:
    chain = single_mine_lot()
    chain.handoff(lot("KOL-1"), "ship", MINE, REFINER)
    chain.handoff(lot("KOL-1"), "reject", MINE, REFINER)
    second = chain.handoff(lot("KOL-1"), "ship", MINE, CELL_MAKER)
    assert [(f.code, f.event) for f in chain.provenance().flags] == [("in-transit", second)]


def test_a_signer_whose_roles_were_revoked_before_the_event_is_flagged() -> None:
    chain = split()
    chain.accredit(REFINER, 0, block=5)
    (flag,) = chain.provenance().flags
    assert (flag.code, flag.account) == ("signer-not-accredited", REFINER)
    assert "revoked" in flag.message


def test_a_revocation_after_the_event_is_not_flagged() -> None:
    chain = split()
    chain.accredit(REFINER, 0)  # after the transformation and the binding
    assert chain.provenance().flags == ()


def test_a_signer_never_accredited_is_flagged_as_not_accredited_and_not_certified() -> None:
    chain = Chain()
    chain.participant(CELL_MAKER, Role.CELL_MAKER)
    ore = chain.commission("KOL-1", CO_SULFATE, 1_000)
    chain.bind("BAT-1", {ore: 1_000})
    assert codes(chain.provenance()) == ["certification-missing", "signer-not-accredited"]


def test_an_event_can_raise_several_flags_in_a_stable_order() -> None:
    chain = blend()
    (step_id,) = [s for s, step in chain.graph.steps.items() if step.kind == "transform"]
    chain.correct(step_id, 2)
    chain.graph.participants.pop(REFINER)
    report = chain.provenance()
    assert codes(report) == ["certification-missing", "signer-not-accredited", "corrected-event"]


def test_a_correction_loaded_twice_is_flagged_once() -> None:
    chain = blend()
    (step_id,) = [s for s, step in chain.graph.steps.items() if step.kind == "transform"]
    chain.correct(step_id, 2)
    (correction,) = chain.graph.corrections[step_id]
    chain.graph.corrections[step_id] = (correction, correction)
    assert codes(chain.provenance()) == ["corrected-event"]


def test_the_attestations_of_the_passport_are_reported() -> None:
    chain = single_mine_lot()
    chain.attest("BAT-1", 1)
    chain.attest("BAT-2", 2)
    report = chain.provenance()
    assert [a.verdict for a in report.attestations] == [1]


# -- errors ----------------------------------------------------------------------------------------


def test_an_unknown_passport_is_refused() -> None:
    with pytest.raises(UnknownPassport, match="BAT-9"):
        single_mine_lot().provenance("BAT-9")


def test_a_graph_missing_an_upstream_lot_is_refused() -> None:
    chain = split()
    del chain.graph.lots[lot("KOL-1")]
    with pytest.raises(IncompleteGraph, match="KOL-1"):
        chain.provenance()


def test_downstream_of_an_unknown_lot_is_refused() -> None:
    with pytest.raises(UnknownLot):
        downstream(split().graph, [lot("NOPE")])


# -- JSON ------------------------------------------------------------------------------------------


def test_decimal_rounds_half_away_from_zero() -> None:
    assert [decimal(n, 8, 2) for n in (1, 3, -3, 0)] == ["0.13", "0.38", "-0.38", "0.00"]
    assert decimal(2, 5, 4) == "0.4000"


def test_the_report_json_writes_exact_and_rounded_values() -> None:
    document = blend().provenance().to_json()
    json.dumps(document)
    assert document["schema"] == "mine2cell.provenance/1"
    assert document["origin_grams"] == {"num": hex(4_200), "den": "0x1", "grams": "4200.000"}
    countries = {c["country"]: c["share"] for c in document["countries"]}
    assert countries["CD"] == {"num": "0x9", "den": "0xe", "percent": "64.2857"}
    assert fraction_from_json(countries["AU"]) == Fraction(5, 14)


def test_the_report_json_writes_footprints_in_kilograms() -> None:
    document = split().provenance().to_json()
    assert document["footprint"]["total"]["kg"] == "1.788"  # 1,787.5 g
    assert document["footprint"]["total"]["grams"] == "1787.500"
    assert [s["stage"] for s in document["footprint"]["stages"]] == [
        "extraction",
        "recycling",
        "processing",
        "cell manufacturing",
    ]


def test_the_report_json_lists_the_dag_and_its_evidence() -> None:
    document = split().provenance().to_json()
    dag = document["dag"]
    assert [lot_["lot"]["label"] for lot_ in dag["lots"]] == ["SUL-B", "KOL-1"]
    assert dag["lots"][1]["weight"]["percent"] == "18.7500"
    assert dag["lots"][1]["origin"]["country"] == "CD"
    assert dag["steps"][0]["event"]["actor"] == CELL_MAKER
    assert len(dag["inputs"]) == 2 and len(dag["outputs"]) == 1


def test_the_report_json_lists_flags() -> None:
    document = blend().provenance(high_risk=frozenset({"AU"})).to_json()
    (flag,) = document["flags"]
    assert (flag["code"], flag["lot"]["label"]) == ("high-risk-origin", "M3")


def test_the_public_summary_keeps_shares_footprint_and_flag_counts_only() -> None:
    summary = blend().provenance(high_risk=frozenset({"CD"})).public_summary().to_json()
    json.dumps(summary)
    assert [c["country"] for c in summary["countries"]] == ["CD", "AU"]
    assert summary["flags"] == {"high-risk-origin": 2}
    assert "facilities" not in summary and "dag" not in summary


# -- downstream ------------------------------------------------------------------------------------


def test_downstream_of_a_lot_follows_every_split_by_mass() -> None:
    chain = split()
    chain.bind("BAT-2", {lot("SUL-C"): 1_000})
    found = downstream(chain.graph, [lot("KOL-1")])
    # The step took all 12,000 g; B gets 6/8 of it (9,000 g), C 2/8 (3,000 g). BAT-1 took
    # 1,500 of B's 6,000 g: 2,250 g; BAT-2 took 1,000 of C's 2,000 g: 1,500 g.
    assert {view.lot: view.content for view in found.lots} == {
        lot("KOL-1"): 12_000,
        lot("SUL-B"): 9_000,
        lot("SUL-C"): 3_000,
    }
    assert {p.passport: p.content for p in found.passports} == {
        lot("BAT-1"): 2_250,
        lot("BAT-2"): 1_500,
    }


def test_downstream_of_a_mine_sums_its_lots() -> None:
    chain = blend()
    found = downstream(chain.graph, [lot("M1"), lot("M2")])
    # M1 3,000 of 4,000 g consumed: 3,000 g; M2 all 6,000 g; the sulfate holds 9,000 g of them,
    # BAT-1 took 2,100 of 7,000 g: 2,700 g (the CD mass of its upstream report).
    assert found.lot(lot("SUL-1")).content == 9_000
    assert found.passport(lot("BAT-1")).content == 2_700
    assert found.start_grams == 10_000


def test_downstream_of_a_partial_consumption_is_fractional() -> None:
    chain = multi_stage()
    found = downstream(chain.graph, [lot("ORE-1")])
    # ore 80,000 g -> hydroxide 80,000; 15,000 of its 20,000 g -> sulfate 60,000;
    # 10,000 of 30,000 g -> CAM 20,000; 3,000 of 12,000 g -> BAT-1 5,000.
    assert found.lot(lot("CAM-1")).content == 20_000
    assert found.passport(lot("BAT-1")).content == 5_000
    json.dumps(found.to_json())


def test_downstream_of_a_lot_not_consumed_is_itself() -> None:
    chain = split()
    found = downstream(chain.graph, [lot("SUL-C")])
    assert [(v.lot, v.content) for v in found.lots] == [(lot("SUL-C"), Fraction(2_000))]
    assert found.passports == ()


def test_a_lot_reached_by_two_paths_carries_both_downstream() -> None:
    found = downstream(diamond().graph, [lot("KOL-1")])
    # A 4,000 -> 2,000 g to the blend; B 6,000 -> 3,000 g; sulfate 5,000; battery 1/5: 1,000.
    assert found.lot(lot("SUL-1")).content == 5_000
    assert found.passport(lot("BAT-1")).content == 1_000


# -- properties on random DAGs ---------------------------------------------------------------------

MATERIALS = (CO_HYDROXIDE, CO_SULFATE, LI_CARBONATE, NI_SULFATE, MN_SULFATE, BLACK_MASS, CAM)
COUNTRIES = ("CD", "AU", "CL", "NO")


@st.composite
def random_chains(draw: st.DrawFn, *, conserving: bool) -> Chain:
    """Commissioned lots, then transformations that consume part of what is left of random
    lots (blends, splits, refining), then a binding; ``conserving``: every step's outputs weigh
    exactly its inputs."""
    chain = cast()
    left: dict[bytes, int] = {}
    for index in range(draw(st.integers(1, 6))):
        feedstock = draw(st.integers(0, 2))
        lot_id = chain.commission(
            f"C{index}",
            draw(st.sampled_from(MATERIALS)),
            draw(st.integers(1, 10**6)),
            footprint=draw(st.integers(0, 10**6)),
            actor=RECYCLER if feedstock else draw(st.sampled_from((MINE, MINE_2, SALAR))),
            facility=f"F{draw(st.integers(0, 3))}",
            country=draw(st.sampled_from(COUNTRIES)),
            feedstock=feedstock,
        )
        left[lot_id] = chain.graph.lots[lot_id].quantity

    def take() -> dict[bytes, int]:
        available = sorted(lot_id for lot_id, grams in left.items() if grams > 0)
        chosen = draw(st.lists(st.sampled_from(available), min_size=1, max_size=3, unique=True))
        taken = {lot_id: draw(st.integers(1, left[lot_id])) for lot_id in chosen}
        for lot_id, grams in taken.items():
            left[lot_id] -= grams
        return taken

    for index in range(draw(st.integers(0, 6))):
        inputs = take()
        consumed = sum(inputs.values())
        count = draw(st.integers(1, min(3, consumed)))
        if conserving and count == 1:
            sizes = [consumed]
        elif conserving:
            cuts = sorted(
                draw(st.sets(st.integers(1, consumed - 1), min_size=count - 1, max_size=count - 1))
            )
            sizes = [b - a for a, b in zip([0, *cuts], [*cuts, consumed], strict=True)]
        else:
            sizes = [draw(st.integers(1, 10**6)) for _ in range(count)]
        outputs = {
            f"S{index}-{n}": (draw(st.sampled_from(MATERIALS)), grams)
            for n, grams in enumerate(sizes)
        }
        chain.transform(
            inputs,
            outputs,
            footprint=draw(st.integers(0, 10**6)),
            actor=draw(st.sampled_from((REFINER, CAM_MAKER, CELL_MAKER))),
        )
        left.update({lot(name): grams for name, (_, grams) in outputs.items()})
    chain.bind("BAT-1", take(), footprint=draw(st.integers(0, 10**6)))
    return chain


def assert_shares_sum_to_one(report: PassportProvenance) -> None:
    assert sum(f.share for f in report.facilities) == 1
    assert sum(c.share for c in report.countries) == 1
    assert sum(e.share for e in report.elements) == 1
    for element in report.elements:
        assert sum(f.share for f in element.facilities) == 1
        assert sum(c.share for c in element.countries) == 1
        assert 0 <= element.recycled.total <= 1


@settings(max_examples=150, deadline=None)
@given(random_chains(conserving=False))
def test_every_group_of_shares_sums_to_exactly_one(chain: Chain) -> None:
    assert_shares_sum_to_one(chain.provenance())


@settings(max_examples=150, deadline=None)
@given(random_chains(conserving=False))
def test_the_footprint_is_the_sum_of_its_stages_and_of_its_steps(chain: Chain) -> None:
    footprint = chain.provenance().footprint
    assert footprint.total == sum(stage.grams for stage in footprint.stages)
    assert footprint.total == sum(step.grams for step in footprint.steps)


@settings(max_examples=150, deadline=None)
@given(random_chains(conserving=True))
def test_where_every_step_conserves_mass_the_origin_mass_is_the_mass_bound(chain: Chain) -> None:
    report = chain.provenance()
    assert report.origin_grams == report.grams_bound
    assert sum(e.grams for e in report.elements) == report.grams_bound


@settings(max_examples=150, deadline=None)
@given(random_chains(conserving=False))
def test_downstream_of_each_origin_lot_finds_what_upstream_attributes_to_it(chain: Chain) -> None:
    report = chain.provenance()
    for view in report.dag.lots:
        if view.origin is not None:
            found = downstream(chain.graph, [view.lot])
            assert found.passport(lot("BAT-1")).content == view.grams


@settings(max_examples=50, deadline=None)
@given(random_chains(conserving=False))
def test_the_report_json_reads_back_exactly(chain: Chain) -> None:
    report = chain.provenance()
    document = json.loads(json.dumps(report.to_json()))
    assert fraction_from_json(document["footprint"]["total"]) == report.footprint.total
    assert [fraction_from_json(c["share"]) for c in document["countries"]] == [
        c.share for c in report.countries
    ]
