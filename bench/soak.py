"""Sustained load with a node restart: steady writes and reads for minutes on ``mine2cell serve``.

``mine2cell serve`` over a ledger on anvil is written to at a steady rate and read at a steady
rate for minutes, while its node is killed and started again.

In one run, on an anvil node started here on a fixed loopback port with ``--state FILE
--state-interval 1`` (its state dumped every second, as the embedded dev node keeps it):

1. generate a ledger with bench/ledger_generator.py (2,000 lots by default; it always holds the
   generator's target passport, 1,002 lots upstream), prepare a data directory as ``mine2cell
   deploy`` leaves it, start ``mine2cell serve --rpc-url`` on the node as a subprocess, wait for
   ``/v1/ready`` to report an index lag of 0 and make a read token (``mine2cell token create
   --read``);
2. sign the write operations beforehand (commissions of new lots by the generator's accredited
   mines and recyclers, each lot then shipped to a processor and received by it: the api_load
   workload), enough for ``--rate`` operations per second over ``--minutes``;
3. for ``--minutes``: ``--writers`` clients post them to ``POST /v1/operations`` on a schedule
   (each client its own share of ``--rate``, operation k at start + k x interval, sent late
   rather than skipped when an answer is slow: an open loop, not as fast as possible), while
   ``--readers`` clients ask, also on a schedule (``--read-rate`` requests per second in all),
   for the target's ``/provenance`` (read token), its public ``/summary`` and the
   ``/history`` of one of its upstream lots, in turn; the bench itself asks ``/v1/ready`` and
   the status of the newest accepted operation every second;
4. at ``--restart-at`` of the run (half way by default) the node is stopped (``--restart-mode
   kill``: SIGKILL, as a crash, 0.7 s after one of its state dumps (seen by the state file's
   modification time) so that it loses the blocks mined since; ``term``: SIGTERM, a clean stop
   that dumps its state) and started again on the same port from its state file after
   ``--pause`` seconds. The writers keep posting: the service must keep acknowledging into its
   outbox (202) or refuse with a 503 problem; refusals are counted apart (never acknowledged, so
   not lost) and the same operation is posted again half a second later, as a client would.
   Batches in blocks the node lost must be relayed again (the relay's reconciliation puts them
   back to pending);
5. after the load, wait until every accepted operation is confirmed (or rejected), at most
   ``--settle-timeout`` seconds, then check each one through ``GET /v1/operations/{id}`` and on
   the chain (its event id in the ledger's logs): accepted, confirmed, rejected (with the
   reasons), lost (acknowledged but neither on chain nor reported rejected: must be 0),
   duplicated (on chain more than once: must be 0), and the status not matching the chain.

A line every 10 s says how far it is (elapsed, accepted, confirmed, the relay's queue, read rate,
node up or down). The figures printed (and written to bench/soak.md unless ``--no-write``):
latency percentiles p50 / p90 / p99 / max of POST (to the 202), of accepted-to-confirmed (the
status's ``acceptedAt`` to ``updatedAt``) and of each read route, each split before the restart,
during it (from the node's stop until the service answers ``/v1/ready`` again) and after it; the
blocks the node lost and the operations relayed again; the CPU each process took; load averages.

The run exits with status 1 (and writes nothing) when an operation is lost, duplicated,
rejected (the workload holds nothing the ledger should refuse) or reported in another
transaction than the chain's, when a request gets an error outside the
restart window (inside it, a 503 problem is the expected answer of what needs the node), or when
the service answers 500 at any time.

The clients are Python (httpx, a thread and a keep-alive connection each) in processes of their
own, on the same machine as the server and the node: the figures depend on the machine and on
what else it runs; they are not a pass/fail timer.

    .venv/bin/python bench/soak.py                          # or: make bench-soak  (about 6 minutes)
    .venv/bin/python bench/soak.py --minutes 1 --lots 500 --no-write        # a short smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from mine2cell.chain.node import DevNode, free_port
from mine2cell.relay.outbox import Outbox, State

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api_load import (
    REQUEST_TIMEOUT_SECONDS,
    Clients,
    Server,
    Target,
    cpu_seconds,
    events_on_chain,
    fetch_statuses,
    first_requests,
    generate_ledger,
    on_sigterm,
    percentile,
    read_token,
)
from bench.ledger_generator import DEFAULT_SEED, DEV_NODE_ARGS, new_progress

OUT = Path(__file__).with_name("soak.md")
DEFAULT_LOTS = 2_000
DEFAULT_MINUTES = 5.0
DEFAULT_RATE = 20.0  # operations per second, all writers together
DEFAULT_WRITERS = 4
DEFAULT_READ_RATE = 15.0  # requests per second, all readers together
DEFAULT_READERS = 4
DEFAULT_RESTART_AT = 0.5  # of the run
DEFAULT_PAUSE = 5.0  # seconds the node stays down
DEFAULT_SETTLE_TIMEOUT = 300.0
NODE_START_TIMEOUT = 120.0  # anvil loads its whole state file before it answers
STATE_INTERVAL = 1.0  # seconds between the node's state dumps (DevNode's --state-interval)
KILL_AFTER_DUMP = 0.7  # seconds after a state dump the node is killed: it loses what came since
DUMP_QUIET = 0.05  # a dump is written once its file has not changed for this long
PROGRESS_EVERY = 10.0
MONITOR_EVERY = 1.0
REFUSED_RETRY_SECONDS = 0.5  # a 503 refusal: the same operation again after this long
TRANSPORT_ATTEMPTS = 3  # a request that fails in transport is sent again (writes dedup by id)
HISTORY_LOTS = 200  # upstream lots of the target whose history the readers ask for, in turn

# Outcomes of a request.
OK, UNAVAILABLE, THROTTLED, INTERNAL, ERROR = "ok", "unavailable", "throttled", "internal", "error"
# Phases of the run, relative to the restart window.
BEFORE, DURING, AFTER = "before", "during", "after"
PHASES = (BEFORE, DURING, AFTER)
PROVENANCE, SUMMARY, HISTORY, STATUS = "provenance", "summary", "history", "status"

# A request as a client records it: (route, wall time sent, seconds to the answer, outcome).
Sample = tuple[str, float, float, str]


def classify(reply: httpx.Response, ok_status: int) -> str:
    if reply.status_code == ok_status:
        return OK
    problem = reply.headers.get("content-type", "").startswith("application/problem+json")
    if reply.status_code == 503 and problem:
        return UNAVAILABLE
    if reply.status_code == 429 and problem:
        return THROTTLED
    if reply.status_code == 500:
        return INTERNAL
    return ERROR


# -- the clients (in processes of their own) ----------------------------------------------------


@dataclass
class Log:
    """What one client process saw."""

    samples: list[Sample] = field(default_factory=list)
    accepted: list[tuple[str, float]] = field(default_factory=list)  # event id, wall time of 202
    errors: list[tuple[float, str, str]] = field(default_factory=list)  # time, route, what (first)
    behind: float = 0.0  # the most a request was sent after its scheduled time (seconds)
    cpu_seconds: float = 0.0

    def merge(self, other: Log) -> None:
        self.samples += other.samples
        self.accepted += other.accepted
        self.errors += other.errors
        self.behind = max(self.behind, other.behind)

    def error(self, sent: float, route: str, what: str) -> None:
        if len(self.errors) < 20:
            self.errors.append((sent, route, what))


def _paced_writes(
    url: str, bodies: list[bytes], start: float, period: float, stop: Event, done: Any, slot: int
) -> Log:
    """Post ``bodies`` one every ``period`` seconds from ``start`` (late rather than skipped); a
    503 or 429 problem: the same body again after a pause, until it is accepted."""
    log = Log()
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for k, body in enumerate(bodies):
            due = start + k * period
            if stop.wait(max(0.0, due - time.time())):
                break
            log.behind = max(log.behind, time.time() - due)
            failures = 0
            while not stop.is_set():
                sent, clock = time.time(), time.perf_counter()
                try:
                    reply = client.post("/v1/operations", content=body, headers=headers)
                except httpx.TransportError as exc:
                    log.samples.append(("post", sent, time.perf_counter() - clock, ERROR))
                    log.error(sent, "post", repr(exc))
                    failures += 1
                    if failures < TRANSPORT_ATTEMPTS:
                        continue
                    break
                outcome = classify(reply, 202)
                log.samples.append(("post", sent, time.perf_counter() - clock, outcome))
                if outcome == OK:
                    log.accepted.append((reply.json()["eventId"], time.time()))
                    break
                if outcome == UNAVAILABLE:
                    stop.wait(REFUSED_RETRY_SECONDS)
                    continue
                if outcome == THROTTLED:
                    stop.wait(float(reply.headers.get("retry-after", "1")))
                    continue
                log.error(sent, "post", f"HTTP {reply.status_code}: {reply.text[:300]}")
                break
            done[slot] += 1
    return log


def _paced_reads(
    url: str,
    targets: Sequence[Target],
    start: float,
    period: float,
    until: float,
    stop: Event,
    done: Any,
    slot: int,
) -> Log:
    """Ask for ``targets`` in turn, one request every ``period`` seconds from ``start`` until
    ``until`` (late rather than skipped)."""
    log = Log()
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        k = 0
        while True:
            due = start + k * period
            if due >= until or stop.wait(max(0.0, due - time.time())):
                break
            log.behind = max(log.behind, time.time() - due)
            route, path, headers = targets[k % len(targets)]
            k += 1
            sent, clock = time.time(), time.perf_counter()
            try:
                reply = client.get(path, headers=headers)
                outcome = classify(reply, 200)
                if outcome == OK and reply.content[:1] != b"{":
                    outcome = ERROR
                what = f"HTTP {reply.status_code}: {reply.text[:300]}"
            except httpx.TransportError as exc:
                outcome, what = ERROR, repr(exc)
            log.samples.append((route, sent, time.perf_counter() - clock, outcome))
            if outcome != OK:
                log.error(sent, route, what)
            done[slot] += 1
    return log


def _in_threads(run: Callable[[int], Log], count: int, name: str, cpu_started: float) -> Log:
    """``run(i)`` in a thread for each i below ``count``; their logs merged."""
    logs = [Log() for _ in range(count)]

    def one(i: int) -> None:
        logs[i] = run(i)

    threads = [threading.Thread(target=one, args=(i,), name=f"{name}-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = Log()
    for log in logs:
        merged.merge(log)
    merged.cpu_seconds = time.process_time() - cpu_started
    return merged


def writer_process(
    url: str,
    bodies: list[list[bytes]],
    seconds: float,
    ready: Event,
    go: Event,
    stop: Event,
    done: Any,
    results: Queue[Log],
) -> None:
    """A thread per writer; writer i posts its bodies evenly over ``seconds``, offset from the
    others so that all their posts interleave."""
    ready.set()
    go.wait()
    start, cpu_started = time.time(), time.process_time()
    writers = len(bodies)

    def run(i: int) -> Log:
        period = seconds / max(1, len(bodies[i]))
        begin = start + period * i / writers
        return _paced_writes(url, bodies[i], begin, period, stop, done, i)

    results.put(_in_threads(run, writers, "writer", cpu_started))


def reader_process(
    url: str,
    targets: list[list[Target]],
    rate: float,
    seconds: float,
    ready: Event,
    go: Event,
    stop: Event,
    done: Any,
    results: Queue[Log],
) -> None:
    """A thread per list of targets, together ``rate`` requests per second for ``seconds``."""
    ready.set()
    go.wait()
    start, cpu_started = time.time(), time.process_time()
    readers = len(targets)
    period = readers / rate

    def run(i: int) -> Log:
        begin = start + period * i / readers
        return _paced_reads(url, targets[i], begin, period, start + seconds, stop, done, i)

    results.put(_in_threads(run, readers, "reader", cpu_started))


def reader_targets(
    passport: str, token: str | None, lots: Sequence[str], readers: int
) -> list[list[Target]]:
    """Per reader, the requests to make in turn: /provenance, /summary and a lot's /history,
    each reader starting at another route and each asking for other lots' histories."""
    detail = {"authorization": f"Bearer {token}"} if token else {}
    routes: list[Target] = [
        (PROVENANCE, f"/v1/passports/{passport}/provenance", detail),
        (SUMMARY, f"/v1/passports/{passport}/summary", {}),  # public: no token
    ]
    per_reader: list[list[Target]] = []
    for i in range(readers):
        own: list[Target] = []
        for k in range(3 * len(lots)):
            turn = (i + k) % 3
            if turn < 2:
                own.append(routes[turn])
            else:
                lot = lots[(k * readers + i) % len(lots)]
                own.append((HISTORY, f"/v1/lots/{lot}/history", detail))
        per_reader.append(own)
    return per_reader


def upstream_lots(url: str, passport: str, token: str | None, limit: int) -> list[str]:
    """Ids of the lots upstream of the passport (from its provenance report's DAG)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    reply = httpx.get(
        f"{url}/v1/passports/{passport}/provenance",
        headers=headers,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    if reply.status_code != 200:
        raise SystemExit(f"GET /provenance of the target: HTTP {reply.status_code} {reply.text}")
    lots = [str(item["lot"]["id"]) for item in reply.json()["dag"]["lots"]]
    if not lots:
        raise SystemExit("the target's provenance report lists no lots")
    return lots[:: max(1, len(lots) // limit)][:limit]


# -- the node's restart and the bench's own watch ---------------------------------------------


@dataclass
class Restart:
    """When the node went down and came back, and what it lost."""

    mode: str
    down_at: float | None = None  # wall time the node was stopped
    up_at: float | None = None  # it answers again (its state loaded)
    back_at: float | None = None  # the service answers /v1/ready again
    load_seconds: float = 0.0  # the node's start (loading its state file)
    state_bytes: int = 0  # the size of the state file it loaded
    head_before: int | None = None  # asked just before the stop (the relay may mine after)
    head_after: int | None = None
    node_cpu: float = 0.0  # CPU seconds of the node process that was stopped

    @property
    def lost_blocks(self) -> int:
        if self.head_before is None or self.head_after is None:
            return 0
        return max(0, self.head_before - self.head_after)

    def phase(self, when: float) -> str:
        if self.down_at is None or when < self.down_at:
            return BEFORE
        if self.back_at is None or when < self.back_at:
            return DURING
        return AFTER


class Watch(threading.Thread):
    """Every second: ``/v1/ready`` (is the node up for the service?) and the status of the newest
    accepted operation (``GET /v1/operations/{id}``, which asks the node for its head)."""

    def __init__(self, url: str, outbox: Outbox, restart: Restart) -> None:
        super().__init__(name="watch", daemon=True)
        self.url = url
        self.outbox = outbox
        self.restart = restart
        self.halt = threading.Event()
        self.log = Log()
        self.ready: dict[str, Any] | None = None  # the last answer, None when not 200
        self.lock = threading.Lock()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            while not self.halt.wait(MONITOR_EVERY):
                self._ask(client, "ready", "/v1/ready")
                recent = self.outbox.recent(1)
                if recent:
                    self._ask(client, STATUS, f"/v1/operations/0x{recent[0].event_id.hex()}")

    def _ask(self, client: httpx.Client, route: str, path: str) -> None:
        sent, clock = time.time(), time.perf_counter()
        reply: httpx.Response | None = None
        try:
            reply = client.get(path)
            outcome = classify(reply, 200)
            what = f"HTTP {reply.status_code}: {reply.text[:300]}"
        except httpx.TransportError as exc:
            outcome, what = ERROR, repr(exc)
        answered = time.time()
        with self.lock:
            self.log.samples.append((route, sent, time.perf_counter() - clock, outcome))
            if outcome != OK:
                self.log.error(sent, route, what)
            if route == "ready":
                self.ready = reply.json() if reply is not None and outcome == OK else None
                restart = self.restart
                if (
                    outcome == OK
                    and restart.up_at is not None
                    and restart.back_at is None
                    and sent >= restart.up_at
                ):
                    restart.back_at = answered

    def state(self) -> str:
        with self.lock:
            ready = self.ready
        if ready is None:
            return "service not ready (node unreachable)"
        return f"service ready (head {ready['head_block']}, index lag {ready['index_lag']})"


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Cpu:
    seconds: float  # wall time of the load
    clients: float  # the client processes and this one
    server: float | None
    node: float | None  # both node processes


@dataclass
class Run:
    started_at: float  # wall time the clients started
    ended_at: float  # the load done (every client finished)
    writes: Log
    reads: Log
    watch: Log
    restart: Restart
    cpu: Cpu
    settled_after: float | None  # seconds from the end of the load until all were settled
    unsettled: int
    rerelayed_batches: int
    rerelayed_operations: int


class Soak:
    """The timed part: clients, the node's restart, progress lines, then the wait for every
    accepted operation to settle."""

    def __init__(
        self, args: argparse.Namespace, node: DevNode, server: Server, outbox: Outbox, w3: Web3
    ) -> None:
        self.args = args
        self.node = node
        self.server = server
        self.outbox = outbox
        self.w3 = w3
        self.restart = Restart(args.restart_mode)
        self.watch = Watch(server.url, outbox, self.restart)
        self.started_at = 0.0
        self.last_count = 0
        self.last_at = 0.0

    def say(self, line: str) -> None:
        print(line, flush=True)

    def run(self, bodies: list[list[bytes]], targets: list[list[Target]]) -> Run:
        args = self.args
        seconds = args.minutes * 60
        url = self.server.url
        with ExitStack() as stack:
            writer = Clients(writer_process, len(bodies), (url, bodies, seconds))
            stack.callback(writer.close)
            reader = Clients(reader_process, len(targets), (url, targets, args.read_rate, seconds))
            stack.callback(reader.close)
            watch = self.watch
            node_pid = self.node.pid
            cpu_before = (cpu_seconds(self.server.pid), cpu_seconds(node_pid))
            own_cpu = time.process_time()
            started = self.started_at = time.time()
            for clients in (writer, reader):
                clients.go.set()
            watch.start()
            stack.callback(watch.halt.set)
            restart_due = started + seconds * args.restart_at
            next_line = started + PROGRESS_EVERY
            self.last_at = started
            # Until the clients are done and the node is back (should its pause outlast them).
            while not (writer.finished() and reader.finished() and self.restart.up_at):
                self.server.check_alive()
                now = time.time()
                if now >= next_line:
                    self._progress(now - started, reader.count())
                    next_line += PROGRESS_EVERY
                self._restart_step(now, restart_due)
                time.sleep(0.1)
            ended = time.time()
            server_cpu = cpu_seconds(self.server.pid)
            node_cpu = cpu_seconds(self.node.pid)
            clients_cpu = (
                time.process_time()
                - own_cpu
                + writer.result.cpu_seconds
                + reader.result.cpu_seconds
            )
            cpu = Cpu(
                ended - started,
                clients_cpu,
                None if server_cpu is None or cpu_before[0] is None else server_cpu - cpu_before[0],
                None
                if node_cpu is None or cpu_before[1] is None
                else self.restart.node_cpu - cpu_before[1] + node_cpu,
            )
            writes, reads = writer.result, reader.result
            settled_after, unsettled = self._settle([eid for eid, _ in writes.accepted], ended)
            watch.halt.set()
            watch.join(10)
        dropped = self.outbox.batches("dropped")
        # The head before the stop, as the blocks of the batches that left the chain show it (the
        # relay may have mined after the bench asked the node).
        lost_heights = [b.block_number for b in dropped if b.block_number is not None]
        self.restart.head_before = max([self.restart.head_before or 0, *lost_heights])
        return Run(
            started,
            ended,
            writes,
            reads,
            watch.log,
            self.restart,
            cpu,
            settled_after,
            unsettled,
            len(dropped),
            sum(len(b.event_ids) for b in dropped),
        )

    def _restart_step(self, now: float, due: float) -> None:
        """Stop the node when due; start it again once the pause is over."""
        restart, node = self.restart, self.node
        if restart.down_at is None and now >= due:
            if restart.mode == "kill":
                self._after_next_dump()
            restart.head_before = self.w3.eth.block_number
            restart.node_cpu = cpu_seconds(node.pid) or 0.0
            restart.down_at = time.time()
            if restart.mode == "kill":
                node.kill()
            else:
                node.stop(timeout=NODE_START_TIMEOUT)
            how = "SIGKILL" if restart.mode == "kill" else "SIGTERM"
            self.say(
                f"{self._elapsed(restart.down_at):6.0f} s: node stopped "
                f"({how}), its head block {restart.head_before} a moment before; starting it "
                "again in "
                f"{self.args.pause:g} s"
            )
        elif restart.up_at is None and restart.down_at is not None:
            if now < restart.down_at + self.args.pause:
                return
            clock = time.perf_counter()
            node.start(timeout=NODE_START_TIMEOUT)
            restart.load_seconds = time.perf_counter() - clock
            assert node.state_file is not None
            restart.state_bytes = node.state_file.stat().st_size
            restart.head_after = self.w3.eth.block_number
            restart.up_at = time.time()
            self.say(
                f"{self._elapsed(restart.up_at):6.0f} s: node started again on the same port "
                f"(pid {node.pid}, {restart.state_bytes / 2**20:,.1f} MiB of state loaded in "
                f"{restart.load_seconds:.1f} s) at head block "
                f"{restart.head_after}: at least {restart.lost_blocks} blocks lost"
            )

    def _after_next_dump(self) -> None:
        """Return ``KILL_AFTER_DUMP`` seconds after the node's next state dump began, once it is
        written (anvil rewrites the file in place: its modification time moves while it writes,
        then rests), so that a crash then loses the blocks mined since, whose batches the relay must
        send again, and not a file half written. Without it a kill might fall just after a dump
        and lose nothing."""
        state = self.node.state_file
        assert state is not None

        def mtime() -> int:
            try:
                return state.stat().st_mtime_ns
            except FileNotFoundError:
                return 0

        seen = mtime()
        deadline = time.monotonic() + 5 * STATE_INTERVAL
        while mtime() == seen and time.monotonic() < deadline:
            time.sleep(0.002)
        began = written = time.monotonic()
        seen = mtime()
        while time.monotonic() - written < DUMP_QUIET and time.monotonic() < deadline:
            time.sleep(0.002)
            if mtime() != seen:
                written, seen = time.monotonic(), mtime()
        # KILL_AFTER_DUMP after the dump began (before the next one begins), once it is written.
        time.sleep(max(0.0, began + KILL_AFTER_DUMP - time.monotonic()))

    def _elapsed(self, now: float) -> float:
        return now - self.started_at

    def _progress(self, elapsed: float, reads: int) -> None:
        counts = self.outbox.counts()
        now = time.time()
        rate = (reads - self.last_count) / max(1e-9, now - self.last_at)
        self.last_count, self.last_at = reads, now
        restart = self.restart
        down = restart.down_at is not None and restart.up_at is None
        node = "node DOWN" if down else "node up"
        self.say(
            f"{elapsed:6.0f} s: accepted {sum(counts.values()):,}, confirmed "
            f"{counts[State.CONFIRMED]:,}, rejected {counts[State.REJECTED]:,}, queue "
            f"{counts[State.PENDING] + counts[State.SUBMITTED]:,}, reads {rate:,.1f}/s; {node}, "
            f"{self.watch.state()}"
        )

    def _settle(self, event_ids: Sequence[str], ended: float) -> tuple[float | None, int]:
        """Wait until every accepted operation is confirmed or rejected (the outbox says); the
        seconds it took after the load, or None and how many are not settled at the timeout."""
        ids = [bytes.fromhex(eid[2:]) for eid in sorted(set(event_ids))]
        settled = (State.CONFIRMED, State.REJECTED)
        deadline = ended + self.args.settle_timeout
        next_line = time.time() + PROGRESS_EVERY
        while True:
            self.server.check_alive()
            statuses = self.outbox.statuses(ids)
            unsettled = sum(
                1 for i in ids if (s := statuses.get(i)) is None or s.state not in settled
            )
            now = time.time()
            if not unsettled:
                self.say(
                    f"all {len(ids):,} accepted operations settled {now - ended:.1f} s "
                    "after the load"
                )
                return now - ended, 0
            if now > deadline:
                self.say(
                    f"{unsettled:,} of {len(ids):,} accepted operations not settled "
                    f"{self.args.settle_timeout:g} s after the load"
                )
                return None, unsettled
            if now >= next_line:
                self.say(
                    f"{self._elapsed(now):6.0f} s: settling, {unsettled:,} of {len(ids):,} not "
                    f"yet confirmed; {self.watch.state()}"
                )
                next_line += PROGRESS_EVERY
            time.sleep(0.5)


# -- the check and the figures ----------------------------------------------------------------


@dataclass
class Check:
    accepted: int
    confirmed: int
    rejected: int
    reasons: Counter[str]
    lost: int  # acknowledged (202), but neither on chain nor reported rejected
    duplicated: int  # on chain more than once
    mismatched: int  # on chain, but the status names another transaction or another state
    unexpected: int  # events on chain from the first write block that no writer posted
    failed_logs: int  # OperationFailed logs in those blocks
    examples: list[str]
    latencies: dict[str, list[float]]  # phase (when accepted) -> accepted-to-confirmed seconds

    @property
    def passed(self) -> bool:
        # The workload holds no operation the ledger should refuse: a rejection is a fault too.
        return not (self.lost or self.duplicated or self.mismatched or self.rejected)


def check(url: str, w3: Web3, ledger: str, from_block: int, run: Run, posted: set[str]) -> Check:
    """Every accepted operation through ``GET /v1/operations/{id}`` and in the ledger's logs."""
    accepted = sorted({eid for eid, _ in run.writes.accepted})
    statuses = fetch_statuses(url, accepted)
    on_chain, failed_logs = events_on_chain(w3, ledger, from_block)
    confirmed = rejected = lost = duplicated = mismatched = 0
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    latencies: dict[str, list[float]] = {phase: [] for phase in PHASES}
    for eid in accepted:
        txs, status = on_chain.get(eid, []), statuses[eid]
        state = status.get("status")
        if len(txs) > 1:
            duplicated += 1
            examples.append(f"{eid} on chain {len(txs)} times: {txs}")
        if state == "rejected":
            rejected += 1
            reasons[f"{status.get('error')}: {status.get('reason')}"[:200]] += 1
            if txs:
                mismatched += 1
                examples.append(f"{eid} reported rejected, but on chain in {txs[0]}")
        elif not txs:
            lost += 1
            examples.append(f"{eid} acknowledged, not on chain (status {status})")
        elif state == "confirmed" and status.get("txHash") == txs[0]:
            confirmed += 1
            accepted_at = float(status["acceptedAt"])
            seconds = float(status["updatedAt"]) - accepted_at
            latencies[run.restart.phase(accepted_at)].append(seconds)
        else:
            mismatched += 1
            examples.append(f"{eid} in {txs[0]}, the service says {status}")
    unexpected = sum(1 for eid in on_chain if eid not in posted)
    return Check(
        len(accepted),
        confirmed,
        rejected,
        reasons,
        lost,
        duplicated,
        mismatched,
        unexpected,
        failed_logs,
        examples[:5],
        latencies,
    )


def ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value * 1e3:,.1f}"


def quantiles(values: Sequence[float]) -> str:
    """``| p50 | p90 | p99 | max |`` cells in milliseconds."""
    ordered = sorted(values)
    cells = [percentile(ordered, q) for q in (50, 90, 99)]
    cells.append(ordered[-1] if ordered else float("nan"))
    return " | ".join(ms(c) for c in cells)


def phase_seconds(run: Run) -> dict[str, float]:
    r = run.restart
    assert r.down_at is not None and r.back_at is not None
    return {
        BEFORE: r.down_at - run.started_at,
        DURING: r.back_at - r.down_at,
        AFTER: max(0.0, run.ended_at - r.back_at),
    }


def tables(run: Run, result: Check, args: argparse.Namespace) -> str:
    r = run.restart
    assert r.down_at is not None and r.up_at is not None
    back = "never" if r.back_at is None else f"{r.back_at - run.started_at:,.1f} s"
    how = "SIGKILL" if r.mode == "kill" else "SIGTERM"
    spans = phase_seconds(run) if r.back_at is not None else {p: float("nan") for p in PHASES}
    lines = [
        f"The node was stopped ({how}) {r.down_at - run.started_at:,.1f} s into the load at head "
        f"block {r.head_before} (the highest of the node's answer just before and of the blocks "
        f"of batches that left the chain), started again {r.up_at - r.down_at:,.1f} s later "
        f"(its state file, {r.state_bytes / 2**20:,.1f} MiB, loaded in {r.load_seconds:,.1f} s) "
        f"at head block {r.head_after}: "
        f"**{r.lost_blocks} blocks lost**; the service answered `/v1/ready` again at {back}. "
        f"Batches relayed again (their block left the chain, or their transaction was dropped): "
        f"{run.rerelayed_batches:,}, holding {run.rerelayed_operations:,} operations.",
        "",
        "Phases: *before* the node's stop, *during* (from the stop until the service answers "
        "`/v1/ready` again), *after*; "
        + ", ".join(f"{p} {spans[p]:,.1f} s" for p in PHASES)
        + ". Pacing: the most a request went out after its scheduled time was "
        f"{run.writes.behind * 1e3:,.0f} ms for the writers, {run.reads.behind * 1e3:,.0f} ms "
        "for the readers.",
        "",
        "Writes, `POST /v1/operations` (milliseconds, by when the request was sent); a refused "
        "operation (503) is posted again 0.5 s later, so one operation may be refused several "
        "times:",
        "",
        "| phase | requests | accepted (202) | accepted/s | refused (503) | throttled (429) "
        "| errors | p50 | p90 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in PHASES:
        samples = [s for s in run.writes.samples if r.phase(s[1]) == phase]
        outcomes = Counter(s[3] for s in samples)
        ok = [s[2] for s in samples if s[3] == OK]
        rate = len(ok) / spans[phase] if spans[phase] > 0 else float("nan")
        lines.append(
            f"| {phase} | {len(samples):,} | {len(ok):,} | {rate:,.1f} | {outcomes[UNAVAILABLE]:,} "
            f"| {outcomes[THROTTLED]:,} | {outcomes[ERROR] + outcomes[INTERNAL]:,} "
            f"| {quantiles(ok)} |"
        )
    lines += [
        "",
        "Accepted to confirmed (the status's `acceptedAt` to `updatedAt`, milliseconds), by when "
        "the operation was accepted; an operation confirmed in a block the node lost counts until "
        "it was confirmed again:",
        "",
        "| phase | confirmed | p50 | p90 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for phase in PHASES:
        values = result.latencies[phase]
        lines.append(f"| {phase} | {len(values):,} | {quantiles(values)} |")
    lines += [
        "",
        "Reads (milliseconds, by when the request was sent); `status` and `ready` are the "
        "bench's own requests, one a second each:",
        "",
        "| route | phase | requests | requests/s | 200 | unavailable (503) | errors | p50 | p90 "
        "| p99 | max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    samples = run.reads.samples + run.watch.samples
    for route in (PROVENANCE, SUMMARY, HISTORY, STATUS, "ready"):
        for phase in PHASES:
            mine = [s for s in samples if s[0] == route and r.phase(s[1]) == phase]
            outcomes = Counter(s[3] for s in mine)
            ok = [s[2] for s in mine if s[3] == OK]
            rate = len(mine) / spans[phase] if spans[phase] > 0 else float("nan")
            errors = len(mine) - len(ok) - outcomes[UNAVAILABLE]
            lines.append(
                f"| {route} | {phase} | {len(mine):,} | {rate:,.1f} | {len(ok):,} "
                f"| {outcomes[UNAVAILABLE]:,} | {errors:,} | {quantiles(ok)} |"
            )
    settled = (
        f"all settled {run.settled_after:,.1f} s after the load"
        if run.settled_after is not None
        else f"{run.unsettled:,} not settled within {args.settle_timeout:g} s"
    )
    lines += [
        "",
        f"Check of the {result.accepted:,} accepted operations ({settled}; "
        "`GET /v1/operations/{id}` and the ledger's logs): confirmed "
        f"{result.confirmed:,}, rejected {result.rejected:,}, **lost {result.lost}, duplicated "
        f"{result.duplicated}**, status not matching the chain {result.mismatched}; events on "
        f"chain that no client posted {result.unexpected}, failed operations in the batches "
        f"{result.failed_logs}.",
    ]
    for reason, count in result.reasons.most_common(5):
        lines.append(f"- rejected {count:,}: {reason}")
    c = run.cpu
    lines += [
        "",
        f"CPU over the {c.seconds:,.0f} s of load, in % of one CPU (the machine has "
        f"{os.cpu_count()}); clients: the bench's processes; anvil: both of its processes:",
        "",
        "| clients | server | anvil |",
        "|---:|---:|---:|",
        f"| {share(c.clients, c.seconds)} | {share(c.server, c.seconds)} "
        f"| {share(c.node, c.seconds)} |",
    ]
    return "\n".join(lines)


def share(cpu: float | None, seconds: float) -> str:
    return "?" if cpu is None else f"{cpu / seconds * 100:,.0f} % ({cpu:,.0f} s)"


def failures(run: Run, result: Check) -> list[str]:
    """Why the run failed (empty: it passed)."""
    found: list[str] = []
    if not result.passed:
        found.append(
            f"lost {result.lost}, duplicated {result.duplicated}, status not matching the chain "
            f"{result.mismatched}"
        )
        found += result.examples
    if run.restart.back_at is None:
        found.append("the service never answered /v1/ready again after the node's restart")
    internal = Counter[str]()
    outside = Counter[str]()
    for sample in run.writes.samples + run.reads.samples + run.watch.samples:
        route, sent, _, outcome = sample
        if outcome == INTERNAL:
            internal[route] += 1
        elif run.restart.phase(sent) != DURING and (
            outcome == ERROR or (outcome == UNAVAILABLE and route != "post")
        ):
            outside[route] += 1
    if internal:
        found.append(f"HTTP 500 answers: {dict(internal)}")
    if outside:
        found.append(f"errors outside the restart window: {dict(outside)}")
    if internal or outside:
        for log in (run.writes, run.reads, run.watch):
            for sent, route, what in log.errors[:5]:
                phase = run.restart.phase(sent)
                found.append(f"  {route} at {sent - run.started_at:,.1f} s ({phase}): {what}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lots", type=int, default=DEFAULT_LOTS, help="lots in the ledger")
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help="duration of the load"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="operations posted per second (total)"
    )
    parser.add_argument("--writers", type=int, default=DEFAULT_WRITERS, help="writing clients")
    parser.add_argument(
        "--read-rate", type=float, default=DEFAULT_READ_RATE, help="reads per second (total)"
    )
    parser.add_argument("--readers", type=int, default=DEFAULT_READERS, help="reading clients")
    parser.add_argument(
        "--restart-at",
        type=float,
        default=DEFAULT_RESTART_AT,
        help="when the node is stopped, as a fraction of the load's duration",
    )
    parser.add_argument(
        "--restart-mode",
        choices=("kill", "term"),
        default="kill",
        help="kill: SIGKILL (a crash; blocks since the last state dump are lost); term: SIGTERM",
    )
    parser.add_argument(
        "--pause", type=float, default=DEFAULT_PAUSE, help="seconds the node stays down"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=DEFAULT_SETTLE_TIMEOUT,
        help="seconds to wait after the load for every accepted operation to be confirmed",
    )
    parser.add_argument(
        "--node-port", type=int, default=None, help="the node's loopback port (default: a free one)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=None, help="signing processes")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write .md")
    args = parser.parse_args()
    if not 0 < args.restart_at < 1:
        parser.error("--restart-at must be between 0 and 1 (a fraction of the load's duration)")
    for name in ("minutes", "rate", "read_rate", "writers", "readers"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    signal.signal(signal.SIGTERM, on_sigterm)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-bench-")))
        node = DevNode(
            state_file=folder / "node" / "state.json",
            port=args.node_port or free_port(),
            extra_args=DEV_NODE_ARGS,
        ).start(NODE_START_TIMEOUT)
        stack.callback(node.stop, NODE_START_TIMEOUT)
        with new_progress() as bar:
            bench_ledger = generate_ledger(node.url, folder, args, bar)
            generated, passport = bench_ledger.generated, bench_ledger.passport
            w3, data_dir = bench_ledger.w3, bench_ledger.data_dir
            signing = time.perf_counter()
            operations = 3 * max(args.writers, round(args.rate * args.minutes * 60 / 3))
            prepared = bench_ledger.workload(args.seed).prepare(operations, args.writers)
            bar.console.print(
                f"{prepared.operations:,} write operations signed by their participants in "
                f"{time.perf_counter() - signing:.1f} s (before the clock starts)"
            )
            server = Server(node.url, generated.ledger, data_dir, bench_ledger.passphrase_file)
            serving = server.serve(stack, bar)
        print(f"{serving}; node (pid {node.pid}) on {node.url}, state in {node.state_file}")
        token = read_token(data_dir)
        detail = {"authorization": f"Bearer {token}"} if token else {}
        first = first_requests(
            server.url,
            {
                PROVENANCE: (PROVENANCE, f"/v1/passports/{passport}/provenance", detail),
                SUMMARY: (SUMMARY, f"/v1/passports/{passport}/summary", {}),
            },
        )
        lots = upstream_lots(server.url, passport, token, HISTORY_LOTS)
        targets = reader_targets(passport, token, lots, args.readers)
        outbox = Outbox(bench_ledger.outbox_path)
        stack.callback(outbox.close)
        first_write_block = w3.eth.block_number + 1
        print(
            f"load: {args.rate:g} operations/s from {args.writers} writers and "
            f"{args.read_rate:g} reads/s from {args.readers} readers for {args.minutes:g} min; "
            f"the node is stopped ({args.restart_mode}) at {args.restart_at:g} of it for "
            f"{args.pause:g} s; first /provenance {first['provenance_first']:,.0f} ms"
        )
        soak = Soak(args, node, server, outbox, w3)
        run = soak.run(prepared.bodies, targets)
        result = check(
            server.url, w3, generated.ledger, first_write_block, run, set(prepared.event_ids)
        )
        server.stop()
    rendered = tables(run, result, args)
    load_after = os.getloadavg()
    context = (
        f"Run of {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (1, 5, 15 min: "
        f"{', '.join(f'{x:.2f}' for x in load_after)}); whole run "
        f"{time.perf_counter() - started:.0f} s."
    )
    print()
    print(rendered)
    print()
    print(context)
    failed = failures(run, result)
    if failed:
        for line in failed:
            print(line, file=sys.stderr)
        print("FAILED: not written", file=sys.stderr)
        raise SystemExit(1)
    if not args.no_write:
        OUT.write_text(
            "# Sustained load with a node restart\n\n"
            + note(generated.lots, generated.operations, args)
            + rendered
            + "\n\n"
            + context
            + "\n\n    "
            + command(args)
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {OUT}")


def command(args: argparse.Namespace) -> str:
    flags = [
        f"--{name.replace('_', '-')} {value:g}"
        for name, value, default in (
            ("lots", args.lots, DEFAULT_LOTS),
            ("minutes", args.minutes, DEFAULT_MINUTES),
            ("rate", args.rate, DEFAULT_RATE),
            ("writers", args.writers, DEFAULT_WRITERS),
            ("read_rate", args.read_rate, DEFAULT_READ_RATE),
            ("readers", args.readers, DEFAULT_READERS),
            ("restart_at", args.restart_at, DEFAULT_RESTART_AT),
            ("pause", args.pause, DEFAULT_PAUSE),
        )
        if value != default
    ]
    if args.restart_mode != "kill":
        flags.append(f"--restart-mode {args.restart_mode}")
    return " ".join([".venv/bin/python bench/soak.py", *flags])


def note(lots: int, operations: int, args: argparse.Namespace) -> str:
    return (
        "`make bench-soak` (bench/soak.py): `mine2cell serve` in a subprocess against anvil "
        f"(`--state FILE --state-interval 1`, a fixed port), over a ledger of {lots:,} lots and "
        f"{operations:,} operations made by bench/ledger_generator.py, under a steady load for "
        f"{args.minutes:g} min: {args.writers} writers post signed operations (commission, "
        "ship, receive of new lots by the generator's participants, signed before the clock "
        f"starts) at {args.rate:g} per second in all, each on its own schedule (open loop: a "
        f"late answer delays the next post, it never skips one), and {args.readers} readers ask "
        f"for the target passport's `/provenance` (1,002 lots upstream, read token), its public "
        f"`/summary` and one of its lots' `/history`, in turn, {args.read_rate:g} requests per "
        f"second in all. At {args.restart_at:g} of the run the node is stopped "
        f"({'SIGKILL, as a crash' if args.restart_mode == 'kill' else 'SIGTERM'}) and started "
        f"again from its state file on the same port {args.pause:g} s later, while the clients "
        "go on. Then every accepted operation is checked through its status and in the "
        "ledger's logs. Clients are Python (httpx, a thread and a keep-alive connection each) in "
        "processes of their own, on the same machine as the server and the node; the figures "
        "vary with the machine and its load and are not a pass/fail timer.\n\n"
    )


if __name__ == "__main__":
    main()
