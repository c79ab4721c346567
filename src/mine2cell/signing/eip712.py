"""EIP-712 types of every ledger operation, their hashing, and signing.

The hashing is written out here (rather than going through eth-account's generic typed-data
encoder) because the relay hashes every operation it accepts; the tests check it against
eth-account's encoder for every type. The type strings must match contracts/Ledger.sol.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from enum import IntEnum, IntFlag
from typing import Any, ClassVar, NewType

from eth_abi import encode as abi_encode
from eth_keys import keys
from eth_typing import ChecksumAddress
from eth_utils import keccak, to_checksum_address

from mine2cell.errors import InvalidInput

LotId = NewType("LotId", bytes)
PassportId = NewType("PassportId", bytes)
EventId = NewType("EventId", bytes)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
UINT96_MAX = 2**96 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1

DOMAIN_NAME = "mine2cell Ledger"
DOMAIN_VERSION = "1"
_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain: one ledger contract on one chain."""

    chain_id: int
    verifying_contract: ChecksumAddress

    @functools.cached_property
    def separator(self) -> bytes:
        # Cached: every event id hashes it, and the relay computes thousands a second.
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    _DOMAIN_TYPEHASH,
                    keccak(text=DOMAIN_NAME),
                    keccak(text=DOMAIN_VERSION),
                    self.chain_id,
                    self.verifying_contract,
                ],
            )
        )

    def as_typed_data(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class Signature:
    v: int
    r: bytes
    s: bytes

    def as_tuple(self) -> tuple[int, bytes, bytes]:
        return (self.v, self.r, self.s)


def _check_uint(name: str, value: int, maximum: int, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"must be an integer, got {type(value).__name__}")
    if value < (1 if positive else 0):
        raise InvalidInput(
            name, f"must be {'positive' if positive else 'non-negative'}, got {value}"
        )
    if value > maximum:
        raise InvalidInput(name, f"{value} exceeds the maximum {maximum}")


def _address(name: str, value: object) -> ChecksumAddress:
    try:
        if isinstance(value, bytes) and len(value) != 20:
            raise ValueError("wrong length")
        return to_checksum_address(value)  # type: ignore[type-var]
    except (ValueError, TypeError):
        raise InvalidInput(
            name, f"must be an address (0x followed by 40 hex digits), got {value!r}"
        ) from None


def text32(text: str, field: str = "text") -> bytes:
    """A short text (a facility id, a certification scheme) as the bytes32 the ledger stores:
    UTF-8, padded with zeros on the right."""
    raw = text.encode()
    if len(raw) > 32:
        raise InvalidInput(field, f"{text!r} is {len(raw)} bytes long; at most 32 fit")
    return raw.ljust(32, b"\0")


def _check_bytes32(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise InvalidInput(name, f"must be 32 bytes, got {got}")


@dataclass(frozen=True)
class Input:
    """A quantity (grams) of a lot consumed by a transformation or a passport binding."""

    lot: LotId
    quantity: int

    TYPE: ClassVar[str] = "Input(bytes32 lot,uint96 quantity)"

    def __post_init__(self) -> None:
        _check_bytes32("lot", self.lot)
        _check_uint("quantity", self.quantity, UINT96_MAX, positive=True)

    def struct_hash(self) -> bytes:
        return keccak(
            abi_encode(["bytes32", "bytes32", "uint96"], [_INPUT_TH, self.lot, self.quantity])
        )

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.lot, self.quantity)


@dataclass(frozen=True)
class Output:
    """A lot produced by a transformation."""

    lot: LotId
    material: int
    quantity: int
    document_hash: bytes = bytes(32)

    TYPE: ClassVar[str] = "Output(bytes32 lot,uint32 material,uint96 quantity,bytes32 documentHash)"

    def __post_init__(self) -> None:
        _check_bytes32("lot", self.lot)
        _check_uint("material", self.material, UINT32_MAX)
        _check_uint("quantity", self.quantity, UINT96_MAX, positive=True)
        _check_bytes32("document_hash", self.document_hash)

    def struct_hash(self) -> bytes:
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "uint32", "uint96", "bytes32"],
                [_OUTPUT_TH, self.lot, self.material, self.quantity, self.document_hash],
            )
        )

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.lot, self.material, self.quantity, self.document_hash)


_INPUT_TH = keccak(text=Input.TYPE)
_OUTPUT_TH = keccak(text=Output.TYPE)


def _hash_array(items: tuple[Input, ...] | tuple[Output, ...]) -> bytes:
    return keccak(b"".join(item.struct_hash() for item in items))


_TYPEHASHES: dict[type[Operation], bytes] = {}


@dataclass(frozen=True)
class Operation:
    """Base of every signed ledger operation: the signer, a nonce and a deadline (unix seconds).

    Subclasses declare ``PRIMARY`` (the EIP-712 primary type), ``FIELDS`` (their own fields after
    the common three, as (python name, solidity name, solidity type)) and ``FUNCTION`` (the ledger
    function that executes them).
    """

    actor: ChecksumAddress
    nonce: int
    deadline: int

    PRIMARY: ClassVar[str]
    FUNCTION: ClassVar[str]
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]]
    REFERENCED: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for py_name, _, sol_type in self.FIELDS:
            value = getattr(self, py_name)
            if sol_type.startswith("uint") and isinstance(value, IntEnum | IntFlag):
                # Codes (Role, Feedstock) are stored as plain integers: web3 would take an
                # IntFlag, which is iterable, for a sequence.
                object.__setattr__(self, py_name, int(value))
        object.__setattr__(self, "actor", _address("actor", self.actor))
        _check_uint("nonce", self.nonce, 2**256 - 1)
        _check_uint("deadline", self.deadline, 2**256 - 1)

    @classmethod
    def type_string(cls) -> str:
        own = ",".join(f"{sol_type} {sol_name}" for _, sol_name, sol_type in cls.FIELDS)
        head = f"{cls.PRIMARY}(address actor,uint256 nonce,uint256 deadline,{own})"
        return head + "".join(sorted(cls.REFERENCED))

    @classmethod
    def typehash(cls) -> bytes:
        cached = _TYPEHASHES.get(cls)
        if cached is None:
            cached = _TYPEHASHES[cls] = keccak(text=cls.type_string())
        return cached

    def _encoded_fields(self) -> tuple[list[str], list[Any]]:
        types = ["bytes32", "address", "uint256", "uint256"]
        values: list[Any] = [self.typehash(), self.actor, self.nonce, self.deadline]
        for py_name, _, sol_type in self.FIELDS:
            value = getattr(self, py_name)
            if sol_type.endswith("[]") and sol_type != "bytes32[]":
                types.append("bytes32")
                values.append(_hash_array(value))
            elif sol_type == "bytes32[]":
                types.append("bytes32")
                values.append(keccak(b"".join(value)))
            else:
                types.append(sol_type)
                values.append(value)
        return types, values

    def encode_data(self) -> bytes:
        """EIP-712 ``encodeData``: typehash then each field (arrays replaced by their hash)."""
        types, values = self._encoded_fields()
        return abi_encode(types, values)

    def struct_hash(self) -> bytes:
        return keccak(self.encode_data())

    def digest(self, domain: Domain) -> EventId:
        """The EIP-712 digest, which is also the ledger's id for the event this records."""
        return EventId(keccak(b"\x19\x01" + domain.separator + self.struct_hash()))

    def as_tuple(self) -> tuple[Any, ...]:
        """The operation as the ABI tuple the ledger function takes."""
        values: list[Any] = [self.actor, self.nonce, self.deadline]
        for py_name, _, sol_type in self.FIELDS:
            value = getattr(self, py_name)
            if sol_type.endswith("[]") and sol_type != "bytes32[]":
                value = [item.as_tuple() for item in value]
            elif sol_type == "bytes32[]":
                value = list(value)
            values.append(value)
        return tuple(values)

    def typed_data(self, domain: Domain) -> dict[str, Any]:
        """The full EIP-712 message, for wallets and for eth-account's encoder."""
        types: dict[str, list[dict[str, str]]] = {
            self.PRIMARY: [
                {"name": "actor", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
            + [{"name": sol_name, "type": sol_type} for _, sol_name, sol_type in self.FIELDS]
        }
        message: dict[str, Any] = {
            "actor": self.actor,
            "nonce": self.nonce,
            "deadline": self.deadline,
        }
        for py_name, sol_name, sol_type in self.FIELDS:
            value = getattr(self, py_name)
            if sol_type == "Input[]":
                types["Input"] = [
                    {"name": "lot", "type": "bytes32"},
                    {"name": "quantity", "type": "uint96"},
                ]
                value = [{"lot": i.lot, "quantity": i.quantity} for i in value]
            elif sol_type == "Output[]":
                types["Output"] = [
                    {"name": "lot", "type": "bytes32"},
                    {"name": "material", "type": "uint32"},
                    {"name": "quantity", "type": "uint96"},
                    {"name": "documentHash", "type": "bytes32"},
                ]
                value = [
                    {
                        "lot": o.lot,
                        "material": o.material,
                        "quantity": o.quantity,
                        "documentHash": o.document_hash,
                    }
                    for o in value
                ]
            elif sol_type == "bytes32[]":
                value = list(value)
            message[sol_name] = value
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **types,
            },
            "primaryType": self.PRIMARY,
            "domain": domain.as_typed_data(),
            "message": message,
        }


def _country(value: object) -> bytes:
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not (
        isinstance(text, str)
        and len(text) == 2
        and text.isascii()
        and text.isalpha()
        and text.isupper()
    ):
        raise InvalidInput(
            "country", f"must be an ISO 3166-1 alpha-2 code like 'CD', got {value!r}"
        )
    return text.encode("ascii")


@dataclass(frozen=True)
class Accredit(Operation):
    participant: ChecksumAddress
    roles: int
    facility: bytes
    country: bytes

    PRIMARY: ClassVar[str] = "Accredit"
    FUNCTION: ClassVar[str] = "accredit"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("participant", "participant", "address"),
        ("roles", "roles", "uint8"),
        ("facility", "facility", "bytes32"),
        ("country", "country", "bytes2"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "participant", _address("participant", self.participant))
        _check_uint("roles", self.roles, 255)
        _check_bytes32("facility", self.facility)
        object.__setattr__(self, "country", _country(self.country))


@dataclass(frozen=True)
class Revoke(Operation):
    participant: ChecksumAddress

    PRIMARY: ClassVar[str] = "Revoke"
    FUNCTION: ClassVar[str] = "revoke"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("participant", "participant", "address"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "participant", _address("participant", self.participant))


@dataclass(frozen=True)
class Certify(Operation):
    participant: ChecksumAddress
    scheme: bytes
    valid_until: int
    document_hash: bytes

    PRIMARY: ClassVar[str] = "Certify"
    FUNCTION: ClassVar[str] = "certify"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("participant", "participant", "address"),
        ("scheme", "scheme", "bytes32"),
        ("valid_until", "validUntil", "uint64"),
        ("document_hash", "documentHash", "bytes32"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "participant", _address("participant", self.participant))
        _check_bytes32("scheme", self.scheme)
        _check_uint("valid_until", self.valid_until, UINT64_MAX)
        _check_bytes32("document_hash", self.document_hash)


@dataclass(frozen=True)
class Commission(Operation):
    lot: LotId
    material: int
    quantity: int
    feedstock: int
    footprint: int
    document_hash: bytes

    PRIMARY: ClassVar[str] = "Commission"
    FUNCTION: ClassVar[str] = "commission"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("lot", "lot", "bytes32"),
        ("material", "material", "uint32"),
        ("quantity", "quantity", "uint96"),
        ("feedstock", "feedstock", "uint8"),
        ("footprint", "footprint", "uint64"),
        ("document_hash", "documentHash", "bytes32"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bytes32("lot", self.lot)
        _check_uint("material", self.material, UINT32_MAX)
        _check_uint("quantity", self.quantity, UINT96_MAX, positive=True)
        _check_uint("feedstock", self.feedstock, 255)
        _check_uint("footprint", self.footprint, UINT64_MAX)
        _check_bytes32("document_hash", self.document_hash)


@dataclass(frozen=True)
class Ship(Operation):
    lot: LotId
    recipient: ChecksumAddress

    PRIMARY: ClassVar[str] = "Ship"
    FUNCTION: ClassVar[str] = "ship"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("lot", "lot", "bytes32"),
        ("recipient", "recipient", "address"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bytes32("lot", self.lot)
        object.__setattr__(self, "recipient", _address("recipient", self.recipient))


@dataclass(frozen=True)
class _Handoff(Operation):
    lot: LotId
    counterparty: ChecksumAddress

    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("lot", "lot", "bytes32"),
        ("counterparty", "counterparty", "address"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bytes32("lot", self.lot)
        object.__setattr__(self, "counterparty", _address("counterparty", self.counterparty))


@dataclass(frozen=True)
class Receive(_Handoff):
    """The named recipient accepts a shipment; ``counterparty`` is the sender."""

    PRIMARY: ClassVar[str] = "Receive"
    FUNCTION: ClassVar[str] = "receiveLot"


@dataclass(frozen=True)
class Reject(_Handoff):
    """The named recipient refuses a shipment; ``counterparty`` is the sender."""

    PRIMARY: ClassVar[str] = "Reject"
    FUNCTION: ClassVar[str] = "reject"


@dataclass(frozen=True)
class Recall(_Handoff):
    """The sender takes a lot back before receipt; ``counterparty`` is the recipient."""

    PRIMARY: ClassVar[str] = "Recall"
    FUNCTION: ClassVar[str] = "recall"


@dataclass(frozen=True)
class Transform(Operation):
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    footprint: int = 0

    PRIMARY: ClassVar[str] = "Transform"
    FUNCTION: ClassVar[str] = "transform"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("inputs", "inputs", "Input[]"),
        ("outputs", "outputs", "Output[]"),
        ("footprint", "footprint", "uint64"),
    )
    REFERENCED: ClassVar[tuple[str, ...]] = (Input.TYPE, Output.TYPE)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        _check_uint("footprint", self.footprint, UINT64_MAX)


@dataclass(frozen=True)
class BindPassport(Operation):
    passport: PassportId
    inputs: tuple[Input, ...]
    footprint: int = 0
    document_hash: bytes = bytes(32)

    PRIMARY: ClassVar[str] = "BindPassport"
    FUNCTION: ClassVar[str] = "bindPassport"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("passport", "passport", "bytes32"),
        ("inputs", "inputs", "Input[]"),
        ("footprint", "footprint", "uint64"),
        ("document_hash", "documentHash", "bytes32"),
    )
    REFERENCED: ClassVar[tuple[str, ...]] = (Input.TYPE,)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bytes32("passport", self.passport)
        object.__setattr__(self, "inputs", tuple(self.inputs))
        _check_uint("footprint", self.footprint, UINT64_MAX)
        _check_bytes32("document_hash", self.document_hash)


@dataclass(frozen=True)
class Correct(Operation):
    target: EventId
    reason: int
    corrective: tuple[bytes, ...] = field(default=())

    PRIMARY: ClassVar[str] = "Correct"
    FUNCTION: ClassVar[str] = "correct"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("target", "target", "bytes32"),
        ("reason", "reason", "uint8"),
        ("corrective", "corrective", "bytes32[]"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bytes32("target", self.target)
        _check_uint("reason", self.reason, 255)
        object.__setattr__(self, "corrective", tuple(self.corrective))
        for item in self.corrective:
            _check_bytes32("corrective", item)


@dataclass(frozen=True)
class Attest(Operation):
    passport: PassportId
    verdict: int
    report_hash: bytes

    PRIMARY: ClassVar[str] = "Attest"
    FUNCTION: ClassVar[str] = "attest"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("passport", "passport", "bytes32"),
        ("verdict", "verdict", "uint8"),
        ("report_hash", "reportHash", "bytes32"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_bytes32("passport", self.passport)
        _check_uint("verdict", self.verdict, 255)
        _check_bytes32("report_hash", self.report_hash)


OPERATION_TYPES: tuple[type[Operation], ...] = (
    Accredit,
    Revoke,
    Certify,
    Commission,
    Ship,
    Receive,
    Reject,
    Recall,
    Transform,
    BindPassport,
    Correct,
    Attest,
)


def operation_fields(op: Operation) -> dict[str, Any]:
    """The operation's fields by Python name (for display and storage)."""
    return {f.name: getattr(op, f.name) for f in fields(op)}


class LocalSigner:
    """Signs digests with a private key held in memory. The key is never shown: ``repr`` and
    ``str`` give the address only."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes) -> None:
        self._key = keys.PrivateKey(private_key)
        self.address: ChecksumAddress = self._key.public_key.to_checksum_address()

    def __repr__(self) -> str:
        return f"LocalSigner({self.address})"

    __str__ = __repr__

    @property
    def key_bytes(self) -> bytes:
        """The raw key, for building transactions in this process only."""
        return self._key.to_bytes()

    def sign_digest(self, digest: bytes) -> Signature:
        sig = self._key.sign_msg_hash(digest)
        r, s, v = sig.r, sig.s, sig.v
        if s > SECP256K1_N // 2:
            # EIP-2: the ledger accepts only the low-s form of each signature.
            s, v = SECP256K1_N - s, v ^ 1
        return Signature(v + 27, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


@dataclass(frozen=True)
class SignedOperation:
    operation: Operation
    signature: Signature
    event_id: EventId


def sign(op: Operation, signer: LocalSigner, domain: Domain) -> SignedOperation:
    if signer.address != op.actor:
        raise InvalidInput("actor", f"operation names {op.actor} but the key is {signer.address}")
    digest = op.digest(domain)
    return SignedOperation(op, signer.sign_digest(digest), digest)


def recover(
    signed: SignedOperation, domain: Domain, digest: bytes | None = None
) -> ChecksumAddress:
    """The address that signed, or raise InvalidInput for a malformed or high-s signature.
    ``digest``, when the caller has it, is the operation's digest for ``domain``."""
    sig = signed.signature
    s = int.from_bytes(sig.s, "big")
    if s > SECP256K1_N // 2:
        raise InvalidInput("signature", "s is in the upper half of the curve order (EIP-2)")
    if sig.v not in (27, 28):
        raise InvalidInput("signature", f"v must be 27 or 28, got {sig.v}")
    try:
        signature = keys.Signature(vrs=(sig.v - 27, int.from_bytes(sig.r, "big"), s))
        if digest is None:
            digest = signed.operation.digest(domain)
        public = signature.recover_public_key_from_msg_hash(digest)
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise InvalidInput("signature", f"does not recover to an address: {exc}") from exc
    return public.to_checksum_address()
