"""What the fault tests share: a running `mine2cell serve` on a ledger of its own on anvil (through
the RPC proxy, so that the node can be made to fail), writers that keep posting signed operations
while a fault lasts, and the check that every operation the service acknowledged (202) is on chain
exactly once, counted in the ledger's own logs, and reported confirmed by GET
/v1/operations/{id} in the transaction and block where it is."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_utils import keccak
from web3 import Web3
from web3.types import RPCEndpoint

from mine2cell.chain.node import DevNode
from mine2cell.codes import Feedstock, Role
from mine2cell.ids import parse_id
from mine2cell.index.events import decode_log
from mine2cell.materials import material
from mine2cell.signing.eip712 import Accredit, Commission, Domain, LotId, Ship, text32
from mine2cell.signing.keystore import Keystore
from tests.e2e.cli_support import PASSPHRASE
from tests.e2e.serve_support import (
    Clients,
    Participant,
    Server,
    deploy_data_dir,
    fresh_participant,
    start_serve,
    wait_ready,
)
from tests.faults.rpc_proxy import RpcProxy
from tests.relay.relay_support import RECORD_EVENTS, saved_state

# Settings of the served service in these tests: JSON-RPC requests that time out after 1 s (a
# hanging node is noticed quickly), shallow batches checked again every second, and the index
# following the chain as it does by default.
FAULT_ENV = {"MINE2CELL_RPC_TIMEOUT": "1", "MINE2CELL_RELAY_RECONCILE_SECONDS": "1"}
CONFIRM_TIMEOUT = 40.0
HTTP_TIMEOUT = 15.0
CO_HYDROXIDE = material("co-hydroxide").code


@dataclass
class Rig:
    """A node (persisting its state), the proxy in front of it, a data directory with a ledger,
    and `mine2cell serve` on them with its clients' participants accredited."""

    folder: Path
    node: DevNode
    proxy: RpcProxy
    data_dir: Path
    server: Server
    http: httpx.Client
    clients: Clients
    ledger: str
    governor: Participant
    mine: Participant
    refiner: Participant
    env: dict[str, str]
    serve_args: tuple[str, ...] = ()

    @property
    def state_file(self) -> Path:
        assert self.node.state_file is not None
        return self.node.state_file

    def direct(self) -> Web3:
        """The node itself, not through the proxy (the tests' own view of the chain)."""
        return Web3(Web3.HTTPProvider(self.node.url))

    def chains(self, prefix: str, lots: int) -> list[list[dict[str, Any]]]:
        """``lots`` new lots, each commissioned by the mine then shipped to the refiner: two
        operations, the second depending on the first (signed in that order)."""
        chains = []
        for i in range(lots):
            lot = LotId(parse_id(f"{prefix}-{i}"))
            commission = self.clients.document(
                self.mine,
                Commission,
                lot=lot,
                material=CO_HYDROXIDE,
                quantity=1_000_000 + i,
                feedstock=Feedstock.PRIMARY,
                footprint=800_000,
                document_hash=keccak(text=f"assay {prefix}-{i}"),
            )
            ship = self.clients.document(self.mine, Ship, lot=lot, recipient=self.refiner.address)
            chains.append([commission, ship])
        return chains

    def saved_state(self, timeout: float = 5.0) -> bytes:
        """The node's state file once it holds every block mined so far."""
        return saved_state(self.state_file, self.direct(), timeout)

    @property
    def outbox_path(self) -> Path:
        return self.data_dir / "ledgers" / f"31337-{self.ledger.lower()}" / "outbox.sqlite"

    def batches(self, state: str) -> list[tuple[int, int, str]]:
        """(id, nonce, latest transaction hash) of the outbox's batches in ``state``, read from
        its file (read-only) while the service runs."""
        uri = f"file:{self.outbox_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            rows = conn.execute(
                "SELECT b.id, b.nonce, (SELECT t.tx_hash FROM transactions t WHERE "
                "t.batch_id = b.id ORDER BY t.signed_at DESC LIMIT 1) FROM batches b "
                "WHERE b.state = ? ORDER BY b.id",
                (state,),
            ).fetchall()
        return [(int(i), int(n), "0x" + bytes(h).hex()) for i, n, h in rows]

    def restart_node(self) -> None:
        """Anvil again on the same port, from its state file."""
        self.node = DevNode(state_file=self.state_file, port=self.node.port).start()

    def restart_server(self) -> None:
        self.server = start_serve(
            self.data_dir,
            self.proxy.url,
            self.folder / "serve.stderr",
            port=self.server.port,
            args=self.serve_args,
            env=self.env,
        )
        wait_ready(self.http, self.server)


@contextmanager
def open_rig(
    folder: Path, *, env: Mapping[str, str] | None = None, serve_args: Sequence[str] = ()
) -> Iterator[Rig]:
    """A Rig in ``folder``: node, proxy, `mine2cell deploy`, `mine2cell serve` (``env`` added to
    FAULT_ENV), a mine and a refiner accredited through the API."""
    settings = {**FAULT_ENV, **(env or {})}
    with ExitStack() as stack:
        node = DevNode(state_file=folder / "anvil-state.json").start()
        rig: Rig | None = None

        def stop_node() -> None:
            (rig.node if rig is not None else node).kill()

        stack.callback(stop_node)
        proxy = stack.enter_context(RpcProxy(node.url))
        data_dir = deploy_data_dir(folder / "data", node.url, cli=False)
        server = start_serve(
            data_dir, proxy.url, folder / "serve.stderr", args=serve_args, env=settings
        )

        def stop_server() -> None:
            running = rig.server if rig is not None else server
            running.kill()
            print(running.explain())  # shown by pytest for a failing test only

        stack.callback(stop_server)
        http = stack.enter_context(httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT))
        ready = wait_ready(http, server)
        clients = Clients(http, Domain(ready["chain_id"], ready["ledger"]))
        governor = Participant(Keystore(data_dir / "keys").signer("governor", PASSPHRASE))
        mine, refiner = fresh_participant(), fresh_participant()
        clients.run(
            *(
                clients.document(
                    governor,
                    Accredit,
                    participant=who.address,
                    roles=role,
                    facility=text32(site),
                    country=country,
                )
                for who, role, site, country in (
                    (mine, Role.MINE, "AU-MURRIN", "AU"),
                    (refiner, Role.PROCESSOR, "FI-KOKKOLA", "FI"),
                )
            )
        )
        rig = Rig(
            folder,
            node,
            proxy,
            data_dir,
            server,
            http,
            clients,
            ready["ledger"],
            governor,
            mine,
            refiner,
            settings,
            tuple(serve_args),
        )
        yield rig


# -- writers ---------------------------------------------------------------------------------------


@dataclass
class Writers:
    """Threads POSTing chains of signed documents to /v1/operations, each chain in order (an
    operation is posted once the one before it is acknowledged), ``group`` documents every
    ``pause`` seconds per thread, until every chain is posted or ``stop()`` (then the chains begun
    are finished and the others left). A 503 problem or a 429 is retried, as a client would; so is
    a POST whose answer never came (the server died): the same document again is acknowledged with
    the same event id. Any other answer is recorded as unexpected."""

    url: str
    chains: list[list[dict[str, Any]]]
    threads: int = 2
    group: int = 2
    pause: float = 0.05
    acked: dict[str, float] = field(default_factory=dict)  # event id -> when acknowledged
    answers: Counter[int] = field(default_factory=Counter)  # HTTP status -> how many
    unavailable: list[dict[str, Any]] = field(default_factory=list)  # the 503 problems
    unexpected: list[str] = field(default_factory=list)
    lost_answers: int = 0  # POSTs whose answer never came
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Writers:
        for i in range(self.threads):
            mine = self.chains[i :: self.threads]
            worker = threading.Thread(target=self._write, args=(mine,), name=f"writer-{i}")
            self._workers.append(worker)
            worker.start()
        return self

    def stop(self) -> Writers:
        self._stop.set()
        return self

    def join(self, timeout: float = CONFIRM_TIMEOUT) -> Writers:
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        stuck = [w.name for w in self._workers if w.is_alive()]
        assert not stuck, f"writers {stuck} still posting after {timeout} s: {self.report()}"
        assert not self.unexpected, self.report()
        return self

    @property
    def done(self) -> bool:
        return not any(w.is_alive() for w in self._workers)

    @property
    def event_ids(self) -> list[str]:
        """The operations acknowledged, in the order they were."""
        with self._lock:
            return sorted(self.acked, key=self.acked.__getitem__)

    def report(self) -> str:
        return (
            f"answers {dict(self.answers)}, acknowledged {len(self.acked)}, answers lost "
            f"{self.lost_answers}, unexpected "
            f"{self.unexpected[:5]}"
        )

    def _write(self, chains: list[list[dict[str, Any]]]) -> None:
        queue = [(len(chain), list(chain)) for chain in chains]
        with httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as http:
            while queue:
                if self._stop.is_set():  # finish the chains begun, leave the others
                    queue = [(n, left) for n, left in queue if len(left) < n]
                for _, left in queue[: self.group]:
                    if self._post(http, left[0]):
                        left.pop(0)
                queue = [(n, left) for n, left in queue if left]
                time.sleep(self.pause)

    def _post(self, http: httpx.Client, document: dict[str, Any]) -> bool:
        try:
            response = http.post("/v1/operations", json=document)
        except httpx.TransportError:
            with self._lock:
                self.lost_answers += 1
            time.sleep(0.1)
            return False
        with self._lock:
            self.answers[response.status_code] += 1
            if response.status_code == 202:
                body = response.json()
                if body.get("eventId") != document["eventId"]:
                    self.unexpected.append(f"202 for another event: {body}")
                self.acked.setdefault(document["eventId"], time.time())
                return True
            if response.status_code == 503 and _is_problem(response):
                self.unavailable.append(response.json())
            elif response.status_code != 429:
                self.unexpected.append(f"HTTP {response.status_code}: {response.text[:300]}")
                return True  # not retried: the test fails on it
        time.sleep(float(response.headers.get("retry-after", "0.2")))
        return False


def _is_problem(response: httpx.Response) -> bool:
    if response.headers.get("content-type") != "application/problem+json":
        return False
    body = response.json()
    return bool(body.get("status") == response.status_code and body.get("detail"))


# -- checks ------------------------------------------------------------------------------------


def wait_for(what: str, condition: Any, timeout: float = CONFIRM_TIMEOUT) -> None:
    """Poll ``condition()`` until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def confirmed_count(http: httpx.Client, event_ids: Sequence[str]) -> int:
    """How many of these operations GET /v1/operations/{id} reports confirmed."""
    found = 0
    for eid in event_ids:
        response = http.get(f"/v1/operations/{eid}")
        if response.status_code == 200 and response.json()["status"] == "confirmed":
            found += 1
    return found


def not_ready(http: httpx.Client) -> dict[str, Any]:
    """While the node is unreachable: /v1/ready is a 503 problem saying the node does not answer
    (why, and what to check, without the node's URL: it may carry an API key), and so is a read
    that needs the node (an unknown passport is looked up on the ledger), never a 500."""
    response = http.get("/v1/ready")
    problem = _node_unavailable(response)
    assert problem["detail"].startswith("the node does not answer: "), problem
    assert "MINE2CELL_RPC_URL" in problem["detail"], problem
    _node_unavailable(http.get("/v1/passports/NEVER-BOUND/summary"))
    return problem


def _node_unavailable(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    problem: dict[str, Any] = response.json()
    assert problem["type"].endswith("/node-unavailable"), problem
    assert problem["title"] == "Node unavailable", problem
    assert "127.0.0.1" not in problem["detail"] and "http" not in problem["detail"], problem
    return problem


def records(w3: Web3, ledger: str) -> dict[str, list[tuple[str, int, str]]]:
    """Per event id, where the ledger's logs record it: (tx hash, block number, block hash), one
    entry per recording log."""
    reply = w3.provider.make_request(
        RPCEndpoint("eth_getLogs"), [{"address": ledger, "fromBlock": "0x0", "toBlock": "latest"}]
    )
    assert "error" not in reply, reply
    found: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for log in map(decode_log, reply["result"]):
        if log is not None and log.name in RECORD_EVENTS:
            eid = "0x" + bytes(log.args["eventId"]).hex()
            found[eid].append(
                ("0x" + log.tx_hash.hex(), log.block_number, "0x" + log.block_hash.hex())
            )
    return dict(found)


def _status(http: httpx.Client, eid: str) -> dict[str, Any]:
    response = http.get(f"/v1/operations/{eid}")
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    assert status["status"] != "rejected", status
    return status


def _disagreements(
    statuses: dict[str, dict[str, Any]], on_chain: dict[str, list[tuple[str, int, str]]]
) -> dict[str, str]:
    """Per operation whose status and the chain disagree, how."""
    wrong: dict[str, str] = {}
    for eid, status in statuses.items():
        found = on_chain.get(eid, [])
        if len(found) != 1:
            wrong[eid] = f"recorded {len(found)} times ({status['status']})"
        elif status["status"] != "confirmed":
            wrong[eid] = f"recorded in {found[0]}, status {status['status']}"
        elif (status["txHash"], status["blockNumber"], status["blockHash"]) != found[0]:
            wrong[eid] = f"recorded in {found[0]}, status {status}"
    return wrong


def assert_confirmed_exactly_once(
    http: httpx.Client, w3: Web3, ledger: str, event_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Every one of these operations ends confirmed (GET /v1/operations/{id}), recorded by exactly
    one log of the ledger on the node's canonical chain, in the transaction and block its status
    names (waiting while the service catches up: a status may still name a block that has just
    left the chain). Returns the statuses."""
    assert event_ids
    deadline = time.monotonic() + CONFIRM_TIMEOUT
    with ThreadPoolExecutor(4) as pool:
        while True:
            statuses = dict(
                zip(event_ids, pool.map(lambda e: _status(http, e), event_ids), strict=True)
            )
            wrong = _disagreements(statuses, records(w3, ledger))
            if not wrong:
                return statuses
            if time.monotonic() > deadline:
                shown = dict(list(wrong.items())[:5])
                raise AssertionError(
                    f"{len(wrong)} of {len(event_ids)} operations not confirmed exactly once "
                    f"where the chain records them after {CONFIRM_TIMEOUT} s: {shown}"
                )
            time.sleep(0.1)
