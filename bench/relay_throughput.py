"""Relay throughput: confirmed operations per second through intake, outbox and relay, against
one operation per web3 transaction.

Runs on a fresh anvil node (automine) started by the project. Every path replays the same
realistic mix: lots commissioned by mines, then shipped to refiners, then received by them.
Every operation is signed by its participant before the clock starts: signing is the
participants' work, done on their own machines, not the relay's.

- naive: web3's ``contract.functions.<op>(op, sig).transact`` (gas estimated by the node) and
  ``wait_for_transaction_receipt``, one operation per transaction, sent from anvil's unlocked
  account (accredited as a relayer).
- relay, intake thread: as the service runs, one thread accepts the operations into a fresh
  outbox (``intake.accept``, in chunks, each chunk committed durably) while ``Relay.run`` batches
  and sends them from another thread of the same process.
- relay, intake process: the same, with the accepting done by a second process sharing the
  outbox file (as the CLI does while a server relays), so intake and relay do not share one GIL.

Relay paths are timed from the first accept until every operation is confirmed in the outbox.
Prints the figures and writes them to bench/relay_throughput.md. They depend on the machine and
on what else it is running (the load average is printed); they are not a pass/fail timer.

    .venv/bin/python bench/relay_throughput.py            # or: make bench-relay
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from eth_utils import keccak
from hexbytes import HexBytes
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient
from mine2cell.chain.node import DevNode
from mine2cell.codes import Role
from mine2cell.errors import Mine2CellError
from mine2cell.relay import intake
from mine2cell.relay.outbox import Outbox, State
from mine2cell.relay.relay import BatchPolicy, Relay
from mine2cell.service import deploy_ledger, fund_on_dev_node
from mine2cell.signing.eip712 import (
    Accredit,
    Commission,
    LocalSigner,
    LotId,
    Operation,
    Receive,
    Ship,
    SignedOperation,
    text32,
)

OUT = Path(__file__).with_name("relay_throughput.md")
DEFAULT_OPERATIONS = 5_000
DEFAULT_NAIVE_OPERATIONS = 300
DEFAULT_CHUNK = 256
MINES = 4
REFINERS = 4
# Lots per wave of the mix: this many commissions, then their ships, then their receives, so the
# kinds interleave over the whole run and each receive is accepted after its ship.
WAVE_LOTS = 100
SETTLE_TIMEOUT_SECONDS = 600.0

Items = Sequence[tuple[SignedOperation, bytes]]


@dataclass(frozen=True)
class PathResult:
    label: str
    operations: int
    confirmed: int
    transactions: int
    gas_used: int
    seconds: float
    # CPU seconds spent during the timed window by this benchmark's processes, and by anvil.
    python_cpu: float
    node_cpu: float | None

    @property
    def ops_per_second(self) -> float:
        return self.confirmed / self.seconds

    @property
    def mean_batch(self) -> float:
        return self.operations / self.transactions

    @property
    def gas_per_operation(self) -> int:
        return self.gas_used // self.operations


def node_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Supply:
    """A fresh ledger with mines and refiners accredited, a relayer key, and anvil's unlocked
    account accredited as a relayer for the naive path."""

    def __init__(self, w3: Web3, node_pid: int | None) -> None:
        self.w3 = w3
        self.node_pid = node_pid

        def key(name: str) -> LocalSigner:
            return LocalSigner(keccak(text=f"relay throughput bench {name}"))

        self.governor, self.relayer = key("governor"), key("relayer")
        self.mines = [key(f"mine {i}") for i in range(MINES)]
        self.refiners = [key(f"refiner {i}") for i in range(REFINERS)]
        for account in (self.governor, self.relayer):
            fund_on_dev_node(w3, account.address)
        self.ledger, _ = deploy_ledger(w3, self.governor, self.relayer)
        self.unlocked = w3.eth.accounts[0]
        setup = [self._accredit(self.unlocked, Role.RELAYER)]
        setup += [self._accredit(m.address, Role.MINE) for m in self.mines]
        setup += [self._accredit(r.address, Role.PROCESSOR) for r in self.refiners]
        result = self.ledger.relay(setup)
        if result.failed:
            raise SystemExit(f"benchmark setup failed: {result.failed}")
        self.lots = 0

    def _accredit(self, participant: str, roles: int) -> SignedOperation:
        return self.ledger.sign(
            Accredit,
            self.governor,
            participant=participant,
            roles=roles,
            facility=text32(f"SITE {participant[2:10]}"),
            country="FI",
        )

    def workload(self, n: int) -> list[SignedOperation]:
        """n signed operations in acceptance order: waves of commissions, ships, receives."""
        ops: list[SignedOperation] = []
        sign = self.ledger.sign
        while len(ops) < n:
            wave: list[tuple[LotId, LocalSigner, LocalSigner]] = []
            for _ in range(WAVE_LOTS):
                self.lots += 1
                lot = LotId(keccak(text=f"relay throughput lot {self.lots}"))
                wave.append(
                    (lot, self.mines[self.lots % MINES], self.refiners[self.lots % REFINERS])
                )
            for lot, mine, _ in wave:
                ops.append(
                    sign(
                        Commission,
                        mine,
                        lot=lot,
                        material=101,
                        quantity=10_000_000,
                        feedstock=0,
                        footprint=1_234_567,
                        document_hash=keccak(text=f"assay {lot.hex()}"),
                    )
                )
            for lot, mine, refiner in wave:
                ops.append(sign(Ship, mine, lot=lot, recipient=refiner.address))
            for lot, mine, refiner in wave:
                ops.append(sign(Receive, refiner, lot=lot, counterparty=mine.address))
        # Cutting the tail drops only the last receives (or ships): no receive loses its ship.
        return ops[:n]

    def signed(self, n: int, label: str) -> list[SignedOperation]:
        started = time.perf_counter()
        ops = self.workload(n)
        print(
            f"{label}: {n:,} operations signed by their participants in "
            f"{time.perf_counter() - started:.2f} s (before the clock starts)",
            file=sys.stderr,
        )
        return ops


def naive(supply: Supply, ops: list[SignedOperation], progress: Progress) -> PathResult:
    """One operation per transaction: web3's transact (with the node's gas estimate) and a wait
    for each receipt."""
    w3, functions = supply.w3, supply.ledger.contract.functions
    task = progress.add_task("naive: transact + receipt", total=len(ops))
    sender: dict[str, Any] = {"from": supply.unlocked}
    gas_used = confirmed = 0
    node_started = node_cpu_seconds(supply.node_pid)
    cpu_started, started = time.process_time(), time.perf_counter()
    for signed in ops:
        op: Operation = signed.operation
        call = getattr(functions, op.FUNCTION)(op.as_tuple(), signed.signature.as_tuple())
        receipt = w3.eth.wait_for_transaction_receipt(call.transact(sender))
        confirmed += receipt["status"] == 1
        gas_used += receipt["gasUsed"]
        progress.advance(task)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    node_ended = node_cpu_seconds(supply.node_pid)
    node = None if node_started is None or node_ended is None else node_ended - node_started
    return PathResult("naive", len(ops), confirmed, len(ops), gas_used, seconds, cpu, node)


@contextmanager
def running(
    target: Callable[[], None], name: str, stop: threading.Event | None = None
) -> Iterator[list[BaseException]]:
    """Run ``target`` in a thread; yield the list its exception (if any) lands in. On leaving,
    set ``stop`` (if given) and wait for the thread."""
    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=guarded, name=name, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        if stop is not None:
            stop.set()
        thread.join(SETTLE_TIMEOUT_SECONDS)


def accept_all(outbox: Outbox, ledger: LedgerClient, items: Items, chunk: int) -> list[str]:
    """Accept the operations in chunks; the reasons of those refused."""
    refused: list[str] = []
    for start in range(0, len(items), chunk):
        results = intake.accept(outbox, ledger, items[start : start + chunk])
        refused.extend(str(r) for r in results if isinstance(r, Mine2CellError))
    return refused


def intake_process(
    url: str,
    ledger_address: str,
    outbox_path: Path,
    items: Items,
    chunk: int,
    ready: Event,
    go: Event,
    report: Queue[tuple[list[str], float]],
) -> None:
    """The intake of the 'intake process' path, in a process of its own (opened before the
    clock starts)."""
    ledger = LedgerClient(Web3(Web3.HTTPProvider(url)), ledger_address)
    outbox = Outbox(outbox_path)
    ready.set()
    go.wait()
    cpu_started = time.process_time()
    refused = accept_all(outbox, ledger, items, chunk)
    report.put((refused, time.process_time() - cpu_started))
    outbox.close()


class IntakeProcess:
    """A started intake process, waiting for ``go``."""

    def __init__(self, supply: Supply, path: Path, items: Items, chunk: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.go = context.Event(), context.Event()
        self.report: Queue[tuple[list[str], float]] = context.Queue()
        self.result: tuple[list[str], float] | None = None
        url = str(getattr(supply.w3.provider, "endpoint_uri", ""))
        args = (url, supply.ledger.address, path, items, chunk, self.ready, self.go, self.report)
        self.process = context.Process(target=intake_process, args=args, name="intake", daemon=True)
        self.process.start()
        while not self.ready.wait(0.1):
            if self.process.exitcode is not None:
                raise SystemExit(f"the intake process exited with code {self.process.exitcode}")

    def failed(self) -> BaseException | None:
        code = self.process.exitcode
        if code not in (None, 0):
            return SystemExit(f"the intake process exited with code {code}")
        return None

    def poll(self) -> tuple[list[str], float] | None:
        """(reasons of the operations refused, CPU seconds) once the intake is done."""
        if self.result is None and not self.report.empty():
            self.result = self.report.get()
        return self.result

    def finish(self) -> tuple[list[str], float]:
        if self.result is None:
            self.result = self.report.get(timeout=SETTLE_TIMEOUT_SECONDS)
        self.process.join(SETTLE_TIMEOUT_SECONDS)
        return self.result


def relayed(
    supply: Supply,
    label: str,
    ops: list[SignedOperation],
    *,
    chunk: int,
    policy: BatchPolicy,
    folder: Path,
    in_process: bool,
    progress: Progress,
) -> PathResult:
    """Intake and relay concurrently; timed until every operation is settled."""
    path = folder / f"{label.replace(' ', '-').replace(',', '')}.sqlite"
    outbox = Outbox(path)
    relay = Relay(supply.ledger, outbox, supply.relayer, policy)
    relay.recover()
    items = [(signed, b"") for signed in ops]
    accepted_task = progress.add_task(f"{label}: accepted", total=len(ops))
    settled_task = progress.add_task(f"{label}: confirmed", total=len(ops))
    refused: list[str] = []
    intake_cpu = 0.0
    stop = threading.Event()
    child = IntakeProcess(supply, path, items, chunk) if in_process else None

    def produce() -> None:
        if child is not None:
            child.go.set()
        else:
            refused.extend(accept_all(outbox, supply.ledger, items, chunk))

    node_started = node_cpu_seconds(supply.node_pid)
    cpu_started, started = time.process_time(), time.perf_counter()
    with (
        running(lambda: relay.run(stop), "relay", stop) as relay_failed,
        running(produce, "intake") as intake_failed,
    ):
        while True:
            counts = outbox.counts()
            settled = counts[State.CONFIRMED] + counts[State.REJECTED]
            progress.update(accepted_task, completed=sum(counts.values()))
            progress.update(settled_task, completed=settled)
            if child is not None and (done := child.poll()) is not None:
                refused = done[0]
            if settled + len(refused) >= len(ops):
                break
            failures = intake_failed + relay_failed
            if child is not None and (failed := child.failed()) is not None:
                failures.append(failed)
            if failures:
                raise failures[0]
            if time.perf_counter() - started > SETTLE_TIMEOUT_SECONDS:
                raise SystemExit(f"not settled within {SETTLE_TIMEOUT_SECONDS:.0f} s: {counts}")
            time.sleep(0.02)  # counts() costs ~0.4 ms at 5,000 rows: keep the observer light
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        node_ended = node_cpu_seconds(supply.node_pid)
    if child is not None:
        refused, intake_cpu = child.finish()
    if refused:
        raise SystemExit(f"intake refused {len(refused)} operations, e.g. {refused[0]}")
    counts = outbox.counts()
    mined = outbox.batches("mined")
    gas_used = sum(
        int(supply.w3.eth.get_transaction_receipt(HexBytes(b.tx_hash))["gasUsed"])
        for b in mined
        if b.tx_hash is not None
    )
    others = {s: len(outbox.batches(s)) for s in ("sending", "dropped", "reverted")}
    if any(others.values()) or counts[State.REJECTED]:
        print(
            f"{label}: unexpected outcome: batches {others}, operations {counts}", file=sys.stderr
        )
    outbox.close()
    node = None if node_started is None or node_ended is None else node_ended - node_started
    return PathResult(
        label,
        len(ops),
        counts[State.CONFIRMED],
        len(mined),
        gas_used,
        seconds,
        cpu + intake_cpu,
        node,
    )


def tables(results: list[PathResult]) -> str:
    baseline = results[0].ops_per_second
    lines = [
        "| path | operations | transactions | mean ops / tx | gas / operation | seconds "
        "| confirmed ops/s | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {r.operations:,} | {r.transactions:,} | {r.mean_batch:.1f} "
            f"| {r.gas_per_operation:,} | {r.seconds:.2f} | {r.ops_per_second:,.0f} "
            f"| {r.ops_per_second / baseline:.1f}x |"
        )
    lines += [
        "",
        "CPU time spent during each timed window, per operation:",
        "",
        "| path | Python (all benchmark processes) | anvil |",
        "|---|---:|---:|",
    ]
    for r in results:
        node = "?" if r.node_cpu is None else f"{r.node_cpu / r.operations * 1e6:,.0f} µs"
        lines.append(f"| {r.label} | {r.python_cpu / r.operations * 1e6:,.0f} µs | {node} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--operations", type=int, default=DEFAULT_OPERATIONS, help="operations per relay path"
    )
    parser.add_argument(
        "--naive-operations",
        type=int,
        default=DEFAULT_NAIVE_OPERATIONS,
        help="operations on the naive path",
    )
    parser.add_argument(
        "--chunk", type=int, default=DEFAULT_CHUNK, help="operations per intake.accept call"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not update relay_throughput.md"
    )
    args = parser.parse_args()
    policy = BatchPolicy()
    load_before = os.getloadavg()
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        DevNode() as node,
        tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp,
    ):
        supply = Supply(Web3(Web3.HTTPProvider(node.url)), node.pid)
        naive_ops = supply.signed(args.naive_operations, "naive")
        thread_ops = supply.signed(args.operations, "relay, intake thread")
        process_ops = supply.signed(args.operations, "relay, intake process")
        with Progress(*columns, TimeElapsedColumn()) as progress:
            results = [naive(supply, naive_ops, progress)]
            for label, ops, in_process in (
                ("relay, intake thread", thread_ops, False),
                ("relay, intake process", process_ops, True),
            ):
                results.append(
                    relayed(
                        supply,
                        label,
                        ops,
                        chunk=args.chunk,
                        policy=policy,
                        folder=Path(tmp),
                        in_process=in_process,
                        progress=progress,
                    )
                )
    for r in results:
        if r.confirmed != r.operations:
            print(f"{r.label}: only {r.confirmed} of {r.operations} confirmed", file=sys.stderr)
    load_after = os.getloadavg()
    load = f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    rendered = tables(results)
    print(rendered, flush=True)
    print(f"{load}; whole run {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if not args.no_write:
        flags = [
            f"--{name.replace('_', '-')} {value}"
            for name, value, default in (
                ("operations", args.operations, DEFAULT_OPERATIONS),
                ("naive_operations", args.naive_operations, DEFAULT_NAIVE_OPERATIONS),
                ("chunk", args.chunk, DEFAULT_CHUNK),
            )
            if value != default
        ]
        command = " ".join([".venv/bin/python bench/relay_throughput.py", *flags])
        note = (
            "Confirmed ledger operations per second on anvil (automine), measured by "
            "`make bench-relay` (bench/relay_throughput.py) on "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {load}. The mix is "
            "lots commissioned by mines, shipped to refiners and received by them; every "
            "operation is signed by its participant before the clock starts. 'naive' sends each "
            "operation in its own transaction with web3's `transact` and waits for its receipt. "
            "The relay paths accept the operations into a fresh outbox in chunks of "
            f"{args.chunk} (each chunk committed durably) while `Relay.run` batches them, with "
            f"the default BatchPolicy (at most {policy.max_operations} operations or "
            f"{policy.max_gas:,} gas by the operations' bounds, {policy.max_delay} s delay); "
            "the intake runs in a thread of the relay's process, as the service runs it, or in "
            "a second process sharing the outbox file. They are timed from the first accept "
            "until every operation is confirmed in the outbox. Gas per operation is the "
            "transactions' gas used divided by the operations. The figures vary with the "
            "machine and its load.\n\n"
        )
        OUT.write_text("# Relay throughput\n\n" + note + rendered + "\n\n    " + command + "\n")
        print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
