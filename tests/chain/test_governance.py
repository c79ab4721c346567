"""The ledger's governance and its limits: nobody, the governor included, can rewrite history.

The contract has no owner functions: every state-changing function but the batch entry point is a
signed operation, none is payable, and the governor (immutable, set at deployment) can only
accredit, revoke and certify. The runtime code holds no opcode that could replace or destroy it
(no SELFDESTRUCT, CALLCODE, CREATE or CREATE2) or move value (no CALL: signatures are checked
with STATICCALL to the ecrecover precompile), and its one DELEGATECALL is the batch calling the
ledger's own operations. Revoking a participant stops its later operations and leaves everything
it recorded in place."""

from __future__ import annotations

from typing import Any

from mine2cell.chain.artifacts import load_artifact
from mine2cell.signing.eip712 import Input, Revoke, Ship, Transform
from tests.chain.ledger_support import commission, lot_id, reason, receive, ship
from tests.conftest import Cast

SIGNED_OPERATIONS = {
    "accredit",
    "revoke",
    "certify",
    "commission",
    "ship",
    "receiveLot",
    "reject",
    "recall",
    "transform",
    "bindPassport",
    "correct",
    "attest",
}
# EVM opcodes (yellow paper numbering) and the PUSH range whose immediate bytes are data.
CREATE, CALL, CALLCODE, DELEGATECALL, CREATE2, STATICCALL, SELFDESTRUCT = (
    0xF0,
    0xF1,
    0xF2,
    0xF4,
    0xF5,
    0xFA,
    0xFF,
)
PUSH1, PUSH32 = 0x60, 0x7F


def opcodes(code: bytes) -> list[int]:
    """The instructions of EVM code, PUSH data skipped (metadata after the code included)."""
    found, i = [], 0
    while i < len(code):
        op = code[i]
        found.append(op)
        i += 1 + (op - PUSH1 + 1 if PUSH1 <= op <= PUSH32 else 0)
    return found


def state_changing(abi: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        entry["name"]: entry
        for entry in abi
        if entry["type"] == "function" and entry["stateMutability"] not in ("view", "pure")
    }


def test_every_state_changing_function_is_a_signed_operation_or_the_batch() -> None:
    functions = state_changing(load_artifact().abi)

    assert set(functions) == SIGNED_OPERATIONS | {"relay"}
    for name in SIGNED_OPERATIONS:
        inputs = [(i["name"], i["type"]) for i in functions[name]["inputs"]]
        assert inputs[:2] == [("op", "tuple"), ("sig", "tuple")], (name, inputs)
    assert all(f["stateMutability"] == "nonpayable" for f in functions.values())


def test_the_governor_is_set_once_by_the_constructor_and_readable() -> None:
    abi = load_artifact().abi
    (constructor,) = [entry for entry in abi if entry["type"] == "constructor"]

    assert [i["type"] for i in constructor["inputs"]] == ["address"]
    assert not [e for e in abi if e.get("type") in ("fallback", "receive")]
    assert not [
        e["name"]
        for e in abi
        if e["type"] == "function"
        and any(word in e["name"].lower() for word in ("owner", "governor", "upgrade", "admin"))
        and e["stateMutability"] not in ("view", "pure")
    ]


def test_the_runtime_code_cannot_replace_destroy_or_pay_out_and_calls_only_itself() -> None:
    runtime = load_artifact().deployed_bytecode
    # Solidity appends CBOR metadata (its length in the last two bytes): data, not code.
    code = opcodes(runtime[: -(int.from_bytes(runtime[-2:], "big") + 2)])

    for forbidden in (SELFDESTRUCT, CALLCODE, CREATE, CREATE2, CALL):
        assert forbidden not in code, hex(forbidden)
    assert code.count(DELEGATECALL) == 1
    assert STATICCALL in code  # ecrecover


def test_the_governor_cannot_move_or_consume_a_participants_material(cast: Cast) -> None:
    lot = lot_id("GOV-1")
    cast.ok(commission(cast, lot, quantity=5000))
    before = cast.ledger.lot(lot)

    moved = cast.rejected(ship(cast, lot, cast.governor, cast.refiner))
    consumed = cast.rejected(
        cast.sign(Transform, cast.governor, inputs=(Input(lot, 5000),), outputs=(), footprint=0)
    )

    assert reason(moved)[0] in ("LedgerMissingRole", "LedgerUnknownParticipant")
    assert reason(consumed)[0] in ("LedgerMissingRole", "LedgerUnknownParticipant")
    assert cast.ledger.lot(lot) == before


def test_revoking_a_participant_stops_its_operations_and_keeps_what_it_recorded(
    cast: Cast,
) -> None:
    lot = lot_id("GOV-2")
    cast.ok(commission(cast, lot, quantity=7000), ship(cast, lot, cast.mine_cd, cast.refiner))
    cast.ok(receive(cast, lot, cast.refiner, cast.mine_cd))
    logs_before = cast.w3.eth.get_logs({"address": cast.ledger.address, "fromBlock": 0})
    held = cast.ledger.lot(lot)

    cast.ok(cast.sign(Revoke, cast.governor, participant=cast.refiner.address))
    refused = cast.rejected(cast.sign(Ship, cast.refiner, lot=lot, recipient=cast.cell.address))

    assert reason(refused)[0] == "LedgerMissingRole"
    assert cast.ledger.lot(lot) == held  # still the revoked refiner's, 7,000 g, nothing erased
    logs_after = cast.w3.eth.get_logs({"address": cast.ledger.address, "fromBlock": 0})
    assert logs_after[: len(logs_before)] == logs_before
