"""Ledger contract: signed operations (deadline, EIP-712 domain and type, signature form, nonces)
and the event ids they yield."""

from __future__ import annotations

import pytest

from mine2cell.chain.ledger import LedgerClient
from mine2cell.signing.eip712 import (
    SECP256K1_N,
    Commission,
    Domain,
    Recall,
    Reject,
    Signature,
    SignedOperation,
    sign,
)
from tests.chain.ledger_support import (
    ASSAY,
    CO_HYDROXIDE,
    PRIMARY,
    block_timestamp,
    commission,
    event_id_on_chain,
    lot_id,
    pin_next_block_timestamp,
    reason,
    receive,
    recovered,
    ship,
    signed_as,
    with_signature,
)
from tests.conftest import TEST_BATCH_GAS, Cast

# -- deadline ------------------------------------------------------------------------------------


def test_operation_fails_after_its_deadline(cast: Cast) -> None:
    op = cast.sign(
        Commission,
        cast.mine_cd,
        deadline=1_600_000_000,
        lot=lot_id("ore"),
        material=CO_HYDROXIDE,
        quantity=1000,
        feedstock=PRIMARY,
        footprint=0,
        document_hash=ASSAY,
    )

    result = cast.ledger.relay([op], gas=TEST_BATCH_GAS)

    assert reason(result.outcomes[0]) == (
        "LedgerExpiredDeadline",
        {
            "deadline": 1_600_000_000,
            "timestamp": block_timestamp(cast.w3, result.block_number),
        },
    )
    assert cast.ledger.lot(lot_id("ore")) is None


def test_operation_is_accepted_in_the_second_of_its_deadline(cast: Cast) -> None:
    deadline = pin_next_block_timestamp(cast.w3)
    op = cast.sign(
        Commission,
        cast.mine_cd,
        deadline=deadline,
        lot=lot_id("ore"),
        material=CO_HYDROXIDE,
        quantity=1000,
        feedstock=PRIMARY,
        footprint=0,
        document_hash=ASSAY,
    )

    result = cast.ok(op)

    assert block_timestamp(cast.w3, result.block_number) == deadline
    assert cast.ledger.lot(lot_id("ore")) is not None


# -- signer, domain and type ---------------------------------------------------------------------


def test_operation_signed_by_another_key_than_its_actor_fails(cast: Cast) -> None:
    op = commission(cast, lot_id("ore")).operation
    forged = signed_as(op, cast.mine_au, cast.ledger.domain)

    assert reason(cast.rejected(forged)) == (
        "LedgerSignerMismatch",
        {"recovered": cast.mine_au.address, "actor": cast.mine_cd.address},
    )
    assert cast.ledger.lot(lot_id("ore")) is None


@pytest.mark.parametrize("other", ["chain id", "ledger address"])
def test_operation_signed_for_another_domain_fails(cast: Cast, other: str) -> None:
    domain = cast.ledger.domain
    elsewhere = (
        Domain(domain.chain_id + 1, domain.verifying_contract)
        if other == "chain id"
        else Domain(domain.chain_id, cast.relayer.address)
    )
    op = commission(cast, lot_id("ore")).operation
    signed = sign(op, cast.mine_cd, elsewhere)

    err = cast.rejected(signed)

    assert reason(err) == (
        "LedgerSignerMismatch",
        {
            "recovered": recovered(op, signed.signature, domain),
            "actor": cast.mine_cd.address,
        },
    )
    assert recovered(op, signed.signature, domain) != cast.mine_cd.address


@pytest.mark.parametrize("as_type", [Reject, Recall])
def test_receive_signature_cannot_be_submitted_as_another_handoff(
    cast: Cast, as_type: type[Reject] | type[Recall]
) -> None:
    lot = lot_id("ore")
    cast.ok(commission(cast, lot), ship(cast, lot, cast.mine_cd, cast.refiner))
    accepted = receive(cast, lot, cast.refiner, cast.mine_cd)
    signed = accepted.operation
    other = as_type(
        actor=signed.actor,
        nonce=signed.nonce,
        deadline=signed.deadline,
        lot=lot,
        counterparty=cast.mine_cd.address,
    )
    forged = SignedOperation(other, accepted.signature, other.digest(cast.ledger.domain))

    assert reason(cast.rejected(forged)) == (
        "LedgerSignerMismatch",
        {
            "recovered": recovered(other, accepted.signature, cast.ledger.domain),
            "actor": cast.refiner.address,
        },
    )
    view = cast.ledger.lot(lot)
    assert view is not None and view.recipient == cast.refiner.address


# -- signature form ------------------------------------------------------------------------------


def test_high_s_signature_fails(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"))
    sig = op.signature
    high_s = (SECP256K1_N - int.from_bytes(sig.s)).to_bytes(32)
    malleated = Signature(55 - sig.v, sig.r, high_s)  # 27 <-> 28

    assert reason(cast.rejected(with_signature(op, malleated))) == (
        "LedgerHighSSignature",
        {"s": high_s},
    )


def test_malleated_signature_recovers_the_actor_off_chain(cast: Cast) -> None:
    # The high-s twin is a valid signature by the same key: only the ledger's EIP-2 rule stops it.
    op = commission(cast, lot_id("ore"))
    sig = op.signature
    twin = Signature(55 - sig.v, sig.r, (SECP256K1_N - int.from_bytes(sig.s)).to_bytes(32))

    assert recovered(op.operation, twin, cast.ledger.domain) == cast.mine_cd.address


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_signature_with_a_v_other_than_27_or_28_fails(cast: Cast, v: int) -> None:
    op = commission(cast, lot_id("ore"))
    sig = op.signature

    err = cast.rejected(with_signature(op, Signature(v, sig.r, sig.s)))

    assert reason(err) == ("LedgerInvalidSignature", {})


def test_signature_with_r_zero_fails(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"))
    sig = op.signature

    err = cast.rejected(with_signature(op, Signature(sig.v, bytes(32), sig.s)))

    assert reason(err) == ("LedgerInvalidSignature", {})


# -- nonces and replay ---------------------------------------------------------------------------


def test_recorded_operation_marks_its_nonce_used(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"))
    assert not cast.ledger.nonce_used(cast.mine_cd.address, op.operation.nonce)

    cast.ok(op)

    assert cast.ledger.nonce_used(cast.mine_cd.address, op.operation.nonce)


def test_replayed_operation_fails_with_nonce_used(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"))
    cast.ok(op)

    assert reason(cast.rejected(op)) == (
        "LedgerNonceUsed",
        {"actor": cast.mine_cd.address, "nonce": op.operation.nonce},
    )


def test_operation_twice_in_one_batch_is_recorded_once(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"))

    result = cast.ledger.relay([op, op], gas=TEST_BATCH_GAS)

    assert result.outcomes[0] is None
    assert reason(result.outcomes[1]) == (
        "LedgerNonceUsed",
        {"actor": cast.mine_cd.address, "nonce": op.operation.nonce},
    )
    assert [name for name, _ in cast.events(result)] == ["LotCommissioned", "OperationFailed"]


def test_nonce_already_used_by_another_operation_fails(cast: Cast) -> None:
    first = commission(cast, lot_id("first"))
    cast.ok(first)
    same_nonce = sign(
        Commission(
            actor=cast.mine_cd.address,
            nonce=first.operation.nonce,
            deadline=first.operation.deadline,
            lot=lot_id("second"),
            material=CO_HYDROXIDE,
            quantity=5,
            feedstock=PRIMARY,
            footprint=0,
            document_hash=ASSAY,
        ),
        cast.mine_cd,
        cast.ledger.domain,
    )

    assert reason(cast.rejected(same_nonce)) == (
        "LedgerNonceUsed",
        {"actor": cast.mine_cd.address, "nonce": first.operation.nonce},
    )


def test_nonces_are_per_actor(cast: Cast) -> None:
    ours = commission(cast, lot_id("cd"))
    theirs = commission(cast, lot_id("au"), by=cast.mine_au)
    assert ours.operation.nonce == theirs.operation.nonce

    cast.ok(ours, theirs)

    assert cast.ledger.lot(lot_id("cd")) is not None
    assert cast.ledger.lot(lot_id("au")) is not None


def test_nonces_need_not_be_consecutive(cast: Cast) -> None:
    op = sign(
        Commission(
            actor=cast.mine_cd.address,
            nonce=2**200 + 7,
            deadline=2**40,
            lot=lot_id("ore"),
            material=CO_HYDROXIDE,
            quantity=5,
            feedstock=PRIMARY,
            footprint=0,
            document_hash=ASSAY,
        ),
        cast.mine_cd,
        cast.ledger.domain,
    )

    cast.ok(op)

    assert cast.ledger.nonce_used(cast.mine_cd.address, 2**200 + 7)
    assert not cast.ledger.nonce_used(cast.mine_cd.address, 2**200 + 6)
    assert not cast.ledger.nonce_used(cast.mine_cd.address, 0)


def test_failed_operation_leaves_its_nonce_unused_and_can_be_resubmitted(cast: Cast) -> None:
    lot = lot_id("ore")
    early = receive(cast, lot, cast.refiner, cast.mine_cd)
    assert reason(cast.rejected(early)) == ("LedgerUnknownLot", {"lot": lot})
    assert not cast.ledger.nonce_used(cast.refiner.address, early.operation.nonce)

    cast.ok(commission(cast, lot), ship(cast, lot, cast.mine_cd, cast.refiner))
    cast.ok(early)

    assert cast.ledger.nonce_used(cast.refiner.address, early.operation.nonce)
    view = cast.ledger.lot(lot)
    assert view is not None and view.custodian == cast.refiner.address


# -- event ids -----------------------------------------------------------------------------------


def test_event_id_is_the_eip712_digest_of_the_operation(cast: Cast) -> None:
    op = commission(cast, lot_id("ore"))

    assert event_id_on_chain(cast, op.operation) == op.event_id
    result = cast.ok(op)
    [(_, args)] = cast.events(result)
    assert args["eventId"] == op.event_id


def test_next_nonce_skips_the_used_nonces(cast: Cast) -> None:
    cast.ok(
        commission(cast, lot_id("a")), commission(cast, lot_id("b")), commission(cast, lot_id("c"))
    )
    fresh = LedgerClient(cast.w3, cast.ledger.address)

    nonce = fresh.next_nonce(cast.mine_cd.address)

    assert nonce == 3
    assert not cast.ledger.nonce_used(cast.mine_cd.address, nonce)
    assert fresh.next_nonce(cast.mine_cd.address) == 4


def test_next_nonce_fills_the_lowest_gap_then_skips_used_nonces(cast: Cast) -> None:
    op = sign(
        Commission(
            actor=cast.mine_cd.address,
            nonce=9,
            deadline=2**40,
            lot=lot_id("ore"),
            material=CO_HYDROXIDE,
            quantity=5,
            feedstock=PRIMARY,
            footprint=0,
            document_hash=ASSAY,
        ),
        cast.mine_cd,
        cast.ledger.domain,
    )
    cast.ok(op)

    fresh = LedgerClient(cast.w3, cast.ledger.address)
    allocated = [fresh.next_nonce(cast.mine_cd.address) for _ in range(10)]

    # Nonces 0-8 are free, 9 is used: the client hands out 0-8, then goes on after 9.
    assert allocated == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]
