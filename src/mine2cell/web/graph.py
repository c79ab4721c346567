"""The provenance graph drawn as inline SVG, laid out by grandalf's Sugiyama (layered) layout.

Three drawings of one passport's upstream DAG:

- ``lot_graph`` (detail tier, up to ``LOT_LIMIT`` lots): every lot and every step, each lot
  linking to ``/v1/lots/{id}``, every edge labelled with the grams the step recorded, every event
  with its block and transaction;
- ``facility_graph`` (detail tier, more lots than that): lots grouped by the facility that mined
  or made them and their material, steps by facility and stage, edges with the grams summed;
- ``public_graph`` (public tier): lots grouped by stage, material and country, steps folded into
  the flows between groups, each flow labelled with its share of the battery's mined and
  recycled raw material. No facility, lot, account or mass appears in it.

Flows are drawn left to right, from the raw materials to the battery; a flow's width grows with
its share of the battery's raw material. Each edge label is a vertex of its own in the layered
layout, so labels take their own place in their layer and never overlap a box or each other.
Box sizes come from the Liberation Sans / Arial / Helvetica advance widths (the SVG asks for
those fonts), so text fits its box without measuring it in a browser.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from grandalf.graphs import Edge as GEdge
from grandalf.graphs import Graph as GGraph
from grandalf.graphs import Vertex
from grandalf.layouts import SugiyamaLayout

from mine2cell.web import words
from mine2cell.web.facts import Lot, Participant, Report, Step

# Above this many lots the lot-level drawing is unreadable (and slower to lay out): it is
# collapsed by facility and step, and the page says so.
LOT_LIMIT = 150

TITLE_SIZE = 12.0
TEXT_SIZE = 11.0
LABEL_SIZE = 10.5
LINE_HEIGHT = 15.0
PAD_X = 9.0
PAD_Y = 7.0
MIN_BOX_WIDTH = 96.0
LABEL_PAD = 5.0
LABEL_HEIGHT = 15.0
BOX_GAP = 10.0  # between boxes of a layer
LAYER_GAP = 14.0  # between a layer of boxes and a layer of labels
COMPONENT_GAP = 24.0
MARGIN = 6.0

# Advance widths (1/1000 em) of ASCII 32..126 in Liberation Sans, metric-compatible with Arial
# and Helvetica.
_REGULAR = (
    "278 278 355 556 556 889 667 191 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 "
    "556 556 556 278 278 584 584 584 556 1015 667 667 722 722 667 611 778 722 278 500 667 556 833 "
    "722 778 667 778 722 667 611 722 667 944 667 667 611 278 278 278 469 556 333 556 556 500 556 "
    "556 278 556 556 222 222 500 222 833 556 556 556 556 333 500 278 556 500 722 500 500 500 334 "
    "260 334 584"
)
_BOLD = (
    "278 333 474 556 556 889 722 238 333 333 389 584 278 333 278 278 556 556 556 556 556 556 556 "
    "556 556 556 333 333 584 584 584 611 975 722 722 722 722 667 611 778 722 278 556 722 611 833 "
    "722 778 667 778 722 667 611 722 667 944 667 667 611 333 278 333 584 556 333 556 611 556 611 "
    "556 333 611 611 278 278 556 278 889 611 611 611 611 389 556 333 611 556 778 556 556 500 389 "
    "280 389 584"
)
_WIDTHS = {
    False: {chr(32 + i): int(w) for i, w in enumerate(_REGULAR.split())},
    True: {chr(32 + i): int(w) for i, w in enumerate(_BOLD.split())},
}
_OTHER_WIDTH = 700  # anything outside ASCII: a generous guess


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    widths = _WIDTHS[bold]
    return sum(widths.get(c, _OTHER_WIDTH) for c in text) * size / 1000


LineStyle = Literal["title", "text", "muted", "evidence"]
BoxKind = Literal["mined", "recycled", "lot", "step", "battery"]


class Line(NamedTuple):
    text: str
    style: LineStyle = "text"

    @property
    def size(self) -> float:
        return TITLE_SIZE if self.style == "title" else TEXT_SIZE

    @property
    def width(self) -> float:
        return text_width(self.text, self.size, bold=self.style == "title")


@dataclass(frozen=True)
class Box:
    key: str
    kind: BoxKind
    lines: tuple[Line, ...]
    href: str | None = None
    tooltip: str = ""

    @property
    def width(self) -> float:
        return max(MIN_BOX_WIDTH, max(line.width for line in self.lines) + 2 * PAD_X)

    @property
    def height(self) -> float:
        return len(self.lines) * LINE_HEIGHT + 2 * PAD_Y


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    label: str
    weight: float  # share of the battery's raw material carried, 0..1
    title: str = ""  # the tooltip: exact figures


class PlacedLine(NamedTuple):
    text: str
    style: LineStyle
    x: float
    y: float  # baseline


@dataclass(frozen=True)
class PlacedBox:
    box: Box
    x: float  # top left
    y: float
    width: float
    height: float

    @property
    def lines(self) -> list[PlacedLine]:
        return [
            PlacedLine(
                line.text, line.style, self.x + PAD_X, self.y + PAD_Y + (i + 1) * LINE_HEIGHT - 4
            )
            for i, line in enumerate(self.box.lines)
        ]


@dataclass(frozen=True)
class PlacedFlow:
    flow: Flow
    points: tuple[tuple[float, float], ...]  # from the source's right side to the target's left
    label_x: float  # centre
    label_y: float
    label_width: float

    @property
    def path(self) -> str:
        """SVG path data through every point with horizontal tangents: a cubic per segment."""
        (x0, y0), rest = self.points[0], self.points[1:]
        parts = [f"M{x0:.1f},{y0:.1f}"]
        for x1, y1 in rest:
            mid = (x0 + x1) / 2
            parts.append(f"C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
            x0, y0 = x1, y1
        return "".join(parts)

    @property
    def stroke(self) -> float:
        return round(1.2 + 7.0 * max(0.0, min(1.0, self.flow.weight)), 2)


@dataclass(frozen=True)
class Diagram:
    boxes: tuple[PlacedBox, ...]
    flows: tuple[PlacedFlow, ...]
    width: float
    height: float
    caption: str
    seconds: float  # spent laying it out


# -- layout ----------------------------------------------------------------------------------------


class _View:
    """grandalf's vertex view: ``w`` across the layers, ``h`` along them (the drawing is turned a
    quarter so that layers run left to right), ``xy`` the centre it assigns."""

    def __init__(self, across: float, along: float) -> None:
        self.w = across
        self.h = along
        self.xy: tuple[float, float] = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = points


def _label_width(flow: Flow) -> float:
    return text_width(flow.label, LABEL_SIZE) + 2 * LABEL_PAD


def layout(boxes: Sequence[Box], flows: Sequence[Flow], *, caption: str) -> Diagram:
    """Place ``boxes`` in layers from the sources on the left to the sinks on the right, with the
    crossings of ``flows`` reduced, and route each flow through its label."""
    started = time.perf_counter()
    vertices: dict[str, Any] = {}
    for box in boxes:
        vertex = Vertex(box.key)
        vertex.view = _View(box.height, box.width)
        vertices[box.key] = vertex
    edges: list[tuple[Any, Any, Any]] = []  # (label vertex, edge into it, edge out of it)
    for i, flow in enumerate(flows):
        label = Vertex(("label", i))
        label.view = _View(LABEL_HEIGHT, _label_width(flow))
        into, out = GEdge(vertices[flow.source], label), GEdge(label, vertices[flow.target])
        into.view, out.view = _EdgeView(), _EdgeView()
        edges.append((label, into, out))
    graph = GGraph(
        list(vertices.values()) + [label for label, _, _ in edges],
        [e for _, into, out in edges for e in (into, out)],
    )
    offset = 0.0
    for component in sorted(graph.C, key=lambda c: -len(c.sV)):
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace = BOX_GAP
        sugiyama.yspace = LAYER_GAP
        sugiyama.dw, sugiyama.dh = 4.0, 4.0  # the lanes of long edges
        sugiyama.init_all()
        sugiyama.draw(2)
        low = min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
        high = max(v.view.xy[0] + v.view.w / 2 for v in component.sV)
        shift = offset - low
        for v in component.sV:
            across, along = v.view.xy
            v.view.xy = (along, across + shift)  # now (x, y)
        for e in component.sE:
            e.view.points = [(along, across + shift) for across, along in e.view.points]
        offset += high - low + COMPONENT_GAP
    placed_boxes = []
    for box in boxes:
        (x, y), width, height = vertices[box.key].view.xy, box.width, box.height
        placed_boxes.append(PlacedBox(box, x - width / 2, y - height / 2, width, height))
    placed_flows = []
    for flow, (label, into, out) in zip(flows, edges, strict=True):
        points = into.view.points + out.view.points[1:]
        source, target = vertices[flow.source].view, vertices[flow.target].view
        points[0] = (source.xy[0] + source.h / 2, source.xy[1])
        points[-1] = (target.xy[0] - target.h / 2, target.xy[1])
        x, y = label.view.xy
        width = label.view.h
        # The label's own stretch is straight, so the text sits on the line.
        at = len(into.view.points) - 1
        points[at : at + 1] = [(x - width / 2, y), (x + width / 2, y)]
        placed_flows.append(PlacedFlow(flow, tuple(points), x, y, width))
    seconds = time.perf_counter() - started
    return _normalised(placed_boxes, placed_flows, caption, seconds)


def _normalised(
    boxes: list[PlacedBox], flows: list[PlacedFlow], caption: str, seconds: float
) -> Diagram:
    """Moved so that the drawing starts at (0, 0), with a margin."""
    if not boxes:
        return Diagram((), (), 0.0, 0.0, caption, seconds)
    half = LABEL_HEIGHT / 2
    left = min(b.x for b in boxes) - MARGIN
    top = min([b.y for b in boxes] + [f.label_y - half for f in flows]) - MARGIN
    right = max(b.x + b.width for b in boxes) + MARGIN
    bottom = max([b.y + b.height for b in boxes] + [f.label_y + half for f in flows]) + MARGIN
    return Diagram(
        boxes=tuple(
            PlacedBox(b.box, round(b.x - left, 1), round(b.y - top, 1), b.width, b.height)
            for b in boxes
        ),
        flows=tuple(
            PlacedFlow(
                f.flow,
                tuple((x - left, y - top) for x, y in f.points),
                round(f.label_x - left, 1),
                round(f.label_y - top, 1),
                f.label_width,
            )
            for f in flows
        ),
        width=round(right - left, 1),
        height=round(bottom - top, 1),
        caption=caption,
        seconds=seconds,
    )


# -- mass flows ------------------------------------------------------------------------------------


class OriginMass(NamedTuple):
    """Grams of the battery's mined and recycled raw material behind each lot and each edge."""

    lots: dict[str, float]
    steps: dict[str, float]
    inputs: dict[tuple[str, str], float]  # (lot, step)
    outputs: dict[tuple[str, str], float]  # (step, lot)


def origin_mass(report: Report) -> OriginMass:
    """Carry each commissioned lot's grams in the battery downstream: a step consumes ``q`` grams
    of a lot of which ``g`` are in the battery, and passes on ``q * f / g`` of the lot's raw
    material (``f``: the battery's part of the step's output); its outputs share what it received
    in proportion to their grams in the battery."""
    lots = {lot.id: lot for lot in report.lots}
    steps = {step.id: step for step in report.steps}
    inputs_of: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for edge in report.inputs:
        inputs_of[edge.step].append((edge.lot, edge.grams))
    outputs_of: dict[str, list[str]] = defaultdict(list)
    for edge in report.outputs:
        outputs_of[edge.step].append(edge.lot)
    lot_mass = {lot.id: lot.grams for lot in report.lots if lot.origin is not None}
    step_mass: dict[str, float] = {}
    in_mass: dict[tuple[str, str], float] = {}
    out_mass: dict[tuple[str, str], float] = {}
    for step in reversed(report.steps):  # every producer before its consumers
        received = 0.0
        for lot_id, grams in inputs_of[step.id]:
            lot = lots[lot_id]
            carried = (
                lot_mass.get(lot_id, 0.0) * grams * step.fraction / lot.grams if lot.grams else 0
            )
            in_mass[(lot_id, step.id)] = in_mass.get((lot_id, step.id), 0.0) + carried
            received += carried
        step_mass[step.id] = received
        attributed = steps[step.id].attributed
        for lot_id in outputs_of[step.id]:
            share = lots[lot_id].grams / attributed if attributed else 0.0
            lot_mass[lot_id] = received * share
            out_mass[(step.id, lot_id)] = received * share
    return OriginMass(lot_mass, step_mass, in_mass, out_mass)


# -- the drawings ----------------------------------------------------------------------------------


def _evidence_line(step_or_lot: Step | Lot) -> Line:
    event = step_or_lot.event
    return Line(f"block {event.block_number} · tx {words.short_hash(event.tx_hash)}", "evidence")


def _facility(participants: Mapping[str, Participant], account: str) -> str:
    found = participants.get(account.lower())
    return found.facility if found is not None else words.short_hash(account)


def _lot_kind(lot: Lot) -> BoxKind:
    if lot.origin is None:
        return "lot"
    return "mined" if lot.origin.feedstock == 0 else "recycled"


def _step_title(step: Step) -> str:
    return "Transformation" if step.stage == "processing" else words.stage(step.stage)


def lot_graph(
    report: Report,
    participants: Mapping[str, Participant],
    lot_href: Callable[[str], str],
    event_href: Callable[[str], str],
) -> Diagram:
    """Every lot and step (detail tier)."""
    mass = origin_mass(report)
    whole = report.origin_grams or 1.0
    boxes: list[Box] = []
    for lot in report.lots:
        lines = [
            Line(words.short_label(lot.label), "title"),
            Line(f"{lot.material_name} · {words.mass(lot.quantity)}"),
        ]
        if lot.origin is not None:
            origin = lot.origin
            how = words.FEEDSTOCK.get(origin.feedstock, "commissioned")
            lines.append(Line(f"{how} at {words.short_label(origin.facility)}, {origin.country}"))
            lines.append(_evidence_line(lot))
        boxes.append(
            Box(
                lot.id,
                _lot_kind(lot),
                tuple(lines),
                href=lot_href(lot.id),
                tooltip=f"lot {lot.label} ({lot.id}): {lot.quantity:,} g, {lot.grams:,.3f} g in "
                f"the battery; event {lot.event.event_id}, tx {lot.event.tx_hash}, block "
                f"{lot.event.block_number}",
            )
        )
    for step in report.steps:
        facility = _facility(participants, step.event.actor)
        kind: BoxKind
        if step.kind == "bind":
            kind = "battery"
            title = f"Battery {words.short_label(report.passport)}"
            lines = [Line(title, "title"), Line(f"bound by {facility}")]
        else:
            kind = "step"
            lines = [Line(_step_title(step), "title"), Line(facility)]
        lines.append(_evidence_line(step))
        boxes.append(
            Box(
                step.id,
                kind,
                tuple(lines),
                href=event_href(step.id),
                tooltip=f"event {step.id}, tx {step.event.tx_hash}, "
                f"block {step.event.block_number}",
            )
        )
    flows = [
        Flow(
            e.lot,
            e.step,
            words.mass(e.grams),
            mass.inputs.get((e.lot, e.step), 0.0) / whole,
            f"{e.grams:,} g consumed",
        )
        for e in report.inputs
    ] + [
        Flow(
            e.step,
            e.lot,
            words.mass(e.grams),
            mass.outputs.get((e.step, e.lot), 0.0) / whole,
            f"{e.grams:,} g produced",
        )
        for e in report.outputs
    ]
    caption = (
        f"Every lot ({len(report.lots):,}) and every step ({len(report.steps):,}); "
        "edges show the grams each step recorded, line widths the share of the battery's raw "
        "material. Each lot links to its current state on the ledger."
    )
    return layout(boxes, flows, caption=caption)


def facility_graph(
    report: Report,
    participants: Mapping[str, Participant],
    event_href: Callable[[str], str],
) -> Diagram:
    """Lots grouped by facility and material, steps by facility and stage (detail tier)."""
    mass = origin_mass(report)
    whole = report.origin_grams or 1.0
    steps = {step.id: step for step in report.steps}

    def lot_group(lot: Lot) -> str:
        if lot.origin is not None:
            return f"lots|{lot.origin.facility_id}|{lot.material}"
        assert lot.produced_by is not None
        return f"lots|{steps[lot.produced_by].event.actor.lower()}|{lot.material}"

    def step_group(step: Step) -> str:
        return (
            "battery" if step.kind == "bind" else f"steps|{step.event.actor.lower()}|{step.stage}"
        )

    lot_members: dict[str, list[Lot]] = defaultdict(list)
    for lot in report.lots:
        lot_members[lot_group(lot)].append(lot)
    step_members: dict[str, list[Step]] = defaultdict(list)
    for step in report.steps:
        step_members[step_group(step)].append(step)
    boxes: list[Box] = []
    lines: tuple[Line, ...]
    for key, members in lot_members.items():
        first = members[0]
        total = words.mass(sum(lot.quantity for lot in members))
        count = f"{len(members):,} lot{'s' if len(members) > 1 else ''} · {total}"
        if first.origin is not None:
            head = words.short_label(first.origin.facility)
            where = f"{words.FEEDSTOCK.get(first.origin.feedstock, 'commissioned')} · "
            where += first.origin.country
            lines = (Line(head, "title"), Line(first.material_name), Line(where), Line(count))
        else:
            assert first.produced_by is not None
            head = _facility(participants, steps[first.produced_by].event.actor)
            lines = (Line(head, "title"), Line(first.material_name), Line(count, "muted"))
        boxes.append(Box(key, _lot_kind(first), lines, tooltip=f"{len(members)} lots"))
    for key, group in step_members.items():
        lead = group[0]
        blocks = sorted({step.event.block_number for step in group})
        span = f"block {blocks[0]}" if len(blocks) == 1 else f"blocks {blocks[0]} to {blocks[-1]}"
        facility = _facility(participants, lead.event.actor)
        if lead.kind == "bind":
            lines = (
                Line(f"Battery {words.short_label(report.passport)}", "title"),
                Line(f"bound by {facility}"),
                _evidence_line(lead),
            )
            boxes.append(Box(key, "battery", lines, href=event_href(lead.id)))
            continue
        steps_text = f"{len(group)} transformation{'s' if len(group) > 1 else ''}"
        lines = (
            Line(facility, "title"),
            Line(f"{words.stage(lead.stage)} · {steps_text}"),
            Line(span, "evidence"),
        )
        boxes.append(Box(key, "step", lines, tooltip=f"{len(group)} events"))
    grams: dict[tuple[str, str], int] = defaultdict(int)
    carried: dict[tuple[str, str], float] = defaultdict(float)
    lot_of = {lot.id: lot for lot in report.lots}
    for e in report.inputs:
        pair = (lot_group(lot_of[e.lot]), step_group(steps[e.step]))
        grams[pair] += e.grams
        carried[pair] += mass.inputs.get((e.lot, e.step), 0.0)
    for e in report.outputs:
        pair = (step_group(steps[e.step]), lot_group(lot_of[e.lot]))
        grams[pair] += e.grams
        carried[pair] += mass.outputs.get((e.step, e.lot), 0.0)
    flows = [
        Flow(
            source,
            target,
            words.mass(total),
            carried[(source, target)] / whole,
            f"{total:,} g recorded",
        )
        for (source, target), total in grams.items()
    ]
    caption = (
        f"{len(report.lots):,} lots are too many to draw one by one: they are grouped by the "
        "facility that mined or made them and their material, and steps by facility and stage "
        f"({len(boxes)} boxes). Edges show the grams recorded, summed. Every lot and event is "
        "listed below, with its evidence."
    )
    return layout(boxes, flows, caption=caption)


def _public_group(
    lot: Lot, steps: Mapping[str, Step], participants: Mapping[str, Participant]
) -> tuple[str, BoxKind, tuple[Line, ...]]:
    if lot.origin is not None:
        verb = "Mined" if lot.origin.feedstock == 0 else "Recycled"
        country = lot.origin.country
        kind: BoxKind = "mined" if lot.origin.feedstock == 0 else "recycled"
    else:
        assert lot.produced_by is not None
        step = steps[lot.produced_by]
        verb = "Processed" if step.stage == "processing" else "Made"
        found = participants.get(step.event.actor.lower())
        country = found.country if found is not None else "?"
        kind = "lot"
    key = f"{verb}|{lot.material}|{country}"
    lines = (Line(lot.material_name, "title"), Line(f"{verb} in {words.country(country)}"))
    return key, kind, lines


def public_graph(report: Report, participants: Mapping[str, Participant]) -> Diagram:
    """Lots grouped by stage, material and country; flows as shares of the battery's raw
    material (public tier: no facility, lot, account, event or mass)."""
    mass = origin_mass(report)
    whole = report.origin_grams or 1.0
    steps = {step.id: step for step in report.steps}
    groups: dict[str, str] = {}
    boxes: dict[str, Box] = {}
    for lot in report.lots:
        key, kind, lines = _public_group(lot, steps, participants)
        groups[lot.id] = key
        boxes.setdefault(key, Box(key, kind, lines))
    binding = report.steps[0]
    bound_in = participants.get(binding.event.actor.lower())
    battery_lines = [
        Line("Battery", "title"),
        Line(f"passport {words.short_label(report.passport)}"),
    ]
    if bound_in is not None:
        battery_lines.append(Line(f"Made in {words.country(bound_in.country)}"))
    boxes["battery"] = Box("battery", "battery", tuple(battery_lines))
    outputs_of: dict[str, list[str]] = defaultdict(list)
    for edge in report.outputs:
        outputs_of[edge.step].append(edge.lot)
    carried: dict[tuple[str, str], float] = defaultdict(float)
    for e in report.inputs:
        step = steps[e.step]
        source = groups[e.lot]
        flowing = mass.inputs.get((e.lot, e.step), 0.0)
        if step.kind == "bind":
            carried[(source, "battery")] += flowing
            continue
        received = mass.steps.get(step.id, 0.0)
        for out in outputs_of[step.id]:
            part = mass.outputs.get((step.id, out), 0.0) / received if received else 0.0
            if groups[out] != source:  # material staying in its group is no flow
                carried[(source, groups[out])] += flowing * part
    flows = [
        Flow(source, target, words.percent(grams / whole), grams / whole, "of the raw material")
        for (source, target), grams in carried.items()
        if grams > 0
    ]
    caption = (
        "Material flows from the raw materials (left) to the battery, grouped by stage, material "
        "and country. Each flow is labelled with its share of the battery's mined and recycled "
        "raw material, by mass."
    )
    return layout(list(boxes.values()), flows, caption=caption)


def draw(
    report: Report,
    participants: Mapping[str, Participant],
    *,
    detail: bool,
    lot_href: Callable[[str], str],
    event_href: Callable[[str], str],
) -> Diagram:
    """The drawing for a tier: aggregated for the public, lot by lot or by facility for detail."""
    if not detail:
        return public_graph(report, participants)
    if len(report.lots) > LOT_LIMIT:
        return facility_graph(report, participants, event_href)
    return lot_graph(report, participants, lot_href, event_href)
