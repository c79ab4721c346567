"""The passport page: what each tier shows, and the HTML.

The public tier is built into a ``PublicView`` that holds only public facts (shares by element and
country, recycled content, footprint, flag counts, the audit verdict and its report hash, the
aggregated graph), and the template gets the ``DetailView`` only with a read token: the public
page cannot show a facility, a lot, an account, a mass or a transaction, because it is never
handed one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Literal

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from mine2cell.units import format_mass
from mine2cell.web import graph, words
from mine2cell.web.facts import (
    Attestation,
    Evidence,
    Flag,
    Lot,
    Participant,
    Report,
    Share,
    Step,
)
from mine2cell.web.graph import Diagram
from mine2cell.web.qr import svg_inline

Tone = Literal["pass", "fail", "warn", "none"]


class Bar:
    """One row of a bar chart."""

    def __init__(self, label: str, share: float, *, note: str = "", tone: str = "accent") -> None:
        self.label = label
        self.share = max(0.0, min(1.0, share))
        self.value = words.percent(share)
        self.note = note
        self.tone = tone


@dataclass(frozen=True)
class Verdict:
    tone: Tone
    word: str
    text: str


@dataclass(frozen=True)
class FlagCount:
    code: str
    title: str
    meaning: str
    count: int


@dataclass(frozen=True)
class StageBar:
    index: int  # its colour
    name: str
    kg: str
    share: float  # of the total
    offset: float  # where its segment starts, 0..1


@dataclass(frozen=True)
class ElementShare:
    """An element's share of the raw material and its recycled content (no mass)."""

    element: str | None
    annex_x: bool
    share: float
    recycled_percent: str
    pre_consumer_percent: str
    post_consumer_percent: str


@dataclass(frozen=True)
class PublicAttestation:
    verdict: str
    date: str
    block_number: int
    report_hash: str
    count: int


@dataclass(frozen=True)
class PublicView:
    passport: str
    bound: str  # the day it was bound
    url: str
    qr_svg: Markup
    verdict: Verdict
    flags_tone: Tone
    flags_text: str
    footprint_kg: str
    stages: tuple[StageBar, ...]
    recycled: str
    pre_consumer: str
    post_consumer: str
    elements: tuple[ElementShare, ...]
    element_bars: tuple[Bar, ...]
    annex_x: tuple[str, ...]
    country_bars: tuple[Bar, ...]
    countries: int
    high_risk_note: str
    flags: tuple[FlagCount, ...]
    attestation: PublicAttestation | None
    diagram: Diagram | None  # None: the detail view draws its own
    as_of: str


@dataclass(frozen=True)
class LotRow:
    lot: Lot
    href: str
    origin: str
    in_battery: str


@dataclass(frozen=True)
class StepRow:
    step: Step
    title: str
    facility: str
    footprint: str


@dataclass(frozen=True)
class FlagRow:
    flag: Flag
    title: str
    lot_href: str | None


@dataclass(frozen=True)
class AuditRow:
    attestation: Attestation
    auditor: str


@dataclass(frozen=True)
class DetailView:
    report: Report
    facility_bars: tuple[Bar, ...]
    lots: tuple[LotRow, ...]
    steps: tuple[StepRow, ...]
    flags: tuple[FlagRow, ...]
    audits: tuple[AuditRow, ...]
    binding: Evidence
    bound_by: str
    grams_bound: str
    origin_grams: str
    diagram: Diagram
    provenance_url: str


def _verdict(latest: Attestation | None) -> Verdict:
    if latest is None:
        return Verdict("none", "Not yet audited", "No auditor has attested this chain yet.")
    when = words.day(latest.event.timestamp)
    if latest.verdict == "pass":
        return Verdict(
            "pass",
            "Audit passed",
            f"An accredited auditor verified this battery's raw-material chain on {when}.",
        )
    return Verdict(
        "fail",
        "Audit failed",
        f"An accredited auditor found failed checks in this chain on {when}.",
    )


def _flag_counts(flags: tuple[Flag, ...]) -> tuple[FlagCount, ...]:
    counts = Counter(flag.code for flag in flags)
    return tuple(
        FlagCount(code, words.flag_title(code), words.flag_meaning(code), count)
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )


def _stages(report: Report) -> tuple[StageBar, ...]:
    total = sum(stage.kg for stage in report.stages) or 1.0
    bars: list[StageBar] = []
    offset = 0.0
    for index, stage in enumerate(report.stages):
        share = stage.kg / total
        bars.append(StageBar(index, words.stage(stage.stage), stage.kg_text, share, offset))
        offset += share
    return tuple(bars)


def _element_name(element: str | None) -> str:
    return element.capitalize() if element else "Other (no element named)"


def _country_bars(countries: tuple[Share, ...], high_risk: frozenset[str]) -> tuple[Bar, ...]:
    return tuple(
        Bar(
            words.country(c.key),
            c.share,
            note="high-risk list" if c.key in high_risk else "",
            tone="warn" if c.key in high_risk else "accent",
        )
        for c in countries
    )


def public_view(
    report: Report,
    participants: Mapping[str, Participant],
    *,
    url: str,
    high_risk: frozenset[str],
    with_diagram: bool,
) -> PublicView:
    latest = report.latest_attestation
    flags = _flag_counts(report.flags)
    flagged = sum(f.count for f in flags)
    risky = [c.key for c in report.countries if c.key in high_risk]
    return PublicView(
        passport=report.passport,
        bound=words.day(report.binding.timestamp),
        url=url,
        # segno's own SVG: the URL and the title in it are escaped by segno.
        qr_svg=Markup(svg_inline(url, title=f"QR code of battery passport {report.passport}")),
        verdict=_verdict(latest),
        flags_tone="warn" if flagged else "pass",
        flags_text=(
            f"{flagged} due-diligence flag{'s' if flagged != 1 else ''}"
            if flagged
            else "No due-diligence flags"
        ),
        footprint_kg=report.footprint_kg,
        stages=_stages(report),
        recycled=words.percent(float(report.recycled_percent) / 100),
        pre_consumer=words.percent(float(report.pre_consumer_percent) / 100),
        post_consumer=words.percent(float(report.post_consumer_percent) / 100),
        elements=tuple(
            ElementShare(
                e.element,
                e.annex_x,
                e.share,
                e.recycled_percent,
                e.pre_consumer_percent,
                e.post_consumer_percent,
            )
            for e in report.elements
        ),
        element_bars=tuple(
            Bar(
                _element_name(e.element),
                e.share,
                note="Annex X" if e.annex_x else "",
                tone="accent" if e.annex_x else "muted",
            )
            for e in report.elements
        ),
        annex_x=tuple(_element_name(e.element) for e in report.elements if e.annex_x),
        country_bars=_country_bars(report.countries, high_risk),
        countries=len(report.countries),
        high_risk_note=(
            "Origin in " + ", ".join(words.country(c) for c in risky) + ", on the operator's "
            "high-risk list."
            if risky
            else ""
        ),
        flags=flags,
        attestation=None
        if latest is None
        else PublicAttestation(
            verdict=latest.verdict,
            date=words.utc(latest.event.timestamp),
            block_number=latest.event.block_number,
            report_hash=latest.report_hash,
            count=len(report.attestations),
        ),
        diagram=graph.public_graph(report, participants) if with_diagram else None,
        as_of=words.utc(report.as_of),
    )


def _facility(participants: Mapping[str, Participant], account: str) -> str:
    found = participants.get(account.lower())
    return found.facility if found is not None else ""


def detail_view(
    report: Report,
    participants: Mapping[str, Participant],
    *,
    lot_href: Callable[[str], str],
    provenance_url: str,
) -> DetailView:
    steps = {step.id: step for step in report.steps}
    lots: list[LotRow] = []
    for lot in report.lots:
        if lot.origin is not None:
            origin = (
                f"{words.FEEDSTOCK.get(lot.origin.feedstock, 'commissioned').capitalize()} at "
                f"{lot.origin.facility}, {lot.origin.country}"
            )
        else:
            producer = steps[lot.produced_by].event.actor if lot.produced_by else ""
            origin = f"Produced by {_facility(participants, producer) or producer}"
        lots.append(LotRow(lot, lot_href(lot.id), origin, format_mass(round(lot.grams))))
    audits = tuple(
        AuditRow(a, _facility(participants, a.event.actor)) for a in reversed(report.attestations)
    )
    return DetailView(
        report=report,
        facility_bars=tuple(
            Bar(
                f"{words.short_label(f.label, 34)} · {f.country}",
                f.share,
                note=words.mass(f.grams),
            )
            for f in report.facilities
        ),
        lots=tuple(lots),
        steps=tuple(
            StepRow(
                step,
                "Passport binding" if step.kind == "bind" else f"Transformation ({step.stage})",
                _facility(participants, step.event.actor),
                f"{step.footprint / 1000:,.3f} kg",
            )
            for step in report.steps
        ),
        flags=tuple(
            FlagRow(flag, words.flag_title(flag.code), lot_href(flag.lot[0]) if flag.lot else None)
            for flag in report.flags
        ),
        audits=audits,
        binding=report.binding,
        bound_by=_facility(participants, report.binding.actor),
        grams_bound=format_mass(report.grams_bound),
        origin_grams=format_mass(round(report.origin_grams)),
        diagram=graph.draw(
            report,
            participants,
            detail=True,
            lot_href=lot_href,
            event_href=lambda event_id: f"#event-{event_id}",
        ),
        provenance_url=provenance_url,
    )


# -- HTML ------------------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("mine2cell.web", "templates"),
        # Lot numbers, facility names and flag messages are anyone's text: escaped everywhere.
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short_hash"] = words.short_hash
    env.filters["short_label"] = words.short_label
    env.filters["utc"] = words.utc
    env.filters["country"] = words.country
    env.filters["mass"] = format_mass
    return env


def render_page(public: PublicView, detail: DetailView | None, *, ledger: str) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        _environment()
        .get_template("passport.html.j2")
        .render(public=public, detail=detail, ledger=ledger, generated=generated)
    )


def render_error(status: int, title: str, message: str) -> str:
    return (
        _environment()
        .get_template("error.html.j2")
        .render(status=status, title=title, message=message)
    )
