"""Builders shared by the ledger contract tests: ids, signed operations, forged operations and
decoded rejections."""

from __future__ import annotations

import time
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any, TypeVar

from eth_keys import keys
from eth_typing import ChecksumAddress
from eth_utils import is_address, keccak, to_checksum_address
from web3 import Web3

from mine2cell.errors import Mine2CellError
from mine2cell.signing.eip712 import (
    Commission,
    Domain,
    EventId,
    LocalSigner,
    LotId,
    Operation,
    PassportId,
    Receive,
    Ship,
    Signature,
    SignedOperation,
    sign,
)
from tests.conftest import Cast, rpc

CO_HYDROXIDE = 101
CO_SULFATE = 102
LI_CARBONATE = 201
CAM_NMC = 701
CELL = 800

PRIMARY, PRE_CONSUMER, POST_CONSUMER = 0, 1, 2
DID_NOT_OCCUR, INCORRECT_DATA = 1, 2
PASS, FAIL = 1, 2
CUSTODY_ROLES = 1 | 2 | 4 | 8
ALL_ROLES = 63
ASSAY = keccak(text="assay bundle")

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def lot_id(name: str) -> LotId:
    return LotId(keccak(text=f"lot {name}"))


def passport_id(name: str) -> PassportId:
    return PassportId(keccak(text=f"passport {name}"))


def reason(err: Mine2CellError | None) -> tuple[str, dict[str, Any]]:
    """A rejection as (error name, arguments), addresses checksummed, for one-line asserts."""
    assert err is not None, "expected a rejection, the operation was recorded"
    name = getattr(err, "error", type(err).__name__)
    args: dict[str, Any] = getattr(err, "args_by_name", {"message": str(err)})
    return name, {
        key: to_checksum_address(value) if isinstance(value, str) and is_address(value) else value
        for key, value in args.items()
    }


def commission(
    cast: Cast,
    lot: LotId,
    *,
    by: LocalSigner | None = None,
    material: int = CO_HYDROXIDE,
    quantity: int = 1000,
    feedstock: int = PRIMARY,
    footprint: int = 5000,
) -> SignedOperation:
    return cast.sign(
        Commission,
        by or cast.mine_cd,
        lot=lot,
        material=material,
        quantity=quantity,
        feedstock=feedstock,
        footprint=footprint,
        document_hash=ASSAY,
    )


def ship(cast: Cast, lot: LotId, by: LocalSigner, to: LocalSigner) -> SignedOperation:
    return cast.sign(Ship, by, lot=lot, recipient=to.address)


def receive(cast: Cast, lot: LotId, by: LocalSigner, sender: LocalSigner) -> SignedOperation:
    return cast.sign(Receive, by, lot=lot, counterparty=sender.address)


def delivery(
    cast: Cast,
    lot: LotId,
    to: LocalSigner,
    *,
    by: LocalSigner | None = None,
    material: int = CO_HYDROXIDE,
    quantity: int = 1000,
) -> list[SignedOperation]:
    """The three operations that put a new lot in `to`'s custody (to relay in one batch)."""
    source = by or cast.mine_cd
    return [
        commission(cast, lot, by=source, material=material, quantity=quantity),
        ship(cast, lot, source, to),
        receive(cast, lot, to, source),
    ]


def unvalidated(cls: type[T], **values: Any) -> T:
    """An instance of a frozen dataclass built without its __post_init__ checks, to send the
    ledger values the Python side refuses (zero quantities)."""
    item = object.__new__(cls)
    for f in fields(cls):
        value = values.pop(f.name) if f.name in values else f.default
        assert value is not MISSING, f"{f.name} is required"
        object.__setattr__(item, f.name, value)
    assert not values, f"unknown fields {sorted(values)}"
    return item


def sign_unvalidated(
    cast: Cast, op_type: type[Operation], who: LocalSigner, **values: Any
) -> SignedOperation:
    """Sign an operation of `who` with its next nonce, skipping the Python-side validation."""
    values.setdefault("deadline", 2**40)
    op = unvalidated(
        op_type, actor=who.address, nonce=cast.ledger.next_nonce(who.address), **values
    )
    return sign(op, who, cast.ledger.domain)


def with_signature(signed: SignedOperation, signature: Signature) -> SignedOperation:
    return SignedOperation(signed.operation, signature, signed.event_id)


def signed_as(op: Operation, key: LocalSigner, domain: Domain) -> SignedOperation:
    """`op` signed with `key` whatever its actor (sign() refuses a key that is not the actor)."""
    digest = op.digest(domain)
    return SignedOperation(op, key.sign_digest(digest), digest)


def recovered(op: Operation, signature: Signature, domain: Domain) -> ChecksumAddress:
    """The address the ledger recovers from `signature` over `op` (as ecrecover would)."""
    sig = keys.Signature(
        vrs=(signature.v - 27, int.from_bytes(signature.r), int.from_bytes(signature.s))
    )
    public = sig.recover_public_key_from_msg_hash(op.digest(domain))
    return public.to_checksum_address()


def event_id_on_chain(cast: Cast, op: Operation) -> EventId:
    return EventId(bytes(cast.ledger.contract.functions.eventId(op.struct_hash()).call()))


def pin_next_block_timestamp(w3: Web3) -> int:
    """Fix the timestamp of the next block (a little ahead of the latest one) and return it."""
    # eth-tester stamps blocks with the wall clock, which may be ahead of the latest block.
    target = max(int(w3.eth.get_block("latest")["timestamp"]), int(time.time())) + 30
    tester = getattr(w3.provider, "ethereum_tester", None)
    if tester is not None:
        # eth-tester mines a block one second before the given time: the next block gets it.
        tester.time_travel(target)
    else:
        rpc(w3, "evm_setNextBlockTimestamp", [target])
    return target


def block_timestamp(w3: Web3, block_number: int) -> int:
    return int(w3.eth.get_block(block_number)["timestamp"])
