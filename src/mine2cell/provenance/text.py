"""Provenance reports for people: rich tables and a tree, for the command line and the demo."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from fractions import Fraction

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from mine2cell.codes import Feedstock
from mine2cell.ids import show_id
from mine2cell.materials import describe
from mine2cell.provenance.report import Downstream, PassportProvenance, decimal
from mine2cell.units import format_mass

# A tree of more lots than this is cut (the JSON report always holds the whole DAG).
TREE_LIMIT = 60


def percent(share: Fraction) -> str:
    return decimal(share.numerator * 100, share.denominator, 2) + " %"


def mass(grams: Fraction | int) -> str:
    value = Fraction(grams)
    whole = (value.numerator * 2 + value.denominator) // (2 * value.denominator)
    return format_mass(whole)


def kg(grams: Fraction) -> str:
    return decimal(grams.numerator, grams.denominator * 1000, 3) + " kg"


def _who(account: str, names: Mapping[str, str]) -> str:
    return names.get(account, account)


def print_provenance(
    console: Console,
    report: PassportProvenance,
    *,
    title: str,
    names: Mapping[str, str] | None = None,
    tree: bool = True,
    whole_lot: bool = False,
) -> None:
    """``whole_lot``: the report is a lot's (``lot_provenance``), not a battery's."""
    names = names or {}
    binding = report.binding
    verb, amount = ("recorded", "traced") if whole_lot else ("bound", "bound")
    console.print(
        f"[bold]{title}[/]  {verb} by {_who(binding.actor, names)} in block "
        f"{binding.block_number} (tx 0x{binding.tx_hash.hex()})",
        highlight=False,
    )
    console.print(
        f"{mass(report.grams_bound)} {amount}; {mass(report.origin_grams)} of mined and recycled "
        f"material behind it; raw-material carbon footprint {kg(report.footprint.total)} CO2e",
        highlight=False,
    )

    elements = Table(title="Materials by element (EU 2023/1542 Annex X)", title_justify="left")
    for column in ("element", "Annex X", "mass", "share", "pre-consumer", "post-consumer"):
        elements.add_column(column, justify="left" if column == "element" else "right")
    for e in report.elements:
        elements.add_row(
            e.element or "unspecified",
            "yes" if e.annex_x else "no",
            mass(e.grams),
            percent(e.share),
            percent(e.recycled.pre_consumer),
            percent(e.recycled.post_consumer),
        )
    console.print(elements)

    countries = Table(title="Origins by country", title_justify="left")
    for column in ("country", "mass", "share"):
        countries.add_column(column, justify="left" if column == "country" else "right")
    for c in report.countries:
        countries.add_row(c.country, mass(c.grams), percent(c.share))
    console.print(countries)

    facilities = Table(title="Origins by mine or recycler", title_justify="left")
    for column in ("facility", "country", "participant", "mass", "share"):
        facilities.add_column(column, justify="right" if column in ("mass", "share") else "left")
    for f in report.facilities:
        facilities.add_row(
            show_id(f.facility), f.country, _who(f.actor, names), mass(f.grams), percent(f.share)
        )
    console.print(facilities)

    footprint = Table(title="Raw-material carbon footprint by stage", title_justify="left")
    for column in ("stage", "kg CO2e", "share"):
        footprint.add_column(column, justify="left" if column == "stage" else "right")
    total = report.footprint.total
    for stage in report.footprint.stages:
        footprint.add_row(
            stage.stage, kg(stage.grams), percent(stage.grams / total) if total else "-"
        )
    footprint.add_row("total", kg(total), "100.00 %" if total else "-")
    console.print(footprint)

    if report.flags:
        console.print(f"[bold]Due-diligence flags[/] ({len(report.flags)})")
        for flag in report.flags:
            message = flag.message
            for account, name in names.items():
                message = message.replace(account, name)
            console.print(f"  [yellow]{flag.code}[/]  {message}", highlight=False)
    else:
        console.print("[bold]Due-diligence flags[/]: none")
    for attestation in report.attestations:
        verdict = "pass" if attestation.verdict == 1 else "fail"
        console.print(
            f"attested [bold]{verdict}[/] by {_who(attestation.event.actor, names)} in block "
            f"{attestation.event.block_number} (report 0x{attestation.report_hash.hex()})",
            highlight=False,
        )
    if tree:
        console.print(provenance_tree(report, title=title), crop=False)


def provenance_tree(report: PassportProvenance, *, title: str) -> Tree:
    """The upstream DAG as a tree from the battery down to the commissioned lots (a lot reached
    by two paths appears under both)."""
    lots = {view.lot: view for view in report.dag.lots}
    consumed_by: dict[bytes, list[tuple[bytes, int]]] = defaultdict(list)
    for edge in report.dag.inputs:
        consumed_by[edge.step].append((edge.lot, edge.grams))
    root = Tree(f"[bold]{title}[/]")
    shown = 0

    def add(branch: Tree, step_id: bytes) -> None:
        nonlocal shown
        for lot_id, grams in consumed_by.get(step_id, []):
            view = lots.get(lot_id)
            if view is None:
                continue
            if shown >= TREE_LIMIT:
                branch.add(f"[dim]... (tree cut at {TREE_LIMIT} lots; --json has the whole DAG)")
                return
            shown += 1
            label = f"{show_id(lot_id)}  {describe(view.material)}  {format_mass(grams)} consumed"
            if view.origin is not None:
                feed = Feedstock(view.origin.feedstock).name.lower().replace("_", "-")
                label += (
                    f"\n[green]{feed}, from {show_id(view.origin.facility)} "
                    f"({view.origin.country})[/]"
                )
            child = branch.add(label)
            if view.produced_by is not None:
                add(child, view.produced_by)

    # The binding is the one step that consumes but produces no lot of the DAG.
    producers = {view.produced_by for view in report.dag.lots}
    for step_id in consumed_by:
        if step_id not in producers:
            add(root, step_id)
    return root


def print_downstream(console: Console, result: Downstream, *, title: str) -> None:
    console.print(f"[bold]{title}[/]: {format_mass(result.start_grams)} at the start")
    passports = Table(title="Passports containing this material", title_justify="left")
    for column in ("passport", "block", "mass of it"):
        passports.add_column(column, justify="left" if column == "passport" else "right")
    for p in result.passports:
        passports.add_row(show_id(p.passport), str(p.binding.block_number), mass(p.content))
    console.print(passports)
    lots = Table(title="Lots containing this material", title_justify="left")
    for column in ("lot", "material", "quantity", "mass of it"):
        lots.add_column(column, justify="left" if column in ("lot", "material") else "right")
    for lot in result.lots:
        lots.add_row(
            show_id(lot.lot), describe(lot.material), format_mass(lot.quantity), mass(lot.content)
        )
    console.print(lots)
