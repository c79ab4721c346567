"""A passport's chain as read from the node, arranged for the checks and for the provenance
engine: the events of each lot and each step, the upstream walk, participants' histories, and the
:class:`~mine2cell.provenance.model.Graph` the engine computes the figures from (the same shape
the index gives it, built here from the logs alone)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from mine2cell.audit.fetch import ChainRecord
from mine2cell.index.events import HANDOFF_KINDS, LedgerLog
from mine2cell.provenance.model import (
    Attestation,
    CertificationRecord,
    Consumed,
    Correction,
    EventRef,
    Graph,
    Handoff,
    LotNode,
    Origin,
    ParticipantHistory,
    Produced,
    RoleChange,
    Step,
)
from mine2cell.provenance.standing import Participants

CREATIONS = ("LotCommissioned", "LotProduced")
HEADERS = ("LotsTransformed", "PassportBound")


def actor_of(log: LedgerLog) -> str:
    """The participant whose signed operation the event records (for accreditation events, the
    participant concerned: the signer is the governor)."""
    a = log.args
    if log.name in ("LotShipped", "ShipmentRecalled"):
        return str(a["from"])
    if log.name in ("LotReceived", "ShipmentRejected"):
        return str(a["to"])
    if log.name == "PassportAttested":
        return str(a["auditor"])
    if "actor" in a:
        return str(a["actor"])
    return str(a.get("participant", ""))


def _country(value: bytes) -> str:
    return value.decode("ascii", errors="replace")


class PassportChain:
    """One passport's record, indexed."""

    def __init__(self, record: ChainRecord) -> None:
        self.record = record
        self.refs: dict[tuple[bytes, int], EventRef] = {}
        self.lot_events: dict[bytes, list[LedgerLog]] = defaultdict(list)
        self.step_parts: dict[bytes, list[LedgerLog]] = defaultdict(list)
        self.headers: dict[bytes, LedgerLog] = {}
        self.corrections: dict[bytes, list[LedgerLog]] = defaultdict(list)
        self.attestations: list[LedgerLog] = []
        self.participant_logs: dict[str, list[LedgerLog]] = defaultdict(list)
        self.bindings: list[LedgerLog] = []
        for log in record.logs:
            block = record.blocks.get(log.block_number, (log.block_hash, 0))
            event_id = log.args.get("eventId", b"")
            self.refs[(log.tx_hash, log.log_index)] = EventRef(
                event_id,
                log.tx_hash,
                log.block_number,
                log.block_hash,
                log.log_index,
                block[1],
                actor_of(log),
            )
            name = log.name
            if "lot" in log.args:
                self.lot_events[log.args["lot"]].append(log)
            if name in ("LotConsumed", "LotProduced"):
                self.step_parts[event_id].append(log)
            elif name in HEADERS:
                self.headers[event_id] = log
                if name == "PassportBound" and log.args["passport"] == record.passport:
                    self.bindings.append(log)
            elif name == "EventCorrected":
                self.corrections[log.args["target"]].append(log)
            elif name == "PassportAttested":
                if log.args["passport"] == record.passport:
                    self.attestations.append(log)
            elif "participant" in log.args:
                self.participant_logs[log.args["participant"]].append(log)
        self.steps, self.lots = self._walk()
        self.step_set = set(self.steps)
        self.histories = self._histories()
        self.participants = Participants(self.histories.values())

    def ref(self, log: LedgerLog) -> EventRef:
        return self.refs[(log.tx_hash, log.log_index)]

    @property
    def binding(self) -> LedgerLog | None:
        return self.bindings[0] if self.bindings else None

    def creation(self, lot: bytes) -> LedgerLog | None:
        return next((e for e in self.lot_events.get(lot, ()) if e.name in CREATIONS), None)

    def _walk(self) -> tuple[list[bytes], list[bytes]]:
        """The upstream steps (the binding first, each before its producers) and lots (as
        reached)."""
        steps: list[bytes] = []
        lots: list[bytes] = []
        seen_steps: set[bytes] = set()
        seen_lots: set[bytes] = set()
        queue = [b.args["eventId"] for b in self.bindings[:1]]
        while queue:
            step = queue.pop(0)
            if step in seen_steps:
                continue
            seen_steps.add(step)
            steps.append(step)
            for part in self.step_parts.get(step, ()):
                if part.name != "LotConsumed" or part.args["lot"] in seen_lots:
                    continue
                lot = part.args["lot"]
                seen_lots.add(lot)
                lots.append(lot)
                creation = self.creation(lot)
                if creation is not None and creation.name == "LotProduced":
                    queue.append(creation.args["eventId"])
        return steps, lots

    def upstream_events(self) -> Iterator[LedgerLog]:
        """The events the passport's figures rest on: the creation and custody events of its
        lots, and its steps' headers and parts."""
        for lot in self.lots:
            for log in self.lot_events.get(lot, ()):
                if log.name != "LotConsumed" or log.args["eventId"] in self.step_set:
                    yield log
        for step in self.steps:
            header = self.headers.get(step)
            if header is not None:
                yield header

    def _histories(self) -> dict[str, ParticipantHistory]:
        histories = {}
        for account, logs in self.participant_logs.items():
            changes = []
            certifications = []
            facility, country = bytes(32), ""
            for log in logs:
                ref = self.ref(log)
                if log.name == "ParticipantAccredited":
                    changes.append(
                        RoleChange(log.args["roles"], log.block_number, log.log_index, ref)
                    )
                    facility, country = log.args["facility"], _country(log.args["country"])
                elif log.name == "ParticipantRevoked":
                    changes.append(RoleChange(0, log.block_number, log.log_index, ref))
                else:
                    certifications.append(
                        CertificationRecord(
                            log.args["scheme"],
                            log.args["validUntil"],
                            log.args["documentHash"],
                            ref,
                        )
                    )
            histories[account] = ParticipantHistory(
                account, facility, country, tuple(changes), tuple(certifications)
            )
        return histories

    def graph(self) -> Graph:
        """The engine's graph of the passport, from the logs alone (``lapses`` None: the engine
        finds them in the full custody history)."""
        lots: dict[bytes, LotNode] = {}
        for lot in self.lots:
            creation = self.creation(lot)
            if creation is None:
                continue
            a = creation.args
            if creation.name == "LotCommissioned":
                origin = Origin(
                    a["feedstock"],
                    a["footprint"],
                    a["facility"],
                    _country(a["country"]),
                    a["documentHash"],
                    self.ref(creation),
                )
                lots[lot] = LotNode(lot, a["material"], a["quantity"], origin)
            else:
                lots[lot] = LotNode(lot, a["material"], a["quantity"], None, a["eventId"])
        steps: dict[bytes, Step] = {}
        consumers: dict[bytes, list[bytes]] = defaultdict(list)
        passports: dict[bytes, bytes] = {}
        for step_id in self.steps:
            header = self.headers.get(step_id)
            if header is None:
                continue
            parts = self.step_parts.get(step_id, [])
            inputs = tuple(
                Consumed(p.args["lot"], p.args["quantity"])
                for p in parts
                if p.name == "LotConsumed"
            )
            outputs = tuple(
                Produced(
                    p.args["lot"], p.args["material"], p.args["quantity"], p.args["documentHash"]
                )
                for p in parts
                if p.name == "LotProduced"
            )
            for consumed in inputs:
                consumers[consumed.lot].append(step_id)
            bind = header.name == "PassportBound"
            passport = header.args["passport"] if bind else None
            steps[step_id] = Step(
                "bind" if bind else "transform",
                self.ref(header),
                header.args["footprint"],
                inputs,
                outputs,
                passport,
                header.args["documentHash"] if bind else bytes(32),
            )
            if passport is not None:
                passports[passport] = step_id
        handoffs: dict[bytes, tuple[Handoff, ...]] = {}
        for lot in self.lots:
            items = [
                Handoff(
                    lot, HANDOFF_KINDS[log.name], log.args["from"], log.args["to"], self.ref(log)
                )
                for log in self.lot_events.get(lot, ())
                if log.name in HANDOFF_KINDS
            ]
            if items:
                handoffs[lot] = tuple(items)
        corrections = {
            target: tuple(
                Correction(target, log.args["reason"], tuple(log.args["corrective"]), self.ref(log))
                for log in logs
            )
            for target, logs in self.corrections.items()
        }
        attestations = tuple(
            Attestation(
                log.args["passport"], log.args["verdict"], log.args["reportHash"], self.ref(log)
            )
            for log in self.attestations
        )
        return Graph(
            lots=lots,
            steps=steps,
            consumers={lot: tuple(ids) for lot, ids in consumers.items()},
            handoffs=handoffs,
            participants=dict(self.histories),
            corrections=corrections,
            attestations={self.record.passport: attestations} if attestations else {},
            passports=passports,
            lapses=None,
        )
