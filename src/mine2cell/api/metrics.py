"""Prometheus metrics of the HTTP service, at ``/metrics`` (read tier): request latency by route,
the relay's queue by state and the sizes of the batches it sends, and how far the index is behind
the node. Queue and lag are read when scraped, so they are never stale."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mine2cell.api.access import ReadToken
from mine2cell.api.problems import PROBLEMS
from mine2cell.relay.outbox import Batch

if TYPE_CHECKING:
    from mine2cell.api.app import Runtime

router = APIRouter()

# Relay batches hold 1 to 256 operations.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _State(Collector):
    """Gauges read from the outbox and the index when scraped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        service = self.runtime.service
        queue = GaugeMetricFamily(
            "mine2cell_relay_operations",
            "Operations in the relay's outbox, by state (pending and submitted are the queue).",
            labels=["state"],
        )
        for state, count in service.outbox.counts().items():
            queue.add_metric([state.value], count)
        yield queue
        checkpoint = service.store().checkpoint()
        indexed = checkpoint.block_number if checkpoint is not None else -1
        yield GaugeMetricFamily(
            "mine2cell_index_block", "The newest block the index holds.", value=indexed
        )
        try:
            head = service.w3.eth.block_number
        except Exception:  # the node is down: no lag to report, /v1/ready says why
            return
        yield GaugeMetricFamily("mine2cell_node_head_block", "The node's newest block.", value=head)
        yield GaugeMetricFamily(
            "mine2cell_index_lag_blocks",
            "Blocks between the node's head and the index.",
            value=max(0, head - indexed),
        )


class Metrics:
    """One registry per app (several apps may run in one process, as in the tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "mine2cell_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mine2cell_relay_batch_operations",
            "Operations in each batch the relay sent.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._state: _State | None = None

    def watch(self, runtime: Runtime) -> None:
        # An app started again (its lifespan run twice, as test clients do) reports on its new
        # runtime only: the old one's outbox and index are closed, and reading them is a 500.
        if self._state is not None:
            self.registry.unregister(self._state)
        self._state = _State(runtime)
        self.registry.register(self._state)

    def on_stage(self, stage: str, batch: Batch) -> None:
        if stage == "stored":  # once per batch, when it is signed and about to be sent
            self.batch_size.observe(len(batch.event_ids))


class LatencyMiddleware:
    """Times each HTTP request into ``Metrics.latency``: plain ASGI, so the body streams through
    untouched (Starlette's ``BaseHTTPMiddleware`` would re-stream every answer and cost a
    quarter of a small request's time)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The router leaves the matched route in the scope: its template (/v1/lots/{lot})
            # is the label, so that ids do not make new series.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format).",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: PROBLEMS[401]},
)
def metrics(request: Request, _: ReadToken) -> Response:
    found: Metrics = request.app.state.metrics
    return Response(generate_latest(found.registry), media_type=CONTENT_TYPE_LATEST)
