"""Ledger contract: the author of an event (proving authorship with the event's EIP-712 encodeData)
or an auditor declares it erroneous."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from mine2cell.errors import LedgerRejected
from mine2cell.signing.eip712 import (
    Accredit,
    Commission,
    Correct,
    EventId,
    Input,
    Output,
    Revoke,
    SignedOperation,
    Transform,
)
from tests.chain.ledger_support import (
    ALL_ROLES,
    ASSAY,
    CO_HYDROXIDE,
    CO_SULFATE,
    DID_NOT_OCCUR,
    INCORRECT_DATA,
    commission,
    delivery,
    lot_id,
    reason,
)
from tests.conftest import MINE, TEST_BATCH_GAS, Cast, facility

ORE, ORE_FIXED = lot_id("ore"), lot_id("ore corrected")


def recorded(cast: Cast) -> tuple[SignedOperation, SignedOperation]:
    """A commission by the Congolese mine with a wrong quantity, and the one that replaces it."""
    wrong = commission(cast, ORE, quantity=1000)
    fixed = commission(cast, ORE_FIXED, quantity=100)
    cast.ok(wrong, fixed)
    return wrong, fixed


def correction(
    cast: Cast,
    target: EventId,
    *,
    by: str = "mine_cd",
    code: int = INCORRECT_DATA,
    corrective: tuple[bytes, ...] = (),
) -> SignedOperation:
    return cast.sign(Correct, getattr(cast, by), target=target, reason=code, corrective=corrective)


def test_author_corrects_its_own_event_with_the_authorship_proof(cast: Cast) -> None:
    wrong, fixed = recorded(cast)
    op = correction(cast, wrong.event_id, corrective=(fixed.event_id,))

    receipt = cast.ledger.submit(op, wrong.operation.encode_data())

    assert cast.events(receipt) == [
        (
            "EventCorrected",
            {
                "target": wrong.event_id,
                "eventId": op.event_id,
                "actor": cast.mine_cd.address,
                "reason": INCORRECT_DATA,
                "corrective": [fixed.event_id],
            },
        )
    ]
    assert cast.ledger.nonce_used(cast.mine_cd.address, op.operation.nonce)


def test_author_correction_with_proof_can_be_relayed_in_a_batch(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    op = correction(cast, wrong.event_id, code=DID_NOT_OCCUR)

    result = cast.ledger.relay(
        [cast.ledger.calldata(op, wrong.operation.encode_data())], gas=TEST_BATCH_GAS
    )

    assert result.failed == {}
    [(name, args)] = cast.events(result)
    assert (name, args["target"], args["reason"], args["corrective"]) == (
        "EventCorrected",
        wrong.event_id,
        DID_NOT_OCCUR,
        [],
    )


def test_author_corrects_a_transformation_whose_proof_holds_array_hashes(cast: Cast) -> None:
    lot = lot_id("hydroxide")
    transform = cast.sign(
        Transform,
        cast.refiner,
        inputs=(Input(lot, 500),),
        outputs=(Output(lot_id("sulfate"), CO_SULFATE, 800),),
    )
    cast.ok(*delivery(cast, lot, cast.refiner), transform)
    op = correction(cast, transform.event_id, by="refiner")

    receipt = cast.ledger.submit(op, transform.operation.encode_data())

    [(name, args)] = cast.events(receipt)
    assert (name, args["target"], args["actor"]) == (
        "EventCorrected",
        transform.event_id,
        cast.refiner.address,
    )


def test_governor_corrects_its_own_accreditation_with_the_proof(cast: Cast) -> None:
    accredit = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.outsider.address,
        roles=MINE,
        facility=facility("WRONG-SITE"),
        country="CD",
    )
    cast.ok(accredit)
    op = correction(cast, accredit.event_id, by="governor")

    receipt = cast.ledger.submit(op, accredit.operation.encode_data())

    [(name, args)] = cast.events(receipt)
    assert (name, args["target"], args["actor"]) == (
        "EventCorrected",
        accredit.event_id,
        cast.governor.address,
    )


def test_correction_by_a_non_author_without_proof_fails(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    op = correction(cast, wrong.event_id, by="mine_au")

    assert reason(cast.rejected(op)) == (
        "LedgerNotEventAuthor",
        {"target": wrong.event_id, "account": cast.mine_au.address},
    )


def test_author_correction_without_proof_fails(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    op = correction(cast, wrong.event_id)

    assert reason(cast.rejected(op)) == (
        "LedgerNotEventAuthor",
        {"target": wrong.event_id, "account": cast.mine_cd.address},
    )


def test_correction_by_a_non_author_with_the_authors_proof_fails(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    op = correction(cast, wrong.event_id, by="mine_au")

    with pytest.raises(LedgerRejected) as rejected:
        cast.ledger.submit(op, wrong.operation.encode_data())

    assert reason(rejected.value) == (
        "LedgerNotEventAuthor",
        {"target": wrong.event_id, "account": cast.mine_au.address},
    )


def test_correction_by_a_non_author_with_a_proof_naming_itself_fails(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    cast.ok(commission(cast, lot_id("own"), by=cast.mine_au))  # mine_au's nonce 0 is used
    forged = Commission(
        actor=cast.mine_au.address,
        nonce=0,
        deadline=wrong.operation.deadline,
        lot=ORE,
        material=CO_HYDROXIDE,
        quantity=1000,
        feedstock=0,
        footprint=5000,
        document_hash=ASSAY,
    )
    op = correction(cast, wrong.event_id, by="mine_au")

    result = cast.ledger.relay([cast.ledger.calldata(op, forged.encode_data())], gas=TEST_BATCH_GAS)

    assert reason(result.outcomes[0]) == (
        "LedgerNotEventAuthor",
        {"target": wrong.event_id, "account": cast.mine_au.address},
    )


def test_correction_proof_of_an_operation_never_recorded_fails(cast: Cast) -> None:
    unsent = commission(cast, ORE)  # signed, never submitted: its nonce stays unused
    op = correction(cast, unsent.event_id)

    result = cast.ledger.relay(
        [cast.ledger.calldata(op, unsent.operation.encode_data())], gas=TEST_BATCH_GAS
    )

    assert reason(result.outcomes[0]) == (
        "LedgerNotEventAuthor",
        {"target": unsent.event_id, "account": cast.mine_cd.address},
    )


def test_correction_proof_shorter_than_typehash_actor_and_nonce_fails(cast: Cast) -> None:
    recorded(cast)
    short = Commission.typehash() + bytes(12) + bytes.fromhex(cast.mine_cd.address[2:])
    target = EventId(bytes(cast.ledger.contract.functions.eventId(keccak(short)).call()))
    op = correction(cast, target)

    result = cast.ledger.relay([cast.ledger.calldata(op, short)], gas=TEST_BATCH_GAS)

    assert reason(result.outcomes[0]) == (
        "LedgerNotEventAuthor",
        {"target": target, "account": cast.mine_cd.address},
    )


def test_author_proof_shows_a_used_nonce_not_that_the_target_was_recorded(cast: Cast) -> None:
    # Known limitation: the ledger keeps no event ids, so an operation that was signed but never
    # recorded can be "corrected" by its author if another operation used the same nonce.
    wrong, _ = recorded(cast)
    twin = Commission(
        actor=cast.mine_cd.address,
        nonce=wrong.operation.nonce,
        deadline=wrong.operation.deadline,
        lot=lot_id("never recorded"),
        material=CO_HYDROXIDE,
        quantity=1,
        feedstock=0,
        footprint=0,
        document_hash=bytes(32),
    )
    target = twin.digest(cast.ledger.domain)
    op = correction(cast, target)

    result = cast.ledger.relay([cast.ledger.calldata(op, twin.encode_data())], gas=TEST_BATCH_GAS)

    assert result.failed == {}
    assert cast.ledger.lot(lot_id("never recorded")) is None


def test_auditor_corrects_any_event_without_proof(cast: Cast) -> None:
    wrong, fixed = recorded(cast)
    op = correction(
        cast, wrong.event_id, by="auditor", code=DID_NOT_OCCUR, corrective=(fixed.event_id,)
    )

    result = cast.ok(op)

    assert cast.events(result) == [
        (
            "EventCorrected",
            {
                "target": wrong.event_id,
                "eventId": op.event_id,
                "actor": cast.auditor.address,
                "reason": DID_NOT_OCCUR,
                "corrective": [fixed.event_id],
            },
        )
    ]


@pytest.mark.parametrize("code", [0, 3, 255])
def test_correction_fails_with_an_unknown_reason(cast: Cast, code: int) -> None:
    wrong, _ = recorded(cast)
    op = correction(cast, wrong.event_id, by="auditor", code=code)

    assert reason(cast.rejected(op)) == ("LedgerInvalidCode", {"code": code})


def test_correction_by_an_unaccredited_account_fails(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    op = correction(cast, wrong.event_id, by="outsider")

    assert reason(cast.rejected(op)) == (
        "LedgerMissingRole",
        {"account": cast.outsider.address, "required": ALL_ROLES, "held": 0},
    )


def test_revoked_author_cannot_correct_its_events(cast: Cast) -> None:
    wrong, _ = recorded(cast)
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.mine_cd.address))
    op = correction(cast, wrong.event_id)

    result = cast.ledger.relay(
        [cast.ledger.calldata(op, wrong.operation.encode_data())], gas=TEST_BATCH_GAS
    )

    assert reason(result.outcomes[0]) == (
        "LedgerMissingRole",
        {"account": cast.mine_cd.address, "required": ALL_ROLES, "held": 0},
    )
