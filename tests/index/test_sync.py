"""Following a real ledger on anvil into a store: what the store answers after a sync, re-runs,
confirmations, paging, progress, following, and reorganisations undone to the fork point (checked
against a fresh store synced from scratch on the new chain)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from web3 import Web3

from mine2cell.chain.ledger import BatchResult
from mine2cell.chain.node import DevNode
from mine2cell.errors import ConfigurationError
from mine2cell.index.store import SqliteStore, Store
from mine2cell.index.sync import REORG_WINDOW, Indexer, SyncResult
from mine2cell.provenance.documents import passport_document
from mine2cell.provenance.engine import passport_provenance
from mine2cell.provenance.model import Consumed, LotNode, Produced
from mine2cell.signing.eip712 import (
    Attest,
    BindPassport,
    Correct,
    Input,
    Output,
    PassportId,
    Receive,
    Ship,
    SignedOperation,
    Transform,
)
from tests.chain.ledger_support import (
    CAM_NMC,
    CO_HYDROXIDE,
    INCORRECT_DATA,
    LI_CARBONATE,
    PASS,
    delivery,
    lot_id,
    passport_id,
)
from tests.conftest import MINE, TEST_BATCH_GAS, Cast, build_cast, facility, rpc

pytestmark = pytest.mark.anvil

ORE_CD, ORE_AU, CAM = lot_id("index ore cd"), lot_id("index ore au"), lot_id("index cathode")
PASSPORT, OTHER_PASSPORT = passport_id("index 1"), passport_id("index 2")

StoreFactory = Callable[[], SqliteStore]


# -- fixtures: a node of these tests' own, the cast on it reverted after each test ---------------


@pytest.fixture(scope="session")
def index_node() -> Iterator[DevNode]:
    with DevNode() as node:
        yield node


@pytest.fixture(scope="session")
def index_session_cast(index_node: DevNode) -> Cast:
    return build_cast(Web3(Web3.HTTPProvider(index_node.url)))


def _reset_nonces(cast: Cast) -> None:
    cast.ledger._next_nonce.clear()
    assert cast.ledger.transactor is not None
    cast.ledger.transactor.resync_nonce()


@pytest.fixture
def cast(index_session_cast: Cast) -> Iterator[Cast]:
    """The cast on the index tests' node, reverted after the test."""
    w3 = index_session_cast.w3
    snapshot = rpc(w3, "evm_snapshot", [])
    try:
        yield index_session_cast
    finally:
        rpc(w3, "evm_revert", [snapshot])
        _reset_nonces(index_session_cast)


@pytest.fixture
def new_store(tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens empty stores, each in a file of its own, closed after the test."""
    opened: list[SqliteStore] = []

    def factory() -> SqliteStore:
        opened.append(SqliteStore(tmp_path / f"index-{len(opened)}.sqlite"))
        return opened[-1]

    yield factory
    for opened_store in opened:
        opened_store.close()


@pytest.fixture
def store(new_store: StoreFactory) -> SqliteStore:
    return new_store()


# -- recording on the ledger, one block per helper -----------------------------------------------


def indexer(cast: Cast, store: Store, **options: Any) -> Indexer:
    return Indexer(cast.w3, cast.ledger.address, store, **options)


def head(cast: Cast) -> int:
    return cast.w3.eth.block_number


def take_snapshot(cast: Cast) -> str:
    return str(rpc(cast.w3, "evm_snapshot", []))


def revert(cast: Cast, snapshot: str) -> None:
    """Back to the snapshot: the blocks mined since leave the chain."""
    assert rpc(cast.w3, "evm_revert", [snapshot]) is True
    _reset_nonces(cast)


def mine_empty_blocks(cast: Cast, count: int) -> None:
    rpc(cast.w3, "anvil_mine", [hex(count)])


def deliver_ores(cast: Cast) -> SignedOperation:
    """Both mines' ores commissioned and delivered to the refiner; the Congolese commission."""
    congolese = delivery(cast, ORE_CD, cast.refiner, material=CO_HYDROXIDE, quantity=1000)
    australian = delivery(
        cast, ORE_AU, cast.refiner, by=cast.mine_au, material=LI_CARBONATE, quantity=2000
    )
    cast.ok(*congolese, *australian)
    return congolese[0]


def refine(cast: Cast, congolese: int = 600, output: int = 2400) -> SignedOperation:
    """The refiner turns both ores into cathode material and ships it to the cell maker, who
    receives it."""
    transform = cast.sign(
        Transform,
        cast.refiner,
        inputs=(Input(ORE_CD, congolese), Input(ORE_AU, 2000)),
        outputs=(Output(CAM, CAM_NMC, output, keccak(text="cam assay")),),
        footprint=700,
    )
    cast.ok(
        transform,
        cast.sign(Ship, cast.refiner, lot=CAM, recipient=cast.cell.address),
        cast.sign(Receive, cast.cell, lot=CAM, counterparty=cast.refiner.address),
    )
    return transform


def bind(cast: Cast, passport: PassportId = PASSPORT, quantity: int = 1000) -> SignedOperation:
    binding = cast.sign(
        BindPassport, cast.cell, passport=passport, inputs=(Input(CAM, quantity),), footprint=900
    )
    cast.ok(binding)
    return binding


def attest(cast: Cast, passport: PassportId = PASSPORT) -> BatchResult:
    return cast.ok(
        cast.sign(
            Attest,
            cast.auditor,
            passport=passport,
            verdict=PASS,
            report_hash=keccak(text="audit report"),
        )
    )


def correct(cast: Cast, wrong: SignedOperation) -> SignedOperation:
    """The author declares its own event erroneous, proving authorship."""
    correction = cast.sign(
        Correct, cast.mine_cd, target=wrong.event_id, reason=INCORRECT_DATA, corrective=()
    )
    result = cast.ledger.relay(
        [cast.ledger.calldata(correction, wrong.operation.encode_data())], gas=TEST_BATCH_GAS
    )
    assert result.failed == {}, result.failed
    return correction


def supply_chain(cast: Cast) -> dict[str, SignedOperation]:
    """Ores delivered, refined, bound to a passport, the passport attested, the Congolese
    commission corrected: five blocks."""
    commission = deliver_ores(cast)
    transform = refine(cast)
    binding = bind(cast)
    attest(cast)
    correction = correct(cast, commission)
    return {
        "commission": commission,
        "transform": transform,
        "bind": binding,
        "correct": correction,
    }


def assert_same_answers_as_a_fresh_sync(cast: Cast, store: Store, new_store: StoreFactory) -> None:
    fresh = new_store()
    indexer(cast, fresh).sync()
    assert store.counts() == fresh.counts()
    assert store.checkpoint() == fresh.checkpoint()
    assert store.passports() == fresh.passports()
    for passport in {PASSPORT, OTHER_PASSPORT}:
        assert store.upstream(passport) == fresh.upstream(passport)
    assert store.downstream([ORE_CD, ORE_AU]) == fresh.downstream([ORE_CD, ORE_AU])


# -- what a sync stores --------------------------------------------------------------------------


def test_sync_indexes_the_lots_with_their_quantities_and_origins(cast: Cast, store: Store) -> None:
    ops = supply_chain(cast)

    indexer(cast, store).sync()

    graph = store.upstream(PASSPORT)
    assert graph is not None
    congolese, australian = graph.lots[ORE_CD], graph.lots[ORE_AU]
    assert (congolese.material, congolese.quantity) == (CO_HYDROXIDE, 1000)
    assert (australian.material, australian.quantity) == (LI_CARBONATE, 2000)
    assert congolese.origin is not None and australian.origin is not None
    assert (congolese.origin.country, congolese.origin.facility) == (
        "CD",
        facility("KOLWEZI-NORTH"),
    )
    assert (australian.origin.country, australian.origin.facility) == (
        "AU",
        facility("MURRIN-EAST"),
    )
    assert congolese.origin.event.event_id == ops["commission"].event_id
    assert congolese.origin.event.actor == cast.mine_cd.address
    assert graph.lots[CAM] == LotNode(CAM, CAM_NMC, 2400, produced_by=ops["transform"].event_id)


def test_sync_indexes_the_steps_with_the_quantities_they_consumed(cast: Cast, store: Store) -> None:
    ops = supply_chain(cast)

    indexer(cast, store).sync()

    graph = store.upstream(PASSPORT)
    assert graph is not None
    transform, binding = graph.steps[ops["transform"].event_id], graph.steps[ops["bind"].event_id]
    assert transform.inputs == (Consumed(ORE_CD, 600), Consumed(ORE_AU, 2000))
    assert transform.outputs == (Produced(CAM, CAM_NMC, 2400, keccak(text="cam assay")),)
    assert (transform.kind, transform.footprint, transform.event.actor) == (
        "transform",
        700,
        cast.refiner.address,
    )
    assert binding.inputs == (Consumed(CAM, 1000),)
    assert (binding.kind, binding.passport, binding.footprint) == ("bind", PASSPORT, 900)
    assert graph.passports == {PASSPORT: ops["bind"].event_id}


def test_sync_indexes_custody_corrections_attestations_and_participants(
    cast: Cast, store: Store
) -> None:
    ops = supply_chain(cast)
    # The refiner ships the rest of the Congolese ore on, and it is not received yet.
    cast.ok(cast.sign(Ship, cast.refiner, lot=ORE_CD, recipient=cast.cell.address))

    indexer(cast, store).sync()

    graph = store.upstream(PASSPORT)
    assert graph is not None
    assert store.counts()["handoffs"] == 7
    assert [(h.kind, h.sender, h.recipient) for h in graph.handoffs[ORE_CD]] == [
        ("ship", cast.refiner.address, cast.cell.address)
    ]
    assert ORE_AU not in graph.handoffs and CAM not in graph.handoffs  # received
    [correction] = graph.corrections[ops["commission"].event_id]
    assert (correction.reason, correction.event.event_id, correction.event.actor) == (
        INCORRECT_DATA,
        ops["correct"].event_id,
        cast.mine_cd.address,
    )
    [attestation] = graph.attestations[PASSPORT]
    assert (attestation.verdict, attestation.event.actor) == (PASS, cast.auditor.address)
    mine = graph.participants[cast.mine_cd.address]
    assert [change.roles for change in mine.role_changes] == [MINE]
    assert (mine.country, mine.facility) == ("CD", facility("KOLWEZI-NORTH"))
    [rmap] = graph.participants[cast.refiner.address].certifications
    assert rmap.scheme == facility("RMAP")


def test_sync_evidence_is_the_block_and_transaction_on_chain(cast: Cast, store: Store) -> None:
    deliver_ores(cast)
    refine(cast)
    binding = bind(cast)
    block = cast.w3.eth.get_block(head(cast))

    indexer(cast, store).sync()

    graph = store.upstream(PASSPORT)
    assert graph is not None
    event = graph.steps[binding.event_id].event
    assert (event.block_number, event.block_hash, event.timestamp) == (
        block["number"],
        bytes(block["hash"]),
        block["timestamp"],
    )
    assert event.tx_hash == bytes(cast.w3.eth.get_transaction_by_block(block["number"], 0)["hash"])


def test_sync_again_stores_nothing_new(cast: Cast, store: Store) -> None:
    supply_chain(cast)
    index = indexer(cast, store)
    first = index.sync()
    counts = store.counts()

    again = index.sync()

    assert first.stored == sum(counts.values()) > 0
    assert (again.logs, again.stored, again.rolled_back_to) == (0, 0, None)
    assert store.counts() == counts


def test_a_second_indexer_on_an_indexed_store_stores_nothing_new(cast: Cast, store: Store) -> None:
    supply_chain(cast)
    indexer(cast, store).sync()
    counts = store.counts()

    again = indexer(cast, store).sync()

    assert again.stored == 0
    assert store.counts() == counts


def test_sync_after_new_events_stores_only_those(cast: Cast, store: Store) -> None:
    deliver_ores(cast)
    refine(cast)
    index = indexer(cast, store)
    index.sync()
    before = store.counts()

    bind(cast)
    result = index.sync()

    assert result.stored == 2  # the binding and its one consumption
    assert store.counts() == {
        **before,
        "steps": before["steps"] + 1,
        "consumptions": before["consumptions"] + 1,
    }


def test_start_block_leaves_the_earlier_blocks_out(cast: Cast, store: Store) -> None:
    start = head(cast) + 1
    deliver_ores(cast)

    result = indexer(cast, store, start_block=start).sync()

    assert result.from_block == start
    counts = store.counts()
    assert (counts["participant_changes"], counts["certifications"]) == (0, 0)
    assert counts["commissions"] == 2


def test_sync_to_a_block_indexes_up_to_that_block(cast: Cast, store: Store) -> None:
    deliver_ores(cast)
    delivered = head(cast)
    refine(cast)

    result = indexer(cast, store).sync(to_block=delivered)

    assert result.to_block == delivered
    checkpoint = store.checkpoint()
    assert checkpoint is not None and checkpoint.block_number == delivered
    assert store.counts()["steps"] == 0


# -- confirmations, pages, progress --------------------------------------------------------------


def test_confirmations_leave_the_last_blocks_unindexed(cast: Cast, store: Store) -> None:
    deliver_ores(cast)
    refine(cast)
    bind(cast)  # head - 1
    attest(cast)  # head

    result = indexer(cast, store, confirmations=2).sync()

    assert result.to_block == head(cast) - 2
    checkpoint = store.checkpoint()
    assert checkpoint is not None and checkpoint.block_number == head(cast) - 2
    assert store.passports() == []
    assert store.counts()["attestations"] == 0
    assert store.counts()["productions"] == 1


def test_the_lag_is_the_blocks_between_the_head_and_the_checkpoint(
    cast: Cast, store: Store
) -> None:
    deliver_ores(cast)
    index = indexer(cast, store, confirmations=3)

    index.sync()

    assert index.lag() == 3


def test_a_later_sync_picks_up_the_blocks_left_for_confirmations(cast: Cast, store: Store) -> None:
    deliver_ores(cast)
    refine(cast)
    bind(cast)
    attest(cast)
    last_event_block = head(cast)
    index = indexer(cast, store, confirmations=2)
    index.sync()

    mine_empty_blocks(cast, 2)
    result = index.sync()

    assert result.to_block == last_event_block
    assert store.passports() == [PASSPORT]
    assert store.counts()["attestations"] == 1


def test_small_pages_index_the_same_as_one_page(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    supply_chain(cast)
    one_page = new_store()
    indexer(cast, one_page).sync()

    result = indexer(cast, store, page_blocks=2).sync()

    assert result.stored == sum(one_page.counts().values())
    assert store.counts() == one_page.counts()
    assert store.checkpoint() == one_page.checkpoint()
    assert store.upstream(PASSPORT) == one_page.upstream(PASSPORT)


def test_progress_is_reported_after_each_page_with_increasing_blocks(
    cast: Cast, store: Store
) -> None:
    supply_chain(cast)
    target = head(cast)
    calls: list[tuple[int, int, int]] = []

    indexer(cast, store, page_blocks=3).sync(lambda *call: calls.append(call))

    ends = [end for _, end, _ in calls]
    assert ends == sorted(set(ends))
    assert ends[-1] == target
    assert len(calls) == -(-(target + 1) // 3)  # pages of 3 blocks from block 0
    assert {(first, goal) for first, _, goal in calls} == {(0, target)}


# -- following -----------------------------------------------------------------------------------


def test_follow_keeps_the_store_current_until_stopped(cast: Cast, store: Store) -> None:
    stop = threading.Event()
    errors: list[Exception] = []
    index = indexer(cast, store)
    follower = threading.Thread(target=index.follow, args=(stop, 0.02, errors.append))
    follower.start()
    try:
        supply_chain(cast)
        deadline = time.monotonic() + 10
        while store.counts()["corrections"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        follower.join(5)

    assert not follower.is_alive()
    assert errors == []
    assert store.passports() == [PASSPORT]
    assert store.counts()["corrections"] == 1


def test_the_indexer_refuses_a_node_that_is_not_reached_over_http(store: Store) -> None:
    w3 = Web3(Web3.IPCProvider("/nonexistent/node.ipc"))

    with pytest.raises(ConfigurationError, match="over HTTP"):
        Indexer(w3, "0x" + "11" * 20, store)


# -- reorganisations -----------------------------------------------------------------------------


def _synced_past_a_snapshot(cast: Cast, store: Store, **options: Any) -> tuple[Indexer, int, str]:
    """Index the delivered ores, take a snapshot there (the fork point) and index a refining and
    a binding recorded after it; return the indexer, the fork point and the snapshot."""
    deliver_ores(cast)
    index = indexer(cast, store, **options)
    index.sync()
    fork = head(cast)
    snapshot = take_snapshot(cast)
    refine(cast)
    bind(cast)
    index.sync()
    return index, fork, snapshot


def _record_other_events(cast: Cast) -> None:
    """Different events at the same block numbers: less refined, another passport."""
    refine(cast, congolese=300, output=2100)
    bind(cast, OTHER_PASSPORT, quantity=700)


def test_sync_after_a_reorg_rolls_back_to_the_fork_point(cast: Cast, store: Store) -> None:
    index, fork, snapshot = _synced_past_a_snapshot(cast, store)
    revert(cast, snapshot)
    _record_other_events(cast)

    result = index.sync()

    assert result.rolled_back_to == fork
    assert result.from_block == fork + 1


def test_after_a_reorg_the_store_answers_like_a_fresh_sync_of_the_new_chain(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    index, _, snapshot = _synced_past_a_snapshot(cast, store)
    revert(cast, snapshot)
    _record_other_events(cast)

    index.sync()

    assert store.upstream(PASSPORT) is None
    graph = store.upstream(OTHER_PASSPORT)
    assert graph is not None and graph.lots[CAM].quantity == 2100
    assert_same_answers_as_a_fresh_sync(cast, store, new_store)


def test_a_reorg_deeper_than_the_last_page_rolls_back_to_the_fork_point(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    deliver_ores(cast)
    index = indexer(cast, store, page_blocks=1)
    index.sync()
    fork = head(cast)
    snapshot = take_snapshot(cast)
    refine(cast)
    index.sync()
    bind(cast)
    mine_empty_blocks(cast, 2)
    index.sync()  # its pages start two blocks above the fork
    revert(cast, snapshot)
    _record_other_events(cast)

    result = index.sync()

    assert result.rolled_back_to == fork
    assert_same_answers_as_a_fresh_sync(cast, store, new_store)


def test_a_reorg_deeper_than_the_reorg_window_is_found_further_back(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    # One block a page: every block is stored, and more than a window's worth above the fork.
    deliver_ores(cast)
    index = indexer(cast, store, page_blocks=1)
    index.sync()
    fork = head(cast)
    snapshot = take_snapshot(cast)
    refine(cast)
    mine_empty_blocks(cast, REORG_WINDOW + 6)
    bind(cast)
    index.sync()
    assert len(store.stored_blocks(head(cast), 10**6)) - len(store.stored_blocks(fork, 10**6)) > (
        REORG_WINDOW
    )
    revert(cast, snapshot)
    _record_other_events(cast)

    result = index.sync()

    assert result.rolled_back_to == fork
    assert_same_answers_as_a_fresh_sync(cast, store, new_store)


def test_blocks_removed_from_the_chain_are_rolled_back(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    index, fork, snapshot = _synced_past_a_snapshot(cast, store)
    revert(cast, snapshot)  # and nothing mined since

    result = index.sync()

    assert result.rolled_back_to == fork
    assert store.passports() == []
    assert_same_answers_as_a_fresh_sync(cast, store, new_store)


def test_new_events_after_removed_blocks_are_indexed_like_a_fresh_sync(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    index, _, snapshot = _synced_past_a_snapshot(cast, store)
    revert(cast, snapshot)
    index.sync()
    _record_other_events(cast)

    result = index.sync()

    assert result.rolled_back_to is None
    assert store.passports() == [OTHER_PASSPORT]
    assert_same_answers_as_a_fresh_sync(cast, store, new_store)


def _reorganised_between_pages(cast: Cast, store: Store) -> tuple[Indexer, int, SyncResult]:
    """A sync, one block a page, during which the chain is reorganised just after the pages
    holding the refining and the binding were ingested: its later pages come from the new chain.
    Returns the indexer, the fork point and that sync's result."""
    deliver_ores(cast)
    index = indexer(cast, store, page_blocks=1)
    index.sync()
    fork = head(cast)
    snapshot = take_snapshot(cast)
    refine(cast)
    bind(cast)
    mine_empty_blocks(cast, 3)
    reorganised: list[int] = []

    def reorganise_once(first: int, end: int, target: int) -> None:
        if end == fork + 2 and not reorganised:
            revert(cast, snapshot)
            _record_other_events(cast)
            mine_empty_blocks(cast, 3)  # the same height again
            reorganised.append(end)

    result = index.sync(reorganise_once)
    assert reorganised
    return index, fork, result


def test_a_reorg_during_a_sync_is_rolled_back_to_the_fork_by_that_sync(
    cast: Cast, store: Store
) -> None:
    _, fork, result = _reorganised_between_pages(cast, store)

    assert result.rolled_back_to == fork
    assert store.passports() == [OTHER_PASSPORT]


def test_after_a_reorg_during_a_sync_the_next_sync_answers_like_a_fresh_sync(
    cast: Cast, store: Store, new_store: StoreFactory
) -> None:
    index, _, _ = _reorganised_between_pages(cast, store)

    index.sync()

    assert store.passports() == [OTHER_PASSPORT]
    assert_same_answers_as_a_fresh_sync(cast, store, new_store)


def test_a_passport_document_is_computed_once_then_served_until_an_event_changes_it(
    cast: Cast, store: Store
) -> None:
    deliver_ores(cast)
    refine(cast)
    bind(cast)
    indexer(cast, store).sync()
    high_risk = frozenset({"CD"})

    first = passport_document(store, PASSPORT, high_risk_countries=high_risk)
    served = passport_document(store, PASSPORT, high_risk_countries=high_risk)
    other_list = passport_document(store, PASSPORT, high_risk_countries=frozenset())
    graph = store.upstream(PASSPORT)
    assert graph is not None
    fresh = passport_provenance(graph, PASSPORT, high_risk_countries=high_risk).to_json()
    attest(cast)
    indexer(cast, store).sync()
    attested = passport_document(store, PASSPORT, high_risk_countries=high_risk)

    assert first is not None and served == first
    assert first is not None and {**json.loads(first), "as_of": None} == {
        **json.loads(json.dumps(fresh)),
        "as_of": None,
    }
    assert other_list is not None and json.loads(other_list)["flags"] != json.loads(first)["flags"]
    assert attested is not None and len(json.loads(attested)["attestations"]) == 1
    assert json.loads(first)["attestations"] == []
    assert passport_document(store, keccak(text="unbound"), high_risk_countries=high_risk) is None
