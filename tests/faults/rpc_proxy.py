"""A real HTTP JSON-RPC proxy in front of a node, for the fault tests: a threaded http.server on a
loopback port that the service under test is pointed at (``mine2cell serve --rpc-url
proxy.url``), switchable at run time between passing requests through and the ways a node or the
network in front of it fails:

- ``PASS``: forward every request and its answer unchanged;
- ``REFUSE``: the node is unreachable: the port stops listening (connection refused) and
  connections already open are closed without an answer;
- ``HTTP_ERROR``: a gateway in front of the node answers HTTP ``status`` (502, 503) without asking
  the node;
- ``RPC_ERROR``: the node answers a JSON-RPC error object to the chosen methods (others pass);
- ``HANG``: requests are held, unanswered and not forwarded, for as long as the mode lasts (at most
  ``max_hang`` seconds), longer than the client's timeout: the client times out;
- ``DROP_RESPONSE``: the chosen methods are forwarded to the node, which acts on them, and the
  connection is closed before the answer reaches the client (after eth_sendRawTransaction: the
  transaction is in the node, the sender never heard so: the classic double-send trap).

A node that is down behind the proxy (killed, restarting) looks like ``REFUSE`` to the client.
The proxy counts the requests it saw and the faults it injected per method, so a test can check
that its fault actually happened.

    with RpcProxy(node.url) as proxy:
        proxy.set(Fault.RPC_ERROR, methods={"eth_sendRawTransaction"})
        ...
        proxy.set(Fault.PASS)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from mine2cell.chain.node import free_port

# How long the proxy waits for the node behind it.
UPSTREAM_TIMEOUT = 30.0
INJECTED_RPC_ERROR = {"code": -32603, "message": "injected fault: internal error"}


class Fault(StrEnum):
    PASS = "pass"
    REFUSE = "refuse"
    HTTP_ERROR = "http-error"
    RPC_ERROR = "rpc-error"
    HANG = "hang"
    DROP_RESPONSE = "drop-response"


def _methods(body: bytes) -> list[str]:
    """The JSON-RPC methods of a request (several for a batch); [] if it is not JSON-RPC."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return []
    calls = parsed if isinstance(parsed, list) else [parsed]
    return [str(c.get("method")) for c in calls if isinstance(c, dict)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: RpcProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as web3's session uses it
    # Headers and body leave in two writes: with Nagle's algorithm the second waits for the
    # client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read the counters

    def do_POST(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        methods = _methods(body)
        fault, status, chosen, max_hang = proxy.state()
        hit = chosen is None or any(m in chosen for m in methods)
        proxy.count(methods, fault if hit else Fault.PASS)
        if fault is Fault.REFUSE:
            return self._close()
        if fault is Fault.HTTP_ERROR and hit:
            return self._answer(status, b"injected fault: bad gateway\n", "text/plain")
        if fault is Fault.HANG and hit:
            deadline = time.monotonic() + max_hang
            while proxy.state()[0] is Fault.HANG and time.monotonic() < deadline:
                time.sleep(0.02)
            return self._close()
        if fault is Fault.RPC_ERROR and hit:
            return self._answer(200, self._rpc_errors(body, chosen), "application/json")
        try:
            reply = proxy.upstream.post(
                "/", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError:
            return self._close()  # the node is down: unreachable, as far as the client can tell
        if fault is Fault.DROP_RESPONSE and hit:
            return self._close()
        self._answer(reply.status_code, reply.content, "application/json")

    def _rpc_errors(self, body: bytes, chosen: frozenset[str] | None) -> bytes:
        """The node's answer with an error object for each chosen method (others forwarded)."""
        parsed = json.loads(body)
        calls = parsed if isinstance(parsed, list) else [parsed]
        passed = [c for c in calls if chosen is not None and c.get("method") not in chosen]
        answers: dict[Any, Any] = {}
        if passed:
            reply = self.server.proxy.upstream.post("/", json=passed).json()
            for answer in reply if isinstance(reply, list) else [reply]:
                answers[answer.get("id")] = answer
        out = [
            answers.get(c.get("id"))
            or {"jsonrpc": "2.0", "id": c.get("id"), "error": INJECTED_RPC_ERROR}
            for c in calls
        ]
        return json.dumps(out if isinstance(parsed, list) else out[0]).encode()

    def _answer(self, status: int, content: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            self.close_connection = True  # the client gave up (its timeout)

    def _close(self) -> None:
        """Close the connection without a word: the client sees it reset or closed."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class RpcProxy:
    """A JSON-RPC proxy on a loopback port in front of ``upstream`` (see the module's doc)."""

    def __init__(self, upstream: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.upstream = httpx.Client(base_url=upstream, timeout=UPSTREAM_TIMEOUT)
        self._lock = threading.Lock()
        self._fault = Fault.PASS
        self._status = 502
        self._methods: frozenset[str] | None = None
        self._max_hang = 60.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: Counter[str] = Counter()  # method -> requests seen
        self.injected: Counter[tuple[Fault, str]] = Counter()  # (fault, method) -> faults

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switching -----------------------------------------------------------------------------

    def set(
        self,
        fault: Fault,
        *,
        methods: Iterable[str] | None = None,
        status: int = 502,
        max_hang: float = 60.0,
    ) -> None:
        """Inject ``fault`` from now on, for requests calling one of ``methods`` (all when None;
        REFUSE always applies to all). ``status``: the HTTP_ERROR answer's."""
        with self._lock:
            self._fault = fault
            self._methods = None if methods is None else frozenset(methods)
            self._status = status
            self._max_hang = max_hang
        if fault is Fault.REFUSE:
            self._stop_listening()
        elif self._server is None:
            self._listen()

    def state(self) -> tuple[Fault, int, frozenset[str] | None, float]:
        with self._lock:
            return self._fault, self._status, self._methods, self._max_hang

    def count(self, methods: list[str], fault: Fault) -> None:
        with self._lock:
            for method in methods:
                self.requests[method] += 1
                if fault is not Fault.PASS:
                    self.injected[fault, method] += 1

    def faults(self, fault: Fault, method: str | None = None) -> int:
        """How many requests (of ``method``, else of any) got ``fault``."""
        with self._lock:
            return sum(
                n for (f, m), n in self.injected.items() if f is fault and method in (None, m)
            )

    # -- running -------------------------------------------------------------------------------

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="rpc-proxy", daemon=True)
        self._thread.start()

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()  # the port stops listening: new connections are refused
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def start(self) -> RpcProxy:
        self._listen()
        return self

    def close(self) -> None:
        self._stop_listening()
        self.upstream.close()

    def __enter__(self) -> RpcProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
