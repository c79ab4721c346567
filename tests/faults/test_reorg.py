"""A chain reorganisation under a running `mine2cell serve`: the operations of the blocks that
leave the chain were confirmed, indexed and served; they come back pending, are sent again by the
relay and end confirmed exactly once; the index rolls back to the fork point and reads the new
blocks, so the passport's provenance as served equals the report of a fresh index of the same
chain.

The reorganisation is made on anvil: a snapshot (evm_snapshot) below the operations, then
evm_revert and other blocks mined past the old head (a transfer, then empty blocks). Right after
it, the clients ship lots whose commissions left the chain with those blocks: the relay must not
reject those shipments for want of a lot it is about to record again.

The relay's periodic check of its shallow batches is set to a minute here, longer than the tests
wait: it is the index, seeing blocks leave the chain, that makes the relay check them at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from web3 import Web3
from web3.types import RPCEndpoint, Wei

from mine2cell.access.tokens import TokenStore
from mine2cell.codes import Feedstock, Role
from mine2cell.config import DEFAULT_HIGH_RISK_COUNTRIES
from mine2cell.ids import parse_id
from mine2cell.index.store import SqliteStore
from mine2cell.index.sync import Indexer
from mine2cell.materials import material
from mine2cell.provenance.documents import passport_document
from mine2cell.signing.eip712 import (
    Accredit,
    BindPassport,
    Commission,
    Input,
    LotId,
    Output,
    PassportId,
    Receive,
    Ship,
    Transform,
    text32,
)
from tests.e2e.serve_support import fresh_participant, read_when_indexed
from tests.faults.fault_support import (
    CO_HYDROXIDE,
    Rig,
    assert_confirmed_exactly_once,
    open_rig,
    wait_for,
)

pytestmark = pytest.mark.anvil

CO_SULFATE = material("co-sulfate").code
ORE, SULFATE = LotId(parse_id("REORG-ORE")), LotId(parse_id("REORG-SUL"))
PASSPORT = PassportId(parse_id("REORG-PASS", "passport"))
PROVENANCE = "/v1/passports/REORG-PASS/provenance"
# Lots commissioned in the blocks that leave the chain, shipped after the reorganisation.
LATE_SHIPMENTS = 6


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    # Shallow batches checked once a minute: longer than the test waits for them.
    env = {"MINE2CELL_RELAY_RECONCILE_SECONDS": "60"}
    with open_rig(tmp_path_factory.mktemp("reorg"), env=env) as running:
        yield running


def read_token(rig: Rig) -> dict[str, str]:
    """A read token's header (/provenance needs one), created as `mine2cell token create --read`
    does, in this process."""
    tokens = TokenStore(rig.data_dir / "access.db")
    try:
        _, secret = tokens.create("read", "reorg test")
    finally:
        tokens.close()
    return {"Authorization": f"Bearer {secret}"}


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), params)
    assert "error" not in reply, reply
    return reply["result"]


def fresh_report(rig: Rig, folder: Path) -> dict[str, Any]:
    """The passport's report from a new index of the node's chain, synced now from scratch (as
    `mine2cell sync` on a new data directory does)."""
    store = SqliteStore(folder / "fresh-index.sqlite")
    try:
        Indexer(Web3(Web3.HTTPProvider(rig.node.url)), rig.ledger, store).sync()
        high_risk = frozenset(DEFAULT_HIGH_RISK_COUNTRIES.split(","))
        document = passport_document(store, PASSPORT, high_risk_countries=high_risk)
    finally:
        store.close()
    assert document is not None
    return comparable(json.loads(document))


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without ``as_of``, the time it was computed at."""
    return {key: value for key, value in report.items() if key != "as_of"}


def reorganise(w3: Web3, snapshot: str) -> int:
    """Back to the snapshot, then a transaction and empty blocks past the old head: the blocks
    above the snapshot leave the chain. Returns the old head."""
    old_head = w3.eth.block_number
    assert rpc(w3, "evm_revert", [snapshot]) is True
    other = Web3.to_checksum_address("0x" + "11" * 20)
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": other, "value": Wei(1)})
    rpc(w3, "anvil_mine", [hex(old_head - w3.eth.block_number + 2)])
    assert w3.eth.block_number > old_head
    return old_head


def test_reorganisation_is_rolled_back_by_the_index_and_replayed_by_the_relay(
    rig: Rig, tmp_path: Path
) -> None:
    clients, w3 = rig.clients, rig.direct()
    rig.http.headers.update(read_token(rig))
    cells = fresh_participant()
    # Below the fork: the cell maker accredited, the ore mined and delivered to the refinery.
    below = [
        clients.document(
            rig.governor,
            Accredit,
            participant=cells.address,
            roles=Role.CELL_MAKER,
            facility=text32("SE-SKELLEFTEA"),
            country="SE",
        ),
        clients.document(
            rig.mine,
            Commission,
            lot=ORE,
            material=CO_HYDROXIDE,
            quantity=6_000_000,
            feedstock=Feedstock.PRIMARY,
            footprint=4_800_000,
            document_hash=keccak(text="assay REORG-ORE"),
        ),
        clients.document(rig.mine, Ship, lot=ORE, recipient=rig.refiner.address),
        clients.document(rig.refiner, Receive, lot=ORE, counterparty=rig.mine.address),
    ]
    for document in below:
        clients.run(document)
    snapshot = rpc(w3, "evm_snapshot", [])
    fork_head = w3.eth.block_number

    # Above the fork: refining, delivery to the cell maker and the binding, each confirmed, and
    # the passport indexed and served.
    above = [
        clients.document(
            rig.refiner,
            Transform,
            inputs=(Input(ORE, 6_000_000),),
            outputs=(Output(SULFATE, CO_SULFATE, 5_000_000),),
            footprint=20_000_000,
        ),
        clients.document(rig.refiner, Ship, lot=SULFATE, recipient=cells.address),
        clients.document(cells, Receive, lot=SULFATE, counterparty=rig.refiner.address),
        clients.document(
            cells, BindPassport, passport=PASSPORT, inputs=(Input(SULFATE, 400_000),), footprint=0
        ),
    ]
    for document in above:
        clients.run(document)
    before = read_when_indexed(rig.http, PROVENANCE)
    assert before["binding"]["block_number"] > fork_head

    # The relay checks its batches once a minute here: only the index, seeing the blocks go,
    # can make it send them again within the test's time.
    old_head = reorganise(w3, snapshot)

    everything = [document["eventId"] for document in (*below, *above)]
    statuses = assert_confirmed_exactly_once(rig.http, w3, rig.ledger, everything)
    assert all(statuses[d["eventId"]]["blockNumber"] > old_head for d in above)
    assert all(statuses[d["eventId"]]["blockNumber"] <= fork_head for d in below)

    # The index rolled back and read the new blocks: the served report is the fresh index's.
    fresh = fresh_report(rig, tmp_path)
    assert fresh["binding"]["block_number"] > old_head
    assert fresh["binding"]["tx_hash"] != before["binding"]["tx_hash"]

    def served_is_fresh() -> bool:
        return comparable(read_when_indexed(rig.http, PROVENANCE)) == fresh

    wait_for("the served report to be the new chain's", served_is_fresh, timeout=15)
    assert comparable(before) != fresh  # the evidence moved with the blocks
    assert rig.http.get("/v1/ready").json()["indexed_block"] == w3.eth.block_number


def test_shipments_after_a_reorganisation_wait_for_the_commissions_it_dropped(rig: Rig) -> None:
    w3 = rig.direct()
    snapshot = rpc(w3, "evm_snapshot", [])
    chains = rig.chains("late", LATE_SHIPMENTS)
    rig.clients.run(*(commission for commission, _ in chains))

    reorganise(w3, snapshot)
    # Shipments of lots the clients saw commissioned, which the chain no longer holds: the relay
    # simulates them before it has noticed the reorganisation.
    for _, ship in chains:
        rig.clients.post(ship)

    everything = [document["eventId"] for chain in chains for document in chain]
    assert_confirmed_exactly_once(rig.http, w3, rig.ledger, everything)
