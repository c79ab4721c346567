"""Kill the relay (SIGKILL) at any point, or crash the node, and on restart every acknowledged
operation is recorded exactly once.

The relay runs in a separate process (tests/relay/relay_worker.py) that kills itself at a named
stage of a named batch: after the batch and its signed transaction are stored but before it is
sent, after it is sent, or with the receipt in hand but not yet written down. Another relay then
recovers from the outbox it left behind. The node crash tests kill anvil right after a batch, or
bring it back from state saved before the last batch (a node that lost its last block), and
recover with a new relay. Every test counts the chain's own logs per event id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.chain.node import DevNode
from mine2cell.relay.outbox import Outbox
from mine2cell.relay.relay import STAGES, BatchPolicy, Relay, RelayLock
from tests.conftest import Cast, build_cast
from tests.relay.relay_support import (
    accept,
    assert_recorded_exactly_once,
    deliveries,
    new_relay,
    saved_state,
)
from tests.relay.relay_worker import KEY_VARIABLE, lock_path

pytestmark = pytest.mark.anvil

REPO = Path(__file__).resolve().parents[2]
MAX_OPERATIONS = 5  # 4 deliveries (12 operations, each depending on the one before) in 3 batches
KILLED = -signal.SIGKILL


def run_worker(
    url: str, cast: Cast, outbox: Path, die_at: str | None = None, batch: int = 1
) -> subprocess.CompletedProcess[str]:
    """Run a relay process on the outbox until it is drained or it kills itself at the stage."""
    command = [sys.executable, "-m", "tests.relay.relay_worker", "--rpc", url]
    command += ["--ledger", cast.ledger.address, "--outbox", str(outbox)]
    command += ["--max-operations", str(MAX_OPERATIONS)]
    if die_at is not None:
        command += ["--die-at", die_at, "--batch", str(batch)]
    env = os.environ | {KEY_VARIABLE: cast.relayer.key_bytes.hex()}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def restart_relay(ledger: LedgerClient, outbox: Outbox, cast: Cast) -> None:
    """What a restarted service does: take the outbox's lock, recover, relay what is left."""
    lock = RelayLock(lock_path(outbox.path))
    assert lock.acquire(), "the dead relay's lock was not released"
    try:
        relay = Relay(ledger, outbox, cast.relayer, BatchPolicy(max_operations=MAX_OPERATIONS))
        relay.recover()
        relay.drain(timeout=30)
    finally:
        lock.release()


def on_chain(w3: Web3, tx_hash: bytes) -> bool:
    try:
        w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except TransactionNotFound:
        return False
    return True


# -- the relay process killed ------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_relay_killed_at_a_stage_records_every_acknowledged_operation_exactly_once(
    cast: Cast, outbox: Outbox, relay_node: DevNode, stage: str
) -> None:
    ids = accept(outbox, cast.ledger, deliveries(cast, 4))

    worker = run_worker(relay_node.url, cast, outbox.path, die_at=stage, batch=2)

    assert worker.returncode == KILLED, worker.stderr
    assert len(outbox.batches("mined")) == 1
    [interrupted] = outbox.batches("sending")
    assert on_chain(cast.w3, interrupted.latest.tx_hash) == (stage != "stored")
    restart_relay(cast.ledger, outbox, cast)
    assert_recorded_exactly_once(cast.ledger, outbox, ids)
    assert [len(b.event_ids) for b in outbox.batches("mined")] == [5, 5, 2]
    assert outbox.batches("dropped") == []


def test_relay_killed_again_while_recovering_records_every_operation_exactly_once(
    cast: Cast, outbox: Outbox, relay_node: DevNode
) -> None:
    ids = accept(outbox, cast.ledger, deliveries(cast, 4))

    # Dies with batch 1 stored, not sent.
    assert run_worker(relay_node.url, cast, outbox.path, "stored").returncode == KILLED
    [first] = outbox.batches("sending")
    assert not on_chain(cast.w3, first.latest.tx_hash)
    # Recovering, sends batch 1 and dies with its receipt in hand, before writing it down.
    assert run_worker(relay_node.url, cast, outbox.path, "mined").returncode == KILLED
    assert [b.id for b in outbox.batches("sending")] == [first.id]
    assert on_chain(cast.w3, first.latest.tx_hash)
    # Settles batch 1, sends batch 2 and dies before looking for its receipt.
    assert run_worker(relay_node.url, cast, outbox.path, "sent").returncode == KILLED
    assert [b.id for b in outbox.batches("mined")] == [first.id]
    restart_relay(cast.ledger, outbox, cast)

    assert_recorded_exactly_once(cast.ledger, outbox, ids)
    assert [len(b.event_ids) for b in outbox.batches("mined")] == [5, 5, 2]
    assert outbox.batches("dropped") == []


# -- the node crashed --------------------------------------------------------------------------


class NodeWithState:
    """An anvil node persisting to a state file in a test's folder, with its own ledger."""

    def __init__(self, folder: Path) -> None:
        self.state = folder / "anvil-state.json"
        self.node = DevNode(state_file=self.state).start()
        try:
            self.cast = build_cast(Web3(Web3.HTTPProvider(self.node.url)))
        except BaseException:
            self.node.kill()
            raise
        self.outbox = Outbox(folder / "outbox.sqlite")

    def saved(self, timeout: float = 5.0) -> bytes:
        """The state file once the node has saved every block mined so far."""
        return saved_state(self.state, self.cast.w3, timeout)

    def restart(self) -> LedgerClient:
        """A new node on the same port and state file, and a new client of the same ledger."""
        self.node = DevNode(state_file=self.state, port=self.node.port).start()
        w3 = Web3(Web3.HTTPProvider(self.node.url))
        return LedgerClient(w3, self.cast.ledger.address, Transactor(w3, self.cast.relayer))


@pytest.fixture
def crashing_node(tmp_path: Path) -> Iterator[NodeWithState]:
    chain = NodeWithState(tmp_path)
    try:
        yield chain
    finally:
        chain.node.kill()
        chain.outbox.close()


@pytest.mark.parametrize("relay_killed_while_resending", [False, True], ids=["relay up", "killed"])
def test_relay_records_again_the_operations_of_a_block_the_restarted_node_lost(
    crashing_node: NodeWithState, relay_killed_while_resending: bool
) -> None:
    cast, outbox = crashing_node.cast, crashing_node.outbox
    relay = new_relay(cast, outbox, max_operations=MAX_OPERATIONS)
    kept = accept(outbox, cast.ledger, deliveries(cast, 1, "kept"))
    relay.drain()
    saved = crashing_node.saved()
    lost = accept(outbox, cast.ledger, deliveries(cast, 1, "lost"))
    relay.drain()
    [kept_batch, lost_batch] = outbox.batches("mined")
    kept_before = outbox.statuses(kept)
    crashing_node.node.kill()
    crashing_node.state.write_bytes(saved)  # the node comes back without the last batch's block

    ledger = crashing_node.restart()
    assert ledger.w3.eth.block_number == kept_batch.block_number
    if relay_killed_while_resending:
        url = crashing_node.node.url
        assert run_worker(url, cast, outbox.path, "stored").returncode == KILLED
    restart_relay(ledger, outbox, cast)

    assert_recorded_exactly_once(ledger, outbox, kept + lost)
    assert outbox.statuses(kept) == kept_before
    assert [b.id for b in outbox.batches("dropped")] == [lost_batch.id]
    [_, again] = outbox.batches("mined")
    # Same operations, nonce and fees on the same parent block: the very same transaction.
    assert again.tx_hash == lost_batch.tx_hash
    assert {s.block_hash for s in outbox.statuses(lost).values()} == {again.block_hash}


def test_relay_records_every_operation_exactly_once_after_the_node_is_killed_after_a_batch(
    crashing_node: NodeWithState,
) -> None:
    cast, outbox = crashing_node.cast, crashing_node.outbox
    crashing_node.saved()  # the ledger itself must survive the crash
    relay = new_relay(cast, outbox, max_operations=MAX_OPERATIONS)
    ids = accept(outbox, cast.ledger, deliveries(cast, 4))
    relay.drain()
    mined = outbox.batches("mined")
    before = outbox.statuses(ids)
    crashing_node.node.kill()  # within a second of the last blocks: some may be lost

    ledger = crashing_node.restart()
    kept = {b.id for b in mined if block_hash_at(ledger.w3, b.block_number) == b.block_hash}
    restart_relay(ledger, outbox, cast)

    assert_recorded_exactly_once(ledger, outbox, ids)
    assert {b.id for b in outbox.batches("dropped")} == {b.id for b in mined} - kept
    after = outbox.statuses(ids)
    for batch in mined:
        if batch.id in kept:
            assert all(after[e] == before[e] for e in batch.event_ids)


def block_hash_at(w3: Web3, number: int | None) -> bytes | None:
    try:
        return bytes(w3.eth.get_block(number or 0)["hash"] or b"")
    except BlockNotFound:
        return None
