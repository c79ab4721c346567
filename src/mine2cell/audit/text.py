"""An audit for people: the checks with their findings, the figures from the chain, the verdict
last (where a terminal leaves the eye)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from mine2cell.audit.verify import Verification
from mine2cell.ids import show_id

# Findings shown per check; the JSON and HTML reports hold them all.
SHOWN_FINDINGS = 5


def _short(hex_value: str) -> str:
    return hex_value[:10] + "…" + hex_value[-6:] if len(hex_value) > 20 else hex_value


def print_verification(console: Console, result: Verification) -> None:
    p = result.parameters
    console.print(
        f"Audit of passport {show_id(result.passport)} on the ledger at {p['ledger']} "
        f"(chain {p['chain_id']}, head block {p['head_block']:,}, node {p['rpc_url']})",
        highlight=False,
    )
    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("")
    table.add_column("check")
    table.add_column("checked", justify="right")
    table.add_column("findings", justify="right")
    for check in result.checks:
        mark = "[green]PASS[/]" if check.passed else "[bold red]FAIL[/]"
        table.add_row(mark, check.title, f"{check.checked:,}", f"{len(check.findings):,}")
    console.print(table)
    for check in result.checks:
        for finding in check.findings[:SHOWN_FINDINGS]:
            console.print(f"  [red]✗[/] {check.title}: {finding.message}", highlight=False)
            if finding.evidence is not None:
                e = finding.evidence
                console.print(
                    f"      {e.event} tx {_short('0x' + e.tx_hash.hex())} block {e.block_number:,}"
                    f" ({_short('0x' + e.block_hash.hex())}) log {e.log_index}",
                    highlight=False,
                    style="dim",
                )
        hidden = len(check.findings) - SHOWN_FINDINGS
        if hidden > 0:
            console.print(f"  … and {hidden:,} more {check.title} findings in the report")
    _print_figures(console, result.provenance)
    f = result.figures
    console.print(
        f"Read {f['events']:,} events ({f['lots']:,} lots, {f['steps']:,} steps upstream), "
        f"{f['transactions']:,} transactions and {f['blocks']:,} blocks in {f['requests']:,} "
        f"requests, {f['fetch_seconds']:.2f} s; checked at {f['events_per_second']:,} events/s; "
        f"{f['total_seconds']:.2f} s in all.",
        highlight=False,
        style="dim",
    )
    if result.passed:
        console.print("[bold green]Verdict: PASS[/] — every check passed")
    else:
        failed = ", ".join(c.title for c in result.checks if not c.passed)
        console.print(f"[bold red]Verdict: FAIL[/] — {failed}", highlight=False)


def _print_figures(console: Console, provenance: dict[str, Any] | None) -> None:
    if provenance is None:
        console.print("The figures could not be recomputed from the chain.")
        return
    countries = ", ".join(
        f"{c['country']} {c['share']['percent']} %" for c in provenance["countries"]
    )
    recycled = provenance["recycled"]
    console.print(
        f"From the chain alone: {provenance['grams_bound']:,} g bound; origins {countries}; "
        f"recycled {recycled['total']['percent']} % (post-consumer "
        f"{recycled['post_consumer']['percent']} %); footprint "
        f"{provenance['footprint']['total']['kg']} kg CO2e; {len(provenance['flags'])} "
        "due-diligence flag(s).",
        highlight=False,
    )
