"""One root error type; contract custom errors are decoded into it.

Every error builds its own message, so a caller prints ``str(exc)`` and the user knows what was
wrong and how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mine2cell.codes import role_names


class Mine2CellError(Exception):
    """Root of every error mine2cell raises on purpose."""


class InvalidInput(Mine2CellError):
    """A value given by the user is malformed; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class ConfigurationError(Mine2CellError):
    """The settings or the environment do not allow the requested work."""


class NodeError(Mine2CellError):
    """The node could not be started, reached, or gave an unusable answer."""


class TransactionFailed(Mine2CellError):
    """A transaction reverted for a reason that is not one of the ledger's errors."""


class StorageError(Mine2CellError):
    """A local database (outbox, index, tokens) cannot be written or read: its disk is full, its
    directory read-only, the file corrupted or unreadable. ``reason`` is ``no-space``,
    ``read-only``, ``corrupted`` or ``unavailable``; the message names the file and the fix."""

    def __init__(self, path: Path, reason: str, problem: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {problem}; {fix}")


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


# How each ledger error reads to a person: what went wrong and, where it helps, what to do.
_MESSAGES: dict[str, str] = {
    "LedgerUnauthorizedSubmitter": (
        "{submitter} may not submit operations: only an accredited relayer or the governor may"
    ),
    "LedgerBatchTooLarge": "a batch holds {size} operations; the ledger accepts at most {max}",
    "LedgerExpiredDeadline": (
        "the operation's deadline {deadline} has passed (block time {timestamp}); sign it again"
    ),
    "LedgerInvalidSignature": "the signature is malformed and recovers to no address",
    "LedgerHighSSignature": "the signature's s value is not in the lower half of the curve (EIP-2)",
    "LedgerSignerMismatch": (
        "the signature was made by {recovered}, not by the operation's actor {actor} "
        "(wrong key, or signed for another chain or ledger address)"
    ),
    "LedgerNonceUsed": "nonce {nonce} of {actor} was already used: the operation was replayed",
    "LedgerMissingRole": (
        "{account} lacks the role needed (one of {required_names}); it holds {held_names}"
    ),
    "LedgerNotGovernor": "{account} is not the governor; only the governor may sign this",
    "LedgerInvalidRoles": "roles {roles} are not a valid non-empty set of roles",
    "LedgerInvalidCountry": "country {country} is not an ISO 3166-1 alpha-2 code",
    "LedgerUnknownParticipant": "{account} is not an accredited participant",
    "LedgerInvalidLotId": "a lot id may not be zero",
    "LedgerLotExists": "lot {lot} already exists; lot ids are never reused",
    "LedgerUnknownLot": "lot {lot} does not exist",
    "LedgerZeroQuantity": "the quantity of lot {lot} must be at least 1 g",
    "LedgerInvalidFeedstock": (
        "feedstock {feedstock} is not allowed for {actor}: a mine commissions primary material, "
        "a recycler pre- or post-consumer material"
    ),
    "LedgerNotCustodian": "{account} does not hold lot {lot}; its custodian is {custodian}",
    "LedgerLotInTransit": (
        "lot {lot} is in transit to {recipient}; it cannot be shipped or consumed until received"
    ),
    "LedgerLotNotInTransit": "lot {lot} is not in transit",
    "LedgerNotRecipient": "{account} is not the named recipient of lot {lot}; {recipient} is",
    "LedgerWrongCounterparty": "the shipment of lot {lot} involves {actual}, not {named}",
    "LedgerLotClosed": "lot {lot} was consumed to zero: it is closed",
    "LedgerNestedBatch": "a batch cannot contain another batch",
    "LedgerBatchOutOfGas": (
        "operation {index} of the batch ran out of gas; send the batch with more gas"
    ),
    "LedgerCallFailed": (
        "the operation reverted without a reason (malformed call data or unknown function)"
    ),
    "LedgerSelfShipment": "lot {lot} cannot be shipped to its own custodian",
    "LedgerInsufficientQuantity": "lot {lot} holds {remaining} g, fewer than the {needed} g asked",
    "LedgerEmptyOperation": "a transformation needs inputs and outputs; a binding needs inputs",
    "LedgerMassNotConserved": (
        "outputs of material {material} ({produced} g) exceed the inputs of the same material "
        "consumed ({consumed} g)"
    ),
    "LedgerInvalidPassportId": "a passport id may not be zero",
    "LedgerPassportAlreadyBound": "passport {passport} is already bound",
    "LedgerUnknownPassport": "passport {passport} was never bound",
    "LedgerInvalidCode": "code {code} is not a valid reason or verdict",
    "LedgerNotEventAuthor": (
        "{account} may not correct event {target}: only its author (with proof) or an auditor may"
    ),
}


class LedgerRejected(Mine2CellError):
    """The ledger contract rejected an operation with one of its custom errors.

    ``error`` is the error's name (e.g. ``LedgerNotCustodian``) and ``args`` its decoded arguments
    by name.
    """

    def __init__(self, error: str, args: dict[str, Any]) -> None:
        self.error = error
        self.args_by_name = args
        shown = {key: _short(value) for key, value in args.items()}
        if "required" in args:
            shown["required_names"] = role_names(int(args["required"]))
        if "held" in args:
            shown["held_names"] = role_names(int(args["held"]))
        if "country" in args and isinstance(args["country"], bytes):
            shown["country"] = repr(args["country"].decode("latin-1"))
        template = _MESSAGES.get(error)
        detail = template.format(**shown) if template else f"{error}({shown})"
        super().__init__(f"rejected by the ledger: {detail}")
