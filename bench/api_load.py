"""HTTP load on the real service: ``mine2cell serve`` over a 10,000-lot ledger on anvil, read by
concurrent clients, written to by concurrent clients, and both at once.

In one run, on an anvil node started here:

1. generate a ledger with bench/ledger_generator.py (10,000 lots by default) holding the target
   passport (1,002 lots upstream); write the relayer's and the governor's key files and the
   deployment record into a fresh data directory, as ``mine2cell deploy`` leaves them;
2. start ``mine2cell serve`` as a subprocess on a loopback port against that node and wait for
   ``/v1/ready`` to report an index lag of 0; make a read token as an operator does (``mine2cell
   token create --read``: ``/provenance`` needs one, the public ``/summary`` does not); time the
   target's first ``/provenance`` request (the report computed and kept) and its first
   ``/summary``;
3. sign every write operation beforehand (commissions of new lots by the generator's accredited
   mines and recyclers, each lot then shipped to a refiner and received by it), so signing is
   not measured, and encode each one as the JSON document ``POST /v1/operations`` takes;
4. reads: ``--readers`` clients hammer ``GET /v1/passports/{target}/provenance`` for
   ``--seconds``, then ``.../summary`` for as long (requests/s, p50 / p90 / p99, errors);
5. writes: ``--writers`` clients post ``--operations`` signed operations (202s per second), timed
   until the relay has confirmed all of them (confirmed per second, from each operation's
   ``updatedAt`` as ``GET /v1/operations/{id}`` reports it);
6. mixed: for ``--seconds``, the readers on both routes in turn while the writers post from a
   second set of operations, then until those accepted are confirmed: reads under write load;
7. every accepted operation checked through ``GET /v1/operations/{id}`` and on the chain (its
   event in the ledger's logs): lost, duplicated and mismatched operations must all be 0, and
   reads must have no errors; otherwise the run exits with status 1 and writes nothing.

The clients are Python (httpx, one thread per client) in processes of their own: one for the
readers, one for the writers. On a 2-CPU machine they compete with the server and the node for
the CPUs; the CPU each took during each phase is printed. The figures depend on the machine and on
what else it is running (load averages are printed); they are not a pass/fail timer.

    .venv/bin/python bench/api_load.py                     # or: make bench-api  (2-3 minutes)
    .venv/bin/python bench/api_load.py --lots 2000 --seconds 5 --operations 300 --no-write
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import secrets
import signal
import subprocess
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
from types import FrameType
from typing import Any

import httpx
from eth_typing import ChecksumAddress
from eth_utils import keccak
from rich.progress import Progress
from web3 import Web3
from web3.types import RPCEndpoint

from mine2cell.chain.deployment import Deployment
from mine2cell.chain.node import DevNode, free_port
from mine2cell.codes import Feedstock
from mine2cell.config import Settings
from mine2cell.index.events import decode_log
from mine2cell.relay.outbox import Outbox, State
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import (
    Commission,
    Domain,
    LocalSigner,
    LotId,
    Operation,
    Receive,
    Ship,
    sign,
)
from mine2cell.signing.keystore import Keystore

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ledger_generator import (
    CAM_MAKERS,
    DEADLINE,
    DEFAULT_SEED,
    DEV_NODE_ARGS,
    REFINERIES,
    SOURCES,
    TONNE,
    Generated,
    generate,
    new_progress,
    participant_key,
)

OUT = Path(__file__).with_name("api_load.md")
DEFAULT_LOTS = 10_000
DEFAULT_READERS = 16
DEFAULT_WRITERS = 4
DEFAULT_SECONDS = 20.0
DEFAULT_OPERATIONS = 1_500
# The writers' nonces start here: apart from the generator's (from 0, and from 2**40 for the
# target), consecutive per signer (cheapest on chain: 256 share a storage word).
WRITE_NONCE_BASE = 1 << 41
# Lots per wave of a writer's sequence: this many commissions, then their ships, then their
# receives; one writer posts one after the other, so each ship follows its commission.
WAVE_LOTS = 25
READY_TIMEOUT_SECONDS = 180.0
SETTLE_TIMEOUT_SECONDS = 600.0
REQUEST_TIMEOUT_SECONDS = 60.0
POST_ATTEMPTS = 3  # a POST that fails in transport is sent again (the outbox dedups by event id)
POLL_SECONDS = 0.2

PROVENANCE, SUMMARY = "provenance", "summary"
# What a reader asks for: (route, path, headers).
Target = tuple[str, str, dict[str, str]]


# -- the service ------------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_command() -> list[str]:
    """The ``mine2cell`` console script beside this interpreter, else ``python -m mine2cell``."""
    script = Path(sys.executable).with_name("mine2cell")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mine2cell"]


def prepare_data_dir(data_dir: Path, generated: Generated, seed: int) -> Path:
    """The relayer's and the governor's key files (encrypted with a fresh passphrase, written to a
    0600 file whose path is returned) and the deployment record, as ``mine2cell deploy`` leaves
    them, so that the server relays with the generator's relayer and indexes from the deployment
    block."""
    passphrase = secrets.token_hex(16)
    passphrase_file = data_dir / "passphrase"
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(passphrase + "\n")
    keystore = Keystore(data_dir / "keys")
    governor = keystore.import_key("governor", participant_key(seed, "governor"), passphrase)
    relayer = keystore.import_key("relayer", participant_key(seed, "relayer"), passphrase)
    chain_id = Web3(Web3.HTTPProvider(generated.url)).eth.chain_id
    Deployment.now(
        chain_id, generated.ledger, generated.deploy_block, governor.address, relayer.address
    ).save(data_dir)
    return passphrase_file


def read_token(data_dir: Path) -> str | None:
    """A read token made as an operator makes one (``mine2cell token create --read``), for the
    detail routes; None from a service that has no tokens."""
    command = [*serve_command(), "token", "create", "--read", "api load bench", "--json"]
    made = subprocess.run(
        [*command, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MINE2CELL_")},
    )
    if made.returncode == 0:
        token: str = json.loads(made.stdout)["token"]
        return token
    if "No such command" in made.stderr:
        return None
    raise SystemExit(f"mine2cell token create failed: {made.stderr.strip()}")


@dataclass(frozen=True)
class BenchLedger:
    """A ledger generated on the bench's node, and a data directory to serve it from."""

    generated: Generated
    w3: Web3
    chain_id: int
    data_dir: Path
    passphrase_file: Path

    @property
    def passport(self) -> str:
        assert self.generated.target_passport is not None
        return "0x" + self.generated.target_passport.hex()

    @property
    def outbox_path(self) -> Path:
        ledger_dir = Settings(data_dir=self.data_dir).ledger_dir(
            self.chain_id, self.generated.ledger
        )
        return ledger_dir / "outbox.sqlite"

    def workload(self, seed: int) -> Workload:
        return Workload(seed, Domain(self.chain_id, self.generated.ledger))


def generate_ledger(
    node_url: str, folder: Path, args: argparse.Namespace, bar: Progress
) -> BenchLedger:
    """``args.lots`` lots generated on the node (seed ``args.seed``), with the target passport,
    and the data directory ``mine2cell deploy`` would have left for them."""
    generated = generate(
        node_url,
        lots=args.lots,
        work_dir=folder,
        seed=args.seed,
        workers=args.workers,
        progress=bar,
    )
    bar.console.print(generated.summary())
    assert generated.target_passport is not None
    w3 = Web3(Web3.HTTPProvider(node_url, request_kwargs={"timeout": 120}))
    data_dir = folder / "data"
    passphrase_file = prepare_data_dir(data_dir, generated, args.seed)
    return BenchLedger(generated, w3, w3.eth.chain_id, data_dir, passphrase_file)


class Server:
    """``mine2cell serve`` in a subprocess; its output goes to a log file."""

    def __init__(self, rpc_url: str, ledger: str, data_dir: Path, passphrase_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "serve.log"
        self.command = [
            *serve_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--rpc-url",
            rpc_url,
            "--ledger",
            ledger,
            "--passphrase-file",
            str(passphrase_file),
        ]
        # Only what is given here: no MINE2CELL_* setting of the caller's shell leaks in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MINE2CELL_")}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise SystemExit(
                f"mine2cell serve exited with code {self.process.returncode}:\n{self.log_tail()}"
            )

    def serve(self, stack: ExitStack, progress: Progress) -> str:
        """Start, stopped when ``stack`` closes; once ready, a line saying so."""
        self.start()
        stack.callback(self.stop)
        serving = time.perf_counter()
        ready = self.wait_ready(progress)
        return (
            f"mine2cell serve (pid {self.pid}) on {self.url}: ready in "
            f"{time.perf_counter() - serving:.1f} s, indexed to block {ready['indexed_block']}, "
            f"relaying: {ready['relaying']}"
        )

    def wait_ready(self, progress: Progress) -> dict[str, Any]:
        """Poll /v1/ready until the index has caught up with the head; its last answer."""
        task = progress.add_task("service: starting, indexing the ledger", total=None)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        try:
            with httpx.Client(base_url=self.url, timeout=5.0) as client:
                while time.monotonic() < deadline:
                    self.check_alive()
                    try:
                        reply = client.get("/v1/ready")
                    except httpx.TransportError:
                        reply = None
                    if reply is not None and reply.status_code == 200:
                        ready: dict[str, Any] = reply.json()
                        if ready["index_lag"] == 0:
                            return ready
                    time.sleep(0.2)
        finally:
            progress.remove_task(task)
        raise SystemExit(
            f"mine2cell serve was not ready within {READY_TIMEOUT_SECONDS:.0f} s:\n"
            + self.log_tail()
        )

    def stop(self, timeout: float = 60.0) -> None:
        """SIGINT, as Ctrl-C in its terminal: uvicorn shuts down and the lifespan stops the relay
        and the index follower and closes the databases; SIGKILL if it does not within
        ``timeout``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the write workload -----------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Signed operations, one list of JSON bodies per writer, in each writer's posting order."""

    bodies: list[list[bytes]]
    event_ids: list[str]  # every operation's, 0x-hex

    @property
    def operations(self) -> int:
        return len(self.event_ids)


class Workload:
    """New lots commissioned by the generator's mines and recyclers, each shipped to a processor
    of its material (as in the generated ledger) and received by it."""

    def __init__(self, seed: int, domain: Domain) -> None:
        self.seed = seed
        self.domain = domain
        self.signers: dict[str, LocalSigner] = {}
        self.nonces: Counter[str] = Counter()
        self.lots = 0
        self.sources = [
            (s, [r.member for r in REFINERIES if r.feed == s.material] or list(CAM_MAKERS))
            for s in SOURCES
        ]

    def _signer(self, name: str) -> LocalSigner:
        if name not in self.signers:
            self.signers[name] = LocalSigner(participant_key(self.seed, name))
        return self.signers[name]

    def _signed(
        self, make: Callable[[ChecksumAddress, int], Operation], who: str
    ) -> tuple[bytes, str]:
        signer = self._signer(who)
        op = make(signer.address, WRITE_NONCE_BASE + self.nonces[who])
        self.nonces[who] += 1
        signed = sign(op, signer, self.domain)
        body = json.dumps(to_document(signed), separators=(",", ":")).encode()
        return body, "0x" + signed.event_id.hex()

    def prepare(self, operations: int, writers: int) -> Prepared:
        """About ``operations`` operations (whole lots: three per lot) for ``writers`` writers;
        each lot's three operations go to the same writer, waves of commissions, ships, receives."""
        lots = max(1, round(operations / 3))
        bodies: list[list[bytes]] = [[] for _ in range(writers)]
        event_ids: list[str] = []
        per_writer = [lots // writers + (w < lots % writers) for w in range(writers)]
        for w, count in enumerate(per_writer):
            for start in range(0, count, WAVE_LOTS):
                wave = [self._lot() for _ in range(min(WAVE_LOTS, count - start))]
                for phase in range(3):
                    for lot, source, recipient in wave:
                        body, event_id = self._operation(phase, lot, source, recipient)
                        bodies[w].append(body)
                        event_ids.append(event_id)
        return Prepared(bodies, event_ids)

    def _lot(self) -> tuple[LotId, str, str]:
        self.lots += 1
        source, recipients = self.sources[self.lots % len(self.sources)]
        recipient = recipients[self.lots // len(self.sources) % len(recipients)]
        lot = LotId(keccak(text=f"mine2cell api load {self.seed} lot {self.lots}"))
        return lot, source.member, recipient

    def _operation(self, phase: int, lot: LotId, source: str, recipient: str) -> tuple[bytes, str]:
        spec = next(s for s in SOURCES if s.member == source)
        if phase == 0:
            low, high = spec.tonnes
            quantity = (low + lot[0] % (high - low + 1)) * TONNE
            feedstock = Feedstock.PRIMARY
            if spec.post_consumer_share is not None:
                feedstock = Feedstock.POST_CONSUMER
            footprint = quantity * spec.kg_co2e_per_tonne // 1_000

            def commission(actor: ChecksumAddress, nonce: int) -> Operation:
                return Commission(
                    actor,
                    nonce,
                    DEADLINE,
                    lot=lot,
                    material=spec.material,
                    quantity=quantity,
                    feedstock=int(feedstock),
                    footprint=footprint,
                    document_hash=keccak(b"documents " + lot),
                )

            return self._signed(commission, source)
        to, frm = self._signer(recipient).address, self._signer(source).address
        if phase == 1:
            return self._signed(lambda a, n: Ship(a, n, DEADLINE, lot=lot, recipient=to), source)
        return self._signed(
            lambda a, n: Receive(a, n, DEADLINE, lot=lot, counterparty=frm), recipient
        )


# -- the clients (in processes of their own) ----------------------------------------------------


@dataclass
class ReadOutcome:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    response_bytes: int = 0


@dataclass
class ReadResult:
    routes: dict[str, ReadOutcome]
    seconds: float  # from go to the last response
    cpu_seconds: float  # the reader process's, over the same time


@dataclass
class WriteResult:
    accepted: list[str]  # event ids acknowledged with a 202
    latencies: list[float]
    errors: int
    first_error: str | None
    retries: int
    seconds: float  # from go to the last 202
    cpu_seconds: float


def _read_loop(
    url: str,
    targets: Sequence[Target],
    first: int,
    deadline: float | None,
    stop: threading.Event,
    done: Any,
    slot: int,
    outcomes: dict[str, ReadOutcome],
) -> None:
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        turn = first
        while not stop.is_set() and (deadline is None or time.perf_counter() < deadline):
            route, path, headers = targets[turn % len(targets)]
            turn += 1
            outcome = outcomes[route]
            started = time.perf_counter()
            try:
                reply = client.get(path, headers=headers)
                latency = time.perf_counter() - started
                ok = reply.status_code == 200 and reply.content[:1] == b"{"
                problem = f"HTTP {reply.status_code}: {reply.text[:200]}"
            except httpx.HTTPError as exc:
                latency, ok, problem = time.perf_counter() - started, False, repr(exc)
            if ok:
                outcome.latencies.append(latency)
                outcome.response_bytes = len(reply.content)
            else:
                outcome.errors += 1
                outcome.first_error = outcome.first_error or problem
            done[slot] += 1


def reader_process(
    url: str,
    targets: Sequence[Target],
    readers: int,
    seconds: float | None,
    ready: Event,
    go: Event,
    stop: Event,
    done: Any,
    results: Queue[ReadResult],
) -> None:
    """``readers`` threads, each with a connection of its own, requesting ``targets`` in turn
    (each thread starting at another one) from go until ``seconds`` have passed or ``stop`` is
    set."""
    per_thread = [{route: ReadOutcome() for route, _, _ in targets} for _ in range(readers)]
    halt = threading.Event()
    ready.set()
    go.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = None if seconds is None else started + seconds
    threads = [
        threading.Thread(
            target=_read_loop,
            args=(url, targets, i, deadline, halt, done, i, per_thread[i]),
            name=f"reader-{i}",
        )
        for i in range(readers)
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if stop.wait(0.05):
            halt.set()
    seconds_taken = time.perf_counter() - started
    merged: dict[str, ReadOutcome] = {}
    for route, _, _ in targets:
        outcome = merged[route] = ReadOutcome()
        for own in per_thread:
            outcome.latencies += own[route].latencies
            outcome.errors += own[route].errors
            outcome.first_error = outcome.first_error or own[route].first_error
            outcome.response_bytes = outcome.response_bytes or own[route].response_bytes
    results.put(ReadResult(merged, seconds_taken, time.process_time() - cpu_started))


def _write_loop(
    url: str,
    bodies: list[bytes],
    deadline: float | None,
    stop: Event,
    done: Any,
    slot: int,
    result: WriteResult,
    started: float,
) -> None:
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for body in bodies:
            if stop.is_set() or (deadline is not None and time.perf_counter() > deadline):
                return
            for attempt in range(POST_ATTEMPTS):
                sent = time.perf_counter()
                try:
                    reply = client.post("/v1/operations", content=body, headers=headers)
                except httpx.TransportError as exc:
                    if attempt + 1 < POST_ATTEMPTS:
                        result.retries += 1
                        continue
                    result.errors += 1
                    result.first_error = result.first_error or repr(exc)
                    break
                if reply.status_code == 202:
                    result.latencies.append(time.perf_counter() - sent)
                    result.accepted.append(reply.json()["eventId"])
                    result.seconds = time.perf_counter() - started
                else:
                    result.errors += 1
                    problem = f"HTTP {reply.status_code}: {reply.text[:300]}"
                    result.first_error = result.first_error or problem
                break
            done[slot] += 1


def writer_process(
    url: str,
    bodies: list[list[bytes]],
    seconds: float | None,
    ready: Event,
    go: Event,
    stop: Event,
    done: Any,
    results: Queue[WriteResult],
) -> None:
    """One thread per writer, each posting its bodies one after the other, all of them or until
    ``seconds`` have passed (a body whose POST fails in transport is sent again: the service
    acknowledges a known event id as it is)."""
    own = [WriteResult([], [], 0, None, 0, 0.0, 0.0) for _ in bodies]
    ready.set()
    go.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = None if seconds is None else started + seconds
    threads = [
        threading.Thread(
            target=_write_loop,
            args=(url, b, deadline, stop, done, i, own[i], started),
            name=f"writer-{i}",
        )
        for i, b in enumerate(bodies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = WriteResult([], [], 0, None, 0, 0.0, time.process_time() - cpu_started)
    for r in own:
        merged.accepted += r.accepted
        merged.latencies += r.latencies
        merged.errors += r.errors
        merged.first_error = merged.first_error or r.first_error
        merged.retries += r.retries
        merged.seconds = max(merged.seconds, r.seconds)
    results.put(merged)


class Clients:
    """A client process (spawned before the clock starts, waiting for ``go``). ``done`` counts
    its finished requests, one slot per thread (each thread writes only its own)."""

    def __init__(self, target: Callable[..., None], threads: int, args: tuple[Any, ...]) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.go, self.stop = context.Event(), context.Event(), context.Event()
        self.done: Any = context.Array("q", threads, lock=False)
        self.results: Queue[Any] = context.Queue()
        self.result: Any = None
        self.process = context.Process(
            target=target,
            args=(*args, self.ready, self.go, self.stop, self.done, self.results),
            daemon=True,
        )
        self.process.start()
        while not self.ready.wait(0.1):
            self._check()

    def _check(self) -> None:
        if self.result is None and self.process.exitcode is not None:
            raise SystemExit(f"a client process exited with code {self.process.exitcode}")

    def count(self) -> int:
        return int(sum(self.done))

    def finished(self) -> bool:
        if self.result is None and not self.results.empty():
            self.result = self.results.get()
            self.process.join(30)
        self._check()
        return self.result is not None

    def close(self) -> None:
        """Wait for a finished process; stop one that is not (a failure, Ctrl-C)."""
        self.stop.set()
        if self.result is not None:
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


# -- phases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    seconds: float  # wall time of the phase
    client: float  # CPU seconds of the bench's processes (the clients and this one)
    server: float | None
    node: float | None


@dataclass
class Phase:
    label: str
    readers: int = 0
    writers: int = 0
    reads: ReadResult | None = None
    writes: WriteResult | None = None
    prepared: Prepared | None = None
    started_at: float = 0.0  # wall clock at go
    confirmed_seconds: float | None = None  # from go to the last confirmation (filled in later)
    transactions: int = 0  # the relay's transactions that carried the phase's operations
    cpu: Cpu | None = None

    @property
    def title(self) -> str:
        """The label, with the route when the phase reads only one."""
        routes = list(self.reads.routes) if self.reads else []
        return f"{self.label}, /{routes[0]}" if len(routes) == 1 else self.label


ReadSpec = tuple[Sequence[Target], int, float]  # what to read, clients, seconds
WriteSpec = tuple[Prepared, int, float | None]  # operations, clients, seconds (None: post all)


class Bench:
    """Runs the timed phases against a started server."""

    def __init__(self, server: Server, outbox: Outbox, node_pid: int | None, bar: Progress) -> None:
        self.server = server
        self.outbox = outbox
        self.pids = (server.pid, node_pid)
        self.bar = bar

    def _settled(self) -> int:
        counts = self.outbox.counts()
        return counts[State.CONFIRMED] + counts[State.REJECTED]

    def run(
        self,
        label: str,
        *,
        reads: ReadSpec | None = None,
        writes: WriteSpec | None = None,
    ) -> Phase:
        """One timed phase: readers, writers or both; it ends when the readers are done and every
        operation accepted is settled on chain."""
        phase = Phase(label)
        url = self.server.url
        with ExitStack() as stack:
            reader = writer = None
            if reads is not None:
                targets, phase.readers, read_for = reads
                routes = " and ".join(f"/{route}" for route, _, _ in targets)
                what = f"{label}: GET {routes} ({phase.readers} clients)"
                reader = Clients(
                    reader_process, phase.readers, (url, targets, phase.readers, read_for)
                )
                stack.callback(reader.close)
                read_task = self.bar.add_task(what, total=read_for)
            if writes is not None:
                phase.prepared, phase.writers, write_for = writes
                writer = Clients(
                    writer_process, phase.writers, (url, phase.prepared.bodies, write_for)
                )
                stack.callback(writer.close)
                total = phase.prepared.operations if write_for is None else None
                posted_task = self.bar.add_task(
                    f"{label}: POST /operations ({phase.writers} clients)", total=total
                )
                confirmed_task = self.bar.add_task(f"{label}: settled on chain", total=total)
            settled_before = self._settled()
            clients = [c for c in (reader, writer) if c is not None]
            pids_cpu = [cpu_seconds(p) for p in self.pids]
            own_cpu = time.process_time()
            phase.started_at, started = time.time(), time.perf_counter()
            for c in clients:
                c.go.set()
            while True:
                self.server.check_alive()
                elapsed = time.perf_counter() - started
                if elapsed > SETTLE_TIMEOUT_SECONDS:
                    raise SystemExit(f"{label}: not done within {SETTLE_TIMEOUT_SECONDS:.0f} s")
                writes_done = True
                if writer is not None:
                    settled = self._settled() - settled_before
                    self.bar.update(posted_task, completed=writer.count())
                    self.bar.update(confirmed_task, completed=settled)
                    writes_done = writer.finished()
                    if writes_done:
                        accepted = len(writer.result.accepted)
                        self.bar.update(confirmed_task, total=accepted)
                        writes_done = settled >= accepted
                if reader is not None:
                    requests = reader.count()
                    self.bar.update(
                        read_task,
                        completed=min(elapsed, read_for),
                        description=f"{what}: {requests:,} requests",
                    )
                if writes_done and (reader is None or reader.finished()):
                    break
                time.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
            pids_end = [cpu_seconds(p) for p in self.pids]
            server, node = (
                None if a is None or b is None else b - a
                for a, b in zip(pids_cpu, pids_end, strict=True)
            )
            client = time.process_time() - own_cpu
            if reader is not None:
                phase.reads = reader.result
                client += reader.result.cpu_seconds
            if writer is not None:
                phase.writes = writer.result
                client += writer.result.cpu_seconds
            phase.cpu = Cpu(seconds, client, server, node)
        self._print(phase)
        return phase

    def _print(self, phase: Phase) -> None:
        say = self.bar.console.print
        if phase.reads is not None:
            for route, outcome in phase.reads.routes.items():
                ordered = sorted(outcome.latencies)
                rate = len(ordered) / phase.reads.seconds
                say(
                    f"{phase.label}: {route}: {rate:,.1f} requests/s, "
                    f"p50 {percentile(ordered, 50) * 1e3:,.1f} ms, "
                    f"p99 {percentile(ordered, 99) * 1e3:,.1f} ms, {outcome.errors} errors"
                )
        if phase.writes is not None:
            w = phase.writes
            say(
                f"{phase.label}: {len(w.accepted):,} operations accepted (202) in "
                f"{w.seconds:.1f} s = {len(w.accepted) / w.seconds:,.1f}/s, {w.errors} errors, "
                f"{w.retries} retries"
            )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan for none)."""
    if not ordered:
        return float("nan")
    rank = min(len(ordered), max(1, -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


# -- the first requests and the final check --------------------------------------------------


def first_requests(url: str, targets: dict[str, Target]) -> dict[str, float]:
    """Milliseconds of the target's first /provenance (the report computed and kept), a second one
    (served from the index) and the first /summary."""
    found: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for key, route in (
            ("provenance_first", PROVENANCE),
            ("provenance_kept", PROVENANCE),
            ("summary_first", SUMMARY),
        ):
            _, path, headers = targets[route]
            started = time.perf_counter()
            reply = client.get(path, headers=headers)
            found[key] = (time.perf_counter() - started) * 1e3
            if reply.status_code != 200:
                raise SystemExit(
                    f"GET {route} of the target: HTTP {reply.status_code} {reply.text}"
                )
            found[f"{route}_bytes"] = len(reply.content)
    return found


@dataclass(frozen=True)
class Check:
    checked: int
    lost: int  # acknowledged with a 202, but no event on chain
    duplicated: int  # more than one event on chain
    mismatched: int  # the service's status is not confirmed, or names another transaction
    rejected: int
    unexpected: int  # events on chain in the write blocks that no writer posted
    failed_logs: int  # OperationFailed logs in those blocks
    examples: list[str]

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched or self.rejected)


def fetch_statuses(
    url: str, event_ids: Sequence[str], bar: Progress | None = None
) -> dict[str, dict[str, Any]]:
    """``GET /v1/operations/{id}`` of each event id (0x-hex), over four connections: event id ->
    the answer's JSON (``{"status": its text}`` for an answer other than 200)."""
    task = (
        None
        if bar is None
        else bar.add_task("check: GET /v1/operations/{id}", total=len(event_ids))
    )
    statuses: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def fetch(ids: Sequence[str]) -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            for eid in ids:
                reply = client.get(f"/v1/operations/{eid}")
                status = reply.json() if reply.status_code == 200 else {"status": reply.text}
                with lock:
                    statuses[eid] = status
                if bar is not None and task is not None:
                    bar.advance(task)

    threads = [
        threading.Thread(target=fetch, args=(event_ids[i::4],), name=f"check-{i}") for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def events_on_chain(w3: Web3, ledger: str, from_block: int) -> tuple[dict[str, list[str]], int]:
    """The ledger's logs from ``from_block`` to the head: event id (0x-hex) -> the transactions
    (0x-hex) whose logs carry it, once per log, and how many OperationFailed logs there are."""
    reply = w3.provider.make_request(
        RPCEndpoint("eth_getLogs"),
        [{"address": ledger, "fromBlock": hex(from_block), "toBlock": "latest"}],
    )
    if "error" in reply:
        raise SystemExit(f"eth_getLogs failed: {reply['error']}")
    on_chain: dict[str, list[str]] = {}
    failed_logs = 0
    for log in map(decode_log, reply["result"]):
        if log is None:
            continue
        if log.name == "OperationFailed":
            failed_logs += 1
        elif "eventId" in log.args:
            eid = "0x" + bytes(log.args["eventId"]).hex()
            on_chain.setdefault(eid, []).append("0x" + log.tx_hash.hex())
    return on_chain, failed_logs


def check_writes(
    url: str, w3: Web3, ledger: str, from_block: int, phases: Sequence[Phase], bar: Progress
) -> Check:
    """Every acknowledged operation, through GET /v1/operations/{id} and in the ledger's logs;
    fills in each phase's time to its last confirmation (from the statuses' updatedAt)."""
    accepted = [eid for p in phases if p.writes for eid in p.writes.accepted]
    unique = sorted(set(accepted))
    statuses = fetch_statuses(url, unique, bar)
    on_chain, failed_logs = events_on_chain(w3, ledger, from_block)
    examples: list[str] = []
    lost = duplicated = mismatched = rejected = 0
    for eid in unique:
        txs, status = on_chain.get(eid, []), statuses[eid]
        if status.get("status") == "rejected":
            rejected += 1
            examples.append(f"{eid} rejected: {status.get('error')} {status.get('reason')}")
        if not txs:
            lost += 1
            examples.append(f"{eid} acknowledged, not on chain (status {status.get('status')})")
        elif len(txs) > 1:
            duplicated += 1
            examples.append(f"{eid} on chain {len(txs)} times: {txs}")
        elif status.get("status") != "confirmed" or status.get("txHash") != txs[0]:
            mismatched += 1
            examples.append(f"{eid} in {txs[0]}, the service says {status}")
    posted = {eid for p in phases if p.prepared for eid in p.prepared.event_ids}
    unexpected = sum(1 for eid in on_chain if eid not in posted)
    for phase in phases:
        if phase.writes and phase.writes.accepted:
            last = max(float(statuses[eid].get("updatedAt", 0)) for eid in phase.writes.accepted)
            phase.confirmed_seconds = last - phase.started_at
            phase.transactions = len({statuses[eid].get("txHash") for eid in phase.writes.accepted})
    return Check(
        len(unique), lost, duplicated, mismatched, rejected, unexpected, failed_logs, examples[:5]
    )


# -- the figures ------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1e3:,.1f}"


def share(cpu: float | None, seconds: float) -> str:
    return "?" if cpu is None else f"{cpu / seconds * 100:,.0f} %"


def tables(phases: Sequence[Phase], first: dict[str, float], check: Check) -> str:
    lines = [
        "Reads of the target passport (1,002 lots upstream); milliseconds as the client measured "
        "them (request sent to response read):",
        "",
        "| phase | route | clients | requests | requests/s | p50 | p90 | p99 | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        if p.reads is None:
            continue
        for route, o in p.reads.routes.items():
            ordered = sorted(o.latencies)
            n = len(ordered) + o.errors
            lines.append(
                f"| {p.label} | {route} | {p.readers} | {n:,} | {n / p.reads.seconds:,.1f} "
                f"| {ms(percentile(ordered, 50))} | {ms(percentile(ordered, 90))} "
                f"| {ms(percentile(ordered, 99))} | {o.errors} |"
            )
    lines += [
        "",
        f"First request for the target: /provenance {first['provenance_first']:,.0f} ms (the "
        f"report computed and kept; {first['provenance_bytes'] / 1024:,.0f} KiB), then "
        f"{first['provenance_kept']:,.1f} ms from the index; /summary "
        f"{first['summary_first']:,.0f} ms ({first['summary_bytes'] / 1024:,.1f} KiB).",
        "",
        "Writes (commission, ship, receive of new lots, signed beforehand), posted one after the "
        "other by each client (all of them when writing alone, for as long as the readers read "
        "in the mixed phase); confirmed: from the first POST to the last operation confirmed, "
        "as its status (`updatedAt`) says:",
        "",
        "| phase | clients | operations | accepted/s (202) | POST p50 | POST p99 | confirmed/s "
        "| all confirmed after | relay transactions (ops / tx) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        if p.writes is None:
            continue
        w, ordered = p.writes, sorted(p.writes.latencies)
        n = len(w.accepted)
        confirmed = p.confirmed_seconds or float("nan")
        lines.append(
            f"| {p.label} | {p.writers} | {n:,} | {n / w.seconds:,.1f} "
            f"| {ms(percentile(ordered, 50))} | {ms(percentile(ordered, 99))} "
            f"| {n / confirmed:,.1f} | {confirmed:,.1f} s "
            f"| {p.transactions:,} ({n / max(1, p.transactions):,.1f}) | {w.errors} |"
        )
    lines += [
        "",
        f"Check of the {check.checked:,} accepted operations (`GET /v1/operations/{{id}}` and the "
        f"ledger's logs): **lost {check.lost}, duplicated {check.duplicated}**, status not "
        f"matching the chain {check.mismatched}, rejected {check.rejected}; events on chain "
        f"that no client posted {check.unexpected}, failed operations in the batches "
        f"{check.failed_logs}.",
        "",
        "CPU taken during each phase, in % of one CPU (the machine has "
        f"{os.cpu_count()}; the client is this benchmark's processes); the server's CPU per "
        "request counts all its threads (HTTP, relay, index follower):",
        "",
        "| phase | seconds | client | server | anvil | server CPU per request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        assert p.cpu is not None
        c = p.cpu
        requests = (
            sum(len(o.latencies) + o.errors for o in p.reads.routes.values()) if p.reads else 0
        )
        requests += len(p.writes.latencies) + p.writes.errors if p.writes else 0
        per_request = "?" if c.server is None else f"{c.server / requests * 1e6:,.0f} µs"
        lines.append(
            f"| {p.title} | {c.seconds:,.1f} | {share(c.client, c.seconds)} "
            f"| {share(c.server, c.seconds)} | {share(c.node, c.seconds)} | {per_request} |"
        )
    return "\n".join(lines)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: the server, the node and the temporary files go


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lots", type=int, default=DEFAULT_LOTS, help="lots in the ledger")
    parser.add_argument("--readers", type=int, default=DEFAULT_READERS, help="reading clients")
    parser.add_argument("--writers", type=int, default=DEFAULT_WRITERS, help="writing clients")
    parser.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS, help="duration of each read phase"
    )
    parser.add_argument(
        "--operations",
        type=int,
        default=DEFAULT_OPERATIONS,
        help="operations per write phase (three per lot)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=None, help="signing processes")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write .md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    load_before = os.getloadavg()
    started = time.perf_counter()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="api-load-bench-")))
        bar = stack.enter_context(new_progress())
        node = DevNode(extra_args=DEV_NODE_ARGS).start()
        stack.callback(node.stop, 60)
        bench_ledger = generate_ledger(node.url, folder, args, bar)
        generated, passport = bench_ledger.generated, bench_ledger.passport
        w3, data_dir = bench_ledger.w3, bench_ledger.data_dir

        signing = time.perf_counter()
        workload = bench_ledger.workload(args.seed)
        alone = workload.prepare(args.operations, args.writers)
        mixed = workload.prepare(args.operations, args.writers)
        bar.console.print(
            f"{alone.operations + mixed.operations:,} write operations signed by their "
            f"participants in {time.perf_counter() - signing:.1f} s (before the clock starts)"
        )

        server = Server(node.url, generated.ledger, data_dir, bench_ledger.passphrase_file)
        # Every writer posts from 127.0.0.1 as fast as it can: this run measures the service's
        # capacity, so the per-client write limit (100/second by default) is lifted for it.
        server.env["MINE2CELL_WRITE_RATE_LIMIT"] = "1000000/second"
        bar.console.print(server.serve(stack, bar))
        token = read_token(data_dir)
        detail = {"authorization": f"Bearer {token}"} if token else {}
        targets: dict[str, Target] = {
            PROVENANCE: (PROVENANCE, f"/v1/passports/{passport}/provenance", detail),
            SUMMARY: (SUMMARY, f"/v1/passports/{passport}/summary", {}),  # public: no token
        }
        first = first_requests(server.url, targets)
        bar.console.print(
            f"target passport: first /provenance {first['provenance_first']:,.0f} ms (computed "
            f"and kept), then {first['provenance_kept']:,.1f} ms; first /summary "
            f"{first['summary_first']:,.0f} ms"
        )
        outbox = Outbox(bench_ledger.outbox_path)
        stack.callback(outbox.close)
        first_write_block = w3.eth.block_number + 1
        bench = Bench(server, outbox, node.pid, bar)
        readers, seconds = args.readers, args.seconds
        phases = [
            bench.run("reads only", reads=([targets[PROVENANCE]], readers, seconds)),
            bench.run("reads only", reads=([targets[SUMMARY]], readers, seconds)),
            bench.run("writes only", writes=(alone, args.writers, None)),
            bench.run(
                "reads + writes",
                reads=([targets[PROVENANCE], targets[SUMMARY]], readers, seconds),
                writes=(mixed, args.writers, seconds),
            ),
        ]
        check = check_writes(server.url, w3, generated.ledger, first_write_block, phases, bar)
        server.stop()
    rendered = tables(phases, first, check)
    load_after = os.getloadavg()
    context = (
        f"Run of {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; whole run "
        f"{time.perf_counter() - started:.0f} s."
    )
    print()
    print(rendered)
    print()
    print(context)
    read_errors = sum(o.errors for p in phases if p.reads for o in p.reads.routes.values())
    write_errors = sum(p.writes.errors for p in phases if p.writes)
    if not check.passed or read_errors or write_errors:
        for line in check.examples:
            print(line, file=sys.stderr)
        for p in phases:
            for o in p.reads.routes.values() if p.reads else ():
                if o.first_error:
                    print(f"{p.label}: {o.first_error}", file=sys.stderr)
            if p.writes and p.writes.first_error:
                print(f"{p.label}: {p.writes.first_error}", file=sys.stderr)
        print("FAILED: not written", file=sys.stderr)
        raise SystemExit(1)
    if not args.no_write:
        flags = [
            f"--{name} {value:g}"
            for name, value, default in (
                ("lots", args.lots, DEFAULT_LOTS),
                ("readers", args.readers, DEFAULT_READERS),
                ("writers", args.writers, DEFAULT_WRITERS),
                ("seconds", args.seconds, DEFAULT_SECONDS),
                ("operations", args.operations, DEFAULT_OPERATIONS),
            )
            if value != default
        ]
        command = " ".join([".venv/bin/python bench/api_load.py", *flags])
        OUT.write_text(
            "# HTTP load\n\n"
            + note(generated, args)
            + rendered
            + "\n\n"
            + context
            + "\n\n    "
            + command
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {OUT}")


def note(generated: Generated, args: argparse.Namespace) -> str:
    return (
        "`make bench-api` (bench/api_load.py): `mine2cell serve` (uvicorn, one process, as the "
        "CLI starts it) in a subprocess against anvil, over a ledger of "
        f"{generated.lots:,} lots and {generated.operations:,} operations made by "
        "bench/ledger_generator.py. The clients are Python (httpx, one thread and one "
        "keep-alive connection per client) in two processes of their own, readers and writers; "
        "on this 2-CPU machine they share the CPUs with the server and the node (see the CPU "
        "table), so the figures are a floor for the server, and latencies include the client's "
        "own queueing. Every client sends its next request as soon as it has the answer to the "
        "last (a closed loop, no think time), so when readers and writers share the server each "
        "connection gets about an equal share of it. Reads: `--readers` clients for "
        "`--seconds` on each route, then on both routes in turn while the writers post. "
        "Writes: lots commissioned by the generator's mines and recyclers, shipped to "
        "processors and received by them, signed before the clock starts, posted as JSON "
        "documents to `POST /v1/operations`. The figures vary with the machine and its load "
        "(other work on it included); they are not a pass/fail timer.\n\n"
    )


if __name__ == "__main__":
    main()
