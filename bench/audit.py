"""An independent audit of a passport with about 1,000 lots upstream, end to end on anvil.

In one run, on an anvil node started here (with full history, as an auditor's node has):

1. generate a ledger with bench/ledger_generator.py (10,000 lots by default) holding the target
   passport (1,002 lots upstream, the same whatever the ledger's size);
2. index it and take the service's provenance report of the target, as a service would serve it;
3. audit the target ``--runs`` times with ``mine2cell.audit.verify.verify`` against the node,
   comparing with the service's report: the code check, reading the chain (every event of every
   upstream lot, corrections, participants' histories, headers, transactions), every check, the
   figures recomputed from the chain and the comparison. Printed per phase, p50 over the runs,
   with the events checked per second (signature recovery and every rule, once fetched).

Prints the figures and writes them to bench/audit.md. They depend on the machine and on what else
it is running (load averages are printed); they are not a pass/fail timer.

    .venv/bin/python bench/audit.py                    # or: make bench-audit   (about 3 minutes)
    .venv/bin/python bench/audit.py --lots 2000 --runs 3 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from mine2cell.audit.verify import Verification, verify
from mine2cell.chain.node import DevNode
from mine2cell.index.store import SqliteStore
from mine2cell.index.sync import Indexer
from mine2cell.provenance.documents import passport_document

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ledger_generator import DEFAULT_SEED, Generated, generate, new_progress

OUT = Path(__file__).with_name("audit.md")
HIGH_RISK_COUNTRIES = frozenset({"CD", "MZ"})
# Full history (no --prune-history): an audit reads old transactions and blocks.
NODE_ARGS = ("--block-base-fee-per-gas", "0")


def service_report(generated: Generated, folder: Path, passport: bytes) -> tuple[Any, float]:
    store = SqliteStore(folder / "index.sqlite")
    try:
        started = time.perf_counter()
        Indexer(Web3(Web3.HTTPProvider(generated.url)), generated.ledger, store).sync()
        document = passport_document(store, passport, high_risk_countries=HIGH_RISK_COUNTRIES)
        seconds = time.perf_counter() - started
    finally:
        store.close()
    assert document is not None
    return json.loads(document), seconds


def p50(values: list[float]) -> float:
    return statistics.median(values)


def table(generated: Generated, runs: list[Verification], report_bytes: int) -> str:
    figures = runs[-1].figures
    timings = {
        key: p50([r.figures[key] for r in runs])
        for key in (
            "fetch_seconds",
            "check_seconds",
            "recompute_seconds",
            "total_seconds",
            "events_per_second",
        )
    }
    lines = [
        f"Ledger: {generated.lots:,} lots, {generated.operations:,} operations, "
        f"{generated.head_block - generated.deploy_block + 1:,} blocks. Target passport: "
        f"{figures['lots']:,} lots and {figures['steps']:,} steps upstream.",
        "",
        f"Read from the node: {figures['events']:,} events (every event of every upstream lot), "
        f"{figures['transactions']:,} transactions, {figures['blocks']:,} block headers, in "
        f"{figures['requests']:,} JSON-RPC round trips.",
        "",
        f"| phase (p50 of {len(runs)} runs) | seconds |",
        "|---|---:|",
        f"| code check + reading the chain | {timings['fetch_seconds']:.3f} |",
        f"| signature and rule checks | {timings['check_seconds']:.3f} |",
        f"| figures recomputed from the chain + comparison | {timings['recompute_seconds']:.3f} |",
        f"| **end to end** | **{timings['total_seconds']:.3f}** |",
        "",
        f"Signature and rule checks: **{timings['events_per_second']:,.0f} events/s** once "
        f"fetched. JSON report: {report_bytes / 1024:,.0f} KiB.",
        "",
        f"Verdict: {verdict(runs[-1])}",
    ]
    return "\n".join(lines)


def verdict(result: Verification) -> str:
    if result.passed:
        return "pass."
    failed = "; ".join(
        f"{c.title}: {len(c.findings):,} findings (first: {c.findings[0].message})"
        for c in result.checks
        if not c.passed
    )
    return (
        f"FAIL. {failed}. The generated ledger has, on purpose, mines without a certification "
        "and one whose certification expired before its lots, as a due-diligence audit finds."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lots", type=int, default=10_000, help="lots in the ledger (at least)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=None, help="signing processes")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write .md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    runs: list[Verification] = []
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp, new_progress() as bar:
        folder = Path(tmp)
        node = DevNode(extra_args=NODE_ARGS).start()
        try:
            generated = generate(
                node.url,
                lots=args.lots,
                work_dir=folder,
                seed=args.seed,
                workers=args.workers,
                progress=bar,
            )
            bar.console.print(generated.summary())
            passport = generated.target_passport
            assert passport is not None
            service, sync_seconds = service_report(generated, folder, passport)
            bar.console.print(f"indexed and served the service's report in {sync_seconds:.1f} s")
            w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
            task = bar.add_task("audits", total=args.runs)
            for _ in range(args.runs):
                result = verify(
                    w3,
                    generated.ledger,
                    passport,
                    rpc_url=node.url,
                    high_risk_countries=HIGH_RISK_COUNTRIES,
                    from_block=generated.deploy_block,
                    compare=service,
                    compare_source="the service's report",
                )
                runs.append(result)
                bar.console.print(
                    f"audit: {result.figures['total_seconds']:.3f} s end to end "
                    f"(read {result.figures['fetch_seconds']:.3f} s, checks "
                    f"{result.figures['check_seconds']:.3f} s = "
                    f"{result.figures['events_per_second']:,} events/s, recompute and compare "
                    f"{result.figures['recompute_seconds']:.3f} s)"
                )
                bar.advance(task)
        finally:
            node.stop(timeout=60)
    report_bytes = len(json.dumps(runs[-1].to_json()).encode())
    body = table(generated, runs, report_bytes)
    load_after = os.getloadavg()
    context = (
        f"Run of {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; whole run "
        f"{time.perf_counter() - started:.0f} s."
    )
    text = (
        "# Audit benchmark\n\n"
        "`.venv/bin/python bench/audit.py` (`make bench-audit`): an independent audit "
        "(`mine2cell audit verify`) of a passport with about 1,000 lots upstream, against anvil, "
        "compared with the service's report.\n\n" + body + "\n\n" + context + "\n"
    )
    print()
    print(body)
    print()
    print(context)
    if not args.no_write:
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
