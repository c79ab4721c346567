"""Participants' standing at an event: the roles they held and the certifications valid then.

A due-diligence lapse is an event signed by an account that held no roles (never accredited, or
revoked), had no certification recorded, or whose certifications had all expired by the event's
block time. The standing that counts is the one just before the event on the chain, so a lapse
is a fact about the event that later records never change: the index finds lapses once, when it
stores the event (``mine2cell.index.store``), and the provenance engine finds them itself in a
graph that carries no stored ones (``Graph.lapses is None``). Both use :func:`lapses_of`, and
report them grouped (:func:`group_lapses`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from mine2cell.provenance.model import (
    EventKind,
    EventRef,
    Graph,
    Lapse,
    LapseCode,
    LapseGroup,
    ParticipantHistory,
)

Position = tuple[int, int]


class Standing(NamedTuple):
    """A participant's standing after a change: roles held (None: never accredited), the best
    valid-until over its certificates (-1: none), and the valid-until of each scheme."""

    roles: int | None
    valid_until: int
    schemes: Mapping[bytes, int]


NEVER = Standing(None, -1, {})


class Participants:
    """Participants' roles and certifications as they stood at any point of the chain.

    A chain has thousands of events signed by a few dozen accounts, so each account's history is
    turned once into the list of its standings after each change, to bisect by the event's
    position.
    """

    def __init__(self, histories: Iterable[ParticipantHistory]) -> None:
        self._histories = {h.account.lower(): h for h in histories}
        self._timelines: dict[str, tuple[list[Position], list[Standing]]] = {}

    def timeline(self, account: str) -> tuple[list[Position], list[Standing]]:
        timeline = self._timelines.get(account)
        if timeline is not None:
            return timeline
        history = self._histories.get(account.lower())
        changes: list[tuple[Position, int | None, bytes | None, int]] = []
        if history is not None:
            changes.extend(
                ((c.block_number, c.log_index), c.roles, None, 0) for c in history.role_changes
            )
            changes.extend(
                ((r.event.block_number, r.event.log_index), None, r.scheme, r.valid_until)
                for r in history.certifications
            )
        changes.sort(key=lambda change: change[0])
        positions: list[Position] = []
        standings: list[Standing] = []
        standing = NEVER
        for position, roles, scheme, valid_until in changes:
            if scheme is None:
                standing = standing._replace(roles=roles)
            else:
                # A record replaces the previous one of its scheme, as on chain.
                schemes = {**standing.schemes, scheme: valid_until}
                standing = standing._replace(valid_until=max(schemes.values()), schemes=schemes)
            positions.append(position)
            standings.append(standing)
        self._timelines[account] = (positions, standings)
        return positions, standings

    def standing_at(self, account: str, event: EventRef) -> Standing:
        """``account``'s standing just before ``event``."""
        positions, standings = self.timeline(account)
        index = bisect_left(positions, (event.block_number, event.log_index))
        return standings[index - 1] if index else NEVER

    def roles_at(self, account: str, event: EventRef) -> int | None:
        return self.standing_at(account, event).roles


def lapse_codes(standing: Standing, timestamp: int) -> Iterator[LapseCode]:
    """What is wrong with an event signed in ``standing`` at block time ``timestamp``."""
    if not standing.roles:
        yield "signer-not-accredited"
    if not standing.schemes:
        yield "certification-missing"
    elif standing.valid_until < timestamp:
        yield "certification-expired"


def lapses_of(
    events: Iterable[tuple[EventKind, bytes | None, EventRef]], participants: Participants
) -> Iterator[Lapse]:
    """The lapses among signed events given as (kind, lot or None, event)."""
    timeline = participants.timeline
    for kind, lot, event in events:
        # participants.standing_at, inlined: this runs for every event of a chain.
        positions, standings = timeline(event.actor)
        index = bisect_left(positions, (event.block_number, event.log_index))
        standing = standings[index - 1] if index else NEVER
        for code in lapse_codes(standing, event.timestamp):
            yield Lapse(code, kind, lot, event)


def signed_events(graph: Graph) -> Iterator[tuple[EventKind, bytes | None, EventRef]]:
    """Every event of ``graph`` whose signer's standing is checked: commissionings, custody
    events and steps."""
    for lot in graph.lots.values():
        if lot.origin is not None:
            yield "commission", lot.lot, lot.origin.event
    for lot_id, handoffs in graph.handoffs.items():
        for handoff in handoffs:
            yield handoff.kind, lot_id, handoff.event
    for step in graph.steps.values():
        yield step.kind, None, step.event


def group_lapses(lapses: Iterable[Lapse]) -> tuple[LapseGroup, ...]:
    """Lapses by signer and kind of lapse, each group with its first and last event in chain
    order; the groups in chain order of their first event, then by code."""
    groups: dict[tuple[str, LapseCode], list[Lapse]] = {}
    for lapse in lapses:
        groups.setdefault((lapse.event.actor, lapse.code), []).append(lapse)
    summaries = []
    for (actor, code), items in groups.items():
        items.sort(key=_chain_position)
        summaries.append(LapseGroup(code, actor, len(items), items[0], items[-1]))
    return in_chain_order(summaries)


def in_chain_order(groups: Iterable[LapseGroup]) -> tuple[LapseGroup, ...]:
    """Groups in chain order of their first event, then by code and signer."""
    return tuple(
        sorted(groups, key=lambda group: (_chain_position(group.first), group.code, group.actor))
    )


def _chain_position(lapse: Lapse) -> Position:
    return (lapse.event.block_number, lapse.event.log_index)
