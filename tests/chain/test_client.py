"""The signing client: each operation is checked against the ledger's confirmed state and refused,
naming the field at fault, before anything is signed or stored; an operation that passes is
stored in the relay's outbox and is confirmed once the relay drains it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_utils import keccak

from mine2cell.chain.ledger import LedgerClient, LotView
from mine2cell.client import SigningClient
from mine2cell.codes import Feedstock, Role
from mine2cell.errors import InvalidInput
from mine2cell.relay.outbox import Accepted, Outbox, State
from mine2cell.relay.relay import Relay
from mine2cell.signing.codec import from_document
from mine2cell.signing.eip712 import (
    BindPassport,
    Input,
    LocalSigner,
    Output,
    text32,
)
from tests.chain.ledger_support import (
    CO_HYDROXIDE,
    CO_SULFATE,
    DID_NOT_OCCUR,
    INCORRECT_DATA,
    PASS,
    commission,
    delivery,
    lot_id,
    passport_id,
    ship,
)
from tests.conftest import Cast

LOT = lot_id("client ore")
OTHER_LOT = lot_id("client other ore")
OUTPUT = lot_id("client sulfate")
PASSPORT = passport_id("client battery")
REPORT = keccak(text="audit report")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite")
    try:
        yield box
    finally:
        box.close()


def client(cast: Cast, outbox: Outbox, who: LocalSigner) -> SigningClient:
    return SigningClient(cast.ledger, outbox, who)


def drain(cast: Cast, outbox: Outbox) -> None:
    """Relay everything queued in the outbox to the chain."""
    Relay(cast.ledger, outbox, cast.relayer).drain()
    # The relay sent from the relayer's key behind the back of the ledger's own transactor.
    assert cast.ledger.transactor is not None
    cast.ledger.transactor.resync_nonce()


def state(outbox: Outbox, accepted: Accepted) -> State:
    status = outbox.status(accepted.event_id)
    assert status is not None
    return status.state


def refusal(action: Callable[[], object]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        action()
    return caught.value


def nothing_stored(outbox: Outbox) -> bool:
    return outbox.counts() == dict.fromkeys(State, 0)


def shipped_to_refiner(cast: Cast) -> None:
    """LOT (1000 g of cobalt hydroxide) commissioned by the Congolese mine, shipped to the
    refiner and not yet received."""
    cast.ok(commission(cast, LOT), ship(cast, LOT, cast.mine_cd, cast.refiner))


# -- commission ------------------------------------------------------------------------------------


def test_commission_fails_if_the_lot_exists(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(
        lambda: client(cast, outbox, cast.mine_au).commission(
            LOT, material=CO_HYDROXIDE, quantity=500
        )
    )

    assert err.field == "lot"
    assert "already exists" in err.problem
    assert nothing_stored(outbox)


def test_commission_fails_if_the_signer_is_not_a_mine(cast: Cast, outbox: Outbox) -> None:
    err = refusal(
        lambda: client(cast, outbox, cast.refiner).commission(
            LOT, material=CO_HYDROXIDE, quantity=500
        )
    )

    assert err.field == "signer"
    assert "holds PROCESSOR; commissioning primary material needs MINE" in err.problem
    assert nothing_stored(outbox)


def test_commission_fails_if_a_mine_commissions_recycled_feedstock(
    cast: Cast, outbox: Outbox
) -> None:
    err = refusal(
        lambda: client(cast, outbox, cast.mine_cd).commission(
            LOT, material=CO_HYDROXIDE, quantity=500, feedstock=Feedstock.POST_CONSUMER
        )
    )

    assert err.field == "signer"
    assert "holds MINE; commissioning post-consumer material needs RECYCLER" in err.problem
    assert nothing_stored(outbox)


def test_commission_fails_if_the_signer_is_not_accredited(cast: Cast, outbox: Outbox) -> None:
    err = refusal(
        lambda: client(cast, outbox, cast.outsider).commission(
            LOT, material=CO_HYDROXIDE, quantity=500
        )
    )

    assert err.field == "signer"
    assert "is not an accredited participant" in err.problem
    assert nothing_stored(outbox)


def test_commission_is_confirmed_after_the_relay_drains(cast: Cast, outbox: Outbox) -> None:
    accepted = client(cast, outbox, cast.recycler).commission(
        LOT, material=CO_SULFATE, quantity=750, feedstock=Feedstock.PRE_CONSUMER
    )
    assert accepted.stored
    assert state(outbox, accepted) is State.PENDING

    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    assert cast.ledger.lot(LOT) == LotView(cast.recycler.address, None, 750, CO_SULFATE)


# -- ship ------------------------------------------------------------------------------------------


def test_ship_fails_if_the_lot_does_not_exist(cast: Cast, outbox: Outbox) -> None:
    err = refusal(lambda: client(cast, outbox, cast.mine_cd).ship(LOT, cast.refiner.address))

    assert err.field == "lot"
    assert "does not exist" in err.problem
    assert nothing_stored(outbox)


def test_ship_fails_if_the_signer_is_not_the_custodian(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(lambda: client(cast, outbox, cast.mine_au).ship(LOT, cast.refiner.address))

    assert err.field == "lot"
    assert f"is held by {cast.mine_cd.address}, not by {cast.mine_au.address}" in err.problem
    assert nothing_stored(outbox)


def test_ship_fails_if_the_lot_is_in_transit(cast: Cast, outbox: Outbox) -> None:
    shipped_to_refiner(cast)

    err = refusal(lambda: client(cast, outbox, cast.mine_cd).ship(LOT, cast.cathode.address))

    assert err.field == "lot"
    assert f"is in transit to {cast.refiner.address}" in err.problem
    assert nothing_stored(outbox)


def test_ship_fails_if_the_recipient_is_not_accredited(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(lambda: client(cast, outbox, cast.mine_cd).ship(LOT, cast.outsider.address))

    assert err.field == "recipient"
    assert f"{cast.outsider.address} may not hold material (it has no accreditation)" in (
        err.problem
    )
    assert nothing_stored(outbox)


def test_ship_fails_if_the_recipient_holds_no_custody_role(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(lambda: client(cast, outbox, cast.mine_cd).ship(LOT, cast.auditor.address))

    assert err.field == "recipient"
    assert f"{cast.auditor.address} may not hold material (it has AUDITOR)" in err.problem
    assert nothing_stored(outbox)


def test_ship_fails_if_the_recipient_is_the_custodian(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(lambda: client(cast, outbox, cast.mine_cd).ship(LOT, cast.mine_cd.address))

    assert err.field == "recipient"
    assert "cannot be shipped to its own custodian" in err.problem
    assert nothing_stored(outbox)


def test_ship_is_confirmed_after_the_relay_drains(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    accepted = client(cast, outbox, cast.mine_cd).ship(LOT, cast.refiner.address.lower())
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    assert cast.ledger.lot(LOT) == LotView(
        cast.mine_cd.address, cast.refiner.address, 1000, CO_HYDROXIDE
    )


# -- receive and recall ----------------------------------------------------------------------------


def test_receive_fails_if_not_the_named_recipient(cast: Cast, outbox: Outbox) -> None:
    shipped_to_refiner(cast)

    err = refusal(lambda: client(cast, outbox, cast.cathode).receive(LOT))

    assert err.field == "lot"
    assert f"is shipped to {cast.refiner.address}, not to {cast.cathode.address}" in err.problem
    assert nothing_stored(outbox)


def test_receive_fails_if_the_lot_is_not_in_transit(cast: Cast, outbox: Outbox) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(lambda: client(cast, outbox, cast.refiner).receive(LOT))

    assert err.field == "lot"
    assert "is not in transit" in err.problem
    assert nothing_stored(outbox)


def test_receive_is_confirmed_after_the_relay_drains(cast: Cast, outbox: Outbox) -> None:
    shipped_to_refiner(cast)

    accepted = client(cast, outbox, cast.refiner).receive(LOT)
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    assert cast.ledger.lot(LOT) == LotView(cast.refiner.address, None, 1000, CO_HYDROXIDE)


def test_recall_fails_if_the_signer_is_not_the_custodian(cast: Cast, outbox: Outbox) -> None:
    shipped_to_refiner(cast)

    err = refusal(lambda: client(cast, outbox, cast.refiner).recall(LOT))

    assert err.field == "lot"
    assert f"is held by {cast.mine_cd.address}, not by you" in err.problem
    assert nothing_stored(outbox)


# -- transform -------------------------------------------------------------------------------------


def test_transform_fails_if_an_input_holds_too_little(cast: Cast, outbox: Outbox) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))

    err = refusal(
        lambda: client(cast, outbox, cast.refiner).transform(
            [Input(LOT, 1001)], [Output(OUTPUT, CO_SULFATE, 900)]
        )
    )

    assert err.field == "inputs"
    assert "holds 1 kg, fewer than the 1.001 kg asked" in err.problem
    assert nothing_stored(outbox)


def test_transform_fails_if_the_same_input_listed_twice_asks_for_more_than_it_holds(
    cast: Cast, outbox: Outbox
) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))

    err = refusal(
        lambda: client(cast, outbox, cast.refiner).transform(
            [Input(LOT, 600), Input(LOT, 600)], [Output(OUTPUT, CO_SULFATE, 900)]
        )
    )

    assert err.field == "inputs"
    assert "holds 1 kg, fewer than the 1.2 kg asked" in err.problem
    assert nothing_stored(outbox)


def test_transform_fails_if_it_creates_mass_of_a_consumed_material(
    cast: Cast, outbox: Outbox
) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))

    err = refusal(
        lambda: client(cast, outbox, cast.refiner).transform(
            [Input(LOT, 400)], [Output(OUTPUT, CO_HYDROXIDE, 401)]
        )
    )

    assert err.field == "outputs"
    assert "mass cannot be created" in err.problem
    assert nothing_stored(outbox)


def test_transform_fails_if_an_output_lot_exists(cast: Cast, outbox: Outbox) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner), commission(cast, OTHER_LOT))

    err = refusal(
        lambda: client(cast, outbox, cast.refiner).transform(
            [Input(LOT, 400)], [Output(OTHER_LOT, CO_SULFATE, 300)]
        )
    )

    assert err.field == "outputs"
    assert "already exists" in err.problem
    assert nothing_stored(outbox)


def test_transform_fails_if_the_same_output_lot_is_listed_twice(cast: Cast, outbox: Outbox) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))

    err = refusal(
        lambda: client(cast, outbox, cast.refiner).transform(
            [Input(LOT, 400)],
            [Output(OUTPUT, CO_SULFATE, 100), Output(OUTPUT, CO_SULFATE, 100)],
        )
    )

    assert err.field == "outputs"
    assert "already exists" in err.problem
    assert nothing_stored(outbox)


def test_transform_fails_if_the_signer_neither_processes_nor_makes_cells(
    cast: Cast, outbox: Outbox
) -> None:
    cast.ok(commission(cast, LOT))

    err = refusal(
        lambda: client(cast, outbox, cast.mine_cd).transform(
            [Input(LOT, 400)], [Output(OUTPUT, CO_SULFATE, 300)]
        )
    )

    assert err.field == "signer"
    assert "a transformation needs PROCESSOR or CELL_MAKER" in err.problem
    assert nothing_stored(outbox)


def test_transform_is_confirmed_after_the_relay_drains(cast: Cast, outbox: Outbox) -> None:
    cast.ok(*delivery(cast, LOT, cast.refiner))

    accepted = client(cast, outbox, cast.refiner).transform(
        [Input(LOT, 600)], [Output(OUTPUT, CO_SULFATE, 550)]
    )
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    assert cast.ledger.lot(LOT) == LotView(cast.refiner.address, None, 400, CO_HYDROXIDE)
    assert cast.ledger.lot(OUTPUT) == LotView(cast.refiner.address, None, 550, CO_SULFATE)


# -- passports -------------------------------------------------------------------------------------


def bound_passport(cast: Cast) -> None:
    """PASSPORT bound by the cell maker to 10 g of LOT, delivered to it beforehand."""
    cast.ok(*delivery(cast, LOT, cast.cell))
    cast.ok(
        cast.sign(
            BindPassport,
            cast.cell,
            passport=PASSPORT,
            inputs=(Input(LOT, 10),),
            footprint=0,
            document_hash=bytes(32),
        )
    )


def test_bind_passport_fails_if_the_passport_is_bound(cast: Cast, outbox: Outbox) -> None:
    bound_passport(cast)

    err = refusal(lambda: client(cast, outbox, cast.cell).bind_passport(PASSPORT, [Input(LOT, 10)]))

    assert err.field == "passport"
    assert "is already bound" in err.problem
    assert nothing_stored(outbox)


def test_bind_passport_is_confirmed_after_the_relay_drains(cast: Cast, outbox: Outbox) -> None:
    cast.ok(*delivery(cast, LOT, cast.cell))

    accepted = client(cast, outbox, cast.cell).bind_passport(PASSPORT, [Input(LOT, 10)])
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    assert cast.ledger.passport_binder(PASSPORT) == cast.cell.address
    assert cast.ledger.lot(LOT) == LotView(cast.cell.address, None, 990, CO_HYDROXIDE)


def test_attest_fails_if_the_passport_was_never_bound(cast: Cast, outbox: Outbox) -> None:
    err = refusal(
        lambda: client(cast, outbox, cast.auditor).attest(
            PASSPORT, verdict=PASS, report_hash=REPORT
        )
    )

    assert err.field == "passport"
    assert "was never bound" in err.problem
    assert nothing_stored(outbox)


def test_attest_fails_if_the_signer_is_not_an_auditor(cast: Cast, outbox: Outbox) -> None:
    bound_passport(cast)

    err = refusal(
        lambda: client(cast, outbox, cast.refiner).attest(
            PASSPORT, verdict=PASS, report_hash=REPORT
        )
    )

    assert err.field == "signer"
    assert "holds PROCESSOR; an attestation needs AUDITOR" in err.problem
    assert nothing_stored(outbox)


def test_attest_is_confirmed_after_the_relay_drains(cast: Cast, outbox: Outbox) -> None:
    bound_passport(cast)

    accepted = client(cast, outbox, cast.auditor).attest(PASSPORT, verdict=PASS, report_hash=REPORT)
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED


# -- corrections -----------------------------------------------------------------------------------


def test_correct_fails_if_a_non_auditor_corrects_an_event_not_in_the_outbox(
    cast: Cast, outbox: Outbox
) -> None:
    recorded = commission(cast, LOT)
    cast.ok(recorded)

    err = refusal(
        lambda: client(cast, outbox, cast.mine_cd).correct(recorded.event_id, reason=DID_NOT_OCCUR)
    )

    assert err.field == "target"
    assert "is not in this service's outbox" in err.problem
    assert nothing_stored(outbox)


def test_correct_by_the_author_is_confirmed_with_the_proof_from_the_outbox(
    cast: Cast, outbox: Outbox
) -> None:
    mine = client(cast, outbox, cast.mine_cd)
    original = mine.commission(LOT, material=CO_HYDROXIDE, quantity=500)
    drain(cast, outbox)

    accepted = mine.correct(original.event_id, reason=INCORRECT_DATA)
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    signed_original, _ = from_document(outbox.document(original.event_id), cast.ledger.domain)
    _, proof = from_document(outbox.document(accepted.event_id), cast.ledger.domain)
    assert proof == signed_original.operation.encode_data()


def test_correct_by_an_auditor_is_confirmed_without_the_event_in_the_outbox(
    cast: Cast, outbox: Outbox
) -> None:
    recorded = commission(cast, LOT)
    cast.ok(recorded)

    accepted = client(cast, outbox, cast.auditor).correct(recorded.event_id, reason=DID_NOT_OCCUR)
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    assert "proof" not in outbox.document(accepted.event_id)


# -- governance ------------------------------------------------------------------------------------


def test_accredit_fails_if_the_signer_is_not_the_governor(cast: Cast, outbox: Outbox) -> None:
    err = refusal(
        lambda: client(cast, outbox, cast.refiner).accredit(
            cast.outsider.address, roles=Role.MINE, facility=text32("NEW-MINE"), country="CD"
        )
    )

    assert err.field == "signer"
    assert f"is not the governor ({cast.governor.address})" in err.problem
    assert nothing_stored(outbox)


def test_revoke_fails_if_the_signer_is_not_the_governor(cast: Cast, outbox: Outbox) -> None:
    err = refusal(lambda: client(cast, outbox, cast.auditor).revoke(cast.mine_au.address))

    assert err.field == "signer"
    assert f"is not the governor ({cast.governor.address})" in err.problem
    assert nothing_stored(outbox)


def test_certify_fails_if_the_signer_is_not_the_governor(cast: Cast, outbox: Outbox) -> None:
    err = refusal(
        lambda: client(cast, outbox, cast.mine_cd).certify(
            cast.mine_cd.address,
            scheme=text32("RMAP"),
            valid_until=2_000_000_000,
            document_hash=REPORT,
        )
    )

    assert err.field == "signer"
    assert f"is not the governor ({cast.governor.address})" in err.problem
    assert nothing_stored(outbox)


def test_revoke_fails_if_the_participant_is_not_accredited(cast: Cast, outbox: Outbox) -> None:
    err = refusal(lambda: client(cast, outbox, cast.governor).revoke(cast.outsider.address))

    assert err.field == "participant"
    assert "is not accredited; nothing to revoke" in err.problem
    assert nothing_stored(outbox)


def test_accredit_by_the_governor_is_confirmed_after_the_relay_drains(
    cast: Cast, outbox: Outbox
) -> None:
    accepted = client(cast, outbox, cast.governor).accredit(
        cast.outsider.address, roles=Role.RECYCLER, facility=text32("NEW-PLANT"), country="NO"
    )
    drain(cast, outbox)

    assert state(outbox, accepted) is State.CONFIRMED
    joined = cast.ledger.participant(cast.outsider.address)
    assert joined is not None
    assert (joined.roles, joined.country) == (Role.RECYCLER, "NO")


# -- nonces ----------------------------------------------------------------------------------------


def test_operations_queued_before_a_drain_get_different_nonces_and_both_confirm(
    cast: Cast, outbox: Outbox
) -> None:
    first = client(cast, outbox, cast.mine_cd).commission(LOT, material=CO_HYDROXIDE, quantity=500)
    # A second client on its own ledger connection (as after a restart) starts from the chain,
    # where the first nonce is still free: it must skip the nonce the outbox holds.
    restarted = SigningClient(LedgerClient(cast.w3, cast.ledger.address), outbox, cast.mine_cd)
    second = restarted.commission(OTHER_LOT, material=CO_HYDROXIDE, quantity=700)

    assert first.status.nonce != second.status.nonce
    drain(cast, outbox)

    assert (state(outbox, first), state(outbox, second)) == (State.CONFIRMED, State.CONFIRMED)
    assert cast.ledger.lot(OTHER_LOT) == LotView(cast.mine_cd.address, None, 700, CO_HYDROXIDE)
