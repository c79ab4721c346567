"""Ledger contract: transformations (refining, splitting, blending) consume quantities of held lots
and produce new lots; no quantity is consumed twice and no mass of a material is created."""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak

from mine2cell.chain.ledger import LotView
from mine2cell.signing.eip712 import Input, LocalSigner, LotId, Output, SignedOperation, Transform
from tests.chain.ledger_support import (
    CAM_NMC,
    CELL,
    CO_HYDROXIDE,
    CO_SULFATE,
    LI_CARBONATE,
    delivery,
    lot_id,
    reason,
    sign_unvalidated,
    unvalidated,
)
from tests.conftest import CELL_MAKER, MINE, PROCESSOR, Cast

A, B, C = lot_id("hydroxide A"), lot_id("hydroxide B"), lot_id("hydroxide C")
LI = lot_id("carbonate")
SULFATE = lot_id("sulfate")
P0, P1, P2 = lot_id("part 0"), lot_id("part 1"), lot_id("part 2")
SULFATE_DOC = keccak(text="sulfate assay")


def transform(
    cast: Cast,
    inputs: Sequence[Input],
    outputs: Sequence[Output],
    *,
    by: LocalSigner | None = None,
    footprint: int = 0,
) -> SignedOperation:
    return cast.sign(
        Transform,
        by or cast.refiner,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        footprint=footprint,
    )


def held_by_refiner(cast: Cast, *lots: tuple[LotId, int]) -> None:
    """Deliver lots of cobalt hydroxide (id, grams) from the Congolese mine to the refiner."""
    cast.ok(
        *(op for lot, grams in lots for op in delivery(cast, lot, cast.refiner, quantity=grams))
    )


# -- successful transformations ------------------------------------------------------------------


def test_refining_two_lots_into_a_new_material_consumes_and_produces(cast: Cast) -> None:
    cast.ok(
        *delivery(cast, A, cast.refiner, quantity=1000),
        *delivery(cast, B, cast.refiner, by=cast.mine_au, quantity=500),
    )
    # A new material is not bounded by the inputs' mass (reagents add mass the ledger ignores).
    op = transform(
        cast,
        [Input(A, 800), Input(B, 500)],
        [Output(SULFATE, CO_SULFATE, 2400, SULFATE_DOC)],
        footprint=90_000,
    )

    result = cast.ok(op)

    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 200, CO_HYDROXIDE)
    assert cast.ledger.lot(B) == LotView(cast.refiner.address, None, 0, CO_HYDROXIDE)
    assert cast.ledger.lot(SULFATE) == LotView(cast.refiner.address, None, 2400, CO_SULFATE)
    actor, event_id = cast.refiner.address, op.event_id
    assert cast.events(result) == [
        (
            "LotsTransformed",
            {"eventId": event_id, "actor": actor, "inputs": 2, "outputs": 1, "footprint": 90_000},
        ),
        (
            "LotConsumed",
            {"lot": A, "eventId": event_id, "actor": actor, "quantity": 800, "remaining": 200},
        ),
        (
            "LotConsumed",
            {"lot": B, "eventId": event_id, "actor": actor, "quantity": 500, "remaining": 0},
        ),
        (
            "LotProduced",
            {
                "lot": SULFATE,
                "eventId": event_id,
                "actor": actor,
                "material": CO_SULFATE,
                "quantity": 2400,
                "documentHash": SULFATE_DOC,
            },
        ),
    ]


def test_split_may_produce_exactly_the_quantity_consumed(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = transform(
        cast,
        [Input(A, 1000)],
        [
            Output(P0, CO_HYDROXIDE, 300),
            Output(P1, CO_HYDROXIDE, 300),
            Output(P2, CO_HYDROXIDE, 400),
        ],
    )

    result = cast.ok(op)

    assert [cast.ledger.lot(lot) for lot in (A, P0, P1, P2)] == [
        LotView(cast.refiner.address, None, 0, CO_HYDROXIDE),
        LotView(cast.refiner.address, None, 300, CO_HYDROXIDE),
        LotView(cast.refiner.address, None, 300, CO_HYDROXIDE),
        LotView(cast.refiner.address, None, 400, CO_HYDROXIDE),
    ]
    events = cast.events(result)
    assert [name for name, _ in events] == [
        "LotsTransformed",
        "LotConsumed",
        "LotProduced",
        "LotProduced",
        "LotProduced",
    ]
    assert [args["lot"] for _, args in events[2:]] == [P0, P1, P2]


def test_split_fails_if_the_outputs_exceed_the_consumed_quantity_by_one_gram(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = transform(
        cast,
        [Input(A, 1000)],
        [
            Output(P0, CO_HYDROXIDE, 300),
            Output(P1, CO_HYDROXIDE, 300),
            Output(P2, CO_HYDROXIDE, 401),
        ],
    )

    assert reason(cast.rejected(op)) == (
        "LedgerMassNotConserved",
        {"material": CO_HYDROXIDE, "consumed": 1000, "produced": 1001},
    )
    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)
    assert [cast.ledger.lot(lot) for lot in (P0, P1, P2)] == [None, None, None]


def test_split_compares_outputs_with_the_quantity_consumed_not_the_lot(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = transform(cast, [Input(A, 600)], [Output(P0, CO_HYDROXIDE, 601)])

    assert reason(cast.rejected(op)) == (
        "LedgerMassNotConserved",
        {"material": CO_HYDROXIDE, "consumed": 600, "produced": 601},
    )


def test_split_may_lose_mass(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    cast.ok(transform(cast, [Input(A, 1000)], [Output(P0, CO_HYDROXIDE, 990)]))

    assert cast.ledger.lot(P0) == LotView(cast.refiner.address, None, 990, CO_HYDROXIDE)


def test_blend_of_several_lots_of_the_same_material(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000), (B, 500), (C, 250))
    op = transform(
        cast, [Input(A, 1000), Input(B, 500), Input(C, 250)], [Output(P0, CO_HYDROXIDE, 1750)]
    )

    result = cast.ok(op)

    assert cast.ledger.lot(P0) == LotView(cast.refiner.address, None, 1750, CO_HYDROXIDE)
    assert [args["lot"] for name, args in cast.events(result) if name == "LotConsumed"] == [A, B, C]


def test_blend_fails_if_the_output_exceeds_the_inputs(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000), (B, 500), (C, 250))
    op = transform(
        cast, [Input(A, 1000), Input(B, 500), Input(C, 250)], [Output(P0, CO_HYDROXIDE, 1751)]
    )

    assert reason(cast.rejected(op)) == (
        "LedgerMassNotConserved",
        {"material": CO_HYDROXIDE, "consumed": 1750, "produced": 1751},
    )


def test_mass_is_conserved_per_material_in_a_mixed_transformation(cast: Cast) -> None:
    cast.ok(
        *delivery(cast, A, cast.refiner, quantity=1000),
        *delivery(cast, LI, cast.refiner, material=LI_CARBONATE, quantity=500),
    )
    op = transform(
        cast,
        [Input(A, 1000), Input(LI, 500)],
        [
            Output(P0, CAM_NMC, 9000),
            Output(P1, CO_HYDROXIDE, 1000),
            Output(P2, LI_CARBONATE, 501),
        ],
    )

    assert reason(cast.rejected(op)) == (
        "LedgerMassNotConserved",
        {"material": LI_CARBONATE, "consumed": 500, "produced": 501},
    )


def test_same_lot_twice_as_input_is_consumed_twice(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = transform(cast, [Input(A, 300), Input(A, 400)], [Output(P0, CO_HYDROXIDE, 700)])

    result = cast.ok(op)

    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 300, CO_HYDROXIDE)
    consumed = [args for name, args in cast.events(result) if name == "LotConsumed"]
    assert [(args["quantity"], args["remaining"]) for args in consumed] == [(300, 700), (400, 300)]


def test_same_lot_twice_as_input_cannot_exceed_its_remaining_quantity(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = transform(cast, [Input(A, 600), Input(A, 500)], [Output(P0, CO_SULFATE, 1000)])

    assert reason(cast.rejected(op)) == (
        "LedgerInsufficientQuantity",
        {"lot": A, "remaining": 400, "needed": 500},
    )
    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)


def test_consuming_exactly_the_remaining_quantity_closes_the_lot(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    result = cast.ok(transform(cast, [Input(A, 1000)], [Output(SULFATE, CO_SULFATE, 1500)]))

    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 0, CO_HYDROXIDE)
    [(_, consumed)] = [event for event in cast.events(result) if event[0] == "LotConsumed"]
    assert consumed["remaining"] == 0


def test_closed_lot_cannot_be_consumed_again(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    cast.ok(transform(cast, [Input(A, 1000)], [Output(SULFATE, CO_SULFATE, 1500)]))

    err = cast.rejected(transform(cast, [Input(A, 1)], [Output(P0, CO_SULFATE, 1)]))

    assert reason(err) == ("LedgerLotClosed", {"lot": A})


def test_transform_fails_if_it_consumes_more_than_the_lot_holds(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    err = cast.rejected(transform(cast, [Input(A, 1001)], [Output(P0, CO_SULFATE, 1)]))

    assert reason(err) == (
        "LedgerInsufficientQuantity",
        {"lot": A, "remaining": 1000, "needed": 1001},
    )


def test_transform_fails_with_a_zero_input_quantity(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = sign_unvalidated(
        cast,
        Transform,
        cast.refiner,
        inputs=(unvalidated(Input, lot=A, quantity=0),),
        outputs=(Output(P0, CO_SULFATE, 1),),
        footprint=0,
    )

    assert reason(cast.rejected(op)) == ("LedgerZeroQuantity", {"lot": A})


def test_transform_fails_with_a_zero_output_quantity(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = sign_unvalidated(
        cast,
        Transform,
        cast.refiner,
        inputs=(Input(A, 10),),
        outputs=(unvalidated(Output, lot=P0, material=CO_SULFATE, quantity=0),),
        footprint=0,
    )

    assert reason(cast.rejected(op)) == ("LedgerZeroQuantity", {"lot": P0})


def test_transform_fails_without_inputs(cast: Cast) -> None:
    err = cast.rejected(transform(cast, [], [Output(P0, CO_SULFATE, 1)]))

    assert reason(err) == ("LedgerEmptyOperation", {})
    assert cast.ledger.lot(P0) is None


def test_transform_fails_without_outputs(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    err = cast.rejected(transform(cast, [Input(A, 10)], []))

    assert reason(err) == ("LedgerEmptyOperation", {})
    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)


def test_transform_fails_if_an_output_id_exists(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000), (B, 500))

    err = cast.rejected(transform(cast, [Input(A, 10)], [Output(B, CO_SULFATE, 10)]))

    assert reason(err) == ("LedgerLotExists", {"lot": B})
    assert cast.ledger.lot(B) == LotView(cast.refiner.address, None, 500, CO_HYDROXIDE)


def test_transform_fails_if_an_output_reuses_the_input_id(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    err = cast.rejected(transform(cast, [Input(A, 1000)], [Output(A, CO_SULFATE, 900)]))

    assert reason(err) == ("LedgerLotExists", {"lot": A})


def test_transform_fails_if_two_outputs_share_an_id(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))
    op = transform(cast, [Input(A, 1000)], [Output(P0, CO_SULFATE, 10), Output(P0, CO_SULFATE, 10)])

    assert reason(cast.rejected(op)) == ("LedgerLotExists", {"lot": P0})


def test_transform_fails_with_an_output_id_of_zero(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    err = cast.rejected(transform(cast, [Input(A, 10)], [Output(LotId(bytes(32)), CO_SULFATE, 10)]))

    assert reason(err) == ("LedgerInvalidLotId", {})


def test_mine_cannot_transform(cast: Cast) -> None:
    cast.ok(*delivery(cast, A, cast.mine_au))  # held by a mine

    err = cast.rejected(
        transform(cast, [Input(A, 10)], [Output(P0, CO_SULFATE, 10)], by=cast.mine_au)
    )

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.mine_au.address, "required": PROCESSOR | CELL_MAKER, "held": MINE},
    )


def test_cell_maker_may_transform(cast: Cast) -> None:
    cast.ok(*delivery(cast, A, cast.cell, material=CAM_NMC, quantity=1000))

    cast.ok(transform(cast, [Input(A, 1000)], [Output(P0, CELL, 1200)], by=cast.cell))

    assert cast.ledger.lot(P0) == LotView(cast.cell.address, None, 1200, CELL)


def test_transform_fails_for_an_input_held_by_another_participant(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000))

    err = cast.rejected(
        transform(cast, [Input(A, 10)], [Output(P0, CO_SULFATE, 10)], by=cast.cathode)
    )

    assert reason(err) == (
        "LedgerNotCustodian",
        {"lot": A, "account": cast.cathode.address, "custodian": cast.refiner.address},
    )


def test_transform_fails_for_an_input_never_commissioned(cast: Cast) -> None:
    err = cast.rejected(transform(cast, [Input(A, 10)], [Output(P0, CO_SULFATE, 10)]))

    assert reason(err) == ("LedgerUnknownLot", {"lot": A})


def test_failed_transform_consumes_nothing(cast: Cast) -> None:
    held_by_refiner(cast, (A, 1000), (B, 500))
    # The second input fails after the first was consumed: the whole operation rolls back.
    op = transform(cast, [Input(A, 1000), Input(B, 501)], [Output(P0, CO_SULFATE, 10)])

    assert reason(cast.rejected(op)) == (
        "LedgerInsufficientQuantity",
        {"lot": B, "remaining": 500, "needed": 501},
    )
    assert cast.ledger.lot(A) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)
    assert not cast.ledger.nonce_used(cast.refiner.address, op.operation.nonce)
