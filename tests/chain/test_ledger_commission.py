"""Ledger contract: mines and recyclers commission lots."""

from __future__ import annotations

import pytest

from mine2cell.chain.ledger import LotView
from mine2cell.signing.eip712 import Accredit, Commission, Input, LotId, Output, Transform
from tests.chain.ledger_support import (
    ASSAY,
    CO_HYDROXIDE,
    CO_SULFATE,
    POST_CONSUMER,
    PRE_CONSUMER,
    PRIMARY,
    commission,
    delivery,
    lot_id,
    reason,
    sign_unvalidated,
)
from tests.conftest import MINE, PROCESSOR, RECYCLER, Cast, facility


def test_mine_commissions_a_primary_lot_with_its_origin(cast: Cast) -> None:
    lot = lot_id("ore")
    op = commission(cast, lot, material=CO_HYDROXIDE, quantity=12_500_000, footprint=61_000)

    result = cast.ok(op)

    assert cast.ledger.lot(lot) == LotView(
        custodian=cast.mine_cd.address, recipient=None, remaining=12_500_000, material=CO_HYDROXIDE
    )
    assert cast.events(result) == [
        (
            "LotCommissioned",
            {
                "lot": lot,
                "actor": cast.mine_cd.address,
                "eventId": op.event_id,
                "material": CO_HYDROXIDE,
                "quantity": 12_500_000,
                "feedstock": PRIMARY,
                "footprint": 61_000,
                "documentHash": ASSAY,
                "facility": facility("KOLWEZI-NORTH"),
                "country": b"CD",
            },
        )
    ]


@pytest.mark.parametrize("feedstock", [PRE_CONSUMER, POST_CONSUMER])
def test_recycler_commissions_a_recycled_lot(cast: Cast, feedstock: int) -> None:
    lot = lot_id("black mass")
    op = commission(cast, lot, by=cast.recycler, material=600, quantity=800, feedstock=feedstock)

    result = cast.ok(op)

    assert cast.ledger.lot(lot) == LotView(cast.recycler.address, None, 800, 600)
    [(name, args)] = cast.events(result)
    assert name == "LotCommissioned"
    assert (args["feedstock"], args["facility"], args["country"]) == (
        feedstock,
        facility("HAMBURG-RECYCLING"),
        b"DE",
    )


def test_origin_is_copied_from_the_record_at_the_time_of_commissioning(cast: Cast) -> None:
    moved = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.mine_cd.address,
        roles=MINE,
        facility=facility("KAMOTO"),
        country="ZM",
    )
    op = commission(cast, lot_id("ore"))

    result = cast.ok(moved, op)

    [_, (name, args)] = cast.events(result)
    assert (name, args["facility"], args["country"]) == (
        "LotCommissioned",
        facility("KAMOTO"),
        b"ZM",
    )


def test_participant_with_both_roles_chooses_by_feedstock(cast: Cast) -> None:
    cast.ok(
        cast.sign(
            Accredit,
            cast.governor,
            participant=cast.outsider.address,
            roles=MINE | RECYCLER,
            facility=facility("INTEGRATED"),
            country="CA",
        )
    )

    cast.ok(
        commission(cast, lot_id("mined"), by=cast.outsider, feedstock=PRIMARY),
        commission(cast, lot_id("recycled"), by=cast.outsider, feedstock=POST_CONSUMER),
    )

    assert cast.ledger.lot(lot_id("mined")) is not None
    assert cast.ledger.lot(lot_id("recycled")) is not None


@pytest.mark.parametrize("feedstock", [PRE_CONSUMER, POST_CONSUMER])
def test_mine_cannot_commission_recycled_feedstock(cast: Cast, feedstock: int) -> None:
    op = commission(cast, lot_id("ore"), feedstock=feedstock)

    assert reason(cast.rejected(op)) == (
        "LedgerInvalidFeedstock",
        {"actor": cast.mine_cd.address, "feedstock": feedstock},
    )
    assert cast.ledger.lot(lot_id("ore")) is None


def test_recycler_cannot_commission_primary_feedstock(cast: Cast) -> None:
    op = commission(cast, lot_id("scrap"), by=cast.recycler, feedstock=PRIMARY)

    assert reason(cast.rejected(op)) == (
        "LedgerInvalidFeedstock",
        {"actor": cast.recycler.address, "feedstock": PRIMARY},
    )


@pytest.mark.parametrize("who", ["mine_cd", "recycler"])
@pytest.mark.parametrize("feedstock", [3, 255])
def test_unknown_feedstock_is_rejected(cast: Cast, who: str, feedstock: int) -> None:
    actor = getattr(cast, who)
    op = commission(cast, lot_id("ore"), by=actor, feedstock=feedstock)

    assert reason(cast.rejected(op)) == (
        "LedgerInvalidFeedstock",
        {"actor": actor.address, "feedstock": feedstock},
    )


def test_processor_cannot_commission(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"), by=cast.refiner)

    assert reason(cast.rejected(op)) == (
        "LedgerMissingRole",
        {"account": cast.refiner.address, "required": MINE | RECYCLER, "held": PROCESSOR},
    )


def test_unaccredited_account_cannot_commission(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"), by=cast.outsider)

    assert reason(cast.rejected(op)) == (
        "LedgerMissingRole",
        {"account": cast.outsider.address, "required": MINE | RECYCLER, "held": 0},
    )


def test_commission_fails_with_zero_quantity(cast: Cast) -> None:
    lot = lot_id("ore")
    op = sign_unvalidated(
        cast,
        Commission,
        cast.mine_cd,
        lot=lot,
        material=CO_HYDROXIDE,
        quantity=0,
        feedstock=PRIMARY,
        footprint=0,
        document_hash=ASSAY,
    )

    assert reason(cast.rejected(op)) == ("LedgerZeroQuantity", {"lot": lot})
    assert cast.ledger.lot(lot) is None


def test_commission_fails_with_lot_id_zero(cast: Cast) -> None:
    op = commission(cast, LotId(bytes(32)))

    assert reason(cast.rejected(op)) == ("LedgerInvalidLotId", {})


def test_commission_fails_if_the_lot_id_exists(cast: Cast) -> None:
    lot = lot_id("ore")
    cast.ok(commission(cast, lot, quantity=1000))

    err = cast.rejected(commission(cast, lot, by=cast.mine_au, quantity=7))

    assert reason(err) == ("LedgerLotExists", {"lot": lot})
    assert cast.ledger.lot(lot) == LotView(cast.mine_cd.address, None, 1000, CO_HYDROXIDE)


def test_commission_fails_if_the_lot_id_belongs_to_a_fully_consumed_lot(cast: Cast) -> None:
    lot = lot_id("ore")
    cast.ok(
        *delivery(cast, lot, cast.refiner, quantity=1000),
        cast.sign(
            Transform,
            cast.refiner,
            inputs=(Input(lot, 1000),),
            outputs=(Output(lot_id("sulfate"), CO_SULFATE, 1500),),
        ),
    )
    assert cast.ledger.lot(lot) == LotView(cast.refiner.address, None, 0, CO_HYDROXIDE)

    assert reason(cast.rejected(commission(cast, lot))) == ("LedgerLotExists", {"lot": lot})
