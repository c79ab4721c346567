"""Signed operations as JSON documents, the form in which they travel between machines.

A document is what a wallet or another tool produces with ``eth_signTypedData_v4``: the EIP-712
primary type, the message (field names as in the Solidity structs, numbers as integers or
decimal strings, bytes as 0x-hex) and the 65-byte signature (r, s, v) as 0x-hex. A correction by
its author also carries ``proof``: the ``encodeData`` of the event it corrects.

    {"type": "Ship",
     "message": {"actor": "0x..", "nonce": 7, "deadline": 1795000000,
                 "lot": "0x..(32 bytes)", "recipient": "0x.."},
     "signature": "0x..(65 bytes)"}
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils import to_checksum_address

from mine2cell.errors import InvalidInput
from mine2cell.signing.eip712 import (
    OPERATION_TYPES,
    Domain,
    Input,
    LotId,
    Operation,
    Output,
    Signature,
    SignedOperation,
)

OPERATIONS_BY_TYPE: dict[str, type[Operation]] = {op.PRIMARY: op for op in OPERATION_TYPES}


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _json_value(value: Any, sol_type: str) -> Any:
    if sol_type == "Input[]":
        return [{"lot": _hex(i.lot), "quantity": i.quantity} for i in value]
    if sol_type == "Output[]":
        return [
            {
                "lot": _hex(o.lot),
                "material": o.material,
                "quantity": o.quantity,
                "documentHash": _hex(o.document_hash),
            }
            for o in value
        ]
    if sol_type == "bytes32[]":
        return [_hex(item) for item in value]
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, int) and value > 2**53:
        return str(value)  # beyond what JSON numbers hold exactly in most readers
    return value


def to_document(signed: SignedOperation, proof: bytes = b"") -> dict[str, Any]:
    """The JSON form of a signed operation (see the module docstring)."""
    op = signed.operation
    message: dict[str, Any] = {
        "actor": op.actor,
        "nonce": _json_value(op.nonce, "uint256"),
        "deadline": _json_value(op.deadline, "uint256"),
    }
    for py_name, sol_name, sol_type in op.FIELDS:
        message[sol_name] = _json_value(getattr(op, py_name), sol_type)
    sig = signed.signature
    document: dict[str, Any] = {
        "type": op.PRIMARY,
        "message": message,
        "signature": _hex(sig.r + sig.s + bytes([sig.v])),
        "eventId": _hex(signed.event_id),
    }
    if proof:
        document["proof"] = _hex(proof)
    return document


def parse_hex(field: str, value: object, length: int | None = None) -> bytes:
    """0x-prefixed hex of ``length`` bytes (any length if None), else InvalidInput on ``field``."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidInput(field, f"must be 0x-prefixed hex, got {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidInput(field, f"is not valid hex: {value!r}") from None
    if length is not None and len(raw) != length:
        raise InvalidInput(field, f"must be {length} bytes, got {len(raw)}")
    return raw


_DECIMAL = re.compile(r"[0-9]+")


def _int(field: str, value: object) -> int:
    if isinstance(value, bool):
        raise InvalidInput(field, "must be an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    if isinstance(value, str) and value.startswith("0x"):
        return int.from_bytes(parse_hex(field, value), "big")
    raise InvalidInput(field, f"must be an integer (a number or a decimal string), got {value!r}")


def _address(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be an address string, got {type(value).__name__}")
    try:
        return to_checksum_address(value)
    except ValueError:
        raise InvalidInput(
            field, f"must be an address (0x and 40 hex digits), got {value!r}"
        ) from None


def _items(field: str, value: object, keys: set[str]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidInput(field, "must be a list of objects")
    for i, item in enumerate(value):
        missing = sorted(keys - item.keys())
        if missing:
            raise InvalidInput(f"{field}[{i}].{missing[0]}", "is missing")
        unknown = sorted(item.keys() - keys)
        if unknown:
            raise InvalidInput(f"{field}[{i}].{unknown[0]}", "is not a field of this item")
    return value


def _input(field: str, item: dict[str, Any]) -> Input:
    lot = LotId(parse_hex(f"{field}.lot", item["lot"], 32))
    quantity = _int(f"{field}.quantity", item["quantity"])
    try:
        return Input(lot, quantity)
    except InvalidInput as exc:
        raise InvalidInput(f"{field}.{exc.field}", exc.problem) from None


def _output(field: str, item: dict[str, Any]) -> Output:
    lot = LotId(parse_hex(f"{field}.lot", item["lot"], 32))
    material = _int(f"{field}.material", item["material"])
    quantity = _int(f"{field}.quantity", item["quantity"])
    document_hash = parse_hex(f"{field}.documentHash", item["documentHash"], 32)
    try:
        return Output(lot, material, quantity, document_hash)
    except InvalidInput as exc:
        raise InvalidInput(f"{field}.{exc.field}", exc.problem) from None


def _python_value(field: str, value: object, sol_type: str) -> Any:
    if sol_type == "address":
        return _address(field, value)
    if sol_type == "bytes32":
        return parse_hex(field, value, 32)
    if sol_type == "bytes2":
        return parse_hex(field, value, 2) if isinstance(value, str) and value[:2] == "0x" else value
    if sol_type.startswith("uint"):
        return _int(field, value)
    if sol_type == "bytes32[]":
        if not isinstance(value, list):
            raise InvalidInput(field, "must be a list of 0x-hex bytes32")
        return tuple(parse_hex(f"{field}[{i}]", item, 32) for i, item in enumerate(value))
    if sol_type == "Input[]":
        items = _items(field, value, {"lot", "quantity"})
        return tuple(_input(f"{field}[{i}]", item) for i, item in enumerate(items))
    if sol_type == "Output[]":
        items = _items(field, value, {"lot", "material", "quantity", "documentHash"})
        return tuple(_output(f"{field}[{i}]", item) for i, item in enumerate(items))
    raise AssertionError(f"unhandled type {sol_type}")  # pragma: no cover - FIELDS are fixed


def operation_type(kind: object) -> type[Operation]:
    """The operation class named by a document's ``type``."""
    op_type = OPERATIONS_BY_TYPE.get(kind) if isinstance(kind, str) else None
    if op_type is None:
        known = ", ".join(OPERATIONS_BY_TYPE)
        raise InvalidInput("type", f"{kind!r} is not an operation type; one of {known}")
    return op_type


def parse_fields(op_type: type[Operation], message: object) -> dict[str, Any]:
    """The operation's own fields in an unsigned ``message`` (no actor, nonce or deadline: the
    signer fills those), by their Python names; fields left out are left out. Raises
    InvalidInput naming ``message.<field>``."""
    if not isinstance(message, dict):
        raise InvalidInput("message", "must be an object with the operation's fields")
    names = {sol: (py, sol_type) for py, sol, sol_type in op_type.FIELDS}
    unknown = sorted(message.keys() - names.keys())
    if unknown:
        known = ", ".join(names) or "none"
        raise InvalidInput(
            f"message.{unknown[0]}", f"is not a field of {op_type.PRIMARY} (its fields: {known})"
        )
    return {
        names[sol][0]: _python_value(f"message.{sol}", value, names[sol][1])
        for sol, value in message.items()
    }


def from_document(document: object, domain: Domain) -> tuple[SignedOperation, bytes]:
    """Parse a signed-operation document into the operation and its correction proof (empty when
    absent). The event id is computed for ``domain``; a document's own ``eventId`` is only
    compared with it. Raises InvalidInput naming the field at fault."""
    if not isinstance(document, dict):
        raise InvalidInput("document", "must be a JSON object with type, message and signature")
    kind = document.get("type")
    op_type = operation_type(kind)
    message = document.get("message")
    if not isinstance(message, dict):
        raise InvalidInput("message", "must be an object with the operation's fields")
    expected = {"actor", "nonce", "deadline"} | {sol for _, sol, _ in op_type.FIELDS}
    missing = sorted(expected - message.keys())
    if missing:
        raise InvalidInput(f"message.{missing[0]}", f"is missing from the {kind} message")
    unknown = sorted(message.keys() - expected)
    if unknown:
        raise InvalidInput(f"message.{unknown[0]}", f"is not a field of {kind}")
    values: dict[str, Any] = {
        "actor": _address("message.actor", message["actor"]),
        "nonce": _int("message.nonce", message["nonce"]),
        "deadline": _int("message.deadline", message["deadline"]),
    }
    for py_name, sol_name, sol_type in op_type.FIELDS:
        values[py_name] = _python_value(f"message.{sol_name}", message[sol_name], sol_type)
    try:
        op = op_type(**values)
    except InvalidInput as exc:
        raise InvalidInput(f"message.{exc.field}", exc.problem) from None
    raw_sig = parse_hex("signature", document.get("signature"), 65)
    v = raw_sig[64] if raw_sig[64] >= 27 else raw_sig[64] + 27
    signature = Signature(v, raw_sig[:32], raw_sig[32:64])
    proof = b""
    if "proof" in document:
        if op_type.PRIMARY != "Correct":
            raise InvalidInput("proof", "only a Correct operation carries an authorship proof")
        proof = parse_hex("proof", document["proof"])
    event_id = op.digest(domain)
    if "eventId" in document and parse_hex("eventId", document["eventId"], 32) != event_id:
        raise InvalidInput(
            "eventId",
            f"does not match the operation's digest for this ledger (0x{event_id.hex()}): "
            "the operation was prepared for another chain or ledger address, or its message "
            "was changed after it was signed; sign it again for this ledger",
        )
    return SignedOperation(op, signature, event_id), proof
