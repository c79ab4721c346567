"""Ledger contract: shipping, receiving, rejecting and recalling lots. Custody moves only when the
named recipient signs a Receive."""

from __future__ import annotations

from mine2cell.chain.ledger import LotView
from mine2cell.signing.eip712 import (
    BindPassport,
    Input,
    Output,
    Recall,
    Receive,
    Reject,
    Revoke,
    Ship,
    SignedOperation,
    Transform,
)
from tests.chain.ledger_support import (
    CO_HYDROXIDE,
    CO_SULFATE,
    CUSTODY_ROLES,
    commission,
    delivery,
    lot_id,
    passport_id,
    reason,
    receive,
    recovered,
    ship,
    signed_as,
)
from tests.conftest import AUDITOR, RELAYER, Cast

LOT = lot_id("ore")


def shipped(cast: Cast) -> None:
    """LOT (1000 g of cobalt hydroxide) commissioned by the Congolese mine and shipped to the
    refiner."""
    cast.ok(commission(cast, LOT), ship(cast, LOT, cast.mine_cd, cast.refiner))


# -- ship ----------------------------------------------------------------------------------------


def test_ship_offers_the_lot_to_the_recipient_and_keeps_custody_with_the_sender(
    cast: Cast,
) -> None:
    cast.ok(commission(cast, LOT))
    op = ship(cast, LOT, cast.mine_cd, cast.refiner)

    result = cast.ok(op)

    assert cast.ledger.lot(LOT) == LotView(
        custodian=cast.mine_cd.address,
        recipient=cast.refiner.address,
        remaining=1000,
        material=CO_HYDROXIDE,
    )
    assert cast.events(result) == [
        (
            "LotShipped",
            {
                "lot": LOT,
                "from": cast.mine_cd.address,
                "to": cast.refiner.address,
                "eventId": op.event_id,
            },
        )
    ]


def test_ship_fails_if_the_actor_is_not_the_custodian(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(ship(cast, LOT, cast.mine_au, cast.refiner))

    assert reason(err) == (
        "LedgerNotCustodian",
        {"lot": LOT, "account": cast.mine_au.address, "custodian": cast.mine_cd.address},
    )


def test_ship_fails_for_a_lot_never_commissioned(cast: Cast) -> None:
    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.refiner))

    assert reason(err) == ("LedgerUnknownLot", {"lot": LOT})


def test_ship_fails_to_an_unaccredited_address(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.outsider))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.outsider.address, "required": CUSTODY_ROLES, "held": 0},
    )
    assert cast.ledger.lot(LOT) == LotView(cast.mine_cd.address, None, 1000, CO_HYDROXIDE)


def test_ship_fails_to_an_auditor(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.auditor))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.auditor.address, "required": CUSTODY_ROLES, "held": AUDITOR},
    )


def test_ship_fails_to_a_relayer(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.relayer))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.relayer.address, "required": CUSTODY_ROLES, "held": RELAYER},
    )


def test_ship_fails_to_a_revoked_participant(cast: Cast) -> None:
    cast.ok(
        commission(cast, LOT), cast.sign(Revoke, cast.governor, participant=cast.refiner.address)
    )

    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.refiner))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.refiner.address, "required": CUSTODY_ROLES, "held": 0},
    )


def test_ship_fails_to_the_custodian_itself(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.mine_cd))

    assert reason(err) == ("LedgerSelfShipment", {"lot": LOT})


def test_ship_fails_while_the_lot_is_in_transit(cast: Cast) -> None:
    shipped(cast)

    err = cast.rejected(ship(cast, LOT, cast.mine_cd, cast.cathode))

    assert reason(err) == ("LedgerLotInTransit", {"lot": LOT, "recipient": cast.refiner.address})
    view = cast.ledger.lot(LOT)
    assert view is not None and view.recipient == cast.refiner.address


def test_ship_fails_for_a_closed_lot(cast: Cast) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))
    sulfate = lot_id("sulfate")
    cast.ok(
        cast.sign(
            Transform,
            cast.refiner,
            inputs=(Input(LOT, 1000),),
            outputs=(Output(sulfate, CO_SULFATE, 1500),),
        )
    )

    err = cast.rejected(ship(cast, LOT, cast.refiner, cast.cathode))

    assert reason(err) == ("LedgerLotClosed", {"lot": LOT})
    assert cast.ledger.lot(LOT) == LotView(cast.refiner.address, None, 0, CO_HYDROXIDE)


def test_auditor_cannot_ship(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(ship(cast, LOT, cast.auditor, cast.refiner))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.auditor.address, "required": CUSTODY_ROLES, "held": AUDITOR},
    )


# -- receive -------------------------------------------------------------------------------------


def test_receive_moves_custody_to_the_recipient(cast: Cast) -> None:
    shipped(cast)
    op = receive(cast, LOT, cast.refiner, cast.mine_cd)

    result = cast.ok(op)

    assert cast.ledger.lot(LOT) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)
    assert cast.events(result) == [
        (
            "LotReceived",
            {
                "lot": LOT,
                "from": cast.mine_cd.address,
                "to": cast.refiner.address,
                "eventId": op.event_id,
            },
        )
    ]


def test_received_lot_can_be_shipped_on_by_its_new_custodian(cast: Cast) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))

    cast.ok(
        ship(cast, LOT, cast.refiner, cast.cathode), receive(cast, LOT, cast.cathode, cast.refiner)
    )

    assert cast.ledger.lot(LOT) == LotView(cast.cathode.address, None, 1000, CO_HYDROXIDE)


def test_receive_fails_if_not_the_named_recipient(cast: Cast) -> None:
    shipped(cast)

    err = cast.rejected(receive(cast, LOT, cast.cathode, cast.mine_cd))

    assert reason(err) == (
        "LedgerNotRecipient",
        {"lot": LOT, "account": cast.cathode.address, "recipient": cast.refiner.address},
    )
    assert cast.ledger.lot(LOT) == LotView(
        cast.mine_cd.address, cast.refiner.address, 1000, CO_HYDROXIDE
    )


def test_receive_fails_if_it_names_another_sender(cast: Cast) -> None:
    shipped(cast)

    err = cast.rejected(receive(cast, LOT, cast.refiner, cast.mine_au))

    assert reason(err) == (
        "LedgerWrongCounterparty",
        {"lot": LOT, "named": cast.mine_au.address, "actual": cast.mine_cd.address},
    )
    view = cast.ledger.lot(LOT)
    assert view is not None and view.custodian == cast.mine_cd.address


def test_receive_fails_if_the_lot_is_not_in_transit(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))

    err = cast.rejected(receive(cast, LOT, cast.refiner, cast.mine_cd))

    assert reason(err) == ("LedgerLotNotInTransit", {"lot": LOT})


def test_receive_fails_for_a_lot_never_commissioned(cast: Cast) -> None:
    err = cast.rejected(receive(cast, LOT, cast.refiner, cast.mine_cd))

    assert reason(err) == ("LedgerUnknownLot", {"lot": LOT})


def test_second_receive_of_the_same_shipment_fails(cast: Cast) -> None:
    shipped(cast)
    cast.ok(receive(cast, LOT, cast.refiner, cast.mine_cd))

    err = cast.rejected(receive(cast, LOT, cast.refiner, cast.mine_cd))

    assert reason(err) == ("LedgerLotNotInTransit", {"lot": LOT})


def test_receive_fails_if_the_recipient_was_revoked_after_the_shipment(cast: Cast) -> None:
    shipped(cast)
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.refiner.address))

    err = cast.rejected(receive(cast, LOT, cast.refiner, cast.mine_cd))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.refiner.address, "required": CUSTODY_ROLES, "held": 0},
    )


def test_custody_never_moves_without_the_recipients_signature(cast: Cast) -> None:
    shipped(cast)
    # The sender (or the relayer) writes the recipient's Receive and signs it with its own key.
    op = Receive(
        actor=cast.refiner.address,
        nonce=0,
        deadline=2**40,
        lot=LOT,
        counterparty=cast.mine_cd.address,
    )
    for key in (cast.mine_cd, cast.relayer, cast.governor):
        forged = signed_as(op, key, cast.ledger.domain)

        assert reason(cast.rejected(forged)) == (
            "LedgerSignerMismatch",
            {"recovered": key.address, "actor": cast.refiner.address},
        )
    assert cast.ledger.lot(LOT) == LotView(
        cast.mine_cd.address, cast.refiner.address, 1000, CO_HYDROXIDE
    )


# -- reject --------------------------------------------------------------------------------------


def test_reject_returns_the_lot_to_the_sender_untouched(cast: Cast) -> None:
    shipped(cast)
    op = cast.sign(Reject, cast.refiner, lot=LOT, counterparty=cast.mine_cd.address)

    result = cast.ok(op)

    assert cast.ledger.lot(LOT) == LotView(cast.mine_cd.address, None, 1000, CO_HYDROXIDE)
    assert cast.events(result) == [
        (
            "ShipmentRejected",
            {
                "lot": LOT,
                "from": cast.mine_cd.address,
                "to": cast.refiner.address,
                "eventId": op.event_id,
            },
        )
    ]


def test_rejected_lot_can_be_shipped_again(cast: Cast) -> None:
    shipped(cast)
    cast.ok(cast.sign(Reject, cast.refiner, lot=LOT, counterparty=cast.mine_cd.address))

    cast.ok(ship(cast, LOT, cast.mine_cd, cast.cathode))

    view = cast.ledger.lot(LOT)
    assert view is not None and view.recipient == cast.cathode.address


def test_reject_fails_if_not_the_named_recipient(cast: Cast) -> None:
    shipped(cast)
    op = cast.sign(Reject, cast.cathode, lot=LOT, counterparty=cast.mine_cd.address)

    assert reason(cast.rejected(op)) == (
        "LedgerNotRecipient",
        {"lot": LOT, "account": cast.cathode.address, "recipient": cast.refiner.address},
    )


def test_reject_fails_if_it_names_another_sender(cast: Cast) -> None:
    shipped(cast)
    op = cast.sign(Reject, cast.refiner, lot=LOT, counterparty=cast.mine_au.address)

    assert reason(cast.rejected(op)) == (
        "LedgerWrongCounterparty",
        {"lot": LOT, "named": cast.mine_au.address, "actual": cast.mine_cd.address},
    )


def test_reject_fails_if_the_lot_is_not_in_transit(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))
    op = cast.sign(Reject, cast.refiner, lot=LOT, counterparty=cast.mine_cd.address)

    assert reason(cast.rejected(op)) == ("LedgerLotNotInTransit", {"lot": LOT})


# -- recall --------------------------------------------------------------------------------------


def test_recall_before_receipt_returns_the_lot_to_the_sender(cast: Cast) -> None:
    shipped(cast)
    op = cast.sign(Recall, cast.mine_cd, lot=LOT, counterparty=cast.refiner.address)

    result = cast.ok(op)

    assert cast.ledger.lot(LOT) == LotView(cast.mine_cd.address, None, 1000, CO_HYDROXIDE)
    assert cast.events(result) == [
        (
            "ShipmentRecalled",
            {
                "lot": LOT,
                "from": cast.mine_cd.address,
                "to": cast.refiner.address,
                "eventId": op.event_id,
            },
        )
    ]


def test_recalled_shipment_can_no_longer_be_received(cast: Cast) -> None:
    shipped(cast)
    cast.ok(cast.sign(Recall, cast.mine_cd, lot=LOT, counterparty=cast.refiner.address))

    err = cast.rejected(receive(cast, LOT, cast.refiner, cast.mine_cd))

    assert reason(err) == ("LedgerLotNotInTransit", {"lot": LOT})


def test_recall_after_receipt_fails(cast: Cast) -> None:
    shipped(cast)
    cast.ok(receive(cast, LOT, cast.refiner, cast.mine_cd))
    op = cast.sign(Recall, cast.mine_cd, lot=LOT, counterparty=cast.refiner.address)

    assert reason(cast.rejected(op)) == (
        "LedgerNotCustodian",
        {"lot": LOT, "account": cast.mine_cd.address, "custodian": cast.refiner.address},
    )
    assert cast.ledger.lot(LOT) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)


def test_recall_fails_if_not_signed_by_the_sender(cast: Cast) -> None:
    shipped(cast)
    op = cast.sign(Recall, cast.refiner, lot=LOT, counterparty=cast.refiner.address)

    assert reason(cast.rejected(op)) == (
        "LedgerNotCustodian",
        {"lot": LOT, "account": cast.refiner.address, "custodian": cast.mine_cd.address},
    )


def test_recall_fails_if_it_names_another_recipient(cast: Cast) -> None:
    shipped(cast)
    op = cast.sign(Recall, cast.mine_cd, lot=LOT, counterparty=cast.cathode.address)

    # The error's third argument is the actual recipient (named `sender` in the interface).
    assert reason(cast.rejected(op)) == (
        "LedgerWrongCounterparty",
        {"lot": LOT, "named": cast.cathode.address, "actual": cast.refiner.address},
    )


def test_recall_fails_if_the_lot_is_not_in_transit(cast: Cast) -> None:
    cast.ok(commission(cast, LOT))
    op = cast.sign(Recall, cast.mine_cd, lot=LOT, counterparty=cast.refiner.address)

    assert reason(cast.rejected(op)) == ("LedgerLotNotInTransit", {"lot": LOT})


def test_recall_fails_for_a_lot_never_commissioned(cast: Cast) -> None:
    op = cast.sign(Recall, cast.mine_cd, lot=LOT, counterparty=cast.refiner.address)

    assert reason(cast.rejected(op)) == ("LedgerUnknownLot", {"lot": LOT})


# -- lots in transit -----------------------------------------------------------------------------


def test_lot_in_transit_cannot_be_transformed_by_its_sender(cast: Cast) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner), ship(cast, LOT, cast.refiner, cast.cathode))
    op = cast.sign(
        Transform,
        cast.refiner,
        inputs=(Input(LOT, 100),),
        outputs=(Output(lot_id("sulfate"), CO_SULFATE, 150),),
    )

    assert reason(cast.rejected(op)) == (
        "LedgerLotInTransit",
        {"lot": LOT, "recipient": cast.cathode.address},
    )
    assert cast.ledger.lot(LOT) == LotView(
        cast.refiner.address, cast.cathode.address, 1000, CO_HYDROXIDE
    )


def test_lot_in_transit_cannot_be_transformed_by_its_recipient(cast: Cast) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner), ship(cast, LOT, cast.refiner, cast.cathode))
    op = cast.sign(
        Transform,
        cast.cathode,
        inputs=(Input(LOT, 100),),
        outputs=(Output(lot_id("sulfate"), CO_SULFATE, 150),),
    )

    assert reason(cast.rejected(op)) == (
        "LedgerNotCustodian",
        {"lot": LOT, "account": cast.cathode.address, "custodian": cast.refiner.address},
    )


def test_lot_in_transit_cannot_be_bound_to_a_passport(cast: Cast) -> None:
    cast.ok(*delivery(cast, LOT, cast.cell), ship(cast, LOT, cast.cell, cast.cathode))
    op = cast.sign(
        BindPassport, cast.cell, passport=passport_id("battery"), inputs=(Input(LOT, 10),)
    )

    assert reason(cast.rejected(op)) == (
        "LedgerLotInTransit",
        {"lot": LOT, "recipient": cast.cathode.address},
    )
    assert cast.ledger.passport_binder(passport_id("battery")) is None


def test_ship_names_the_lot_and_recipient_it_was_signed_for(cast: Cast) -> None:
    # A Ship signature covers the recipient: a relayer cannot redirect the shipment.
    cast.ok(commission(cast, LOT))
    signed = ship(cast, LOT, cast.mine_cd, cast.refiner)
    redirected = Ship(
        actor=cast.mine_cd.address,
        nonce=signed.operation.nonce,
        deadline=signed.operation.deadline,
        lot=LOT,
        recipient=cast.cathode.address,
    )

    err = cast.rejected(
        SignedOperation(redirected, signed.signature, redirected.digest(cast.ledger.domain))
    )

    assert reason(err) == (
        "LedgerSignerMismatch",
        {
            "recovered": recovered(redirected, signed.signature, cast.ledger.domain),
            "actor": cast.mine_cd.address,
        },
    )
    assert cast.ledger.lot(LOT) == LotView(cast.mine_cd.address, None, 1000, CO_HYDROXIDE)
