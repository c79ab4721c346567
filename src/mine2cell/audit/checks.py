"""The rules an audit checks on a passport's chain, each from the node's record alone.

Every check returns the number of items it examined and a finding, with the event's evidence,
for each one that breaks its rule. The ledger enforces most of these rules itself; an auditor
checks them again because the point of an audit is not to take the code's word for it (the code
check says whether the code at the address is the published one; these say whether the history
is what that code would have allowed).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from mine2cell.audit.calls import (
    MalformedCall,
    SignedCall,
    call_digest,
    decode_call,
    has_arrays,
    split_calls,
)
from mine2cell.audit.code import CodeCheck
from mine2cell.audit.graph import CREATIONS, PassportChain, actor_of
from mine2cell.codes import CUSTODY_ROLES, Feedstock, Role, role_names
from mine2cell.ids import show_id
from mine2cell.index.events import LedgerLog
from mine2cell.signing.eip712 import Domain


class Evidence(NamedTuple):
    """Where an event is on chain."""

    event: str
    event_id: bytes
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    log_index: int

    @classmethod
    def of(cls, log: LedgerLog) -> Evidence:
        return cls(
            log.name,
            log.args.get("eventId", b""),
            log.tx_hash,
            log.block_number,
            log.block_hash,
            log.log_index,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "event_id": "0x" + self.event_id.hex() if self.event_id else None,
            "tx_hash": "0x" + self.tx_hash.hex(),
            "block_number": self.block_number,
            "block_hash": "0x" + self.block_hash.hex(),
            "log_index": self.log_index,
        }


class Finding(NamedTuple):
    message: str
    evidence: Evidence | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "evidence": None if self.evidence is None else self.evidence.to_json(),
        }


@dataclass
class CheckResult:
    id: str
    title: str
    rule: str
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was seen that breaks no rule

    @property
    def passed(self) -> bool:
        return not self.findings

    def fail(self, message: str, log: LedgerLog | None = None) -> None:
        self.findings.append(Finding(message, None if log is None else Evidence.of(log)))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "rule": self.rule,
            "passed": self.passed,
            "checked": self.checked,
            "findings": [f.to_json() for f in self.findings],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Context:
    """What the checks are judged against."""

    ledger: str
    domain: Domain
    governor: str | None
    confirmations: int
    expected_chain_id: int | None


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _at(log: LedgerLog) -> str:
    return f"block {log.block_number}"


def _lot(log: LedgerLog) -> str:
    return show_id(log.args["lot"])


# -- the code and the chain ------------------------------------------------------------------------


def check_code(code: CodeCheck) -> CheckResult:
    result = CheckResult(
        "code",
        "Ledger code",
        "The runtime code at the ledger address is byte for byte the artifact built from this "
        "repository's contracts (immutables masked), so the rules were enforced by known code.",
        checked=1,
    )
    if not code.matches:
        result.fail(f"{code.address}: {code.problem}")
    else:
        result.notes.append(
            f"{code.size:,} bytes, code hash 0x{code.code_hash.hex()}, solc {code.compiler_version}"
        )
    return result


def check_chain(code: CodeCheck, chain_id: int, ctx: Context) -> CheckResult:
    result = CheckResult(
        "chain",
        "Chain",
        "The node's chain is the one the ledger was deployed on (the chain id and address in "
        "its EIP-712 domain, which every signature commits to) and the one expected.",
    )
    result.checked = 1
    if ctx.expected_chain_id is not None and chain_id != ctx.expected_chain_id:
        result.fail(
            f"the node is on chain {chain_id}, not on the expected chain {ctx.expected_chain_id}"
        )
    cached = code.immutable("_cachedChainId")
    if cached is not None and int.from_bytes(cached, "big") != chain_id:
        result.fail(
            f"the ledger at {code.address} was deployed on chain {int.from_bytes(cached, 'big')} "
            f"but the node is on chain {chain_id}: this is a copy or a fork of the ledger, and "
            "its operations were signed for the other chain"
        )
    this = code.immutable("_cachedThis")
    if this is not None and "0x" + this[12:].hex() != code.address.lower():
        result.fail(
            f"the code at {code.address} was deployed at 0x{this[12:].hex()}: its operations "
            "were signed for that address"
        )
    if result.passed:
        result.notes.append(f"chain {chain_id}, ledger {code.address}")
    return result


# -- inclusion -------------------------------------------------------------------------------------


def check_inclusion(chain: PassportChain, ctx: Context) -> CheckResult:
    record = chain.record
    result = CheckResult(
        "inclusion",
        "Canonical inclusion",
        "Each event is in a block of the canonical chain (its hash is the node's block at that "
        f"height, at least {ctx.confirmations} confirmation(s) deep), logged by a transaction "
        "sent to the ledger that succeeded.",
    )
    ledger = ctx.ledger.lower()
    bad_tx: dict[bytes, str] = {}
    for tx_hash, tx in record.transactions.items():
        if tx.to is None or tx.to.lower() != ledger:
            bad_tx[tx_hash] = f"was sent to {tx.to or 'no address'}, not to the ledger {ctx.ledger}"
        elif tx.status is None:
            bad_tx[tx_hash] = "has no receipt on the node"
        elif tx.status != 1:
            bad_tx[tx_hash] = f"did not succeed (receipt status {tx.status})"
    for log in record.logs:
        result.checked += 1
        canonical = record.blocks.get(log.block_number)
        if canonical is None:
            result.fail(
                f"{log.name} is in block {log.block_number}, which the node does not have", log
            )
            continue
        if canonical[0] != log.block_hash:
            result.fail(
                f"{log.name} is in block 0x{log.block_hash.hex()} at height {log.block_number}, "
                f"which is not canonical (the node's block there is 0x{canonical[0].hex()})",
                log,
            )
            continue
        depth = record.head - log.block_number + 1
        if depth < ctx.confirmations:
            result.fail(
                f"{log.name} at {_at(log)} has {depth} confirmation(s), fewer than the "
                f"{ctx.confirmations} required",
                log,
            )
        sent = record.transactions.get(log.tx_hash)
        if sent is None:
            result.fail(f"the node does not know the transaction of {log.name}", log)
        elif sent.block_hash != log.block_hash:
            result.fail(f"the transaction of {log.name} is not in the event's block", log)
        elif log.tx_hash in bad_tx:
            result.fail(f"the transaction of {log.name} {bad_tx[log.tx_hash]}", log)
    return result


# -- signatures ------------------------------------------------------------------------------------

# Per event: the operation functions that can log it, and its fields that must equal the signed
# operation's (event argument -> operation field).
_SIGNED_AS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "LotCommissioned": (
        ("commission",),
        {
            "actor": "actor",
            "lot": "lot",
            "material": "material",
            "quantity": "quantity",
            "feedstock": "feedstock",
            "footprint": "footprint",
            "documentHash": "documentHash",
        },
    ),
    "LotShipped": (("ship",), {"from": "actor", "lot": "lot", "to": "recipient"}),
    "LotReceived": (("receiveLot",), {"to": "actor", "lot": "lot", "from": "counterparty"}),
    "ShipmentRejected": (("reject",), {"to": "actor", "lot": "lot", "from": "counterparty"}),
    "ShipmentRecalled": (("recall",), {"from": "actor", "lot": "lot", "to": "counterparty"}),
    "LotsTransformed": (("transform",), {"actor": "actor", "footprint": "footprint"}),
    "PassportBound": (
        ("bindPassport",),
        {
            "actor": "actor",
            "passport": "passport",
            "footprint": "footprint",
            "documentHash": "documentHash",
        },
    ),
    "LotConsumed": (("transform", "bindPassport"), {"actor": "actor"}),
    "LotProduced": (("transform",), {"actor": "actor"}),
    "EventCorrected": (
        ("correct",),
        {"actor": "actor", "target": "target", "reason": "reason", "corrective": "corrective"},
    ),
    "PassportAttested": (
        ("attest",),
        {
            "auditor": "actor",
            "passport": "passport",
            "verdict": "verdict",
            "reportHash": "reportHash",
        },
    ),
    "ParticipantAccredited": (
        ("accredit",),
        {
            "participant": "participant",
            "roles": "roles",
            "facility": "facility",
            "country": "country",
        },
    ),
    "ParticipantRevoked": (("revoke",), {"participant": "participant"}),
    "CertificationRecorded": (
        ("certify",),
        {
            "participant": "participant",
            "scheme": "scheme",
            "validUntil": "validUntil",
            "documentHash": "documentHash",
        },
    ),
}


def _same(event_value: Any, op_value: Any) -> bool:
    if isinstance(event_value, str) and isinstance(op_value, str):
        return event_value.lower() == op_value.lower()
    if isinstance(event_value, list | tuple) and isinstance(op_value, list | tuple):
        return tuple(event_value) == tuple(op_value)
    return bool(event_value == op_value)


def _mismatches(log: LedgerLog, call: SignedCall) -> list[str]:
    """How the event differs from the operation that was signed."""
    functions, pairs = _SIGNED_AS[log.name]
    if call.function not in functions:
        return [f"the signed operation is a {call.function}, which does not log {log.name}"]
    found = [
        f"{arg} is {_show(log.args[arg])} but the signed {field} is {_show(call.fields[field])}"
        for arg, field in pairs.items()
        if not _same(log.args[arg], call.fields[field])
    ]
    a = log.args
    if log.name == "LotsTransformed" and (
        a["inputs"] != len(call.fields["inputs"]) or a["outputs"] != len(call.fields["outputs"])
    ):
        found.append(
            f"{a['inputs']} inputs and {a['outputs']} outputs were logged, but "
            f"{len(call.fields['inputs'])} and {len(call.fields['outputs'])} were signed"
        )
    elif log.name == "PassportBound" and a["inputs"] != len(call.fields["inputs"]):
        found.append(f"{a['inputs']} inputs were logged, {len(call.fields['inputs'])} signed")
    elif log.name == "LotConsumed" and (a["lot"], a["quantity"]) not in call.fields["inputs"]:
        found.append(f"the signed operation does not consume {a['quantity']} g of {_lot(log)}")
    elif log.name == "LotProduced" and (
        (a["lot"], a["material"], a["quantity"], a["documentHash"]) not in call.fields["outputs"]
    ):
        found.append(f"the signed operation does not produce {a['quantity']} g of {_lot(log)}")
    return found


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


class SignedOperations:
    """The signed operation behind each event id, read from the transactions' calldata: each
    transaction's calls are hashed once, and only the calls that events name are decoded."""

    def __init__(self, chain: PassportChain, domain: Domain) -> None:
        self._chain = chain
        self._domain = domain
        self._by_tx: dict[bytes, tuple[dict[bytes, bytes | SignedCall], list[str]]] = {}
        self._decoded: dict[bytes, SignedCall] = {}
        self._signers: dict[bytes, str | None] = {}

    def calls(self, tx_hash: bytes) -> tuple[dict[bytes, bytes | SignedCall], list[str]]:
        """The transaction's calls by digest (raw, or decoded when hashing needed it), and why
        any could not be read."""
        found = self._by_tx.get(tx_hash)
        if found is None:
            tx = self._chain.record.transactions.get(tx_hash)
            calls: dict[bytes, bytes | SignedCall] = {}
            problems: list[str] = []
            try:
                raw_calls = split_calls(tx.input) if tx is not None else []
            except MalformedCall as exc:
                raw_calls, problems = [], [str(exc)]
            for raw in raw_calls:
                try:
                    if has_arrays(raw):
                        decoded = decode_call(raw, self._domain)
                        calls[decoded.digest] = decoded
                    else:
                        calls[call_digest(raw, self._domain)] = raw
                except MalformedCall as exc:
                    problems.append(str(exc))
            found = self._by_tx[tx_hash] = (calls, problems)
        return found

    def of(self, log: LedgerLog) -> SignedCall | None:
        event_id = log.args.get("eventId", b"")
        decoded = self._decoded.get(event_id)
        if decoded is None:
            raw = self.calls(log.tx_hash)[0].get(event_id)
            if raw is None:
                return None
            if isinstance(raw, bytes):
                raw = decode_call(raw, self._domain)
            decoded = self._decoded[event_id] = raw
        return decoded

    def recover(self, calls: Iterable[SignedCall]) -> None:
        """Recover the signers of ``calls`` ahead, on every CPU: libsecp256k1 releases the GIL,
        and recovery is most of an audit's checking time."""
        todo = list({c.digest: c for c in calls if c.digest not in self._signers}.values())
        workers = min(os.cpu_count() or 1, 8)
        if workers < 2 or len(todo) < 64:
            found = [c.signer() for c in todo]
        else:
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(_signers_of, [todo[i::workers] for i in range(workers)]))
            found = [None] * len(todo)
            for i, part in enumerate(parts):
                found[i::workers] = part
        self._signers.update(zip((c.digest for c in todo), found, strict=True))

    def signer(self, call: SignedCall) -> str | None:
        # An operation logs several events (a transformation: a header, inputs and outputs):
        # its signature is recovered once.
        if call.digest not in self._signers:
            self._signers[call.digest] = call.signer()
        return self._signers[call.digest]


def _signers_of(calls: list[SignedCall]) -> list[str | None]:
    return [call.signer() for call in calls]


def check_signatures(chain: PassportChain, signed: SignedOperations) -> CheckResult:
    result = CheckResult(
        "signatures",
        "Signed by the actor",
        "The transaction's calldata holds an operation whose EIP-712 digest (for this chain and "
        "ledger) is the event's id; its signature (low s) recovers to the actor the event names; "
        "and the event records exactly what was signed.",
    )
    logs = [log for log in chain.record.logs if log.name in _SIGNED_AS]
    signed.recover(call for call in map(signed.of, logs) if call is not None)
    for log in logs:
        result.checked += 1
        call = signed.of(log)
        if call is None:
            problems = signed.calls(log.tx_hash)[1]
            why = f" ({problems[0]})" if problems else ""
            result.fail(
                f"no operation in the transaction is signed for {log.name} "
                f"0x{log.args['eventId'].hex()} on this chain and ledger{why}",
                log,
            )
            continue
        recovered = signed.signer(call)
        if recovered is None:
            result.fail(f"the signature of {log.name} recovers to no address", log)
        elif recovered.lower() != call.actor.lower():
            result.fail(f"{log.name} was signed by {recovered}, not by its actor {call.actor}", log)
        for mismatch in _mismatches(log, call):
            result.fail(f"{log.name}: {mismatch}", log)
    return result


# -- roles -----------------------------------------------------------------------------------------

_REQUIRED: dict[str, int] = {
    "ship": CUSTODY_ROLES,
    "receiveLot": CUSTODY_ROLES,
    "reject": CUSTODY_ROLES,
    "recall": CUSTODY_ROLES,
    "transform": Role.PROCESSOR | Role.CELL_MAKER,
    "bindPassport": Role.CELL_MAKER,
    "attest": Role.AUDITOR,
}
_FUNCTION_OF: dict[str, str] = {
    "LotShipped": "ship",
    "LotReceived": "receiveLot",
    "ShipmentRejected": "reject",
    "ShipmentRecalled": "recall",
    "LotsTransformed": "transform",
    "LotProduced": "transform",
    "PassportBound": "bindPassport",
    "PassportAttested": "attest",
    "EventCorrected": "correct",
    "LotCommissioned": "commission",
    "ParticipantAccredited": "accredit",
    "ParticipantRevoked": "revoke",
    "CertificationRecorded": "certify",
}


def _operations(chain: PassportChain) -> dict[bytes, LedgerLog]:
    """One event per recorded operation (its first), by event id."""
    first: dict[bytes, LedgerLog] = {}
    for log in chain.record.logs:
        event_id = log.args.get("eventId")
        if event_id is not None and event_id not in first:
            first[event_id] = log
    return first


def check_roles(chain: PassportChain, signed: SignedOperations, ctx: Context) -> CheckResult:
    result = CheckResult(
        "roles",
        "Roles at the block",
        "Replaying the accreditations and revocations, each operation's signer held the role it "
        "requires just before the event (a mine or recycler to commission by feedstock, a "
        "custody role to ship and receive, a processor to transform, a cell maker to bind, an "
        "auditor to attest, the governor to accredit), and each shipment's recipient could "
        "hold material.",
    )
    participants = chain.participants
    governor = (ctx.governor or "").lower()
    operations = _operations(chain)
    authors = {event_id: actor_of(log) for event_id, log in operations.items()}
    for log in operations.values():
        call = signed.of(log)
        function = call.function if call is not None else _FUNCTION_OF.get(log.name, "transform")
        result.checked += 1
        ref = chain.ref(log)
        if function in ("accredit", "revoke", "certify"):
            # Who signed is known only from the operation (the signature check reports an
            # event without one).
            if call is not None and call.actor.lower() != governor:
                result.fail(
                    f"{log.name} of {log.args['participant']} was signed by {call.actor}, not by "
                    f"the ledger's governor {ctx.governor}",
                    log,
                )
            continue
        actor = ref.actor
        held = participants.roles_at(actor, ref)
        roles = held or 0
        if function == "commission":
            needed = int(Role.MINE if log.args["feedstock"] == Feedstock.PRIMARY else Role.RECYCLER)
        elif function == "correct":
            if actor.lower() == governor or roles & Role.AUDITOR:
                continue
            author = authors.get(log.args["target"])
            if not roles:
                result.fail(f"{actor} held no role when it signed a correction at {_at(log)}", log)
            elif author is not None and author.lower() != actor.lower():
                result.fail(
                    f"{actor} corrected event 0x{log.args['target'].hex()} at {_at(log)}, whose "
                    f"author is {author}, without being an auditor",
                    log,
                )
            continue
        else:
            needed = _REQUIRED.get(function, 0)
        if not roles & needed:
            if held is None:
                standing = "was never accredited"
            elif held == 0:
                standing = "had its roles revoked"
            else:
                standing = f"held only {role_names(held)}"
            result.fail(
                f"{actor} {standing} at {_at(log)}, when it signed {log.name} (which needs "
                f"{role_names(needed)})",
                log,
            )
        if log.name == "LotShipped":
            recipient = log.args["to"]
            if not (participants.roles_at(recipient, ref) or 0) & CUSTODY_ROLES:
                result.fail(
                    f"lot {_lot(log)} was shipped at {_at(log)} to {recipient}, which could not "
                    "hold material then",
                    log,
                )
    return result


# -- custody, quantities, mass balance -------------------------------------------------------------


def check_custody(chain: PassportChain) -> CheckResult:
    result = CheckResult(
        "custody",
        "Custody continuity",
        "Replaying each upstream lot's events from its creation: only the custodian ships, and "
        "not while a shipment is open; only the named recipient receives or rejects, and only "
        "the sender recalls; custody moves only when the recipient receives; every consumption "
        "is by the custodian at that time, with no shipment open.",
    )
    for lot in chain.lots:
        events = chain.lot_events.get(lot, [])
        custodian: str | None = None
        recipient: str | None = None
        shipped: LedgerLog | None = None
        for log in events:
            result.checked += 1
            a = log.args
            if log.name in CREATIONS:
                if custodian is not None:
                    result.fail(f"lot {_lot(log)} was created a second time at {_at(log)}", log)
                custodian = str(a["actor"])
                continue
            if custodian is None:
                result.fail(f"lot {_lot(log)} has a {log.name} at {_at(log)} before it exists", log)
                continue
            if log.name == "LotShipped":
                if a["from"] != custodian:
                    result.fail(
                        f"lot {_lot(log)} was shipped at {_at(log)} by {a['from']}, but its "
                        f"custodian was {custodian}",
                        log,
                    )
                elif recipient is not None:
                    result.fail(
                        f"lot {_lot(log)} was shipped again at {_at(log)} while in transit to "
                        f"{recipient}",
                        log,
                    )
                recipient, shipped = str(a["to"]), log
            elif log.name in ("LotReceived", "ShipmentRejected", "ShipmentRecalled"):
                if recipient is None or a["to"] != recipient or a["from"] != custodian:
                    result.fail(
                        f"lot {_lot(log)}: {log.name} at {_at(log)} from {a['from']} to {a['to']} "
                        f"matches no open shipment (custodian {custodian}, in transit to "
                        f"{recipient or 'nobody'})",
                        log,
                    )
                if log.name == "LotReceived":
                    custodian = str(a["to"])
                recipient, shipped = None, None
            elif log.name == "LotConsumed":
                consumer = a["actor"]
                if recipient is not None and consumer == recipient:
                    result.fail(
                        f"lot {_lot(log)} was consumed at {_at(log)} by {consumer}, which never "
                        f"received it: {custodian} shipped it at block "
                        f"{shipped.block_number if shipped else '?'} and it was not received",
                        log,
                    )
                elif consumer != custodian:
                    result.fail(
                        f"lot {_lot(log)} was consumed at {_at(log)} by {consumer}, but its "
                        f"custodian was {custodian}",
                        log,
                    )
                elif recipient is not None:
                    result.fail(
                        f"lot {_lot(log)} was consumed at {_at(log)} while in transit to "
                        f"{recipient}",
                        log,
                    )
        if recipient is not None and shipped is not None:
            result.notes.append(
                f"lot {show_id(lot)} was shipped to {recipient} at block {shipped.block_number} "
                "and is still in transit (after the consumptions that reach this passport)"
            )
    return result


def check_quantities(chain: PassportChain) -> CheckResult:
    result = CheckResult(
        "quantities",
        "Consumption within quantity",
        "For each upstream lot, the consumptions by every step of the ledger (not only this "
        "passport's) add up to no more than the quantity it was created with, and each "
        "consumption logs the remainder that follows from them.",
    )
    for lot in chain.lots:
        creation = chain.creation(lot)
        if creation is None:
            continue
        quantity = int(creation.args["quantity"])
        consumed = 0
        result.checked += 1
        for log in chain.lot_events.get(lot, []):
            if log.name != "LotConsumed":
                continue
            consumed += int(log.args["quantity"])
            if consumed > quantity:
                result.fail(
                    f"lot {_lot(log)} of {quantity:,} g had {consumed:,} g consumed by "
                    f"{_at(log)}: {consumed - quantity:,} g more than it held",
                    log,
                )
                break
            if log.args["remaining"] != quantity - consumed:
                result.fail(
                    f"lot {_lot(log)}: the consumption at {_at(log)} logs "
                    f"{log.args['remaining']:,} g remaining, but {quantity:,} g less the "
                    f"{consumed:,} g consumed is {quantity - consumed:,} g",
                    log,
                )
    return result


def check_mass_balance(chain: PassportChain) -> CheckResult:
    result = CheckResult(
        "mass-balance",
        "Same-material mass balance",
        "In each upstream transformation, the outputs of a material that is also among its "
        "inputs weigh no more than the inputs of that material consumed (refining into a new "
        "material is not bounded: reagents add mass).",
    )
    for step in chain.steps:
        header = chain.headers.get(step)
        if header is None or header.name != "LotsTransformed":
            continue
        result.checked += 1
        consumed: Counter[int] = Counter()
        produced: Counter[int] = Counter()
        for part in chain.step_parts.get(step, []):
            if part.name == "LotConsumed":
                creation = chain.creation(part.args["lot"])
                if creation is not None:
                    consumed[creation.args["material"]] += part.args["quantity"]
            else:
                produced[part.args["material"]] += part.args["quantity"]
        for material, grams in sorted(produced.items()):
            if material in consumed and grams > consumed[material]:
                result.fail(
                    f"the transformation at {_at(header)} produced {grams:,} g of material "
                    f"{material} from {consumed[material]:,} g of it",
                    header,
                )
    return result


def check_completeness(chain: PassportChain) -> CheckResult:
    result = CheckResult(
        "completeness",
        "Complete record",
        "The passport was bound once; each upstream step logged as many inputs and outputs as "
        "its header says; each upstream lot was created exactly once.",
    )
    result.checked += 1
    if len(chain.bindings) != 1:
        result.fail(f"the passport was bound {len(chain.bindings)} times")
    for step in chain.steps:
        result.checked += 1
        header = chain.headers.get(step)
        if header is None:
            result.fail(f"step 0x{step.hex()} has no header event")
            continue
        parts = chain.step_parts.get(step, [])
        inputs = sum(1 for p in parts if p.name == "LotConsumed")
        outputs = len(parts) - inputs
        expected = (header.args["inputs"], header.args.get("outputs", 0))
        if (inputs, outputs) != expected:
            result.fail(
                f"the {header.name} at {_at(header)} announces {expected[0]} inputs and "
                f"{expected[1]} outputs; {inputs} and {outputs} were logged",
                header,
            )
    for lot in chain.lots:
        result.checked += 1
        creations = [e for e in chain.lot_events.get(lot, []) if e.name in CREATIONS]
        if len(creations) != 1:
            result.fail(f"lot {show_id(lot)} was created {len(creations)} times")
    return result


# -- origins and corrections -----------------------------------------------------------------------


def check_origins(chain: PassportChain) -> CheckResult:
    result = CheckResult(
        "origins",
        "Accredited origins",
        "Each commissioned upstream lot was commissioned by an accredited mine (primary "
        "feedstock) or recycler (recycled), at the facility and in the country of its "
        "accreditation then, holding a certification valid at the block's time.",
    )
    participants = chain.participants
    for lot in chain.lots:
        creation = chain.creation(lot)
        if creation is None or creation.name != "LotCommissioned":
            continue
        result.checked += 1
        a = creation.args
        ref = chain.ref(creation)
        actor = str(a["actor"])
        standing = participants.standing_at(actor, ref)
        roles = standing.roles or 0
        kind = "mine" if a["feedstock"] == Feedstock.PRIMARY else "recycler"
        needed = Role.MINE if kind == "mine" else Role.RECYCLER
        what = f"lot {_lot(creation)}, commissioned by {actor} at {_at(creation)}"
        if not roles & needed:
            result.fail(f"{what}: {actor} was not an accredited {kind} then", creation)
        history = chain.histories.get(actor)
        accredited = [
            log
            for log in chain.participant_logs.get(actor, [])
            if log.name == "ParticipantAccredited"
            and (log.block_number, log.log_index) < (creation.block_number, creation.log_index)
        ]
        if history is not None and accredited:
            last = accredited[-1].args
            if (last["facility"], last["country"]) != (a["facility"], a["country"]):
                result.fail(
                    f"{what}: origin {show_id(a['facility'])} in "
                    f"{a['country'].decode(errors='replace')}, but {actor} was accredited at "
                    f"{show_id(last['facility'])} in {last['country'].decode(errors='replace')}",
                    creation,
                )
        if not standing.schemes:
            result.fail(f"{what}: {actor} had no certification recorded", creation)
        elif standing.valid_until < ref.timestamp:
            held = ", ".join(
                f"{show_id(scheme)} valid until {_when(until)}"
                for scheme, until in sorted(standing.schemes.items())
            )
            result.fail(
                f"{what} ({_when(ref.timestamp)}): its certifications had expired ({held})",
                creation,
            )
    return result


_REASONS = {1: "did not occur", 2: "incorrect data"}


def check_corrections(chain: PassportChain) -> CheckResult:
    result = CheckResult(
        "corrections",
        "Corrections honoured",
        "No event the passport's figures or custody rest on has been declared erroneous (EPCIS "
        "errorDeclaration): a correction means the passport counts something its author or an "
        "auditor has withdrawn, and its chain must be corrected before it can be relied on.",
    )
    for log in chain.upstream_events():
        result.checked += 1
        event_id: bytes = log.args["eventId"]
        for correction in chain.corrections.get(event_id, []):
            c = correction.args
            corrective = ", ".join("0x" + x.hex() for x in c["corrective"]) or "none"
            subject = f"{log.name} of lot {_lot(log)}" if "lot" in log.args else log.name
            result.fail(
                f"{subject} at {_at(log)} (event 0x{event_id.hex()}) was declared erroneous "
                f"({_REASONS.get(c['reason'], c['reason'])}) by {c['actor']} at "
                f"{_at(correction)}; corrective events: {corrective}",
                correction,
            )
    return result


def run_checks(chain: PassportChain, code: CodeCheck, ctx: Context) -> list[CheckResult]:
    """Every check on the record, in report order."""
    signed = SignedOperations(chain, ctx.domain)
    return [
        check_code(code),
        check_chain(code, chain.record.chain_id, ctx),
        check_inclusion(chain, ctx),
        check_signatures(chain, signed),
        check_roles(chain, signed, ctx),
        check_custody(chain),
        check_quantities(chain),
        check_mass_balance(chain),
        check_completeness(chain),
        check_origins(chain),
        check_corrections(chain),
    ]
