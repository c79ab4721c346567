"""Accepting signed operations into the outbox: whoever signed them (this service's signing
client, another machine, a wallet), the signature, the signer and the deadline are checked before
anything is stored."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from mine2cell.chain.ledger import LedgerClient, operation_gas_bound
from mine2cell.errors import InvalidInput, Mine2CellError
from mine2cell.relay.outbox import Accepted, NewOperation, Outbox
from mine2cell.signing.codec import from_document, to_document
from mine2cell.signing.eip712 import SignedOperation, recover

# An operation that expires sooner than this after it is accepted could not be batched and mined
# in time; refuse it at the door instead of accepting it only to see the ledger reject it.
MIN_REMAINING_VALIDITY_SECONDS = 30


def prepare(
    ledger: LedgerClient, signed: SignedOperation, proof: bytes = b"", *, now: float | None = None
) -> NewOperation:
    """Check a signed operation against this ledger and turn it into an outbox row.

    Raises InvalidInput (naming ``signature``, ``deadline`` or ``proof``) when the signature does
    not recover to the operation's actor for this ledger's domain (wrong key, or signed for
    another chain or ledger), or when the deadline has passed or is too close.
    """
    op = signed.operation
    event_id = op.digest(ledger.domain)
    signed = replace(signed, event_id=event_id)
    signer = recover(signed, ledger.domain, event_id)
    if signer != op.actor:
        raise InvalidInput(
            "signature",
            f"recovers to {signer}, not to the actor {op.actor}: signed with another key, or for "
            f"another chain or ledger (this one is {ledger.address} on chain "
            f"{ledger.domain.chain_id})",
        )
    now = time.time() if now is None else now
    if op.deadline < now + MIN_REMAINING_VALIDITY_SECONDS:
        state = "passed" if op.deadline < now else "is too close"
        raise InvalidInput(
            "deadline",
            f"{op.deadline} {state} (now {int(now)}); sign again with a deadline at least "
            f"{MIN_REMAINING_VALIDITY_SECONDS} s ahead",
        )
    if proof and op.FUNCTION != "correct":
        raise InvalidInput("proof", "only a Correct operation carries an authorship proof")
    calldata = ledger.calldata(signed, proof)
    return NewOperation(
        event_id=event_id,
        kind=op.PRIMARY,
        actor=op.actor,
        nonce=op.nonce,
        deadline=op.deadline,
        document=to_document(signed, proof),
        calldata=calldata,
        gas_bound=operation_gas_bound(op, len(calldata)),
    )


def accept(
    outbox: Outbox, ledger: LedgerClient, items: Sequence[tuple[SignedOperation, bytes]]
) -> list[Accepted | Mine2CellError]:
    """Check and store operations (with their correction proofs, empty when none). Per item, in
    order: the acknowledgement, or the error that kept it out. Valid items are stored, in one
    transaction, whatever becomes of the others."""
    results: list[Accepted | Mine2CellError | None] = []
    prepared: list[tuple[int, NewOperation]] = []
    for i, (signed, proof) in enumerate(items):
        try:
            prepared.append((i, prepare(ledger, signed, proof)))
            results.append(None)
        except Mine2CellError as exc:
            results.append(exc)
    stored = outbox.accept([row for _, row in prepared])
    for (i, _), outcome in zip(prepared, stored, strict=True):
        results[i] = outcome
    return [r for r in results if r is not None]


def accept_document(outbox: Outbox, ledger: LedgerClient, document: object) -> Accepted:
    """Check and store one signed-operation document (see ``mine2cell.signing.codec``)."""
    signed, proof = from_document(document, ledger.domain)
    (result,) = accept(outbox, ledger, [(signed, proof)])
    if isinstance(result, Mine2CellError):
        raise result
    return result
