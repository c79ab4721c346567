"""`mine2cell serve` as an operator runs it, for the end-to-end and fault tests: a data directory
with a ledger deployed by `mine2cell deploy` on a real node, the installed console script serving
HTTP on a loopback port in a subprocess (its output in a file), and clients that sign their own
operations with keys the service never holds, POST them and poll their status.

    data = deploy_data_dir(tmp_path / "data", node.url)
    with serving(data, node.url, tmp_path / "serve.stderr") as server:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            ready = wait_ready(http, server)
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import Web3

from mine2cell.chain.node import free_port
from mine2cell.config import Settings
from mine2cell.service import Service, fund_on_dev_node
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import Domain, LocalSigner, Operation, sign
from mine2cell.signing.keystore import Keystore
from tests.e2e.cli_support import CLI_ENV, MINE2CELL, PASSPHRASE, Cli, make_keys

READY_TIMEOUT = 30.0
SETTLE_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
# uvicorn's access log line of a request answered below 500 (noise when a test fails).
_ANSWERED = re.compile(r'^INFO: +\S+ - ".*" [1-4]\d\d\b')


@dataclass
class Server:
    """`mine2cell serve` in a subprocess, its stdout and stderr in a file."""

    process: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def explain(self) -> str:
        """Its exit code and output, without the access log's lines of answers below 500."""
        lines = [line for line in self.stderr().splitlines() if not _ANSWERED.match(line)]
        output = "\n".join(lines)
        return f"`mine2cell serve` exit code {self.process.poll()}\n--- stderr\n{output}"

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would: no shutdown, no cleanup."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as an operator stops it; the exit code (fails the test if it hangs)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`mine2cell serve` still running {timeout} s after SIGTERM")


@dataclass
class Participant:
    signer: LocalSigner
    nonces: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def address(self) -> ChecksumAddress:
        return self.signer.address


def fresh_participant() -> Participant:
    """A client key made here with eth-account: the service never sees it."""
    return Participant(LocalSigner(bytes(Account.create().key)))


def deploy_data_dir(data: Path, rpc_url: str, *, cli: bool = True) -> Path:
    """``data`` made a data directory with governor and relayer keys (funded: the node is a dev
    node) and a ledger deployed on the node at ``rpc_url`` by `mine2cell deploy` (or, when not
    ``cli``, by the service in this process, as that command does, without its start-up time)."""
    make_keys(data, ("governor", "relayer"))
    keystore = Keystore(data / "keys")
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    for name in ("governor", "relayer"):
        fund_on_dev_node(w3, keystore.entry(name).address)  # gas money, as a faucet would give
    if cli:
        Cli(data)("deploy", "--rpc-url", rpc_url).ok()
    else:
        settings = Settings(data_dir=data, rpc_url=rpc_url)
        with Service(settings, passphrase=lambda: PASSPHRASE, new_ledger=True):
            pass  # opening it deployed the ledger and remembered it in the data directory
    return data


def start_serve(
    data_dir: Path,
    rpc_url: str,
    stderr_path: Path,
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> Server:
    """Start `mine2cell serve` on ``data_dir`` against the node at ``rpc_url`` (on ``port``, else a
    free one), with more command-line ``args`` (e.g. ``--passphrase-file F``) and ``env`` added to
    the CLI tests' environment (MINE2CELL_* settings). Its output is appended to
    ``stderr_path``, so a restarted server's follows the first one's. ``wrap`` is a command that
    execs the server as its last arguments (e.g. `unshare -m sh -c '... exec "$@"' sh`), whose
    process is then the server's."""
    port = port or free_port()
    command = [*wrap, str(MINE2CELL), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--rpc-url", rpc_url, *args]
    with stderr_path.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env={**CLI_ENV, **(env or {})},
        )
    return Server(process, f"http://127.0.0.1:{port}", stderr_path)


@contextmanager
def serving(
    data_dir: Path,
    rpc_url: str,
    stderr_path: Path,
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    wrap: Sequence[str] = (),
) -> Iterator[Server]:
    """`start_serve`, killed on the way out if still running; its output is printed (pytest shows
    it for a failing test only)."""
    server = start_serve(data_dir, rpc_url, stderr_path, port=port, args=args, env=env, wrap=wrap)
    try:
        yield server
    finally:
        server.kill()
        print(server.explain())


def wait_ready(
    http: httpx.Client, server: Server, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    """The body of the first 200 answer of /v1/ready (the server must stay up meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.explain()
        try:
            response = http.get("/v1/ready")
            if response.status_code == 200:
                ready: dict[str, Any] = response.json()
                return ready
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"/v1/ready did not answer 200 within {timeout} s\n{server.explain()}")


class Clients:
    """Participants signing in this process and POSTing to the service."""

    def __init__(self, http: httpx.Client, domain: Domain) -> None:
        self.http = http
        self.domain = domain
        self.deadline = int(time.time()) + 900

    def document(self, who: Participant, op_type: type[Operation], **fields: Any) -> dict[str, Any]:
        op = op_type(who.address, next(who.nonces), self.deadline, **fields)
        return to_document(sign(op, who.signer, self.domain))

    def post(self, document: dict[str, Any]) -> str:
        """POST a signed document; the status URL of the accepted operation."""
        response = self.http.post("/v1/operations", json=document)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["eventId"] == document["eventId"] and body["type"] == document["type"]
        assert response.headers["location"] == body["statusUrl"]
        assert body["statusUrl"] == f"/v1/operations/{document['eventId']}"
        return str(body["statusUrl"])

    def settle(self, *status_urls: str, timeout: float = SETTLE_TIMEOUT) -> list[dict[str, Any]]:
        """Poll each operation until it is confirmed or rejected."""
        settled: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        for url in status_urls:
            while True:
                response = self.http.get(url)
                assert response.status_code == 200, response.text
                status: dict[str, Any] = response.json()
                if status["status"] in ("confirmed", "rejected"):
                    settled.append(status)
                    break
                assert time.monotonic() < deadline, f"{url} still {status}"
                time.sleep(0.05)
        return settled

    def run(self, *documents: dict[str, Any]) -> list[dict[str, Any]]:
        """POST operations and require every one to be confirmed."""
        statuses = self.settle(*(self.post(document) for document in documents))
        for status in statuses:
            assert status["status"] == "confirmed", status
            assert status["blockNumber"] > 0 and status["txHash"].startswith("0x")
        return statuses


def read_when_indexed(
    http: httpx.Client, path: str, timeout: float = SETTLE_TIMEOUT
) -> dict[str, Any]:
    """GET a passport resource, retrying while the index has not caught up (404)."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(path)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 404, response.text
        assert "not indexed yet" in response.json()["detail"], response.text
        assert time.monotonic() < deadline, f"{path} not indexed: {response.text}"
        time.sleep(0.1)
