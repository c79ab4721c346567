"""The relay against a real node (anvil): batches confirmed, rejections with their decoded
reasons, the intake's refusals, operations recorded by someone else, batching limits, a nonce
taken behind the relay's back, stuck transactions replaced with higher fees, and blocks that left
the chain. Every test checks the chain's own logs: each operation is recorded exactly once, in the
transaction its status names."""

from __future__ import annotations

import time

import pytest
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from mine2cell.chain.ledger import BATCH_BASE_GAS, Transactor
from mine2cell.errors import InvalidInput
from mine2cell.relay import intake
from mine2cell.relay.outbox import Outbox, State
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import Commission, Domain, LotId, Ship, SignedOperation, sign
from tests.chain.ledger_support import (
    CO_HYDROXIDE,
    PRIMARY,
    commission,
    delivery,
    lot_id,
    ship,
    signed_as,
)
from tests.conftest import TEST_BATCH_GAS, Cast, rpc
from tests.relay.relay_support import (
    accept,
    assert_recorded_exactly_once,
    commissions,
    deliveries,
    new_relay,
    records,
)

pytestmark = pytest.mark.anvil

X, Y = lot_id("x"), lot_id("y")
GWEI = 10**9


def front_run(cast: Cast, op: SignedOperation) -> None:
    """Send ``op`` in a batch of the governor's (who may submit too) with a tip high enough to be
    mined before the relay's pending batch; the relay's simulation did not see it coming."""
    _, raw = Transactor(cast.w3, cast.governor).sign_transaction(
        cast.ledger.address,
        cast.ledger.relay_calldata([cast.ledger.calldata(op)]),
        gas=TEST_BATCH_GAS,
        nonce=cast.w3.eth.get_transaction_count(cast.governor.address),
        max_fee=100 * GWEI,
        priority_fee=50 * GWEI,
    )
    cast.w3.eth.send_raw_transaction(raw)


def commission_with_nonce(cast: Cast, used_by: SignedOperation, lot: LotId) -> SignedOperation:
    """A commission by the Congolese mine with the nonce of another of its operations."""
    op = Commission(
        actor=cast.mine_cd.address,
        nonce=used_by.operation.nonce,
        deadline=used_by.operation.deadline,
        lot=lot,
        material=CO_HYDROXIDE,
        quantity=10,
        feedstock=PRIMARY,
        footprint=0,
        document_hash=bytes(32),
    )
    return sign(op, cast.mine_cd, cast.ledger.domain)


def refused(outbox: Outbox, cast: Cast, op: SignedOperation) -> InvalidInput:
    [result] = intake.accept(outbox, cast.ledger, [(op, b"")])
    assert isinstance(result, InvalidInput), result
    return result


# -- batches ---------------------------------------------------------------------------------------


def test_relay_confirms_every_operation_of_batches_of_many_operations(
    cast: Cast, outbox: Outbox
) -> None:
    ids = accept(outbox, cast.ledger, commissions(cast, 300))
    relay = new_relay(cast, outbox)

    relay.drain()

    assert_recorded_exactly_once(cast.ledger, outbox, ids)
    batches = outbox.batches("mined")
    assert len(batches) > 1
    assert sum(len(b.event_ids) for b in batches) == 300


def test_relay_rejects_an_unknown_lot_and_confirms_the_rest(cast: Cast, outbox: Outbox) -> None:
    good = [commission(cast, X), commission(cast, Y)]
    bad = ship(cast, lot_id("never commissioned"), cast.mine_cd, cast.refiner)
    ids = accept(outbox, cast.ledger, [good[0], bad, good[1]])

    new_relay(cast, outbox).drain()

    status = outbox.status(bad.event_id)
    assert status is not None and status.state is State.REJECTED
    assert status.error == "LedgerUnknownLot"
    assert lot_id("never commissioned").hex() in (status.reason or "")
    assert_recorded_exactly_once(cast.ledger, outbox, [ids[0], ids[2]])
    assert not cast.ledger.nonce_used(cast.mine_cd.address, bad.operation.nonce)


def test_relay_rejects_an_operation_that_fails_only_when_mined_with_the_logged_reason(
    cast: Cast, outbox: Outbox
) -> None:
    cast.ok(commission(cast, X))
    to_refiner = ship(cast, X, cast.mine_cd, cast.refiner)
    other = commission(cast, Y)
    accept(outbox, cast.ledger, [to_refiner, other])
    relay = new_relay(cast, outbox)
    rpc(cast.w3, "evm_setAutomine", [False])
    front_run(cast, ship(cast, X, cast.mine_cd, cast.cathode))
    relay.step(flush=True)
    assert outbox.status(to_refiner.event_id).state is State.SUBMITTED  # type: ignore[union-attr]

    rpc(cast.w3, "evm_mine", [])
    relay.drain()

    status = outbox.status(to_refiner.event_id)
    assert status is not None and status.state is State.REJECTED
    assert status.error == "LedgerLotInTransit"
    assert status.tx_hash == outbox.batches("mined")[0].tx_hash
    assert_recorded_exactly_once(cast.ledger, outbox, [other.event_id])
    assert cast.ledger.lot(X).recipient == cast.cathode.address  # type: ignore[union-attr]


def test_relay_confirms_dependent_operations_in_one_batch(cast: Cast, outbox: Outbox) -> None:
    ids = accept(outbox, cast.ledger, delivery(cast, X, cast.refiner))

    new_relay(cast, outbox).drain()

    assert_recorded_exactly_once(cast.ledger, outbox, ids)
    assert len({s.tx_hash for s in outbox.statuses(ids).values()}) == 1
    assert cast.ledger.lot(X).custodian == cast.refiner.address  # type: ignore[union-attr]


# -- intake ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed_for", ["another key", "another chain", "another ledger"])
def test_intake_refuses_a_signature_that_is_not_the_actors_for_this_ledger(
    cast: Cast, outbox: Outbox, signed_for: str
) -> None:
    op = commission(cast, X).operation
    domain = cast.ledger.domain
    if signed_for == "another key":
        signed = signed_as(op, cast.mine_au, domain)
    elif signed_for == "another chain":
        signed = sign(op, cast.mine_cd, Domain(domain.chain_id + 1, domain.verifying_contract))
    else:
        signed = sign(op, cast.mine_cd, Domain(domain.chain_id, cast.governor.address))

    error = refused(outbox, cast, signed)

    assert error.field == "signature"
    assert outbox.counts() == dict.fromkeys(State, 0)


def test_intake_refuses_an_operation_whose_deadline_passed(cast: Cast, outbox: Outbox) -> None:
    op = cast.sign(
        Ship, cast.mine_cd, deadline=int(time.time()) - 1, lot=X, recipient=cast.refiner.address
    )

    error = refused(outbox, cast, op)

    assert error.field == "deadline"
    assert "passed" in error.problem


def test_intake_refuses_an_operation_expiring_too_soon_to_be_mined(
    cast: Cast, outbox: Outbox
) -> None:
    soon = cast.sign(
        Ship,
        cast.mine_cd,
        deadline=int(time.time()) + intake.MIN_REMAINING_VALIDITY_SECONDS // 2,
        lot=X,
        recipient=cast.refiner.address,
    )

    error = refused(outbox, cast, soon)

    assert error.field == "deadline"
    assert "too close" in error.problem


def test_intake_refuses_a_document_prepared_for_another_ledger_naming_event_id(
    cast: Cast, outbox: Outbox
) -> None:
    op = commission(cast, X).operation
    elsewhere = sign(op, cast.mine_cd, Domain(cast.ledger.domain.chain_id, cast.governor.address))

    with pytest.raises(InvalidInput) as refusal:
        intake.accept_document(outbox, cast.ledger, to_document(elsewhere))

    assert refusal.value.field == "eventId"
    assert outbox.counts() == dict.fromkeys(State, 0)


# -- recorded elsewhere ----------------------------------------------------------------------------


def test_relay_reports_an_operation_another_relay_recorded_as_confirmed_in_its_transaction(
    cast: Cast, outbox: Outbox
) -> None:
    op = commission(cast, X)
    elsewhere = cast.ok(op)
    accept(outbox, cast.ledger, [op])

    new_relay(cast, outbox).drain()

    status = outbox.status(op.event_id)
    assert status is not None and status.state is State.CONFIRMED
    assert status.tx_hash == elsewhere.tx_hash
    assert status.block_number == elsewhere.block_number
    assert_recorded_exactly_once(cast.ledger, outbox, [op.event_id])
    assert outbox.batches("mined") == []


def test_relay_rejects_an_operation_whose_nonce_another_operation_used(
    cast: Cast, outbox: Outbox
) -> None:
    used = commission(cast, X)
    cast.ok(used)
    replay = commission_with_nonce(cast, used, Y)
    accept(outbox, cast.ledger, [replay])

    new_relay(cast, outbox).drain()

    status = outbox.status(replay.event_id)
    assert status is not None and status.state is State.REJECTED
    assert status.error == "LedgerNonceUsed"
    assert replay.event_id not in records(cast.ledger)


# -- batching limits -------------------------------------------------------------------------------


def test_relay_sends_batches_of_at_most_max_operations(cast: Cast, outbox: Outbox) -> None:
    ids = accept(outbox, cast.ledger, commissions(cast, 10))

    new_relay(cast, outbox, max_operations=4).drain()

    assert [len(b.event_ids) for b in outbox.batches("mined")] == [4, 4, 2]
    assert len({s.tx_hash for s in outbox.statuses(ids).values()}) == 3
    assert_recorded_exactly_once(cast.ledger, outbox, ids)


def test_relay_fills_batches_up_to_max_gas(cast: Cast, outbox: Outbox) -> None:
    ids = accept(outbox, cast.ledger, commissions(cast, 7))
    bound = outbox.pending(1, 2**62)[0].gas_bound

    new_relay(cast, outbox, max_gas=3 * bound + bound // 2).drain()

    batches = outbox.batches("mined")
    assert [len(b.event_ids) for b in batches] == [3, 3, 1]
    assert [b.gas for b in batches] == [BATCH_BASE_GAS + n * bound for n in (3, 3, 1)]
    assert_recorded_exactly_once(cast.ledger, outbox, ids)


# -- the relayer's nonce and fees ------------------------------------------------------------------


def test_relay_resyncs_its_nonce_after_a_transaction_sent_behind_its_back(
    cast: Cast, outbox: Outbox
) -> None:
    earlier = accept(outbox, cast.ledger, commissions(cast, 2, "earlier"))
    relay = new_relay(cast, outbox)
    relay.drain()
    taken = cast.w3.eth.get_transaction_count(cast.relayer.address)
    Transactor(cast.w3, cast.relayer).send(cast.relayer.address, b"", gas=21_000)
    later = accept(outbox, cast.ledger, commissions(cast, 2, "later"))

    relay.drain()

    assert [b.nonce for b in outbox.batches("dropped")] == [taken]
    assert outbox.batches("mined")[-1].nonce == taken + 1
    assert_recorded_exactly_once(cast.ledger, outbox, earlier + later)


def test_relay_replaces_a_stuck_transaction_with_higher_fees_and_records_it_once(
    cast: Cast, outbox: Outbox
) -> None:
    ids = accept(outbox, cast.ledger, commissions(cast, 3))
    relay = new_relay(cast, outbox, replace_after=0.2)
    rpc(cast.w3, "evm_setAutomine", [False])
    relay.step(flush=True)
    [batch] = outbox.batches("sending")
    for _ in range(10):
        if len(outbox.batch(batch.id).transactions) > 1:
            break
        relay.step()
    original, replacement = outbox.batch(batch.id).transactions

    rpc(cast.w3, "evm_mine", [])
    relay.drain()

    assert replacement.max_fee * 100 >= original.max_fee * 110
    assert replacement.priority_fee * 100 >= original.priority_fee * 110
    assert outbox.batch(batch.id).tx_hash == replacement.tx_hash
    with pytest.raises(TransactionNotFound):
        cast.w3.eth.get_transaction_receipt(HexBytes(original.tx_hash))
    assert_recorded_exactly_once(cast.ledger, outbox, ids)
    assert {s.tx_hash for s in outbox.statuses(ids).values()} == {replacement.tx_hash}


# -- blocks that leave the chain -------------------------------------------------------------------


def test_relay_records_again_the_operations_of_a_block_that_left_the_chain(
    cast: Cast, outbox: Outbox
) -> None:
    ids = accept(outbox, cast.ledger, deliveries(cast, 2))
    relay = new_relay(cast, outbox, reconcile_every=0)
    before = rpc(cast.w3, "evm_snapshot", [])
    relay.drain()
    [lost] = outbox.batches("mined")
    rpc(cast.w3, "evm_revert", [before])
    assert not set(ids) & set(records(cast.ledger))

    relay.step()
    relay.drain()

    assert [b.id for b in outbox.batches("dropped")] == [lost.id]
    [again] = outbox.batches("mined")
    # Same operations, nonce and fees on the same parent block: the very same transaction, which
    # the new batch must own (it is the one to follow and settle).
    assert again.tx_hash == lost.tx_hash
    assert_recorded_exactly_once(cast.ledger, outbox, ids)


def test_a_batch_sent_after_blocks_that_left_the_chain_is_sent_again_behind_them(
    cast: Cast, outbox: Outbox
) -> None:
    # A node restarted from older state: the relay's mined batch is gone, unseen, and the next
    # batch goes out at the relay's next nonce, one above any the node will reach.
    first = accept(outbox, cast.ledger, commissions(cast, 2, "first"))
    relay = new_relay(cast, outbox, reconcile_every=3600)
    before = rpc(cast.w3, "evm_snapshot", [])
    relay.drain()
    rpc(cast.w3, "evm_revert", [before])
    second = accept(outbox, cast.ledger, commissions(cast, 2, "second"))
    relay.step(flush=True)
    [sending] = outbox.batches("sending")
    assert sending.nonce > cast.w3.eth.get_transaction_count(cast.relayer.address)

    relay.reconcile_soon()
    relay.wait_for(first + second, timeout=20)

    assert sending.id in [b.id for b in outbox.batches("dropped")]
    assert_recorded_exactly_once(cast.ledger, outbox, first + second)


def test_relay_follows_a_batch_rebuilt_into_the_same_transaction_until_it_is_mined(
    cast: Cast, outbox: Outbox
) -> None:
    ids = accept(outbox, cast.ledger, deliveries(cast, 2))
    relay = new_relay(cast, outbox, reconcile_every=0)
    before = rpc(cast.w3, "evm_snapshot", [])
    relay.drain()
    [lost] = outbox.batches("mined")
    rpc(cast.w3, "evm_revert", [before])
    rpc(cast.w3, "evm_setAutomine", [False])
    relay.step(flush=True)  # requeues the lost batch and sends it again: not mined yet
    [rebuilt] = outbox.batches("sending")
    assert [tx.tx_hash for tx in rebuilt.transactions] == [lost.tx_hash]

    relay.step()
    rpc(cast.w3, "evm_mine", [])
    relay.drain()

    assert outbox.batch(rebuilt.id).state == "mined"
    assert_recorded_exactly_once(cast.ledger, outbox, ids)


def test_relay_records_again_an_operation_recorded_elsewhere_whose_block_left_the_chain(
    cast: Cast, outbox: Outbox
) -> None:
    op = commission(cast, X)
    relay = new_relay(cast, outbox, reconcile_every=0)
    before = rpc(cast.w3, "evm_snapshot", [])
    elsewhere = cast.ok(op)
    accept(outbox, cast.ledger, [op])
    relay.drain()
    assert outbox.status(op.event_id).tx_hash == elsewhere.tx_hash  # type: ignore[union-attr]
    rpc(cast.w3, "evm_revert", [before])

    relay.step()
    relay.drain()

    [mined] = outbox.batches("mined")
    assert outbox.status(op.event_id).tx_hash == mined.tx_hash  # type: ignore[union-attr]
    assert_recorded_exactly_once(cast.ledger, outbox, [op.event_id])


def test_relay_keeps_rejected_an_operation_whose_nonce_was_used_again_when_its_block_is_lost(
    cast: Cast, outbox: Outbox
) -> None:
    cast.ok(commission(cast, X))
    to_refiner = ship(cast, X, cast.mine_cd, cast.refiner)
    accept(outbox, cast.ledger, [to_refiner])
    relay = new_relay(cast, outbox, reconcile_every=0)
    before = rpc(cast.w3, "evm_snapshot", [])
    rpc(cast.w3, "evm_setAutomine", [False])
    front_run(cast, ship(cast, X, cast.mine_cd, cast.cathode))
    relay.step(flush=True)
    rpc(cast.w3, "evm_mine", [])
    relay.drain()
    assert outbox.status(to_refiner.event_id).error == "LedgerLotInTransit"  # type: ignore[union-attr]
    # The rejected shipment left its nonce unused: the mine signs another operation with it,
    # which the outbox accepts.
    again = commission_with_nonce(cast, to_refiner, Y)
    accept(outbox, cast.ledger, [again])
    rpc(cast.w3, "evm_setAutomine", [True])
    rpc(cast.w3, "evm_revert", [before])  # the block of the rejection leaves the chain

    relay.step()
    relay.drain()

    status = outbox.status(to_refiner.event_id)
    assert status is not None and (status.state, status.tx_hash) == (State.REJECTED, None)
    assert_recorded_exactly_once(cast.ledger, outbox, [again.event_id])
