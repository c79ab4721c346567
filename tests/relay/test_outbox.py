"""The relay's SQLite outbox: an operation is on disk before it is acknowledged, accepting it again
changes nothing, a signer's nonce is held by one live operation at a time, and each operation's
status follows it through batches. No node: the operations are signed for a fixed domain and the
outbox treats their call data as opaque."""

from __future__ import annotations

import time
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from mine2cell.chain.ledger import operation_gas_bound
from mine2cell.errors import InvalidInput
from mine2cell.relay.outbox import Accepted, NewOperation, Outbox, State, StoredTransaction
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import Commission, Domain, LocalSigner, SignedOperation, sign
from tests.chain.ledger_support import ASSAY, CO_HYDROXIDE, PRIMARY, lot_id
from tests.conftest import signer

DOMAIN = Domain(31337, to_checksum_address("0x" + "42" * 20))
DEADLINE = 4_000_000_000
MINE = signer("mine_cd")


def signed_commission(nonce: int, lot: str = "ore", by: LocalSigner = MINE) -> SignedOperation:
    op = Commission(
        actor=by.address,
        nonce=nonce,
        deadline=DEADLINE,
        lot=lot_id(lot),
        material=CO_HYDROXIDE,
        quantity=1000,
        feedstock=PRIMARY,
        footprint=5000,
        document_hash=ASSAY,
    )
    return sign(op, by, DOMAIN)


def row(signed: SignedOperation) -> NewOperation:
    op = signed.operation
    calldata = b"call" + signed.event_id  # opaque to the outbox
    return NewOperation(
        event_id=signed.event_id,
        kind=op.PRIMARY,
        actor=op.actor,
        nonce=op.nonce,
        deadline=op.deadline,
        document=to_document(signed),
        calldata=calldata,
        gas_bound=operation_gas_bound(op, len(calldata)),
    )


def acknowledged(outbox: Outbox, *ops: SignedOperation) -> list[Accepted]:
    results = outbox.accept([row(op) for op in ops])
    assert all(isinstance(r, Accepted) for r in results), results
    return [r for r in results if isinstance(r, Accepted)]


def transaction(name: str, max_fee: int = 2_000_000_000) -> StoredTransaction:
    return StoredTransaction(
        keccak(text=name), b"raw " + name.encode(), max_fee, 10**9, time.time(), None
    )


def submit(outbox: Outbox, *ops: SignedOperation, tx: str = "tx 1") -> int:
    return outbox.create_batch(
        relayer=signer("relayer").address,
        nonce=0,
        gas=1_000_000,
        event_ids=[op.event_id for op in ops],
        transaction=transaction(tx),
    )


def test_accepted_operation_is_on_disk_when_acknowledged(outbox: Outbox, outbox_path: Path) -> None:
    op = signed_commission(0)

    [ack] = acknowledged(outbox, op)

    other = Outbox(outbox_path)  # another connection sees only what was committed
    try:
        status = other.status(op.event_id)
        document, calldata = other.document(op.event_id), other.calldata(op.event_id)
    finally:
        other.close()
    assert ack.stored
    assert status is not None and status == ack.status
    assert (status.kind, status.actor, status.nonce, status.state) == (
        "Commission",
        MINE.address,
        0,
        State.PENDING,
    )
    assert document == to_document(op)
    assert calldata == b"call" + op.event_id


def test_accepting_an_operation_again_stores_nothing_and_says_so(outbox: Outbox) -> None:
    op = signed_commission(0)
    [first] = acknowledged(outbox, op)

    [again] = acknowledged(outbox, op)

    assert (first.stored, again.stored) == (True, False)
    assert again.status == first.status
    assert outbox.counts()[State.PENDING] == 1


def test_accepting_a_submitted_operation_again_leaves_it_submitted(outbox: Outbox) -> None:
    op = signed_commission(0)
    acknowledged(outbox, op)
    submit(outbox, op)

    [again] = acknowledged(outbox, op)

    assert not again.stored
    assert again.status.state is State.SUBMITTED
    assert again.status.tx_hash == keccak(text="tx 1")


def test_operation_reusing_a_held_nonce_is_refused_naming_message_nonce(outbox: Outbox) -> None:
    holder = signed_commission(7, "ore")
    acknowledged(outbox, holder)

    [refused] = outbox.accept([row(signed_commission(7, "other ore"))])

    assert isinstance(refused, InvalidInput)
    assert refused.field == "message.nonce"
    assert "0x" + holder.event_id.hex() in refused.problem
    assert outbox.counts()[State.PENDING] == 1


def test_nonce_of_a_rejected_operation_may_be_signed_again(outbox: Outbox) -> None:
    rejected = signed_commission(7, "ore")
    acknowledged(outbox, rejected)
    outbox.reject({rejected.event_id: ("LedgerLotExists", "lot exists")})

    [ack] = acknowledged(outbox, signed_commission(7, "other ore"))

    assert ack.stored
    assert outbox.reserved_nonces(MINE.address) == {7}


def test_refused_operation_does_not_keep_the_others_of_the_call_out(outbox: Outbox) -> None:
    first, clash, last = signed_commission(1, "a"), signed_commission(1, "b"), signed_commission(2)

    results = outbox.accept([row(first), row(clash), row(last)])

    assert [type(r).__name__ for r in results] == ["Accepted", "InvalidInput", "Accepted"]
    assert outbox.status(clash.event_id) is None
    assert set(outbox.statuses([first.event_id, last.event_id])) == {first.event_id, last.event_id}


def test_statuses_reports_each_known_operation_and_skips_unknown_ones(outbox: Outbox) -> None:
    ops = [signed_commission(n, f"ore {n}") for n in range(600)]  # more than one query's worth
    acknowledged(outbox, *ops)
    unknown = keccak(text="never accepted")

    statuses = outbox.statuses([op.event_id for op in ops] + [unknown])

    assert set(statuses) == {op.event_id for op in ops}
    assert {s.nonce for s in statuses.values()} == set(range(600))
    assert outbox.status(unknown) is None


def test_counts_name_every_state_with_its_number_of_operations(outbox: Outbox) -> None:
    assert outbox.counts() == dict.fromkeys(State, 0)
    ops = [signed_commission(n, f"ore {n}") for n in range(6)]
    acknowledged(outbox, *ops)
    outbox.reject({ops[0].event_id: ("LedgerLotExists", "lot exists")})
    confirmed = submit(outbox, ops[1], ops[2], tx="mined")
    outbox.settle_batch(
        confirmed,
        tx_hash=keccak(text="mined"),
        block_number=5,
        block_hash=keccak(text="block 5"),
        gas_used=100_000,
        failures={1: ("LedgerUnknownLot", "no such lot")},
    )
    submit(outbox, ops[3], tx="in flight")

    assert outbox.counts() == {
        State.PENDING: 2,
        State.SUBMITTED: 1,
        State.CONFIRMED: 1,
        State.REJECTED: 2,
    }
    assert outbox.status(ops[2].event_id).error == "LedgerUnknownLot"  # type: ignore[union-attr]


def test_submitted_status_names_the_latest_transaction_of_its_batch(outbox: Outbox) -> None:
    op = signed_commission(0)
    acknowledged(outbox, op)
    batch_id = submit(outbox, op, tx="first")
    time.sleep(0.01)  # transactions are ordered by the time they were signed

    outbox.add_transaction(batch_id, transaction("replacement", max_fee=3_000_000_000))

    assert outbox.status(op.event_id).tx_hash == keccak(text="replacement")  # type: ignore[union-attr]
    assert [tx.max_fee for tx in outbox.batch(batch_id).transactions] == [2 * 10**9, 3 * 10**9]


def test_pending_takes_the_oldest_operations_that_fit_the_gas_limit(outbox: Outbox) -> None:
    ops = [signed_commission(n, f"ore {n}") for n in range(5)]
    acknowledged(outbox, *ops)
    bound = row(ops[0]).gas_bound

    by_gas = outbox.pending(max_operations=10, max_gas=3 * bound)
    by_count = outbox.pending(max_operations=2, max_gas=100 * bound)

    assert [p.event_id for p in by_gas] == [op.event_id for op in ops[:3]]
    assert [p.event_id for p in by_count] == [op.event_id for op in ops[:2]]


def test_requeued_batch_puts_its_settled_operations_back_to_pending(outbox: Outbox) -> None:
    ops = [signed_commission(n, f"ore {n}") for n in range(2)]
    acknowledged(outbox, *ops)
    batch_id = submit(outbox, *ops)
    outbox.settle_batch(
        batch_id,
        tx_hash=keccak(text="tx 1"),
        block_number=5,
        block_hash=keccak(text="block 5"),
        gas_used=100_000,
        failures={},
    )

    outbox.requeue_batch(batch_id, "dropped", "its block left the chain")

    statuses = outbox.statuses([op.event_id for op in ops])
    assert {(s.state, s.tx_hash, s.block_number) for s in statuses.values()} == {
        (State.PENDING, None, None)
    }
    assert outbox.batches("dropped")[0].id == batch_id
    assert [p.event_id for p in outbox.pending(10, 10**9)] == [op.event_id for op in ops]


def test_requeued_batch_leaves_rejected_a_member_whose_nonce_was_signed_again(
    outbox: Outbox,
) -> None:
    rejected, other = signed_commission(7, "ore"), signed_commission(8, "other ore")
    acknowledged(outbox, rejected, other)
    batch_id = submit(outbox, rejected, other)
    outbox.settle_batch(
        batch_id,
        tx_hash=keccak(text="tx 1"),
        block_number=5,
        block_hash=keccak(text="block 5"),
        gas_used=100_000,
        failures={0: ("LedgerLotInTransit", "in transit")},
    )
    signed_again = signed_commission(7, "ore again")
    acknowledged(outbox, signed_again)

    outbox.requeue_batch(batch_id, "dropped", "its block left the chain")

    status = outbox.status(rejected.event_id)
    assert status is not None
    assert (status.state, status.error, status.tx_hash) == (
        State.REJECTED,
        "LedgerLotInTransit",
        None,
    )
    assert [p.event_id for p in outbox.pending(10, 10**9)] == [
        other.event_id,
        signed_again.event_id,
    ]
