"""The app factory: ``create_app(settings)`` opens the service (node, ledger, outbox, index) when
the app starts, relays the outbox and follows the chain into the index in background threads, and
closes all of it when the app stops. Nothing is read from the environment here: the caller builds
the Settings (the CLI's ``serve``, or a test)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mine2cell import __version__
from mine2cell.access.tokens import TokenStore
from mine2cell.api import audits, epcis, hosted, lots, participants, problems, routes, untp
from mine2cell.api import metrics as metrics_routes
from mine2cell.api.guard import RequestGuard
from mine2cell.api.metrics import LatencyMiddleware, Metrics
from mine2cell.config import Settings
from mine2cell.errors import ConfigurationError, Mine2CellError
from mine2cell.index.sync import Indexer
from mine2cell.relay.relay import Relay, RelayLock
from mine2cell.service import Service
from mine2cell.web.routes import router as web_router

log = logging.getLogger("mine2cell.api")


@dataclass
class Runtime:
    """What the routes use, opened by the app's lifespan."""

    service: Service
    tokens: TokenStore
    relaying: bool  # this process holds the outbox's relay lock
    writable: bool = True  # the relayer's key is here: operations are accepted
    indexer: Indexer | None = None  # follows the chain in a thread; its failure makes us unready
    relay: Relay | None = None  # relays the outbox in a thread, when this process holds the lock
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)


def create_app(
    settings: Settings,
    *,
    passphrase: Callable[[], str] | None = None,
    follow_interval: float = 0.5,
) -> FastAPI:
    """The mine2cell HTTP service for ``settings``. ``passphrase`` unlocks the relayer's key
    (default: ``settings.passphrase``)."""

    def unlock() -> str:
        if passphrase is not None:
            return passphrase()
        if settings.passphrase is None:
            raise ConfigurationError(
                "the service relays with the relayer's key: set MINE2CELL_PASSPHRASE"
            )
        return settings.passphrase.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with Service(settings, passphrase=unlock, notify=log.info) as service:
            lock = RelayLock(service.lock_path())
            tokens = TokenStore(settings.access_db)
            writable = service.has_key(settings.relayer_key)
            runtime = Runtime(service, tokens, writable and lock.acquire(), writable)
            metrics.watch(runtime)
            if not writable:
                log.warning(
                    "no relayer key %r in %s: serving reads only; operations are refused",
                    settings.relayer_key,
                    settings.keys_dir,
                )
            elif runtime.relaying:
                relay = runtime.relay = service.relay(on_stage=metrics.on_stage)
                relay.recover()
                runtime.threads.append(
                    threading.Thread(target=relay.run, args=(runtime.stop,), name="relay")
                )
            else:
                log.warning("another process relays this outbox; this one only queues")
            indexer = service.indexer()
            indexer.sync()
            runtime.indexer = indexer

            def rolled_back(fork: int) -> None:
                # Blocks left the chain: the relay's batches in them must be sent again, now
                # rather than when its periodic check comes round.
                log.warning("index: blocks above %d left the chain; rolled back", fork)
                if runtime.relay is not None:
                    runtime.relay.reconcile_soon()

            runtime.threads.append(
                threading.Thread(
                    target=indexer.follow,
                    args=(runtime.stop, follow_interval),
                    kwargs={
                        "on_error": lambda exc: log.error("index: %s; retrying", exc),
                        "on_rollback": rolled_back,
                    },
                    name="index",
                )
            )
            for thread in runtime.threads:
                thread.start()
            app.state.runtime = runtime
            try:
                yield
            finally:
                runtime.stop.set()
                for thread in runtime.threads:
                    thread.join(timeout=30)
                if runtime.relaying:
                    lock.release()
                tokens.close()

    app = FastAPI(
        title="mine2cell",
        version=__version__,
        summary="Battery raw-material traceability: custody, provenance and audits of passports.",
        lifespan=lifespan,
    )
    problems.install(app)
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(
        RequestGuard,
        max_request_bytes=settings.max_request_bytes,
        write_rate_limit=settings.write_rate_limit,
    )
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    if settings.cors_origin_list:  # closed unless the operator names the origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for module in (routes, lots, participants, audits, hosted, epcis, metrics_routes, untp):
        app.include_router(module.router)
    app.include_router(web_router)
    return app


class StartRefusals:
    """The app for uvicorn, whose start-up, when the service refuses it (a read-only data
    directory, a corrupted database, no node: a Mine2CellError), uvicorn logs as the error's
    message (what is wrong and how to fix it) rather than as a traceback, then exits non-zero."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def report(message: Message) -> None:
            # Sent while the lifespan handles the error, which is the one being handled here.
            refused = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(refused, Mine2CellError):
                message = {**message, "message": f"error: {refused}"}
            await send(message)

        await self.app(scope, receive, report)
