"""Limits on what one client may send, applied before any route runs:

- a request body larger than ``max_request_bytes`` is answered 413, whether its Content-Length
  says so up front or the body turns out longer while it is read (chunked uploads);
- writes (every POST) are counted per client address in moving windows (``write_rate_limit``,
  e.g. ``100/second;3000/minute``); a client over its limit is answered 429 with ``Retry-After``.

Both answers are RFC 9457 problems naming what was exceeded and by how much. Reads are not
counted: they change nothing, and the public summary and page are meant to be fetched freely.

The client address is the TCP peer's, or the one a trusted reverse proxy forwards (uvicorn's
``--forwarded-allow-ips``); behind a proxy that is not trusted, every client shares one limit."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mine2cell.api.problems import PROBLEM_JSON, TYPE_BASE

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TooLarge(Exception):
    pass


class RequestGuard:
    """Plain ASGI middleware (no re-streaming of answers): body size and write rate limits."""

    def __init__(self, app: ASGIApp, *, max_request_bytes: int, write_rate_limit: str) -> None:
        self.app = app
        self.max_bytes = max_request_bytes
        self.write_limits = limits.parse_many(write_rate_limit) if write_rate_limit else []
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in WRITE_METHODS and self.write_limits:
            client = scope.get("client")
            who = client[0] if client else "unknown"
            for item in self.write_limits:
                if not self.limiter.hit(item, "write", who):
                    stats = self.limiter.get_window_stats(item, "write", who)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    await _problem(
                        scope,
                        send,
                        429,
                        "rate-limited",
                        "Too many writes",
                        f"this client is over its limit of {_per(item)}; retry in {wait} s",
                        "request",
                        headers=[(b"retry-after", str(wait).encode())],
                    )
                    return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, send, f"Content-Length is {declared} bytes")
            return
        if scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        # Read the body here, up to the limit, and hand it on whole: a body sent without a
        # Content-Length (chunked) is refused as soon as it passes the limit, before any route
        # parses it.
        try:
            body = await self._read(receive)
        except TooLarge:
            await self._too_large(scope, send, "the body sent is longer")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the client's disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, send: Send, what: str) -> None:
        await _problem(
            scope,
            send,
            413,
            "too-large",
            "Request too large",
            f"{what}; this service takes at most {self.max_bytes} bytes per request "
            "(MINE2CELL_MAX_REQUEST_BYTES): split the document",
            "body",
        )


def _per(item: limits.RateLimitItem) -> str:
    unit = (
        item.GRANULARITY.name
        if item.multiples == 1
        else f"{item.multiples} {item.GRANULARITY.name}s"
    )
    return f"{item.amount} writes per {unit}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _problem(
    scope: Scope,
    send: Send,
    status: int,
    kind: str,
    title: str,
    detail: str,
    field: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope["path"],
        "errors": [{"field": field, "message": detail}],
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                # The rest of an oversized body is not read: the connection is not reused.
                *([(b"connection", b"close")] if status == 413 else []),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
