"""The gas bound of each operation type (``operation_gas_bound``, which decides how many operations
the relay puts in a batch) covers the operation run cold: alone in its own transaction, every slot
it touches cold, its signer's nonce in a storage word never written. The batch is sent with exactly
the transaction's base plus the bound; an operation that ran out of that gas would revert the whole
batch (LedgerBatchOutOfGas) instead of being recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import keccak

from mine2cell.chain.ledger import BATCH_BASE_GAS, operation_gas_bound
from mine2cell.signing.eip712 import (
    OPERATION_TYPES,
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Correct,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    Recall,
    Receive,
    Reject,
    Revoke,
    Ship,
    SignedOperation,
    Transform,
    sign,
)
from tests.chain.ledger_support import (
    ASSAY,
    CAM_NMC,
    CO_HYDROXIDE,
    CO_SULFATE,
    INCORRECT_DATA,
    PASS,
    PRIMARY,
    commission,
    delivery,
    lot_id,
    passport_id,
    ship,
)
from tests.conftest import PROCESSOR, Cast, facility

# A nonce in a nonce word nothing has written: recording it sets a zero storage slot, the most
# expensive write there is.
FRESH_NONCE = 1000 * 256
RECORD_EVENT = {
    "Accredit": "ParticipantAccredited",
    "Revoke": "ParticipantRevoked",
    "Certify": "CertificationRecorded",
    "Commission": "LotCommissioned",
    "Ship": "LotShipped",
    "Receive": "LotReceived",
    "Reject": "ShipmentRejected",
    "Recall": "ShipmentRecalled",
    "Transform": "LotsTransformed",
    "BindPassport": "PassportBound",
    "Correct": "EventCorrected",
    "Attest": "PassportAttested",
}
X = lot_id("x")
BATTERY = passport_id("battery")

Measured = tuple[SignedOperation, bytes]  # the operation to measure and its authorship proof


def cold(cast: Cast, op_type: type[Operation], who: LocalSigner, **fields: Any) -> SignedOperation:
    op = op_type(actor=who.address, nonce=FRESH_NONCE, deadline=int(time.time()) + 3600, **fields)
    return sign(op, who, cast.ledger.domain)


def lots_held_by(
    cast: Cast, holder: LocalSigner, n: int, material: int = CO_HYDROXIDE
) -> list[LotId]:
    lots = [lot_id(f"held {i}") for i in range(n)]
    cast.ok(*(op for lot in lots for op in delivery(cast, lot, holder, material=material)))
    return lots


def transform(cast: Cast, inputs: int, outputs: int) -> Measured:
    held = lots_held_by(cast, cast.refiner, inputs)
    return cold(
        cast,
        Transform,
        cast.refiner,
        inputs=tuple(Input(lot, 1000) for lot in held),
        outputs=tuple(Output(lot_id(f"out {i}"), CO_SULFATE, 100, ASSAY) for i in range(outputs)),
        footprint=7_000,
    ), b""


def bind(cast: Cast, inputs: int) -> Measured:
    held = lots_held_by(cast, cast.cell, inputs, CAM_NMC)
    return cold(
        cast,
        BindPassport,
        cast.cell,
        passport=BATTERY,
        inputs=tuple(Input(lot, 10) for lot in held),
        footprint=12_000,
        document_hash=ASSAY,
    ), b""


def correct_by_author(cast: Cast) -> Measured:
    wrong = commission(cast, X)
    cast.ok(wrong)
    fix = (keccak(text="corrective"),)
    op = cold(
        cast, Correct, cast.mine_cd, target=wrong.event_id, reason=INCORRECT_DATA, corrective=fix
    )
    return op, wrong.operation.encode_data()


def correct_by_auditor(cast: Cast) -> Measured:
    wrong = commission(cast, X)
    cast.ok(wrong)
    fixes = (keccak(text="corrective 1"), keccak(text="corrective 2"))
    op = cold(
        cast, Correct, cast.auditor, target=wrong.event_id, reason=INCORRECT_DATA, corrective=fixes
    )
    return op, b""


def attest(cast: Cast) -> Measured:
    op, _ = bind(cast, 1)
    cast.ok(op)
    return cold(cast, Attest, cast.auditor, passport=BATTERY, verdict=PASS, report_hash=ASSAY), b""


def accredit(cast: Cast) -> Measured:
    return cold(
        cast,
        Accredit,
        cast.governor,
        participant=cast.outsider.address,
        roles=PROCESSOR,
        facility=facility("NEW PLANT"),
        country="NO",
    ), b""


def revoke(cast: Cast) -> Measured:
    return cold(cast, Revoke, cast.governor, participant=cast.auditor.address), b""


def certify(cast: Cast) -> Measured:
    return cold(
        cast,
        Certify,
        cast.governor,
        participant=cast.refiner.address,
        scheme=facility("IRMA"),
        valid_until=2_000_000_000,
        document_hash=ASSAY,
    ), b""


def commission_x(cast: Cast) -> Measured:
    return cold(
        cast,
        Commission,
        cast.mine_cd,
        lot=X,
        material=CO_HYDROXIDE,
        quantity=10**9,
        feedstock=PRIMARY,
        footprint=5_000,
        document_hash=ASSAY,
    ), b""


def ship_x(cast: Cast) -> Measured:
    cast.ok(commission(cast, X))
    return cold(cast, Ship, cast.mine_cd, lot=X, recipient=cast.refiner.address), b""


def handoff(op_type: type[Operation], by: str, counterparty: str) -> Callable[[Cast], Measured]:
    """Receive, reject (by the refiner) or recall (by the mine) of X shipped to the refiner."""

    def build(cast: Cast) -> Measured:
        cast.ok(commission(cast, X), ship(cast, X, cast.mine_cd, cast.refiner))
        other = getattr(cast, counterparty).address
        return cold(cast, op_type, getattr(cast, by), lot=X, counterparty=other), b""

    return build


CASES: dict[str, tuple[type[Operation], Callable[[Cast], Measured]]] = {
    "accredit a new participant": (Accredit, accredit),
    "revoke": (Revoke, revoke),
    "certify under a new scheme": (Certify, certify),
    "commission": (Commission, commission_x),
    "ship": (Ship, ship_x),
    "receive": (Receive, handoff(Receive, "refiner", "mine_cd")),
    "reject": (Reject, handoff(Reject, "refiner", "mine_cd")),
    "recall": (Recall, handoff(Recall, "mine_cd", "refiner")),
    "transform 1 input into 1 output": (Transform, lambda cast: transform(cast, 1, 1)),
    "transform 3 inputs into 2 outputs": (Transform, lambda cast: transform(cast, 3, 2)),
    "bind a passport to 1 input": (BindPassport, lambda cast: bind(cast, 1)),
    "bind a passport to 3 inputs": (BindPassport, lambda cast: bind(cast, 3)),
    "correct by the author with proof": (Correct, correct_by_author),
    "correct by an auditor": (Correct, correct_by_auditor),
    "attest": (Attest, attest),
}


def test_every_operation_type_has_a_gas_case() -> None:
    assert {op_type for op_type, _ in CASES.values()} == set(OPERATION_TYPES)


@pytest.mark.parametrize("case", CASES)
def test_gas_bound_covers_a_cold_run_of_the_operation(cast: Cast, case: str) -> None:
    op_type, build = CASES[case]
    op, proof = build(cast)
    calldata = cast.ledger.calldata(op, proof)
    gas = BATCH_BASE_GAS + operation_gas_bound(op.operation, len(calldata))

    result = cast.ledger.relay([calldata], gas=gas)

    assert type(op.operation) is op_type
    assert result.outcomes == [None]
    recorded = [(name, args.get("eventId")) for name, args in cast.events(result)]
    assert (RECORD_EVENT[op_type.PRIMARY], op.event_id) in recorded
