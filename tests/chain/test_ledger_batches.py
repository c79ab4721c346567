"""Ledger contract: relayed batches (each operation rolled back alone, outcomes predicted by a
simulation) and the read-only views."""

from __future__ import annotations

from typing import Any

import pytest

from mine2cell.chain.ledger import LedgerClient, LotView
from mine2cell.chain.revert import decode_revert
from mine2cell.errors import LedgerRejected, Mine2CellError
from mine2cell.signing.eip712 import Commission, Input, Output, Revoke, Transform, sign
from tests.chain.ledger_support import (
    ASSAY,
    CO_HYDROXIDE,
    PRIMARY,
    commission,
    delivery,
    lot_id,
    reason,
    receive,
    ship,
)
from tests.conftest import TEST_BATCH_GAS, Cast

X, Y, Z = lot_id("x"), lot_id("y"), lot_id("z")
NOT_AN_OPERATION = b""  # no function has an empty selector: the call reverts without data


def reasons(outcomes: list[Mine2CellError | None]) -> list[tuple[str, dict[str, Any]] | None]:
    return [None if outcome is None else reason(outcome) for outcome in outcomes]


def test_batch_records_the_operations_around_a_failing_one(cast: Cast) -> None:
    first = commission(cast, X)
    failing = ship(cast, Y, cast.mine_cd, cast.refiner)  # Y does not exist yet
    last = commission(cast, Z)

    result = cast.ledger.relay([first, failing, last], gas=TEST_BATCH_GAS)

    assert reasons(result.outcomes) == [None, ("LedgerUnknownLot", {"lot": Y}), None]
    assert cast.ledger.lot(X) is not None and cast.ledger.lot(Z) is not None
    assert not cast.ledger.nonce_used(cast.mine_cd.address, failing.operation.nonce)
    events = cast.events(result)
    assert [name for name, _ in events] == ["LotCommissioned", "OperationFailed", "LotCommissioned"]
    failed = events[1][1]
    assert failed["index"] == 1
    assert reason(decode_revert(failed["reason"])) == ("LedgerUnknownLot", {"lot": Y})


def test_simulation_predicts_exactly_the_outcomes_of_the_batch(cast: Cast) -> None:
    cast.ok(commission(cast, X))
    batch = [
        commission(cast, Y),
        commission(cast, X),  # exists
        ship(cast, Y, cast.mine_cd, cast.refiner),
        ship(cast, Y, cast.mine_cd, cast.cathode),  # in transit since the previous operation
        commission(cast, Z, by=cast.refiner),  # not a mine
        receive(cast, Y, cast.refiner, cast.mine_cd),
    ]

    predicted = cast.ledger.simulate(batch)
    result = cast.ledger.relay(batch)

    assert reasons(predicted) == reasons(result.outcomes)
    assert sorted(result.failed) == [1, 3, 4]
    assert reasons(result.outcomes)[3] == (
        "LedgerLotInTransit",
        {"lot": Y, "recipient": cast.refiner.address},
    )


def test_simulation_records_nothing(cast: Cast) -> None:
    op = commission(cast, X)

    assert cast.ledger.simulate([op]) == [None]

    assert cast.ledger.lot(X) is None
    assert not cast.ledger.nonce_used(cast.mine_cd.address, op.operation.nonce)


def test_dependent_operations_in_one_batch_apply_in_order(cast: Cast) -> None:
    made = commission(cast, X)
    sent = ship(cast, X, cast.mine_cd, cast.refiner)
    taken = receive(cast, X, cast.refiner, cast.mine_cd)

    result = cast.ok(made, sent, taken)

    assert cast.ledger.lot(X) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)
    assert [(name, args["eventId"]) for name, args in cast.events(result)] == [
        ("LotCommissioned", made.event_id),
        ("LotShipped", sent.event_id),
        ("LotReceived", taken.event_id),
    ]


def test_operation_in_a_batch_sees_only_the_operations_before_it(cast: Cast) -> None:
    made = commission(cast, X)
    early = receive(cast, X, cast.refiner, cast.mine_cd)
    sent = ship(cast, X, cast.mine_cd, cast.refiner)

    result = cast.ledger.relay([made, early, sent], gas=TEST_BATCH_GAS)

    assert reasons(result.outcomes) == [None, ("LedgerLotNotInTransit", {"lot": X}), None]
    assert cast.ledger.lot(X) == LotView(
        cast.mine_cd.address, cast.refiner.address, 1000, CO_HYDROXIDE
    )


def test_call_that_is_no_operation_fails_alone_as_a_call_failure(cast: Cast) -> None:
    result = cast.ledger.relay([NOT_AN_OPERATION, commission(cast, X)], gas=TEST_BATCH_GAS)

    assert reasons(result.outcomes) == [
        ("LedgerCallFailed", {}),
        None,
    ]
    assert cast.ledger.lot(X) is not None


def test_simulation_predicts_an_operation_that_reverts_without_data(cast: Cast) -> None:
    malformed = cast.ledger.calldata(commission(cast, X))[:-32]

    predicted = cast.ledger.simulate([malformed])
    result = cast.ledger.relay([malformed])

    assert reasons(result.outcomes) == [("LedgerCallFailed", {})]
    assert reasons(predicted) == reasons(result.outcomes)


def test_relayed_operation_that_needs_much_gas_is_recorded(cast: Cast) -> None:
    cast.ok(*delivery(cast, X, cast.refiner, quantity=10_000))
    split = cast.sign(
        Transform,
        cast.refiner,
        inputs=(Input(X, 10_000),),
        outputs=tuple(Output(lot_id(f"part {i}"), CO_HYDROXIDE, 500) for i in range(20)),
    )
    assert cast.ledger.simulate([split]) == [None]

    result = cast.ledger.relay([split])

    assert reasons(result.outcomes) == [None]


def test_nested_relay_cannot_report_a_recorded_operation_as_failed(cast: Cast) -> None:
    recorded = commission(cast, X)
    nested = cast.ledger.relay_calldata(
        [cast.ledger.calldata(ship(cast, Y, cast.mine_cd, cast.refiner))]  # fails: no lot Y
    )

    result = cast.ledger.relay([recorded, nested], gas=TEST_BATCH_GAS)

    assert cast.ledger.lot(X) is not None
    assert reasons(result.outcomes) == [None, ("LedgerNestedBatch", {})]


def test_batch_larger_than_the_maximum_is_rejected_whole(cast: Cast) -> None:
    op = commission(cast, X)
    batch = [op] * 257

    with pytest.raises(LedgerRejected) as simulated:
        cast.ledger.simulate(batch)
    with pytest.raises(LedgerRejected) as sent:
        cast.ledger.relay(batch)

    expected = ("LedgerBatchTooLarge", {"size": 257, "max": 256})
    assert reason(simulated.value) == reason(sent.value) == expected
    assert cast.ledger.lot(X) is None
    assert not cast.ledger.nonce_used(cast.mine_cd.address, op.operation.nonce)


def test_batch_of_the_maximum_size_runs_every_operation(cast: Cast) -> None:
    op = commission(cast, X)

    outcomes = cast.ledger.simulate([op] * 256)

    replayed = ("LedgerNonceUsed", {"actor": cast.mine_cd.address, "nonce": op.operation.nonce})
    assert reasons(outcomes) == [None] + [replayed] * 255


def test_submitter_is_checked_once_for_the_whole_batch(cast: Cast) -> None:
    # The relayer's own revocation takes effect from its next transaction.
    revoke = cast.sign(Revoke, cast.governor, participant=cast.relayer.address)

    cast.ok(revoke, commission(cast, X))

    assert cast.ledger.lot(X) is not None
    with pytest.raises(LedgerRejected) as rejected:
        cast.ledger.relay([commission(cast, Y)])
    assert reason(rejected.value) == (
        "LedgerUnauthorizedSubmitter",
        {"submitter": cast.relayer.address},
    )


def test_batch_may_relay_operations_of_many_actors(cast: Cast) -> None:
    ops = [commission(cast, lot_id(f"cd {i}")) for i in range(3)]
    ops += [commission(cast, lot_id(f"au {i}"), by=cast.mine_au) for i in range(3)]

    result = cast.ok(*ops)

    assert [args["actor"] for _, args in cast.events(result)] == [cast.mine_cd.address] * 3 + [
        cast.mine_au.address
    ] * 3


# -- views ---------------------------------------------------------------------------------------


def test_lot_of_an_unknown_id_is_none(cast: Cast) -> None:
    assert cast.ledger.lot(X) is None


def test_governor_and_maximum_batch_size_are_readable(cast: Cast) -> None:
    assert cast.ledger.governor() == cast.governor.address
    assert cast.ledger.contract.functions.maxBatchSize().call() == 256


def test_nonce_bitmap_shows_the_used_nonces_of_a_word(cast: Cast) -> None:
    cast.ok(commission(cast, X), commission(cast, Y))

    bitmap = cast.ledger.contract.functions.nonceBitmap(cast.mine_cd.address, 0).call()

    assert bitmap == 0b11


def test_next_nonce_never_returns_a_used_nonce_across_a_word_boundary(cast: Cast) -> None:
    for nonce in (255, 256):
        op = Commission(
            actor=cast.mine_cd.address,
            nonce=nonce,
            deadline=2**40,
            lot=lot_id(f"n{nonce}"),
            material=CO_HYDROXIDE,
            quantity=1,
            feedstock=PRIMARY,
            footprint=0,
            document_hash=ASSAY,
        )
        cast.ok(sign(op, cast.mine_cd, cast.ledger.domain))

    nonce = LedgerClient(cast.w3, cast.ledger.address).next_nonce(cast.mine_cd.address)

    assert not cast.ledger.nonce_used(cast.mine_cd.address, nonce)
