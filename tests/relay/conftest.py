"""Relay fixtures: a ledger with its cast on an anvil node of the relay tests' own (the relay sends
from the cast's relayer key, whose nonce other test modules track locally), reverted after each
test, and a fresh outbox file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from mine2cell.chain.node import DevNode
from mine2cell.relay.outbox import Outbox
from tests.conftest import Cast, build_cast, rpc


@pytest.fixture(scope="session")
def relay_node() -> Iterator[DevNode]:
    with DevNode() as node:
        yield node


@pytest.fixture(scope="session")
def relay_session_cast(relay_node: DevNode) -> Cast:
    return build_cast(Web3(Web3.HTTPProvider(relay_node.url)))


@pytest.fixture
def cast(relay_session_cast: Cast) -> Iterator[Cast]:
    """The cast on the relay node, reverted after the test (with automine back on and the pool
    emptied, for tests that hold transactions back)."""
    w3 = relay_session_cast.w3
    snapshot = rpc(w3, "evm_snapshot", [])
    try:
        yield relay_session_cast
    finally:
        rpc(w3, "anvil_dropAllTransactions", [])
        rpc(w3, "evm_setAutomine", [True])
        rpc(w3, "evm_revert", [snapshot])
        relay_session_cast.ledger._next_nonce.clear()
        assert relay_session_cast.ledger.transactor is not None
        relay_session_cast.ledger.transactor.resync_nonce()


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite"


@pytest.fixture
def outbox(outbox_path: Path) -> Iterator[Outbox]:
    box = Outbox(outbox_path)
    try:
        yield box
    finally:
        box.close()
