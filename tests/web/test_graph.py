"""The provenance drawings on made-up chains (no node): mass carried to the battery, the collapse
of a large chain by facility, and a layout in which no box or label overlaps another."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from mine2cell.web import graph
from mine2cell.web.facts import Edge, Evidence, Lot, Origin, Participant, Report, Step
from mine2cell.web.graph import Diagram

CAM, SULFATE, HYDROXIDE = 701, 102, 101
PARTICIPANTS = {
    "0xrefiner0": Participant("FI-KOKKOLA", "FI"),
    "0xrefiner1": Participant("CN-QUZHOU", "CN"),
    "0xcathode": Participant("PL-NYSA", "PL"),
    "0xcells": Participant("SE-SKELLEFTEA", "SE"),
}


def evidence(n: int, actor: str) -> Evidence:
    return Evidence(f"0xe{n:063x}", f"0xt{n:063x}", 10 + n, 0, 1_800_000_000, actor)


def chain(mines: int, *, refineries: int = 2) -> Report:
    """``mines`` mined lots of 10 t, refined in ``refineries`` campaigns into a sulfate lot each
    (two per mine lot, the last mine lot half consumed), blended into one CAM lot of which the
    battery binds 100 kg."""
    lots: list[Lot] = []
    steps: list[Step] = []
    inputs: list[Edge] = []
    outputs: list[Edge] = []
    cam, bound = 20_000_000, 100_000
    binding = Step(
        "0xbind", "bind", "cell manufacturing", 500_000, bound, bound, evidence(0, "0xcells")
    )
    cathode_fraction = bound / cam
    cathode = Step(
        "0xcathode", "transform", "processing", 1_000_000, cam, bound, evidence(1, "0xcathode")
    )
    steps += [binding, cathode]
    inputs.append(Edge("0xcam", "0xbind", bound))
    outputs.append(Edge("0xcam", "0xcathode", cam))
    lots.append(
        Lot("0xcam", "CAM-1", CAM, "NMC CAM", cam, float(bound), None, "0xcathode", cathode.event)
    )
    mine_lots = [f"0xmine{i}" for i in range(mines)]
    for j in range(refineries):
        members = mine_lots[j::refineries]
        consumed = [10_000_000] * len(members)
        if j == refineries - 1 and consumed:
            consumed[-1] = 5_000_000
        sulfate = sum(consumed) // 2
        into_cam = cam // refineries
        attributed = into_cam * cathode_fraction
        refinery = Step(
            f"0xrefine{j}",
            "transform",
            "processing",
            2_000_000,
            sulfate,
            attributed,
            evidence(2 + j, f"0xrefiner{j}"),
        )
        steps.append(refinery)
        inputs.append(Edge(f"0xsulfate{j}", "0xcathode", into_cam))
        outputs.append(Edge(f"0xsulfate{j}", refinery.id, sulfate))
        lots.append(
            Lot(
                f"0xsulfate{j}",
                f"SUL-{j}",
                SULFATE,
                "Cobalt sulfate",
                sulfate,
                attributed,
                None,
                refinery.id,
                refinery.event,
            )
        )
        for k, (lot_id, grams) in enumerate(zip(members, consumed, strict=True)):
            country = "CD" if k % 3 else "AU"
            origin = Origin(f"0xfac{k % 5}", f"MINE-{k % 5}-{country}", country, 0)
            in_battery = grams * attributed / sulfate
            lots.append(
                Lot(
                    lot_id,
                    f"ORE-{lot_id[6:]}",
                    HYDROXIDE,
                    "Cobalt hydroxide",
                    10_000_000,
                    in_battery,
                    origin,
                    None,
                    evidence(100 + len(lots), f"0xmine{k % 5}"),
                )
            )
            inputs.append(Edge(lot_id, refinery.id, grams))
    origin_grams = sum(lot.grams for lot in lots if lot.origin is not None)
    return Report(
        passport_id="0x" + "ab" * 32,
        passport="PASS-1",
        as_of=None,
        binding=binding.event,
        grams_bound=bound,
        origin_grams=origin_grams,
        elements=(),
        countries=(),
        facilities=(),
        recycled_percent="0",
        pre_consumer_percent="0",
        post_consumer_percent="0",
        footprint_kg="0",
        stages=(),
        lots=tuple(lots),
        steps=tuple(steps),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        flags=(),
        attestations=(),
    )


def draw(report: Report, *, detail: bool) -> Diagram:
    return graph.draw(
        report,
        PARTICIPANTS,
        detail=detail,
        lot_href=lambda lot: f"/v1/lots/{lot}",
        event_href=lambda event: f"#event-{event}",
    )


def rectangles(diagram: Diagram) -> Iterable[tuple[str, float, float, float, float]]:
    for b in diagram.boxes:
        yield b.box.key, b.x, b.y, b.x + b.width, b.y + b.height
    for i, f in enumerate(diagram.flows):
        half = f.label_width / 2
        yield f"label {i}", f.label_x - half, f.label_y - 7.5, f.label_x + half, f.label_y + 7.5


def test_the_battery_receives_all_the_raw_material_traced() -> None:
    report = chain(9)

    mass = graph.origin_mass(report)

    into_battery = sum(v for (lot, step), v in mass.inputs.items() if step == "0xbind")
    assert into_battery == pytest.approx(report.origin_grams)
    for lot in report.lots:  # what each lot passes on is what it holds
        assert mass.lots[lot.id] == pytest.approx(
            sum(v for (source, _), v in mass.inputs.items() if source == lot.id)
        )


def test_a_small_chain_is_drawn_lot_by_lot_with_links_and_masses() -> None:
    report = chain(12)

    diagram = draw(report, detail=True)

    lots = {b.box.key: b.box for b in diagram.boxes if b.box.kind in ("mined", "lot")}
    assert set(lots) == {lot.id for lot in report.lots}
    assert all(box.href == f"/v1/lots/{key}" for key, box in lots.items())
    assert {f.flow.label for f in diagram.flows} >= {"10 t", "5 t", "100 kg", "20 t"}
    assert "Every lot (15)" in diagram.caption


def test_a_chain_of_more_than_the_limit_is_collapsed_by_facility_and_says_so() -> None:
    report = chain(graph.LOT_LIMIT + 50)

    diagram = draw(report, detail=True)

    assert len(report.lots) > graph.LOT_LIMIT
    assert len(diagram.boxes) < 20
    assert "too many to draw one by one" in diagram.caption
    titles = {b.box.lines[0].text for b in diagram.boxes}
    assert {"MINE-0-AU", "FI-KOKKOLA", "CN-QUZHOU", "PL-NYSA"} <= titles


def test_the_public_drawing_names_no_facility_lot_or_mass() -> None:
    report = chain(30)

    diagram = draw(report, detail=False)

    texts = [line.text for b in diagram.boxes for line in b.box.lines]
    texts += [f.flow.label for f in diagram.flows]
    assert not any(word in text for text in texts for word in ("MINE-", "ORE-", "SUL-", "KOKKOLA"))
    assert all(label.endswith("%") for label in (f.flow.label for f in diagram.flows))
    assert all(b.box.href is None for b in diagram.boxes)
    into_battery = [f for f in diagram.flows if f.flow.target == "battery"]
    assert sum(f.flow.weight for f in into_battery) == pytest.approx(1.0)


@pytest.mark.parametrize("mines", [3, 40, graph.LOT_LIMIT + 10])
@pytest.mark.parametrize("detail", [True, False])
def test_no_box_or_label_overlaps_another(mines: int, detail: bool) -> None:
    diagram = draw(chain(mines, refineries=3), detail=detail)

    for (a, *ra), (b, *rb) in itertools.combinations(rectangles(diagram), 2):
        overlap_x = min(ra[2], rb[2]) - max(ra[0], rb[0])
        overlap_y = min(ra[3], rb[3]) - max(ra[1], rb[1])
        assert overlap_x <= 0.5 or overlap_y <= 0.5, f"{a} overlaps {b}"
    for _, left, top, right, bottom in rectangles(diagram):
        assert left >= 0 and top >= 0 and right <= diagram.width and bottom <= diagram.height
