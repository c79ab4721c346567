"""Reading signed operations back from calldata: for every operation type, the digest, the
signer and the fields read by hand equal those of the operation classes that signed them."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode

from mine2cell.audit.calls import MalformedCall, call_digest, decode_call, split_calls
from mine2cell.chain.ledger import _function_signatures
from mine2cell.signing.eip712 import (
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Correct,
    Domain,
    EventId,
    Input,
    LotId,
    Operation,
    Output,
    PassportId,
    Recall,
    Receive,
    Reject,
    Revoke,
    Ship,
    Transform,
    sign,
)
from tests.conftest import signer

DOMAIN = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")  # type: ignore[arg-type]
ME = signer("mine_cd")
OTHER = signer("refiner").address
LOT = LotId(b"\x11" * 32)
PASSPORT = PassportId(b"\x22" * 32)

OPERATIONS: list[Operation] = [
    Accredit(ME.address, 1, 9, OTHER, roles=5, facility=b"F" * 32, country=b"CD"),
    Revoke(ME.address, 2, 9, OTHER),
    Certify(ME.address, 3, 9, OTHER, scheme=b"R" * 32, valid_until=2**40, document_hash=b"d" * 32),
    Commission(ME.address, 4, 9, LOT, 101, 12_500_000, 0, 9_600_000, b"e" * 32),
    Ship(ME.address, 5, 9, LOT, OTHER),
    Receive(ME.address, 6, 9, LOT, OTHER),
    Reject(ME.address, 7, 9, LOT, OTHER),
    Recall(ME.address, 8, 9, LOT, OTHER),
    Transform(
        ME.address,
        2**200,
        9,
        (Input(LOT, 5), Input(LotId(b"\x33" * 32), 2**96 - 1)),
        (Output(LotId(b"\x44" * 32), 7, 3, b"f" * 32), Output(LotId(b"\x55" * 32), 8, 4)),
        77,
    ),
    BindPassport(ME.address, 10, 9, PASSPORT, (Input(LOT, 45_000),), 610_000, b"g" * 32),
    Correct(ME.address, 11, 9, EventId(b"\x66" * 32), 1, (b"\x77" * 32, b"\x88" * 32)),
    Correct(ME.address, 12, 9, EventId(b"\x66" * 32), 2, ()),
    Attest(ME.address, 13, 9, PASSPORT, 1, b"h" * 32),
]


def calldata(op: Operation, proof: bytes = b"") -> bytes:
    signed = sign(op, ME, DOMAIN)
    selector, types = _function_signatures()[op.FUNCTION]
    args: list[Any] = [op.as_tuple(), signed.signature.as_tuple()]
    if op.FUNCTION == "correct":
        args.append(proof)
    return selector + abi_encode(types, args)


def relay(calls: list[bytes]) -> bytes:
    selector, types = _function_signatures()["relay"]
    return selector + abi_encode(types, [calls])


def as_fields(op: Operation) -> dict[str, Any]:
    fields: dict[str, Any] = {"actor": op.actor, "nonce": op.nonce, "deadline": op.deadline}
    for py_name, sol_name, sol_type in op.FIELDS:
        value = getattr(op, py_name)
        if sol_type.endswith("[]") and sol_type != "bytes32[]":
            value = tuple(item.as_tuple() for item in value)
        elif sol_type == "bytes32[]":
            value = tuple(value)
        fields[sol_name] = value
    return fields


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.PRIMARY}-{op.nonce}")
def test_a_call_reads_back_as_the_signed_operation(op: Operation) -> None:
    call = decode_call(calldata(op, proof=b"\x01" * 200), DOMAIN)

    assert call.function == op.FUNCTION
    assert call.digest == op.digest(DOMAIN)
    assert call.signer() == ME.address == call.actor
    assert call.fields == as_fields(op)
    assert call_digest(calldata(op), DOMAIN) == call.digest


def test_a_batch_splits_into_its_calls_in_order() -> None:
    calls = [calldata(op) for op in OPERATIONS]

    assert split_calls(relay(calls)) == calls
    assert [call_digest(c, DOMAIN) for c in split_calls(relay(calls))] == [
        op.digest(DOMAIN) for op in OPERATIONS
    ]


def test_another_domain_gives_another_digest_and_signer() -> None:
    op = OPERATIONS[4]
    call = decode_call(calldata(op), Domain(1, DOMAIN.verifying_contract))

    assert call.digest != op.digest(DOMAIN)
    assert call.signer() != ME.address


def test_a_high_s_signature_recovers_to_nobody() -> None:
    data = bytearray(calldata(OPERATIONS[4]))
    s_at = 4 + 5 * 32 + 2 * 32
    s = int.from_bytes(data[s_at : s_at + 32], "big")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    data[s_at : s_at + 32] = (n - s).to_bytes(32, "big")

    assert decode_call(bytes(data), DOMAIN).signer() is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xde\xad\xbe\xef" + bytes(64), "not a ledger operation function nor relay"),
        (calldata(OPERATIONS[3])[:-40], "the data ends before byte"),
        (relay([calldata(OPERATIONS[4])])[:-64], "does not fit in the data"),
    ],
)
def test_malformed_calldata_is_named(data: bytes, message: str) -> None:
    with pytest.raises(MalformedCall, match=message):
        for call in split_calls(data):
            call_digest(call, DOMAIN)
