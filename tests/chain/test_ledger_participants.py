"""Ledger contract: accreditation, revocation and certification of participants (governor only),
and who may submit operations."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from mine2cell.chain.ledger import ZERO_ADDRESS, LedgerClient, ParticipantView, Transactor
from mine2cell.errors import InvalidInput, LedgerRejected
from mine2cell.signing.eip712 import Accredit, Certify, Revoke
from tests.chain.ledger_support import (
    ALL_ROLES,
    CUSTODY_ROLES,
    commission,
    lot_id,
    reason,
    ship,
    sign_unvalidated,
)
from tests.conftest import MINE, PROCESSOR, RECYCLER, RELAYER, Cast, facility, fund

RMAP = facility("RMAP")


def outsider_client(cast: Cast) -> LedgerClient:
    """The ledger seen by the (funded, unaccredited) outsider as submitter."""
    fund(cast.w3, cast.outsider.address)
    return LedgerClient(cast.w3, cast.ledger.address, Transactor(cast.w3, cast.outsider))


# -- accredit ------------------------------------------------------------------------------------


def test_accredit_records_a_new_participant_with_the_next_index(cast: Cast) -> None:
    op = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.outsider.address,
        roles=MINE | RECYCLER,
        facility=facility("MANONO"),
        country="CD",
    )

    result = cast.ok(op)

    assert cast.ledger.participant(cast.outsider.address) == ParticipantView(
        index=9, roles=MINE | RECYCLER, country="CD", facility=facility("MANONO")
    )
    assert cast.events(result) == [
        (
            "ParticipantAccredited",
            {
                "participant": cast.outsider.address,
                "eventId": op.event_id,
                "index": 9,
                "roles": MINE | RECYCLER,
                "facility": facility("MANONO"),
                "country": b"CD",
            },
        )
    ]


def test_reaccreditation_keeps_the_index_and_replaces_roles_facility_and_country(
    cast: Cast,
) -> None:
    before = cast.ledger.participant(cast.mine_cd.address)
    assert before is not None
    op = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.mine_cd.address,
        roles=PROCESSOR,
        facility=facility("LUBUMBASHI-SMELTER"),
        country="ZM",
    )

    result = cast.ok(op)

    assert cast.ledger.participant(cast.mine_cd.address) == ParticipantView(
        index=before.index, roles=PROCESSOR, country="ZM", facility=facility("LUBUMBASHI-SMELTER")
    )
    [(name, args)] = cast.events(result)
    assert (name, args["index"], args["roles"]) == (
        "ParticipantAccredited",
        before.index,
        PROCESSOR,
    )


def test_reaccreditation_after_revocation_keeps_the_index(cast: Cast) -> None:
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.mine_au.address))
    op = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.mine_au.address,
        roles=MINE,
        facility=facility("MURRIN-EAST"),
        country="AU",
    )

    cast.ok(op)

    assert cast.ledger.participant(cast.mine_au.address) == ParticipantView(
        index=3, roles=MINE, country="AU", facility=facility("MURRIN-EAST")
    )


def test_accredit_fails_if_not_signed_by_the_governor(cast: Cast) -> None:
    op = cast.sign(
        Accredit,
        cast.auditor,
        participant=cast.outsider.address,
        roles=MINE,
        facility=facility("X"),
        country="CD",
    )

    assert reason(cast.rejected(op)) == (
        "LedgerNotGovernor",
        {"account": cast.auditor.address},
    )
    assert cast.ledger.participant(cast.outsider.address) is None


@pytest.mark.parametrize("roles", [0, 64, 128, 255])
def test_accredit_fails_with_no_role_or_a_role_bit_above_relayer(cast: Cast, roles: int) -> None:
    op = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.outsider.address,
        roles=roles,
        facility=facility("X"),
        country="CD",
    )

    assert reason(cast.rejected(op)) == ("LedgerInvalidRoles", {"roles": roles})


def test_accredit_accepts_every_defined_role_at_once(cast: Cast) -> None:
    op = cast.sign(
        Accredit,
        cast.governor,
        participant=cast.outsider.address,
        roles=ALL_ROLES,
        facility=facility("X"),
        country="CD",
    )

    cast.ok(op)

    view = cast.ledger.participant(cast.outsider.address)
    assert view is not None and view.roles == ALL_ROLES


@pytest.mark.parametrize("country", [b"cd", b"Cd", b"C1", b"42", b"\0\0", b"[A"])
def test_accredit_fails_with_a_country_that_is_not_two_upper_case_letters(
    cast: Cast, country: bytes
) -> None:
    # The Python side refuses such a country too; the ledger must hold without it.
    with pytest.raises(InvalidInput):
        cast.sign(
            Accredit,
            cast.governor,
            participant=cast.outsider.address,
            roles=MINE,
            facility=facility("X"),
            country=country,
        )
    op = sign_unvalidated(
        cast,
        Accredit,
        cast.governor,
        participant=cast.outsider.address,
        roles=MINE,
        facility=facility("X"),
        country=country,
    )

    assert reason(cast.rejected(op)) == ("LedgerInvalidCountry", {"country": country})


def test_accredit_fails_for_the_zero_address(cast: Cast) -> None:
    op = cast.sign(
        Accredit,
        cast.governor,
        participant=ZERO_ADDRESS,
        roles=MINE,
        facility=facility("X"),
        country="CD",
    )

    assert reason(cast.rejected(op)) == ("LedgerUnknownParticipant", {"account": ZERO_ADDRESS})


# -- revoke --------------------------------------------------------------------------------------


def test_revoke_withdraws_every_role_and_emits_the_previous_roles(cast: Cast) -> None:
    op = cast.sign(Revoke, cast.governor, participant=cast.refiner.address)

    result = cast.ok(op)

    assert cast.ledger.participant(cast.refiner.address) == ParticipantView(
        index=5, roles=0, country="FI", facility=facility("KOKKOLA-REFINERY")
    )
    assert cast.events(result) == [
        (
            "ParticipantRevoked",
            {
                "participant": cast.refiner.address,
                "eventId": op.event_id,
                "previousRoles": PROCESSOR,
            },
        )
    ]


def test_revoke_fails_if_not_signed_by_the_governor(cast: Cast) -> None:
    op = cast.sign(Revoke, cast.auditor, participant=cast.refiner.address)

    assert reason(cast.rejected(op)) == ("LedgerNotGovernor", {"account": cast.auditor.address})
    view = cast.ledger.participant(cast.refiner.address)
    assert view is not None and view.roles == PROCESSOR


def test_revoke_fails_for_an_account_never_accredited(cast: Cast) -> None:
    op = cast.sign(Revoke, cast.governor, participant=cast.outsider.address)

    assert reason(cast.rejected(op)) == (
        "LedgerUnknownParticipant",
        {"account": cast.outsider.address},
    )


def test_revoke_fails_for_a_participant_already_revoked(cast: Cast) -> None:
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.refiner.address))
    again = cast.sign(Revoke, cast.governor, participant=cast.refiner.address)

    assert reason(cast.rejected(again)) == (
        "LedgerUnknownParticipant",
        {"account": cast.refiner.address},
    )


def test_revoked_participant_cannot_commission(cast: Cast) -> None:
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.mine_cd.address))

    assert reason(cast.rejected(commission(cast, lot_id("late")))) == (
        "LedgerMissingRole",
        {"account": cast.mine_cd.address, "required": MINE | RECYCLER, "held": 0},
    )


def test_revoked_participant_keeps_its_lots_but_cannot_ship_them(cast: Cast) -> None:
    lot = lot_id("ore")
    cast.ok(commission(cast, lot))
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.mine_cd.address))

    err = cast.rejected(ship(cast, lot, cast.mine_cd, cast.refiner))

    assert reason(err) == (
        "LedgerMissingRole",
        {"account": cast.mine_cd.address, "required": CUSTODY_ROLES, "held": 0},
    )
    view = cast.ledger.lot(lot)
    assert view is not None and view.custodian == cast.mine_cd.address


# -- certify -------------------------------------------------------------------------------------


def test_certification_recorded_at_setup_is_readable(cast: Cast) -> None:
    valid_until, document = cast.ledger.contract.functions.certification(
        cast.refiner.address, RMAP
    ).call()

    assert (valid_until, bytes(document)) == (2_000_000_000, keccak(text="rmap certificate"))


def test_certify_records_the_certification_and_emits_it(cast: Cast) -> None:
    scheme = facility("IRMA")
    op = cast.sign(
        Certify,
        cast.governor,
        participant=cast.mine_cd.address,
        scheme=scheme,
        valid_until=1_900_000_000,
        document_hash=keccak(text="irma report"),
    )

    result = cast.ok(op)

    read = cast.ledger.contract.functions.certification(cast.mine_cd.address, scheme).call()
    assert (read[0], bytes(read[1])) == (1_900_000_000, keccak(text="irma report"))
    assert cast.events(result) == [
        (
            "CertificationRecorded",
            {
                "participant": cast.mine_cd.address,
                "scheme": scheme,
                "eventId": op.event_id,
                "validUntil": 1_900_000_000,
                "documentHash": keccak(text="irma report"),
            },
        )
    ]


def test_certify_replaces_the_previous_certification_under_the_same_scheme(cast: Cast) -> None:
    op = cast.sign(
        Certify,
        cast.governor,
        participant=cast.refiner.address,
        scheme=RMAP,
        valid_until=2_100_000_000,
        document_hash=keccak(text="rmap renewal"),
    )

    cast.ok(op)

    read = cast.ledger.contract.functions.certification(cast.refiner.address, RMAP).call()
    assert (read[0], bytes(read[1])) == (2_100_000_000, keccak(text="rmap renewal"))


def test_certify_fails_if_not_signed_by_the_governor(cast: Cast) -> None:
    op = cast.sign(
        Certify,
        cast.auditor,
        participant=cast.refiner.address,
        scheme=RMAP,
        valid_until=2_100_000_000,
        document_hash=bytes(32),
    )

    assert reason(cast.rejected(op)) == ("LedgerNotGovernor", {"account": cast.auditor.address})


def test_certify_fails_for_an_account_never_accredited(cast: Cast) -> None:
    op = cast.sign(
        Certify,
        cast.governor,
        participant=cast.outsider.address,
        scheme=RMAP,
        valid_until=2_100_000_000,
        document_hash=bytes(32),
    )

    assert reason(cast.rejected(op)) == (
        "LedgerUnknownParticipant",
        {"account": cast.outsider.address},
    )


def test_participant_of_an_account_never_accredited_is_none(cast: Cast) -> None:
    assert cast.ledger.participant(cast.outsider.address) is None


# -- submitters ----------------------------------------------------------------------------------


def test_governor_may_submit_an_operation_directly(cast: Cast) -> None:
    governed = LedgerClient(cast.w3, cast.ledger.address, Transactor(cast.w3, cast.governor))
    op = commission(cast, lot_id("ore"))

    receipt = governed.submit(op)

    assert cast.events(receipt)[0][0] == "LotCommissioned"
    assert cast.ledger.lot(lot_id("ore")) is not None


def test_direct_submission_fails_if_the_submitter_is_not_a_relayer(cast: Cast) -> None:
    client = outsider_client(cast)
    op = commission(cast, lot_id("ore"))

    with pytest.raises(LedgerRejected) as rejected:
        client.submit(op)

    assert reason(rejected.value) == (
        "LedgerUnauthorizedSubmitter",
        {"submitter": cast.outsider.address},
    )
    assert not cast.ledger.nonce_used(cast.mine_cd.address, op.operation.nonce)


def test_relay_fails_if_the_submitter_is_not_a_relayer(cast: Cast) -> None:
    client = outsider_client(cast)

    with pytest.raises(LedgerRejected) as rejected:
        client.relay([commission(cast, lot_id("ore"))])

    assert reason(rejected.value) == (
        "LedgerUnauthorizedSubmitter",
        {"submitter": cast.outsider.address},
    )
    assert cast.ledger.lot(lot_id("ore")) is None


def test_relay_fails_if_the_submitter_is_a_participant_without_the_relayer_role(
    cast: Cast,
) -> None:
    fund(cast.w3, cast.mine_cd.address)
    client = LedgerClient(cast.w3, cast.ledger.address, Transactor(cast.w3, cast.mine_cd))

    with pytest.raises(LedgerRejected) as rejected:
        client.relay([commission(cast, lot_id("ore"))])

    assert reason(rejected.value) == (
        "LedgerUnauthorizedSubmitter",
        {"submitter": cast.mine_cd.address},
    )


def test_relay_fails_once_the_relayer_is_revoked(cast: Cast) -> None:
    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.relayer.address))

    with pytest.raises(LedgerRejected) as rejected:
        cast.ledger.relay([commission(cast, lot_id("ore"))])

    assert reason(rejected.value) == (
        "LedgerUnauthorizedSubmitter",
        {"submitter": cast.relayer.address},
    )


def test_a_participant_accredited_as_relayer_may_submit(cast: Cast) -> None:
    cast.ok(
        cast.sign(
            Accredit,
            cast.governor,
            participant=cast.outsider.address,
            roles=RELAYER,
            facility=facility("RELAY-2"),
            country="NL",
        )
    )
    client = outsider_client(cast)

    result = client.relay([commission(cast, lot_id("ore"))])

    assert result.failed == {}
    assert cast.ledger.lot(lot_id("ore")) is not None
