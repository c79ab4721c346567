"""The embedded development node: anvil from the project's node_modules, run by mine2cell.

The node persists its state to a file in the data directory (dumped every second and on a
clean stop), so restarting it loses nothing that was mined more than a second before a crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx
import requests
from web3 import Web3
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from mine2cell.errors import ConfigurationError, NodeError

DEV_CHAIN_ID = 31337
_ANVIL_IN_NODE_MODULES = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil(explicit: Path | None = None) -> Path:
    """Locate the anvil binary: an explicit path, the repository's node_modules, or PATH."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigurationError(f"anvil_path {explicit} does not exist")
        return explicit
    candidates = [Path(__file__).resolve().parents[3] / _ANVIL_IN_NODE_MODULES]
    candidates.append(Path.cwd() / _ANVIL_IN_NODE_MODULES)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ConfigurationError(
        "no anvil binary found: run `npm ci` in the repository (it installs @foundry-rs/anvil), "
        "or set MINE2CELL_ANVIL_PATH, or give --rpc-url to use a node of your own"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevNode:
    """An anvil process on a loopback port. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        state_file: Path | None = None,
        anvil_path: Path | None = None,
        port: int | None = None,
        chain_id: int = DEV_CHAIN_ID,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = find_anvil(anvil_path)
        self.state_file = state_file
        self.port = port or free_port()
        self.chain_id = chain_id
        self.block_time = block_time
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 15.0) -> DevNode:
        args = [
            str(self.binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
        ]
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_file), "--state-interval", "1"]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        args += list(self.extra_args)
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                raise NodeError(
                    f"anvil exited at start (code {self._process.returncode}): {err.strip()}"
                )
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise NodeError(f"anvil did not answer on {self.url} within {timeout:.0f} s")

    def _answers(self) -> bool:
        try:
            reply = httpx.post(
                self.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                timeout=1.0,
            )
            return reply.status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly (SIGTERM makes anvil dump its state)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stop abruptly, as a crash would (SIGKILL: no state dump beyond the last interval)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> DevNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def transport_failure(exc: BaseException) -> str | None:
    """Why a request to the node failed, in words for an HTTP answer or a log that name no URL
    (an RPC URL may carry a provider's API key, which requests' messages repeat); None when
    ``exc`` is not a failure to reach the node."""
    if isinstance(exc, requests.Timeout):
        return "no answer within the RPC timeout (MINE2CELL_RPC_TIMEOUT)"
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        return f"its HTTP endpoint answered {status}"
    if isinstance(exc, requests.ConnectionError):
        return "the connection was refused or closed"
    if isinstance(exc, requests.RequestException):
        return f"the request failed ({type(exc).__name__})"
    return None


def connect(url: str, timeout: float = 10.0) -> Web3:
    """A web3 connection to a JSON-RPC node, checked to answer. A request not answered within
    ``timeout`` seconds fails then: web3 would by default try reads five times, so a hanging node
    would hold the relay, the index and /v1/ready for five timeouts per request (they retry by
    themselves). A gateway's 5xx answer to a read is retried briefly."""
    retry = ExceptionRetryConfiguration(errors=(requests.HTTPError,), retries=3, backoff_factor=0.1)
    w3 = Web3(
        Web3.HTTPProvider(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=retry
        )
    )
    try:
        w3.eth.chain_id  # noqa: B018 - a request that every node answers
    except Exception as exc:
        raise NodeError(
            f"cannot reach a node at {url} ({type(exc).__name__}); check --rpc-url / "
            "MINE2CELL_RPC_URL, or leave it unset to use the embedded dev node"
        ) from exc
    return w3
