"""The signed operations in a ledger transaction's calldata, read word by word.

A relayed transaction calls ``relay(bytes[] calls)`` (or one operation function directly); each
call is an operation struct and its signature, ABI-encoded. An auditor recovers who signed each
event from these calls alone: the EIP-712 digest of a call's operation, for the chain and ledger,
must be the event id the ledger logged, and its signature must recover to the actor.

Reading is done here by hand rather than with eth-abi because a passport's audit reads tens of
thousands of calls (every operation of every batch that holds one of its events): for the static
operations the EIP-712 ``encodeData`` is the typehash followed by the very words of the calldata,
so the digest is two keccaks over slices; arrays are hashed as EIP-712 says. The tests check each
function against the operation classes of ``mine2cell.signing.eip712``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import coincurve
from eth_utils import function_abi_to_4byte_selector
from sha3 import keccak_256

from mine2cell.chain.artifacts import load_artifact
from mine2cell.index.events import checksummed
from mine2cell.signing.eip712 import (
    OPERATION_TYPES,
    SECP256K1_N,
    Domain,
    Input,
    Operation,
    Output,
)

_WORD = 32


def keccak(data: bytes) -> bytes:
    # pysha3 directly: eth_utils' keccak costs ten times as much per call (argument checks and
    # pycryptodome's object set-up), and an audit hashes every call of every batch it reads.
    digest: bytes = keccak_256(data).digest()
    return digest


_INPUT_TYPEHASH = keccak(Input.TYPE.encode())
_OUTPUT_TYPEHASH = keccak(Output.TYPE.encode())


class MalformedCall(ValueError):
    """Calldata that is not a well-formed ledger call."""


@dataclass(frozen=True)
class SignedCall:
    """One operation found in a transaction: the ledger function, the operation's fields by their
    Solidity names (arrays as tuples of tuples), the signature and the EIP-712 digest."""

    function: str
    fields: dict[str, Any]
    v: int
    r: int
    s: int
    digest: bytes

    @property
    def actor(self) -> str:
        return str(self.fields["actor"])

    def signer(self) -> str | None:
        """The address the signature recovers to, or None when it recovers to none (malformed,
        or malleable: the ledger accepts only low-s signatures)."""
        return recover_signer(self.digest, self.v, self.r, self.s)


@functools.cache
def _functions() -> dict[bytes, tuple[str, type[Operation]]]:
    """Selector -> (function name, operation class) for the ledger's operation functions."""
    by_function = {op.FUNCTION: op for op in OPERATION_TYPES}
    found: dict[bytes, tuple[str, type[Operation]]] = {}
    for item in load_artifact("Ledger").abi:
        if item.get("type") == "function" and item["name"] in by_function:
            selector = function_abi_to_4byte_selector(item)  # type: ignore[arg-type]
            found[selector] = (item["name"], by_function[item["name"]])
    return found


@functools.cache
def _relay_selector() -> bytes:
    item = next(i for i in load_artifact("Ledger").abi if i.get("name") == "relay")
    return function_abi_to_4byte_selector(item)  # type: ignore[arg-type]


class _Words:
    """32-byte words of ABI data, bounds-checked."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def word(self, offset: int) -> bytes:
        end = offset + _WORD
        if offset < 0 or end > len(self.data):
            raise MalformedCall(f"the data ends before byte {end}")
        return self.data[offset:end]

    def uint(self, offset: int) -> int:
        return int.from_bytes(self.word(offset), "big")

    def offset(self, offset: int, base: int = 0) -> int:
        target = base + self.uint(offset)
        if target > len(self.data):
            raise MalformedCall(f"an offset points past the end of the data ({target})")
        return target

    def array(self, offset: int, item_words: int) -> tuple[int, int]:
        """(count, position of the first item) of an array of static items at ``offset``."""
        count = self.uint(offset)
        if offset + _WORD * (1 + count * item_words) > len(self.data):
            raise MalformedCall(f"an array of {count} items does not fit in the data")
        return count, offset + _WORD


def split_calls(data: bytes) -> list[bytes]:
    """The operation calls in a ledger transaction's input: each element of ``relay(bytes[])``,
    or the input itself when it calls one operation function."""
    selector = data[:4]
    if selector in _functions():
        return [data]
    if selector != _relay_selector():
        raise MalformedCall(f"0x{selector.hex()} is not a ledger operation function nor relay")
    words = _Words(data[4:])
    array = words.offset(0)
    count, first = words.array(array, 1)
    calls = []
    for i in range(count):
        start = words.offset(first + i * _WORD, first)
        length = words.uint(start)
        end = start + _WORD + length
        if end > len(words.data):
            raise MalformedCall(f"call {i} of the batch does not fit in the data")
        calls.append(words.data[start + _WORD : end])
    return calls


def _address(raw: bytes) -> str:
    return checksummed(raw[12:])


_WITH_ARRAYS = ("transform", "bindPassport", "correct")


def has_arrays(call: bytes) -> bool:
    """Whether the call's operation holds arrays (its digest needs them decoded)."""
    found = _functions().get(call[:4])
    return found is not None and found[0] in _WITH_ARRAYS


def call_digest(call: bytes, domain: Domain) -> bytes:
    """The EIP-712 digest of one call's operation (raises MalformedCall). For the operations
    without arrays this is two keccaks over a slice of the call, so a reader can find the few
    calls it needs among the thousands of a batch before decoding them."""
    found = _functions().get(call[:4])
    if found is None:
        raise MalformedCall(f"0x{call[:4].hex()} is not a ledger operation function")
    function, op_type = found
    if function in _WITH_ARRAYS:
        return decode_call(call, domain).digest
    end = 4 + (6 + len(op_type.FIELDS)) * _WORD  # the operation's words, then v, r and s
    if len(call) < end:
        raise MalformedCall(f"the data ends before byte {end - 4}")
    struct_hash = keccak(op_type.typehash() + call[4 : end - 3 * _WORD])
    return keccak(b"\x19\x01" + domain.separator + struct_hash)


def decode_call(call: bytes, domain: Domain) -> SignedCall:
    """The operation, signature and digest of one call (raises MalformedCall)."""
    found = _functions().get(call[:4])
    if found is None:
        raise MalformedCall(f"0x{call[:4].hex()} is not a ledger operation function")
    function, op_type = found
    words = _Words(call[4:])
    data = words.data
    fields: dict[str, Any] = {}
    if function in _WITH_ARRAYS:
        # Head: the operation's offset (it holds arrays), then the signature inline.
        encoded = _dynamic_operation(function, words, words.offset(0), fields)
        sig_at = _WORD
    else:
        count = 3 + len(op_type.FIELDS)
        encoded = data[: count * _WORD]
        sig_at = count * _WORD
        fields["actor"] = _address(words.word(0))
        fields["nonce"] = int.from_bytes(data[32:64], "big")
        fields["deadline"] = int.from_bytes(data[64:96], "big")
        for i, (_, name, sol_type) in enumerate(op_type.FIELDS):
            fields[name] = _static_value(sol_type, words.word((3 + i) * _WORD))
    v, r, s = words.uint(sig_at), words.uint(sig_at + _WORD), words.uint(sig_at + 2 * _WORD)
    struct_hash = keccak(op_type.typehash() + encoded)
    digest = keccak(b"\x19\x01" + domain.separator + struct_hash)
    return SignedCall(function, fields, v, r, s, digest)


def _static_value(sol_type: str, word: bytes) -> Any:
    if sol_type == "address":
        return _address(word)
    if sol_type.startswith("uint"):
        return int.from_bytes(word, "big")
    if sol_type == "bytes2":
        return word[:2]
    return word


def _dynamic_operation(function: str, words: _Words, base: int, fields: dict[str, Any]) -> bytes:
    """Read a transform, binding or correction at ``base`` into ``fields``; return its
    ``encodeData`` without the typehash."""
    head = [words.word(base + i * _WORD) for i in range(3)]
    fields["actor"] = _address(head[0])
    fields["nonce"] = int.from_bytes(head[1], "big")
    fields["deadline"] = int.from_bytes(head[2], "big")
    if function == "transform":
        inputs, inputs_hash = _inputs(words, words.offset(base + 3 * _WORD, base))
        outputs_at = words.offset(base + 4 * _WORD, base)
        count, first = words.array(outputs_at, 4)
        outputs = []
        hashes = []
        for i in range(count):
            at = first + i * 4 * _WORD
            item = words.data[at : at + 4 * _WORD]
            hashes.append(keccak(_OUTPUT_TYPEHASH + item))
            outputs.append(
                (
                    item[0:32],
                    int.from_bytes(item[32:64], "big"),
                    int.from_bytes(item[64:96], "big"),
                    item[96:128],
                )
            )
        footprint = words.word(base + 5 * _WORD)
        fields["inputs"] = inputs
        fields["outputs"] = tuple(outputs)
        fields["footprint"] = int.from_bytes(footprint, "big")
        return b"".join(head) + inputs_hash + keccak(b"".join(hashes)) + footprint
    if function == "bindPassport":
        passport = words.word(base + 3 * _WORD)
        inputs, inputs_hash = _inputs(words, words.offset(base + 4 * _WORD, base))
        footprint = words.word(base + 5 * _WORD)
        document = words.word(base + 6 * _WORD)
        fields["passport"] = passport
        fields["inputs"] = inputs
        fields["footprint"] = int.from_bytes(footprint, "big")
        fields["documentHash"] = document
        return b"".join(head) + passport + inputs_hash + footprint + document
    # correct
    target = words.word(base + 3 * _WORD)
    reason = words.word(base + 4 * _WORD)
    count, first = words.array(words.offset(base + 5 * _WORD, base), 1)
    corrective = tuple(
        words.data[first + i * _WORD : first + (i + 1) * _WORD] for i in range(count)
    )
    fields["target"] = target
    fields["reason"] = int.from_bytes(reason, "big")
    fields["corrective"] = corrective
    return b"".join(head) + target + reason + keccak(b"".join(corrective))


def _inputs(words: _Words, at: int) -> tuple[tuple[tuple[bytes, int], ...], bytes]:
    count, first = words.array(at, 2)
    items = []
    hashes = []
    for i in range(count):
        start = first + i * 2 * _WORD
        item = words.data[start : start + 2 * _WORD]
        hashes.append(keccak(_INPUT_TYPEHASH + item))
        items.append((item[0:32], int.from_bytes(item[32:64], "big")))
    return tuple(items), keccak(b"".join(hashes))


def recover_signer(digest: bytes, v: int, r: int, s: int) -> str | None:
    """The address whose key signed ``digest``, under the ledger's rules (EIP-2 low s, v 27 or
    28), or None."""
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        return None
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v - 27])
    try:
        public = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except ValueError:
        return None
    return checksummed(keccak(public.format(compressed=False)[1:])[12:])
