"""Provenance from the index against a naive walk of the chain, on a small and a large ledger.

In one run, on anvil nodes started here (one per ledger):

1. generate a small (10,000-lot) and a large (100,000-lot) ledger with bench/ledger_generator.py,
   each holding the same target passport (about 1,000 lots upstream, identical in structure,
   quantities and event ids);
2. index each in full with ``Indexer.sync`` into a fresh SQLite store, in a child process of its
   own so that its peak resident memory is the sync's (printed with the child's resident memory
   before it began, logs indexed per second and the elapsed time);
3. time the target's provenance from the index: ``store.upstream(passport)`` and the provenance
   engine (``passport_provenance``) on the graph, p50 / p95 over ``--runs`` runs, the two ledgers
   taking turns run by run (the time should follow the ancestry, not the ledger);
4. time a naive reconstruction that walks the chain lot by lot with eth_getLogs (per lot, its
   commission or production and its custody events, by lot topic; per step, its inputs and outputs
   by event-id topic, and its header), over ``--naive-runs`` runs, check it finds the same lots as
   the index, and print the speed-up.

Prints the figures and writes them to bench/provenance.md. They depend on the machine and on what
else it is running (load averages are printed); they are not a pass/fail timer. The whole run takes
about 15-20 minutes on 2 CPUs: about 10 to record the large ledger, 5 for the naive walks on it.

    .venv/bin/python bench/provenance.py                              # or: make bench-provenance
    .venv/bin/python bench/provenance.py --small-lots 2000 --large-lots 5000 --runs 10 --no-write
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import multiprocessing
import os
import platform
import queue
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, cast

from rich.progress import Progress
from web3 import Web3
from web3.types import RPCEndpoint

from mine2cell.chain.node import DevNode
from mine2cell.index.events import LedgerLog, decode_log, topic0
from mine2cell.index.store import SqliteStore
from mine2cell.index.sync import Indexer
from mine2cell.provenance.documents import passport_document
from mine2cell.provenance.model import Graph

if not __package__:
    # Run as a script: make the repository root importable, for bench.ledger_generator.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ledger_generator import (
    DEFAULT_SEED,
    DEV_NODE_ARGS,
    Generated,
    generate,
    new_progress,
)

OUT = Path(__file__).with_name("provenance.md")
DEFAULT_SMALL_LOTS = 10_000
DEFAULT_LARGE_LOTS = 100_000
DEFAULT_RUNS = 50
DEFAULT_NAIVE_RUNS = 3
# Origins that raise a due-diligence flag in the report (conflict-affected or high-risk areas).
HIGH_RISK_COUNTRIES = frozenset({"CD", "MZ"})

Engine = Callable[..., object]


def load_engine() -> tuple[Engine | None, str]:
    """The provenance engine, if it can be imported (it is being written alongside this
    benchmark); else None and why not."""
    try:
        module = importlib.import_module("mine2cell.provenance.engine")
    except Exception as exc:  # an engine half written may fail in any way on import
        return None, f"{type(exc).__name__}: {exc}"
    engine = getattr(module, "passport_provenance", None)
    if engine is None:
        return None, "mine2cell.provenance.engine has no passport_provenance"
    return cast(Engine, engine), ""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return float("nan")
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- full sync, in a child process --------------------------------------------------------------


@dataclass(frozen=True)
class SyncFigures:
    blocks: int
    logs: int
    rows: int
    seconds: float
    rss_before_mib: float  # resident memory of the child once set up, before the sync
    peak_rss_mib: float  # the child's peak resident memory (ru_maxrss)
    traced_peak_mib: float | None  # tracemalloc's peak during the sync, when asked for
    store_mib: float
    tables: dict[str, int]

    @property
    def logs_per_second(self) -> float:
        return self.logs / self.seconds


def _sync_child(
    url: str,
    ledger: str,
    store_path: Path,
    start_block: int,
    trace: bool,
    report: Queue[tuple[str, Any]],
) -> None:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 600}))
    store = SqliteStore(store_path)
    indexer = Indexer(w3, ledger, store, start_block=start_block)
    before = current_rss_mib()

    def progress(first: int, end: int, target: int) -> None:
        report.put(("progress", (end - first + 1, target - first + 1)))

    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = indexer.sync(progress)
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    tracemalloc.stop()
    figures = SyncFigures(
        blocks=result.to_block - result.from_block + 1,
        logs=result.logs,
        rows=result.stored,
        seconds=seconds,
        rss_before_mib=before,
        peak_rss_mib=rss_mib(),
        traced_peak_mib=traced,
        store_mib=0.0,
        tables=store.counts(),
    )
    store.close()
    report.put(("done", figures))


def full_sync(
    generated: Generated, store_path: Path, progress: Progress, label: str, trace: bool
) -> SyncFigures:
    context = multiprocessing.get_context("spawn")
    report: Queue[tuple[str, Any]] = context.Queue()
    args = (generated.url, generated.ledger, store_path, generated.deploy_block, trace, report)
    child = context.Process(target=_sync_child, args=args, name="sync", daemon=True)
    child.start()
    task = progress.add_task(f"{label}: full sync (blocks)", total=None)
    figures: SyncFigures | None = None
    while figures is None:
        try:
            kind, value = report.get(timeout=1.0)
        except queue.Empty:
            if child.exitcode is not None:
                raise SystemExit(
                    f"{label}: the sync process exited with code {child.exitcode}"
                ) from None
            continue
        if kind == "progress":
            done, total = value
            progress.update(task, completed=done, total=total)
        else:
            figures = value
    child.join(60)
    size = sum(p.stat().st_size for p in store_path.parent.glob(store_path.name + "*"))
    return SyncFigures(**{**figures.__dict__, "store_mib": size / 2**20})


# -- provenance from the index ------------------------------------------------------------------


@dataclass(frozen=True)
class QueryFigures:
    lots: int
    steps: int
    open_shipments: int  # the custody events the index loads: lots in transit
    lapses: int  # events signed without roles or a valid certificate (found at ingest)
    participants: int
    cold_ms: float  # the first upstream() on a freshly opened store
    upstream_ms: list[float]
    engine_ms: list[float]  # empty when the engine is not available
    engine_error: str
    first_request_ms: float  # passport_document on a fresh store: computed, then kept
    served_ms: list[float]  # passport_document once kept: the report read from the index
    document_kib: float

    @property
    def total_ms(self) -> list[float]:
        if not self.engine_ms:
            return self.upstream_ms
        return [u + e for u, e in zip(self.upstream_ms, self.engine_ms, strict=True)]


def graph_fingerprint(graph: Graph) -> tuple[Any, ...]:
    """What the target's graph says, without where it is on chain (blocks, transactions, log
    indexes, times): equal on two ledgers when the ancestry is identical."""
    lots = sorted(
        (
            lot.lot,
            lot.material,
            lot.quantity,
            lot.produced_by,
            None
            if lot.origin is None
            else (
                lot.origin.feedstock,
                lot.origin.footprint,
                lot.origin.facility,
                lot.origin.country,
                lot.origin.event.event_id,
            ),
        )
        for lot in graph.lots.values()
    )
    steps = sorted(
        (s.event.event_id, s.kind, s.footprint, s.inputs, s.outputs, s.passport)
        for s in graph.steps.values()
    )
    handoffs = sorted(
        (h.lot, h.kind, h.sender, h.recipient, h.event.event_id)
        for items in graph.handoffs.values()
        for h in items
    )
    return (tuple(lots), tuple(steps), tuple(handoffs), tuple(sorted(graph.participants)))


def time_queries(
    ledgers: Sequence[tuple[str, Path]],
    passport: bytes,
    runs: int,
    engine: Engine | None,
    progress: Progress,
) -> list[tuple[QueryFigures, tuple[Any, ...]]]:
    """The target's provenance on each ledger's index, the ledgers taking turns run by run, so
    that a change in the machine's speed during the run touches them alike."""
    stores: list[SqliteStore] = []
    cold_ms: list[float] = []
    fingerprints: list[tuple[Any, ...]] = []
    first_graphs: list[Graph] = []
    for label, path in ledgers:
        store = SqliteStore(path)
        stores.append(store)
        started = time.perf_counter()
        graph = store.upstream(passport)
        cold_ms.append((time.perf_counter() - started) * 1e3)
        if graph is None:
            raise SystemExit(f"{label}: the index does not know the passport 0x{passport.hex()}")
        fingerprints.append(graph_fingerprint(graph))
        first_graphs.append(graph)
    engine_error = "" if engine is not None else "not available"
    if engine is not None:
        try:
            for graph in first_graphs:
                engine(graph, passport, high_risk_countries=HIGH_RISK_COUNTRIES)
        except Exception as exc:
            engine_error = f"{type(exc).__name__}: {exc}"
            engine = None
    upstream_ms: list[list[float]] = [[] for _ in stores]
    engine_ms: list[list[float]] = [[] for _ in stores]
    graphs: list[Graph | None] = [None for _ in stores]
    # As a long-running service does once started: what exists now (this process's ledger
    # generation included) is moved out of the collector's sight, so that collections during
    # the queries traverse only what the queries create.
    gc.collect()
    gc.freeze()
    task = progress.add_task("provenance from the index, ledgers in turn", total=runs)
    for _ in range(runs):
        for i, store in enumerate(stores):
            t0 = time.perf_counter()
            graph = store.upstream(passport)
            t1 = time.perf_counter()
            upstream_ms[i].append((t1 - t0) * 1e3)
            if engine is not None:
                engine(graph, passport, high_risk_countries=HIGH_RISK_COUNTRIES)
                engine_ms[i].append((time.perf_counter() - t1) * 1e3)
            graphs[i] = graph
        progress.advance(task)
    # The report as the service serves it (provenance.documents): computed on the first
    # request and kept in the index, then read from there.
    first_request_ms: list[float] = []
    served_ms: list[list[float]] = [[] for _ in stores]
    sizes: list[int] = []
    for store in stores:
        t0 = time.perf_counter()
        document = passport_document(store, passport, high_risk_countries=HIGH_RISK_COUNTRIES)
        first_request_ms.append((time.perf_counter() - t0) * 1e3)
        sizes.append(len(document or b""))
    for _ in range(runs):
        for i, store in enumerate(stores):
            t0 = time.perf_counter()
            passport_document(store, passport, high_risk_countries=HIGH_RISK_COUNTRIES)
            served_ms[i].append((time.perf_counter() - t0) * 1e3)
    gc.unfreeze()
    results = []
    for i, store in enumerate(stores):
        store.close()
        graph = graphs[i]
        assert graph is not None
        figures = QueryFigures(
            lots=len(graph.lots),
            steps=len(graph.steps),
            open_shipments=sum(len(h) for h in graph.handoffs.values()),
            lapses=sum(group.size for group in graph.lapses or ()),
            participants=len(graph.participants),
            cold_ms=cold_ms[i],
            upstream_ms=upstream_ms[i],
            engine_ms=engine_ms[i],
            engine_error=engine_error,
            first_request_ms=first_request_ms[i],
            served_ms=served_ms[i],
            document_kib=sizes[i] / 1024,
        )
        results.append((figures, fingerprints[i]))
    return results


# -- the naive walk -----------------------------------------------------------------------------

_LOT_EVENTS = [
    topic0(name)
    for name in (
        "LotCommissioned",
        "LotProduced",
        "LotShipped",
        "LotReceived",
        "ShipmentRejected",
        "ShipmentRecalled",
    )
]
_STEP_EVENTS = [topic0("LotConsumed"), topic0("LotProduced")]


def _topic(value: bytes) -> str:
    return "0x" + value.hex()


@dataclass(frozen=True)
class NaiveWalk:
    lots: frozenset[bytes]
    steps: int
    requests: int
    logs: int
    seconds: float


def naive_upstream(url: str, ledger: str, from_block: int, passport: bytes) -> NaiveWalk:
    """The passport's upstream, straight from the node: its binding, then lot by lot (breadth
    first) each lot's commission or production and custody events, and each producing step's
    header, inputs and outputs; one eth_getLogs per question, as a client without an index
    asks them."""
    provider = Web3.HTTPProvider(url, request_kwargs={"timeout": 600})
    requests = logs_read = 0

    def get_logs(topics: list[Any]) -> list[LedgerLog]:
        nonlocal requests, logs_read
        reply = provider.make_request(
            RPCEndpoint("eth_getLogs"),
            [
                {
                    "address": ledger,
                    "fromBlock": hex(from_block),
                    "toBlock": "latest",
                    "topics": topics,
                }
            ],
        )
        if "error" in reply:
            raise SystemExit(f"eth_getLogs failed: {reply['error']}")
        requests += 1
        logs_read += len(reply["result"])
        return [log for log in map(decode_log, reply["result"]) if log is not None]

    started = time.perf_counter()
    (binding,) = get_logs([topic0("PassportBound"), _topic(passport)])
    steps: deque[bytes] = deque([binding.args["eventId"]])
    seen_steps = {binding.args["eventId"]}
    lots: set[bytes] = set()
    while steps:
        step = steps.popleft()
        if step != binding.args["eventId"]:
            get_logs([topic0("LotsTransformed"), _topic(step)])  # the header: footprint, actor
        for log in get_logs([_STEP_EVENTS, None, _topic(step)]):
            if log.name != "LotConsumed" or log.args["lot"] in lots:
                continue
            lot = log.args["lot"]
            lots.add(lot)
            for event in get_logs([_LOT_EVENTS, _topic(lot)]):
                producer: bytes = event.args["eventId"]
                if event.name == "LotProduced" and producer not in seen_steps:
                    seen_steps.add(producer)
                    steps.append(producer)
    seconds = time.perf_counter() - started
    return NaiveWalk(frozenset(lots), len(seen_steps), requests, logs_read, seconds)


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A ledger generated, indexed and walked naively; its queries are timed after."""

    label: str
    generated: Generated
    sync: SyncFigures
    naive: list[NaiveWalk]
    store_path: Path


@dataclass(frozen=True)
class LedgerFigures:
    label: str
    generated: Generated
    sync: SyncFigures
    query: QueryFigures
    naive: list[NaiveWalk]
    naive_matches: bool


def run_ledger(
    label: str,
    lots: int,
    args: argparse.Namespace,
    folder: Path,
    progress: Progress,
    nodes: list[DevNode],
) -> Recorded:
    node = DevNode(extra_args=DEV_NODE_ARGS).start()
    nodes.append(node)
    generated = generate(
        node.url,
        lots=lots,
        work_dir=folder,
        seed=args.seed,
        workers=args.workers,
        progress=progress,
        label=label,
    )
    progress.console.print(f"{label}: {generated.summary()}")
    assert generated.target_passport is not None
    passport = generated.target_passport
    store_path = folder / f"index-{label.replace(' ', '-')}.sqlite"
    for stale in folder.glob(store_path.name + "*"):
        stale.unlink()  # a full sync starts from an empty store
    sync = full_sync(generated, store_path, progress, label, args.tracemalloc)
    progress.console.print(
        f"{label}: synced {sync.logs:,} logs in {sync.seconds:.1f} s "
        f"({sync.logs_per_second:,.0f} logs/s), peak RSS {sync.peak_rss_mib:,.0f} MiB"
    )
    walks: list[NaiveWalk] = []
    task = progress.add_task(f"{label}: naive walk over eth_getLogs", total=args.naive_runs)
    for _ in range(args.naive_runs):
        walks.append(
            naive_upstream(generated.url, generated.ledger, generated.deploy_block, passport)
        )
        progress.advance(task)
    return Recorded(label, generated, sync, walks, store_path)


def ms(values: Sequence[float]) -> str:
    return f"{percentile(values, 50):,.1f} / {percentile(values, 95):,.1f}"


def tables(results: list[LedgerFigures], identical: bool) -> str:
    lines = [
        "Generation (signed by the participants, accepted with `intake.accept`, relayed in "
        "batches):",
        "",
        "| ledger | lots | operations | passports | blocks | planned | signed + recorded "
        "| operations/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        g = r.generated
        lines.append(
            f"| {r.label} | {g.lots:,} | {g.operations:,} | {g.passports:,} "
            f"| {g.head_block - g.deploy_block + 1:,} | {g.plan_seconds:.1f} s "
            f"| {g.record_seconds:.0f} s | {g.ops_per_second:,.0f} |"
        )
    lines += [
        "",
        "Full sync with `Indexer.sync` into a fresh SQLite store (in a child process; memory is "
        "its resident set):",
        "",
        "| ledger | logs | rows stored | seconds | logs/s | RSS before | peak RSS "
        "| tracemalloc peak | store size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.sync
        traced = "-" if s.traced_peak_mib is None else f"{s.traced_peak_mib:,.0f} MiB"
        lines.append(
            f"| {r.label} | {s.logs:,} | {s.rows:,} | {s.seconds:.1f} | {s.logs_per_second:,.0f} "
            f"| {s.rss_before_mib:,.0f} MiB | {s.peak_rss_mib:,.0f} MiB | {traced} "
            f"| {s.store_mib:,.0f} MiB |"
        )
    first = results[0].query
    lines += [
        "",
        f"The target passport's provenance ({first.lots:,} lots, {first.steps:,} steps, "
        f"{first.open_shipments:,} shipments in transit, {first.lapses:,} standing lapses, "
        f"{first.participants} participants upstream; "
        f"identical on both ledgers: {'yes' if identical else 'NO'}). Milliseconds, "
        "p50 / p95:",
        "",
        "| ledger | index: upstream() | engine | index total | first upstream() (cold) "
        "| naive walk | naive requests | speed-up (p50) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        q = r.query
        naive_ms = [w.seconds * 1e3 for w in r.naive]
        engine = ms(q.engine_ms) if q.engine_ms else "n/a"
        speedup = statistics.median(naive_ms) / percentile(q.total_ms, 50) if naive_ms else 0.0
        requests = r.naive[0].requests if r.naive else 0
        lines.append(
            f"| {r.label} | {ms(q.upstream_ms)} | {engine} | {ms(q.total_ms)} "
            f"| {q.cold_ms:,.1f} | {ms(naive_ms) if naive_ms else 'n/a'} | {requests:,} "
            f"| {speedup:,.0f}x |"
        )
    lines += [
        "",
        "The same report as the service serves it (`provenance.documents.passport_document`, "
        "JSON bytes): computed by the engine on the first request and kept in the index until "
        "an event changes it, then read from there. Milliseconds, p50 / p95:",
        "",
        "| ledger | first request (computed, serialised, kept) | served from the index "
        "| report size | speed-up over the naive walk (p50) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        q = r.query
        naive_ms = [w.seconds * 1e3 for w in r.naive]
        speedup = statistics.median(naive_ms) / percentile(q.served_ms, 50) if naive_ms else 0.0
        lines.append(
            f"| {r.label} | {q.first_request_ms:,.1f} | {ms(q.served_ms)} "
            f"| {q.document_kib:,.0f} KiB | {speedup:,.0f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small-lots", type=int, default=DEFAULT_SMALL_LOTS)
    parser.add_argument("--large-lots", type=int, default=DEFAULT_LARGE_LOTS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="index query runs")
    parser.add_argument("--naive-runs", type=int, default=DEFAULT_NAIVE_RUNS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=None, help="signing processes")
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also trace the sync's Python allocations (slows the sync down: its rate is then "
        "not comparable)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the outboxes and index stores here (default: a temporary folder, removed)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; do not write .md")
    args = parser.parse_args()
    engine, why = load_engine()
    if engine is None:
        print(f"provenance engine not available ({why}): timing upstream() only", file=sys.stderr)
    load_before = os.getloadavg()
    started = time.perf_counter()
    results: list[LedgerFigures] = []
    fingerprints: list[tuple[Any, ...]] = []
    nodes: list[DevNode] = []
    try:
        with ExitStack() as stack:
            if args.work_dir is None:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prov-")))
            else:
                folder = args.work_dir
                folder.mkdir(parents=True, exist_ok=True)
            bar = stack.enter_context(new_progress())
            recorded = [
                run_ledger(label, lots, args, folder, bar, nodes)
                for label, lots in (("small", args.small_lots), ("large", args.large_lots))
            ]
            passport = recorded[0].generated.target_passport
            assert passport is not None
            timed = time_queries(
                [(r.label, r.store_path) for r in recorded], passport, args.runs, engine, bar
            )
            for r, (query, fingerprint) in zip(recorded, timed, strict=True):
                if query.engine_error:
                    bar.console.print(f"provenance engine left out: {query.engine_error}")
                index_lots = frozenset(lot[0] for lot in fingerprint[0])
                matches = all(walk.lots == index_lots for walk in r.naive)
                results.append(LedgerFigures(r.label, r.generated, r.sync, query, r.naive, matches))
                fingerprints.append(fingerprint)
    finally:
        for node in nodes:
            node.stop(timeout=60)
    identical = all(f == fingerprints[0] for f in fingerprints)
    for figures in results:
        if not figures.naive_matches:
            print(
                f"{figures.label}: the naive walk and the index disagree on the lots",
                file=sys.stderr,
            )
    load_after = os.getloadavg()
    elapsed = time.perf_counter() - started
    load = f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    rendered = tables(results, identical)
    print(rendered, flush=True)
    print(f"{load}; whole run {elapsed:.0f} s", file=sys.stderr)
    if args.no_write:
        return
    flags = [
        f"--{name.replace('_', '-')} {value}"
        for name, value, default in (
            ("small_lots", args.small_lots, DEFAULT_SMALL_LOTS),
            ("large_lots", args.large_lots, DEFAULT_LARGE_LOTS),
            ("runs", args.runs, DEFAULT_RUNS),
            ("naive_runs", args.naive_runs, DEFAULT_NAIVE_RUNS),
            ("seed", args.seed, DEFAULT_SEED),
        )
        if value != default
    ]
    command = " ".join([".venv/bin/python bench/provenance.py", *flags])
    engine_note = (
        "the provenance engine's `passport_provenance` on that graph"
        if engine is not None and not results[0].query.engine_error
        else f"(the engine was not timed: {results[0].query.engine_error or why})"
    )
    note = (
        "Measured by `make bench-provenance` (bench/provenance.py) on "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {load}, whole run "
        f"{elapsed / 60:.1f} min. Each ledger is generated by bench/ledger_generator.py (seed "
        f"{args.seed}) on its own anvil node (`anvil {' '.join(DEV_NODE_ARGS)}`): mines in eight "
        "countries and two recyclers, "
        "refiners blending many lots into sulfates, hydroxide and spherical graphite, cathode "
        "makers blending those into NMC lots, cell makers binding passports; every operation "
        "signed by its participant and recorded through the relay. Both ledgers hold the same "
        "target passport, whose ancestry is the same whatever the ledger's size. The index "
        f"figures are `SqliteStore.upstream(passport)` and {engine_note}, over {args.runs} runs "
        "on a warm store. The naive walk asks the node with one eth_getLogs per lot (its "
        "commission or production and custody events, by lot topic) and two per step (inputs "
        "and outputs by event-id topic, and the header), breadth first, over "
        f"{args.naive_runs} runs; it finds the same lots as the index "
        f"({'checked' if all(r.naive_matches for r in results) else 'NOT the same: see stderr'})"
        "; it reads every custody event, where the index reads only the shipments of lots in "
        "transit and the lapses it found when it stored the events, and it reads no participant "
        "histories or corrections. Speed-up: naive p50 over "
        "index total p50. The figures vary with the machine and its load.\n\n"
    )
    OUT.write_text(
        "# Provenance: index against a naive walk\n\n"
        + note
        + rendered
        + "\n\n    "
        + command
        + "\n"
    )
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
