"""Ledger contract: a cell maker binds a battery passport to quantities of its lots; an auditor
attests a bound passport's chain."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from mine2cell.chain.ledger import LotView
from mine2cell.signing.eip712 import Attest, BindPassport, Input, PassportId
from tests.chain.ledger_support import (
    CAM_NMC,
    FAIL,
    PASS,
    delivery,
    lot_id,
    passport_id,
    reason,
)
from tests.conftest import AUDITOR, CELL_MAKER, PROCESSOR, Cast

CAM_A, CAM_B = lot_id("cam A"), lot_id("cam B")
BATTERY = passport_id("battery 1")
PASSPORT_DOC = keccak(text="passport document")
REPORT = keccak(text="audit report")


def cam_held_by_cell_maker(cast: Cast) -> None:
    cast.ok(
        *delivery(cast, CAM_A, cast.cell, material=CAM_NMC, quantity=1000),
        *delivery(cast, CAM_B, cast.cell, by=cast.mine_au, material=CAM_NMC, quantity=500),
    )


def bound(cast: Cast) -> None:
    """BATTERY bound by the cell maker to 10 g of CAM_A."""
    cast.ok(
        *delivery(cast, CAM_A, cast.cell, material=CAM_NMC, quantity=1000),
        cast.sign(BindPassport, cast.cell, passport=BATTERY, inputs=(Input(CAM_A, 10),)),
    )


# -- bind ----------------------------------------------------------------------------------------


def test_cell_maker_binds_a_passport_to_quantities_of_its_lots(cast: Cast) -> None:
    cam_held_by_cell_maker(cast)
    op = cast.sign(
        BindPassport,
        cast.cell,
        passport=BATTERY,
        inputs=(Input(CAM_A, 400), Input(CAM_B, 500)),
        footprint=12_000,
        document_hash=PASSPORT_DOC,
    )

    result = cast.ok(op)

    assert cast.ledger.passport_binder(BATTERY) == cast.cell.address
    assert cast.ledger.lot(CAM_A) == LotView(cast.cell.address, None, 600, CAM_NMC)
    assert cast.ledger.lot(CAM_B) == LotView(cast.cell.address, None, 0, CAM_NMC)
    actor, event_id = cast.cell.address, op.event_id
    assert cast.events(result) == [
        (
            "PassportBound",
            {
                "passport": BATTERY,
                "eventId": event_id,
                "actor": actor,
                "inputs": 2,
                "footprint": 12_000,
                "documentHash": PASSPORT_DOC,
            },
        ),
        (
            "LotConsumed",
            {"lot": CAM_A, "eventId": event_id, "actor": actor, "quantity": 400, "remaining": 600},
        ),
        (
            "LotConsumed",
            {"lot": CAM_B, "eventId": event_id, "actor": actor, "quantity": 500, "remaining": 0},
        ),
    ]


def test_binding_a_passport_already_bound_fails(cast: Cast) -> None:
    bound(cast)
    again = cast.sign(BindPassport, cast.cell, passport=BATTERY, inputs=(Input(CAM_A, 10),))

    assert reason(cast.rejected(again)) == ("LedgerPassportAlreadyBound", {"passport": BATTERY})
    assert cast.ledger.lot(CAM_A) == LotView(cast.cell.address, None, 990, CAM_NMC)


def test_binding_fails_with_passport_id_zero(cast: Cast) -> None:
    cam_held_by_cell_maker(cast)
    op = cast.sign(
        BindPassport, cast.cell, passport=PassportId(bytes(32)), inputs=(Input(CAM_A, 10),)
    )

    assert reason(cast.rejected(op)) == ("LedgerInvalidPassportId", {})


def test_processor_cannot_bind_a_passport(cast: Cast) -> None:
    cast.ok(*delivery(cast, CAM_A, cast.cathode, material=CAM_NMC))
    op = cast.sign(BindPassport, cast.cathode, passport=BATTERY, inputs=(Input(CAM_A, 10),))

    assert reason(cast.rejected(op)) == (
        "LedgerMissingRole",
        {"account": cast.cathode.address, "required": CELL_MAKER, "held": PROCESSOR},
    )
    assert cast.ledger.passport_binder(BATTERY) is None


def test_binding_fails_without_inputs(cast: Cast) -> None:
    op = cast.sign(BindPassport, cast.cell, passport=BATTERY, inputs=())

    assert reason(cast.rejected(op)) == ("LedgerEmptyOperation", {})
    assert cast.ledger.passport_binder(BATTERY) is None


def test_binding_fails_for_a_lot_held_by_another_participant(cast: Cast) -> None:
    cast.ok(*delivery(cast, CAM_A, cast.cathode, material=CAM_NMC))
    op = cast.sign(BindPassport, cast.cell, passport=BATTERY, inputs=(Input(CAM_A, 10),))

    assert reason(cast.rejected(op)) == (
        "LedgerNotCustodian",
        {"lot": CAM_A, "account": cast.cell.address, "custodian": cast.cathode.address},
    )
    assert cast.ledger.passport_binder(BATTERY) is None


def test_binding_fails_if_it_consumes_more_than_the_lot_holds(cast: Cast) -> None:
    cam_held_by_cell_maker(cast)
    op = cast.sign(BindPassport, cast.cell, passport=BATTERY, inputs=(Input(CAM_B, 501),))

    assert reason(cast.rejected(op)) == (
        "LedgerInsufficientQuantity",
        {"lot": CAM_B, "remaining": 500, "needed": 501},
    )
    assert cast.ledger.passport_binder(BATTERY) is None


def test_passport_binder_of_an_unbound_passport_is_none(cast: Cast) -> None:
    assert cast.ledger.passport_binder(BATTERY) is None


# -- attest --------------------------------------------------------------------------------------


@pytest.mark.parametrize("verdict", [PASS, FAIL])
def test_auditor_attests_a_bound_passport(cast: Cast, verdict: int) -> None:
    bound(cast)
    op = cast.sign(Attest, cast.auditor, passport=BATTERY, verdict=verdict, report_hash=REPORT)

    result = cast.ok(op)

    assert cast.events(result) == [
        (
            "PassportAttested",
            {
                "passport": BATTERY,
                "eventId": op.event_id,
                "auditor": cast.auditor.address,
                "verdict": verdict,
                "reportHash": REPORT,
            },
        )
    ]


def test_attesting_fails_for_a_participant_that_is_not_an_auditor(cast: Cast) -> None:
    bound(cast)
    op = cast.sign(Attest, cast.cell, passport=BATTERY, verdict=PASS, report_hash=REPORT)

    assert reason(cast.rejected(op)) == (
        "LedgerMissingRole",
        {"account": cast.cell.address, "required": AUDITOR, "held": CELL_MAKER},
    )


def test_attesting_fails_for_a_passport_never_bound(cast: Cast) -> None:
    op = cast.sign(Attest, cast.auditor, passport=BATTERY, verdict=PASS, report_hash=REPORT)

    assert reason(cast.rejected(op)) == ("LedgerUnknownPassport", {"passport": BATTERY})


@pytest.mark.parametrize("verdict", [0, 3, 255])
def test_attesting_fails_with_an_unknown_verdict(cast: Cast, verdict: int) -> None:
    bound(cast)
    op = cast.sign(Attest, cast.auditor, passport=BATTERY, verdict=verdict, report_hash=REPORT)

    assert reason(cast.rejected(op)) == ("LedgerInvalidCode", {"code": verdict})
