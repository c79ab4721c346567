"""The provenance engine: pure functions from a stored :class:`Graph` to exact reports.

Allocation rule (ISO 14044 mass allocation, the same for material and footprint): a step's
inputs and footprint are shared among its outputs in proportion to their mass, and a lot's
material and footprint are carried downstream in proportion to the quantity consumed from it.
So the binding that consumed q grams of lot L takes the fraction q / L.quantity of L; if step T
produced L, that fraction of L is the fraction L.quantity / (all of T's outputs) of T, and so on
up to the commissioned lots.

The engine works with attributed masses rather than weights: the mass of lot L attributed to the
battery is m(L) = weight(L) * L.quantity, which starts as the integer q at the binding and changes
only by one multiplication per edge (m(L_i) += m(T's outputs) * q_i / T's outputs). Every number is
an exact Fraction; nothing is rounded until a report is written as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from itertools import groupby
from math import gcd
from operator import attrgetter
from typing import TypeVar

from mine2cell.codes import Feedstock, Role
from mine2cell.errors import Mine2CellError
from mine2cell.ids import show_id
from mine2cell.materials import ANNEX_X, CATALOGUE
from mine2cell.provenance.model import (
    Consumed,
    EventKind,
    EventRef,
    Graph,
    Handoff,
    LapseGroup,
    LotNode,
    Origin,
    Step,
)
from mine2cell.provenance.report import (
    STAGES,
    CountryShare,
    Downstream,
    DownstreamLot,
    DownstreamPassport,
    DownstreamStep,
    Edge,
    ElementProvenance,
    FacilityShare,
    Flag,
    FlagCode,
    Footprint,
    LotView,
    PassportProvenance,
    RecycledContent,
    Stage,
    StageFootprint,
    StepFootprint,
    StepView,
    UpstreamDag,
)
from mine2cell.provenance.standing import Participants, group_lapses, lapses_of, signed_events

__all__ = [
    "IncompleteGraph",
    "UnknownLot",
    "UnknownPassport",
    "downstream",
    "element_of",
    "lot_provenance",
    "passport_provenance",
]


class UnknownPassport(Mine2CellError):
    def __init__(self, passport: bytes) -> None:
        self.passport = passport
        super().__init__(f"passport {show_id(passport)} is not bound to any battery on the ledger")


class UnknownLot(Mine2CellError):
    def __init__(self, lot: bytes) -> None:
        self.lot = lot
        super().__init__(f"lot {show_id(lot)} does not exist on the ledger")


class IncompleteGraph(Mine2CellError):
    """The graph handed to the engine lacks something a query needs, or is not a DAG: a store
    bug, never a user error."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"the provenance graph is inconsistent: {problem}")


_ELEMENTS: dict[int, str | None] = {m.code: m.element for m in CATALOGUE}


def element_of(material: int) -> str | None:
    """The element a material is traced for; ``None`` for mixed materials and unknown codes."""
    return _ELEMENTS.get(material)


Element = str | None
Position = tuple[int, int]

_ZERO = Fraction(0)


def _position(event: EventRef) -> Position:
    return (event.block_number, event.log_index)


# -- walking the graph -----------------------------------------------------------------------------


def _lot(graph: Graph, lot_id: bytes) -> LotNode:
    lot = graph.lots.get(lot_id)
    if lot is None:
        raise IncompleteGraph(f"lot {show_id(lot_id)} is consumed upstream but was not loaded")
    return lot


def _step(graph: Graph, step_id: bytes) -> Step:
    step = graph.steps.get(step_id)
    if step is None:
        raise IncompleteGraph(f"step 0x{step_id.hex()} is referenced but was not loaded")
    return step


def _producers(graph: Graph, step: Step) -> Iterator[bytes]:
    for consumed in step.inputs:
        lot = _lot(graph, consumed.lot)
        if lot.origin is not None:
            continue
        if lot.produced_by is None:
            raise IncompleteGraph(f"lot {show_id(lot.lot)} has neither an origin nor a producer")
        yield lot.produced_by


def _upstream_order(graph: Graph, root: bytes) -> list[bytes]:
    """The steps upstream of ``root`` (itself included), each before every step that produced one
    of its inputs: reverse DFS post-order, iterative so a long chain cannot hit the recursion
    limit, and linear in the size of the DAG however many paths it has."""
    postorder: list[bytes] = []
    done: set[bytes] = set()
    on_path: set[bytes] = {root}
    stack: list[tuple[bytes, Iterator[bytes]]] = [(root, _producers(graph, _step(graph, root)))]
    while stack:
        step_id, producers = stack[-1]
        for producer in producers:
            if producer in on_path:
                raise IncompleteGraph(f"step 0x{producer.hex()} is upstream of itself")
            if producer not in done:
                on_path.add(producer)
                stack.append((producer, _producers(graph, _step(graph, producer))))
                break
        else:
            stack.pop()
            on_path.discard(step_id)
            done.add(step_id)
            postorder.append(step_id)
    postorder.reverse()
    return postorder


def _outputs_total(step: Step) -> int:
    return sum(produced.quantity for produced in step.outputs)


def _stage_of(step: Step, participants: Participants) -> Stage:
    if step.kind == "bind":
        return "cell manufacturing"
    roles = participants.roles_at(step.event.actor, step.event)
    if roles is not None and roles & Role.CELL_MAKER:
        return "cell manufacturing"
    return "processing"


# -- exact arithmetic ------------------------------------------------------------------------------
#
# Hot loops add and scale exact rationals as (numerator, denominator) pairs of ints: a Fraction
# spends most of its time in Python-level dispatch and reduces by gcd after every operation,
# whereas a pair is reduced once, where a value is reported. Pairs below are never reduced
# unless the name says so.

Pair = tuple[int, int]


def _add(a: Pair, b: Pair) -> Pair:
    (n1, d1), (n2, d2) = a, b
    if d1 == d2:
        return (n1 + n2, d1)
    g = gcd(d1, d2)
    return (n1 * (d2 // g) + n2 * (d1 // g), d1 // g * d2)


def _sum_pairs(pairs: list[Pair]) -> Pair:
    """The exact sum of many pairs, added as a balanced tree.

    Adding one by one makes every addition work on the ever larger common denominator (the
    footprints of 800 mine lots share a denominator of some 16,000 bits); pairwise, most
    additions are of small numbers and only the last few handle large ones (10x faster).
    """
    if not pairs:
        return (0, 1)
    while len(pairs) > 1:
        merged = [_add(pairs[i], pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)]
        if len(pairs) % 2:
            merged.append(pairs[-1])
        pairs = merged
    return pairs[0]


def _fraction(pair: Pair) -> Fraction:
    return Fraction(*pair)


def _sum(values: Iterable[Fraction]) -> Fraction:
    terms = values if isinstance(values, list) else list(values)
    if len(terms) == 1:
        return terms[0]
    return _fraction(_sum_pairs([(v.numerator, v.denominator) for v in terms]))


def _ratio(part: Fraction, whole: Fraction) -> Fraction:
    return part / whole if whole else _ZERO


# -- the passport report ---------------------------------------------------------------------------


def passport_provenance(
    graph: Graph,
    passport: bytes,
    *,
    high_risk_countries: frozenset[str],
    now: int | None = None,
) -> PassportProvenance:
    """Where the raw materials of the battery bound to ``passport`` come from: origin shares by
    mass, recycled content, carbon footprint, the upstream DAG and due-diligence flags.

    ``now`` is only recorded in the report (``as_of``): every check is made at the time of the
    event it concerns, as the chain recorded it.
    """
    return _provenance(graph, passport, high_risk_countries=high_risk_countries, now=now)


def _provenance(
    graph: Graph,
    passport: bytes,
    *,
    high_risk_countries: frozenset[str],
    now: int | None,
    probe: bytes | None = None,
) -> PassportProvenance:
    """``probe``: the id of a stand-in binding (``lot_provenance``) that roots the walk but is no
    event of the chain, so it is left out of the steps, the footprint and the flags."""
    binding_id = graph.passports.get(passport)
    if binding_id is None:
        raise UnknownPassport(passport)
    binding = _step(graph, binding_id)
    order = _upstream_order(graph, binding_id)
    recorded = [step_id for step_id in order if step_id != probe]
    participants = Participants(graph.participants.values())
    lot_mass, step_mass = _attribute(graph, order)
    lots = _lot_views(graph, lot_mass)
    steps = _step_views(graph, recorded, step_mass, participants)
    elements, facilities, countries, recycled, origin_grams = _origin_shares(lots, lot_mass)
    return PassportProvenance(
        passport=passport,
        binding=binding.event,
        as_of=now,
        grams_bound=sum(consumed.quantity for consumed in binding.inputs),
        origin_grams=origin_grams,
        elements=elements,
        facilities=facilities,
        countries=countries,
        recycled=recycled,
        footprint=_footprint(lots, steps),
        dag=_dag(graph, order, lots, steps),
        flags=_flags(graph, recorded, lots, participants, high_risk_countries),
        attestations=tuple(graph.attestations.get(passport, ())),
    )


def _attribute(
    graph: Graph, order: list[bytes]
) -> tuple[dict[bytes, dict[Element, Pair]], dict[bytes, Pair]]:
    """The mass of each upstream lot attributed to the battery, per element context, and the mass
    of each step's outputs attributed to it.

    A lot's context is its own material's element, or else the one inherited from downstream:
    black mass refined into cobalt sulfate is cobalt feed. ``order`` puts each step after every
    consumer of its outputs, so a step's outputs are complete when it is expanded, and it is
    expanded once, whatever the number of paths through it.
    """
    lots = graph.lots
    lot_mass: dict[bytes, dict[Element, Pair]] = {}
    step_mass: dict[bytes, Pair] = {}
    for step_id in order:
        step = graph.steps[step_id]
        if step.kind == "bind":
            bound = sum(consumed.quantity for consumed in step.inputs)
            step_mass[step_id] = (bound, 1)
            flows: dict[Element, Pair] = {None: (1, 1)}  # per gram consumed
        else:
            produced_mass: dict[Element, Pair] = {}
            for produced in step.outputs:
                for context, mass in lot_mass.get(produced.lot, {}).items():
                    earlier = produced_mass.get(context)
                    produced_mass[context] = mass if earlier is None else _add(earlier, mass)
            total = _outputs_total(step)
            if total <= 0:
                raise IncompleteGraph(f"step 0x{step_id.hex()} produced nothing")
            step_mass[step_id] = _sum_pairs(list(produced_mass.values()))
            flows = {}
            for context, (n, d) in produced_mass.items():
                # Reduced here, once per step, so denominators grow only with the depth.
                d *= total
                g = gcd(n, d)
                flows[context] = (n // g, d // g)
        for consumed in step.inputs:
            own = element_of(lots[consumed.lot].material)
            masses = lot_mass.setdefault(consumed.lot, {})
            q = consumed.quantity
            for context, (n, d) in flows.items():
                key = own if own is not None else context
                earlier = masses.get(key)
                masses[key] = (n * q, d) if earlier is None else _add(earlier, (n * q, d))
    return lot_mass, step_mass


def _lot_views(graph: Graph, lot_mass: dict[bytes, dict[Element, Pair]]) -> list[LotView]:
    views: list[LotView] = []
    for lot_id, masses in lot_mass.items():
        lot = graph.lots[lot_id]
        if len(masses) == 1:
            ((context, pair),) = masses.items()
            grams = _fraction(pair)
            by_element: tuple[tuple[Element, Fraction], ...] = ((context, grams),)
        else:
            grams = _fraction(_sum_pairs(list(masses.values())))
            by_element = tuple(
                (context, _fraction(pair))
                for context, pair in sorted(
                    masses.items(), key=lambda item: (item[0] is None, item[0] or "")
                )
            )
        if lot.origin is not None:
            event = lot.origin.event
        else:
            assert lot.produced_by is not None  # checked by _upstream_order
            event = graph.steps[lot.produced_by].event
        views.append(
            LotView(
                lot=lot_id,
                material=lot.material,
                quantity=lot.quantity,
                grams=grams,
                by_element=by_element,
                origin=lot.origin,
                produced_by=lot.produced_by,
                event=event,
            )
        )
    return views


def _step_views(
    graph: Graph, order: list[bytes], step_mass: dict[bytes, Pair], participants: Participants
) -> list[StepView]:
    views: list[StepView] = []
    for step_id in order:
        step = graph.steps[step_id]
        attributed = _fraction(step_mass[step_id])
        views.append(
            StepView(
                event=step.event,
                kind=step.kind,
                stage=_stage_of(step, participants),
                footprint=step.footprint,
                base=attributed.numerator if step.kind == "bind" else _outputs_total(step),
                attributed=attributed,
            )
        )
    return views


FacilityKey = tuple[bytes, str, str]
GroupKey = TypeVar("GroupKey", tuple[bytes, str, str], str)


def _largest_first(grams: dict[GroupKey, Fraction]) -> list[tuple[GroupKey, Fraction]]:
    """Groups by mass, largest first, ties by key. Comparing two fractions of thousands of bits
    multiplies them out, so floats rank the groups and exact comparison only orders the runs
    that floats cannot tell apart."""
    rough = {key: float(mass) for key, mass in grams.items()}
    ranked = sorted(grams.items(), key=lambda item: (-rough[item[0]], item[0]))
    ordered: list[tuple[GroupKey, Fraction]] = []
    for _, run in groupby(ranked, key=lambda item: rough[item[0]]):
        tied = list(run)
        if len(tied) > 1:
            tied.sort(key=lambda item: (-item[1], item[0]))
        ordered.extend(tied)
    return ordered


def _facility_shares(
    grams: dict[FacilityKey, Fraction], whole: Fraction
) -> tuple[FacilityShare, ...]:
    return tuple(
        FacilityShare(facility, country, actor, mass, _ratio(mass, whole))
        for (facility, country, actor), mass in _largest_first(grams)
    )


def _country_shares(grams: dict[str, Fraction], whole: Fraction) -> tuple[CountryShare, ...]:
    return tuple(
        CountryShare(country, mass, _ratio(mass, whole)) for country, mass in _largest_first(grams)
    )


K = TypeVar("K")


def _group_sums(cells: Iterable[tuple[K, Fraction]]) -> dict[K, Fraction]:
    terms: dict[K, list[Fraction]] = {}
    for key, mass in cells:
        terms.setdefault(key, []).append(mass)
    return {key: _sum(masses) for key, masses in terms.items()}


def _origin_shares(
    lots: list[LotView], lot_mass: dict[bytes, dict[Element, Pair]]
) -> tuple[
    tuple[ElementProvenance, ...],
    tuple[FacilityShare, ...],
    tuple[CountryShare, ...],
    RecycledContent,
    Fraction,
]:
    # The finest cell is (element, facility, feedstock); every group below is a sum of cells, so
    # each origin lot's mass is added once, and the large sums add few, already combined, terms.
    terms: dict[tuple[Element, FacilityKey, int], list[Pair]] = {}
    for view in lots:
        o = view.origin
        if o is None:
            continue
        facility = (o.facility, o.country, o.event.actor)
        for element, pair in lot_mass[view.lot].items():
            terms.setdefault((element, facility, o.feedstock), []).append(pair)
    cells = {key: _fraction(_sum_pairs(pairs)) for key, pairs in terms.items()}
    by_element_facility = _group_sums(((e, f), mass) for (e, f, _), mass in cells.items())
    element_grams = _group_sums((e, mass) for (e, _), mass in by_element_facility.items())
    whole = _sum(element_grams.values())
    recycled_grams = _group_sums(((e, feed), mass) for (e, _, feed), mass in cells.items())

    facility_in: dict[Element, dict[FacilityKey, Fraction]] = {}
    country_in: dict[Element, dict[str, Fraction]] = {}
    for (element, facility), mass in by_element_facility.items():
        facility_in.setdefault(element, {})[facility] = mass
    for element, per_facility in facility_in.items():
        country_in[element] = _group_sums((f[1], mass) for f, mass in per_facility.items())

    def recycled(element: Element, mass: Fraction) -> RecycledContent:
        return RecycledContent(
            _ratio(recycled_grams.get((element, Feedstock.PRE_CONSUMER), _ZERO), mass),
            _ratio(recycled_grams.get((element, Feedstock.POST_CONSUMER), _ZERO), mass),
        )

    elements = tuple(
        ElementProvenance(
            element=element,
            annex_x=element in ANNEX_X,
            grams=mass,
            share=_ratio(mass, whole),
            recycled=recycled(element, mass),
            facilities=_facility_shares(facility_in[element], mass),
            countries=_country_shares(country_in[element], mass),
        )
        for element, mass in sorted(
            element_grams.items(), key=lambda item: (item[0] is None, -item[1], item[0] or "")
        )
    )
    facility_grams = _group_sums((f, mass) for (_, f), mass in by_element_facility.items())
    country_grams = _group_sums((f[1], mass) for f, mass in facility_grams.items())
    overall_recycled = RecycledContent(
        _ratio(
            _sum(m for (_, feed), m in recycled_grams.items() if feed == Feedstock.PRE_CONSUMER),
            whole,
        ),
        _ratio(
            _sum(m for (_, feed), m in recycled_grams.items() if feed == Feedstock.POST_CONSUMER),
            whole,
        ),
    )
    return (
        elements,
        _facility_shares(facility_grams, whole),
        _country_shares(country_grams, whole),
        overall_recycled,
        whole,
    )


_CHAIN_ORDER = attrgetter("event.block_number", "event.log_index")


def _footprint(lots: list[LotView], steps: list[StepView]) -> Footprint:
    # The footprint follows a lot whatever element it is traced for: masses summed over contexts.
    contributions: list[StepFootprint] = []
    terms: dict[Stage, list[Pair]] = {stage: [] for stage in STAGES}
    for view in lots:
        origin = view.origin
        if origin is None:
            continue
        stage: Stage = "extraction" if origin.feedstock == Feedstock.PRIMARY else "recycling"
        grams = view.grams
        contributions.append(
            StepFootprint(origin.event, "commission", stage, origin.footprint, grams, view.quantity)
        )
        if origin.footprint and view.quantity:
            terms[stage].append(
                (grams.numerator * origin.footprint, grams.denominator * view.quantity)
            )
    for step in steps:
        attributed = step.attributed
        contributions.append(
            StepFootprint(
                step.event,
                "bind" if step.kind == "bind" else "transform",
                step.stage,
                step.footprint,
                attributed,
                step.base,
            )
        )
        if step.footprint and step.base:
            terms[step.stage].append(
                (attributed.numerator * step.footprint, attributed.denominator * step.base)
            )
    contributions.sort(key=_CHAIN_ORDER)
    per_stage = {stage: _sum_pairs(pairs) for stage, pairs in terms.items()}
    return Footprint(
        total=_fraction(_sum_pairs(list(per_stage.values()))),
        stages=tuple(StageFootprint(stage, _fraction(pair)) for stage, pair in per_stage.items()),
        steps=tuple(contributions),
    )


def _dag(
    graph: Graph, order: list[bytes], lots: list[LotView], steps: list[StepView]
) -> UpstreamDag:
    upstream = {view.lot for view in lots}
    inputs: list[Edge] = []
    outputs: list[Edge] = []
    for step_id in order:
        step = graph.steps[step_id]
        inputs.extend(Edge(c.lot, step_id, c.quantity) for c in step.inputs)
        outputs.extend(Edge(p.lot, step_id, p.quantity) for p in step.outputs if p.lot in upstream)
    return UpstreamDag(tuple(lots), tuple(steps), tuple(inputs), tuple(outputs))


# -- due diligence ---------------------------------------------------------------------------------

_WORDS: dict[EventKind, str] = {
    "commission": "commissioning of lot",
    "ship": "shipment of lot",
    "receive": "receipt of lot",
    "reject": "rejection of lot",
    "recall": "recall of lot",
    "transform": "transformation",
    "bind": "passport binding",
}
CORRECTION_REASONS = {1: "did not occur", 2: "incorrect data"}
_FLAG_ORDER: dict[FlagCode, int] = {
    "high-risk-origin": 0,
    "certification-missing": 1,
    "certification-expired": 2,
    "signer-not-accredited": 3,
    "corrected-event": 4,
    "in-transit": 5,
}


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _where(kind: EventKind, lot: bytes | None, event: EventRef) -> str:
    what = _WORDS[kind]
    subject = f"{what} {show_id(lot)}" if lot is not None else what
    return f"{subject} at block {event.block_number} ({_when(event.timestamp)})"


def _lapse_flag(group: LapseGroup, participants: Participants) -> Flag:
    """One flag for the events an actor signed in one kind of lapse: a mine without a
    certificate signs every one of its lots, and one line per lot would bury the other flags."""
    first, last, actor = group.first, group.last, group.actor
    scope = (
        f"the {_where(first.kind, first.lot, first.event)}"
        if group.size == 1
        else f"{group.size} events, from the {_where(first.kind, first.lot, first.event)} to "
        f"the {_where(last.kind, last.lot, last.event)}"
    )
    standing = participants.standing_at(actor, first.event)
    if group.code == "signer-not-accredited":
        held = "had its roles revoked" if standing.roles == 0 else "was not accredited"
        message = f"{actor} {held} when it signed {scope}"
    elif group.code == "certification-missing":
        message = f"{actor} had no certification recorded when it signed {scope}"
    else:
        held_schemes = ", ".join(
            f"{show_id(scheme)} valid until {_when(until)}"
            for scheme, until in sorted(standing.schemes.items())
        )
        message = f"{actor}'s certifications had expired when it signed {scope} ({held_schemes})"
    return Flag(group.code, message, first.event, first.lot, actor)


def _high_risk_flag(origins: list[tuple[bytes, Origin]]) -> Flag:
    """One flag for the lots of one facility in a high-risk country, as for lapses."""
    (first_lot, first), (last_lot, last) = origins[0], origins[-1]
    how = "mined" if first.feedstock == Feedstock.PRIMARY else "recycled"
    where = f"at facility {show_id(first.facility)} in {first.country}, a high-risk country"
    if len(origins) == 1:
        message = f"lot {show_id(first_lot)} was {how} {where}"
    else:
        message = (
            f"{len(origins)} lots were {how} {where}, from lot {show_id(first_lot)} "
            f"(block {first.event.block_number}) to lot {show_id(last_lot)} "
            f"(block {last.event.block_number})"
        )
    return Flag("high-risk-origin", message, first.event, first_lot, first.event.actor)


def _correction_flags(
    graph: Graph, kind: EventKind, event: EventRef, lot: bytes | None
) -> Iterator[Flag]:
    what = _WORDS[kind]
    subject = f"{what} {show_id(lot)}" if lot is not None else what
    for correction in graph.corrections.get(event.event_id, ()):
        reason = CORRECTION_REASONS.get(correction.reason, f"reason {correction.reason}")
        corrective = ", ".join("0x" + c.hex() for c in correction.corrective) or "none"
        yield Flag(
            "corrected-event",
            f"the {subject} (event 0x{event.event_id.hex()}) was declared erroneous by "
            f"{correction.event.actor} at block {correction.event.block_number}: {reason}; "
            f"corrective events: {corrective}",
            event,
            lot,
            correction.event.actor,
        )


def _open_shipment(handoffs: tuple[Handoff, ...]) -> Handoff | None:
    """The shipment a lot's custody events leave open (not received, rejected or recalled): a
    shipment is closed by any later custody event, so only the last one counts."""
    if not handoffs:
        return None
    last = max(handoffs, key=lambda h: (h.event.block_number, h.event.log_index))
    return last if last.kind == "ship" else None


def _flags(
    graph: Graph,
    order: list[bytes],
    lots: list[LotView],
    participants: Participants,
    high_risk_countries: frozenset[str],
) -> tuple[Flag, ...]:
    """Flags on the events of the report's chain: the commissioning and custody events of its
    lots and its recorded steps (``order``)."""
    flags: list[Flag] = []
    upstream: set[bytes] = set()
    high_risk: dict[tuple[bytes, str, str, bool], list[tuple[bytes, Origin]]] = {}
    for view in lots:
        lot_id = view.lot
        upstream.add(lot_id)
        origin = view.origin
        if origin is not None and origin.country in high_risk_countries:
            key = (origin.facility, origin.country, origin.event.actor, origin.feedstock == 0)
            high_risk.setdefault(key, []).append((lot_id, origin))
        shipment = _open_shipment(graph.handoffs.get(lot_id, ()))
        if shipment is not None:
            flags.append(
                Flag(
                    "in-transit",
                    f"lot {show_id(lot_id)} was shipped by {shipment.sender} to "
                    f"{shipment.recipient} at block {shipment.event.block_number} and never "
                    "received, rejected or recalled",
                    shipment.event,
                    lot_id,
                    shipment.sender,
                )
            )
    for origins in high_risk.values():
        origins.sort(key=lambda item: _position(item[1].event))
        flags.append(_high_risk_flag(origins))
    recorded = set(order)
    if graph.corrections:
        events: list[tuple[EventKind, EventRef, bytes | None]] = []
        for view in lots:
            if view.origin is not None:
                events.append(("commission", view.origin.event, view.lot))
            events.extend((h.kind, h.event, view.lot) for h in graph.handoffs.get(view.lot, ()))
        events.extend((graph.steps[s].kind, graph.steps[s].event, None) for s in order)
        for kind, event, subject in events:
            if event.event_id in graph.corrections:
                flags.extend(_correction_flags(graph, kind, event, subject))
    groups = graph.lapses
    if groups is None:
        # A full graph: its lapses, in the report's chain (the graph may hold other lots).
        groups = group_lapses(
            lapse
            for lapse in lapses_of(signed_events(graph), participants)
            if (lapse.event.event_id in recorded if lapse.lot is None else lapse.lot in upstream)
        )
    flags.extend(_lapse_flag(group, participants) for group in groups)

    return tuple(
        sorted(
            dict.fromkeys(flags),  # identical flags once, in a stable order
            key=lambda f: (
                _position(f.event) if f.event is not None else (-1, -1),
                _FLAG_ORDER[f.code],
                f.message,
            ),
        )
    )


# -- downstream ------------------------------------------------------------------------------------


def downstream(graph: Graph, start_lots: Iterable[bytes]) -> Downstream:
    """Every lot, step and passport holding material of ``start_lots``, with how many grams of it
    (exact): consuming q grams of lot L carries L's start content times q / L.quantity into the
    step, which shares it among its outputs by mass. A start lot's content is all of it, even if
    another start lot went into it."""
    start = tuple(dict.fromkeys(start_lots))
    quantity: dict[bytes, int] = {}
    material: dict[bytes, int] = {}
    for lot_id in start:
        lot = graph.lots.get(lot_id)
        if lot is None:
            raise UnknownLot(lot_id)
        quantity[lot_id] = lot.quantity
        material[lot_id] = lot.material
    starts = set(start)

    # Steps in flow order: reverse DFS post-order along lot -> consuming step -> output lot.
    postorder: list[bytes] = []
    done: set[bytes] = set()
    on_path: set[bytes] = set()

    def consumers_of_outputs(step: Step) -> Iterator[bytes]:
        for produced in step.outputs:
            yield from graph.consumers.get(produced.lot, ())

    for lot_id in start:
        for root in graph.consumers.get(lot_id, ()):
            if root in done:
                continue
            on_path.add(root)
            stack = [(root, consumers_of_outputs(_step(graph, root)))]
            while stack:
                step_id, children = stack[-1]
                for child in children:
                    if child in on_path:
                        raise IncompleteGraph(f"step 0x{child.hex()} is downstream of itself")
                    if child not in done:
                        on_path.add(child)
                        stack.append((child, consumers_of_outputs(_step(graph, child))))
                        break
                else:
                    stack.pop()
                    on_path.discard(step_id)
                    done.add(step_id)
                    postorder.append(step_id)
    postorder.reverse()

    content: dict[bytes, Fraction] = {lot_id: Fraction(quantity[lot_id]) for lot_id in start}
    producer: dict[bytes, bytes] = {}
    steps: list[DownstreamStep] = []
    passports: list[DownstreamPassport] = []
    for step_id in postorder:
        step = graph.steps[step_id]
        carried = _ZERO
        for consumed in step.inputs:
            held = content.get(consumed.lot)
            if held is None:
                continue
            size = quantity[consumed.lot]
            if size:
                carried += held * consumed.quantity / size
        steps.append(DownstreamStep(step.event, step.kind, carried))
        if step.kind == "bind":
            if step.passport is not None:
                passports.append(DownstreamPassport(step.passport, step.event, carried))
            continue
        total = _outputs_total(step)
        for produced in step.outputs:
            quantity[produced.lot] = produced.quantity
            material[produced.lot] = produced.material
            producer[produced.lot] = step_id
            if produced.lot in starts:
                continue
            share = carried * produced.quantity / total if total else _ZERO
            content[produced.lot] = content.get(produced.lot, _ZERO) + share

    return Downstream(
        start=start,
        start_grams=sum(quantity[lot_id] for lot_id in start),
        lots=tuple(
            DownstreamLot(
                lot_id,
                material[lot_id],
                quantity[lot_id],
                grams,
                None if lot_id in starts else producer.get(lot_id),
            )
            for lot_id, grams in content.items()
        ),
        steps=tuple(steps),
        passports=tuple(passports),
    )


def lot_provenance(
    graph: Graph, lot: bytes, *, high_risk_countries: frozenset[str]
) -> PassportProvenance:
    """The provenance of a whole lot, as if a battery had consumed all of it: the same report as
    a passport's, with the lot's own event as the binding (``graph`` from ``Store.ancestry``)."""
    node = _lot(graph, lot)
    own = (
        node.origin.event
        if node.origin is not None
        else _step(graph, node.produced_by or b"").event
    )
    probe = Step(
        kind="bind",
        event=own,
        footprint=0,
        inputs=(Consumed(lot, node.quantity),),
        passport=lot,
    )
    probe_id = b"lot:" + lot
    extended = replace(
        graph,
        steps={**graph.steps, probe_id: probe},
        passports={**graph.passports, lot: probe_id},
    )
    return _provenance(
        extended, lot, high_risk_countries=high_risk_countries, now=None, probe=probe_id
    )
