"""UN Transparency Protocol (UNTP) documents from the ledger: Digital Traceability Events (DTE) for
a lot or for a passport's upstream chain, and the traceability / material-provenance part of a
Digital Product Passport (DPP) for a passport.

Both are W3C Verifiable Credentials (VCDM 2.0) that validate against the UNTP JSON Schemas kept in
``../shared/data/untp`` (``untp-dte-schema.json``, ``untp-dpp-schema.json``; JSON Schema draft
2020-12, every ``$ref`` internal). They are *unsecured* credentials: no ``proof``. What makes an
event trustworthy here is not a signature on the document but its on-chain evidence, carried with
each event (below), which anyone can check against a node.

``dte_credential`` and ``dpp_credential`` are pure (records and a provenance report in, JSON-ready
dicts out); ``lot_dte``, ``passport_dte`` and ``passport_dpp`` read their inputs from a ``Store``
for the CLI and the API. ``document_bytes`` is the one serialization both serve, so a hash of it
(the DPP's link to the DTE) holds whoever fetches it.

Identifiers
-----------
- Lots and passports: ``mine2cell.interop.ids.uri`` (a GS1 Digital Link where the lot number is a
  GS1 element string, else the lot's own URI or ``urn:mine2cell:lot:...`` /
  ``urn:mine2cell:passport:...``).
- Events: ``urn:mine2cell:event:0x{event id}``, and facilities (``bizLocation``,
  ``producedAtFacility``): ``urn:mine2cell:facility:{facility id}``, both from
  ``mine2cell.interop.epcis`` so that the two exports name them alike. The ledger's event id is
  the operation's EIP-712 digest, whose domain holds the chain id and the ledger's address, so it
  is unique across ledgers. UNTP says an event id "SHOULD be a UUID"; the URI that carries the
  on-chain id is kept instead, because it is what links the document to the chain.
- Participants (``sourceParty``, ``destinationParty``, ``producedByParty``): ``did:pkh:eip155:
  {chain id}:{account}``, the account (the only identity the ledger knows) as a DID, which UNTP
  prefers for parties and which resolves to the key that signed the events; the EPCIS export
  names the same account ``urn:mine2cell:participant:{account}``.
- The issuer: UNTP wants a ``did:web``. The ledger has no web domain, so the default issuer is the
  ledger itself, ``did:pkh:eip155:{chain id}:{ledger address}``, named "mine2cell ledger ...";
  an operator who signs the credentials with its own ``did:web`` passes ``issuer=Issuer(...)``.
- Credential ids: ``urn:uuid:`` + a UUID v5 of the subject's URI and the SHA-256 of the content,
  so the same records give the same document, byte for byte, and any change gives a new id.
  ``validFrom`` is the block time of the latest event the document states (not the time of the
  export), for the same reason.

Ledger events -> DTE events (``credentialSubject``, in chain order)
-------------------------------------------------------------------
Masses are ``QuantityElement``s with ``quantity`` in integer grams (the schema's ``number`` admits
integers) and ``uom`` "GRM" (UN/ECE Rec 20), ``productId`` the lot's URI (a lot-level class, as
EPCIS quantity lists name an LGTIN) and ``productName`` "{material}, lot {lot number}". CBV codes
are written as their ``https://ref.gs1.org/cbv/...`` URIs, as in the UNTP samples.

===========  ===================  ======  ======================  =============  =================
ledger       UNTP type            action  bizStep                 disposition    what else
===========  ===================  ======  ======================  =============  =================
commission   ObjectEvent          add     commissioning           active         quantityList:
                                                                                 the lot's grams
ship         TransactionEvent     add     shipping                in_transit     source: sender,
receive      TransactionEvent     observe receiving               in_progress    destination:
reject       TransactionEvent     delete  m2c rejecting           returned       recipient;
recall       TransactionEvent     delete  void_shipping           -              quantityList
transform    TransformationEvent  -       commissioning           active         input/output
                                                                                 QuantityList
bind         TransformationEvent  -       assembling              active         inputQuantity-
                                                                                 List; output-
                                                                                 EPCList: battery
===========  ===================  ======  ======================  =============  =================

- Custody hand-offs are ``TransactionEvent``s: UNTP's type for "the transfer of products between
  organisations", and the only one that names both parties (EPCIS would use an ObjectEvent with
  source and destination lists, which UNTP's ObjectEvent lacks). The ledger records no business
  transaction document, so ``bizTransaction`` is left out. A hand-off moves the whole lot: its
  quantity is what the lot held at that point (its grams when created, less every consumption
  before the hand-off, from the ``LotConsumed`` logs' ``remaining``). A recall names the recipient
  of the shipment it cancels (the last shipment before it in the lot's history).
- CBV has no step for a refused delivery: a rejection takes the EPCIS export's
  ``https://mine2cell.example/epcis/BizStep-rejecting``, the lot "returned" to the sender; a
  recall is a ``void_shipping``; both ``delete`` the lot from the hand-off they end. The steps and
  dispositions are the EPCIS export's throughout.
- Transformations and passport bindings: UNTP's ``TransformationEvent`` has no action in EPCIS and
  none is set. ``processType`` says "Blending", "Splitting" or "Processing" with the materials in
  and out, or "Cell manufacturing: passport binding". The battery a binding creates is a
  serialised ``Item`` (its passport's URI, "Battery, passport ...") in ``outputEPCList``.
- ``eventTime``: the block's timestamp (UTC). ``bizLocation``: where the event took place (UNTP
  has no ``readPoint`` and asks every event for its location): the facility recorded in the
  commissioning event itself; for other events the signer's facility in its latest accreditation
  (the ledger does not repeat it per event): the sender's for a shipment or recall, the
  recipient's for a receipt or rejection; left out when the signer has none.
- Not carried (no DTE field; they are in the provenance report and summed up in the DPP): the
  footprint recorded with each event and the hashes of off-chain document bundles.

On-chain evidence: the schema closes ``Item``, ``QuantityElement`` and ``CredentialIssuer``
(``additionalProperties: false``) but leaves every ``Event`` type, ``ProductPassport``,
``Material`` and the credential itself open (``additionalProperties: true``); its ``@context``
fixes only the first two entries. So each event carries one extension property::

    "ledgerEvidence": {"type": ["LedgerEvidence"], "chainId": 31337, "ledger": "0x...",
                       "eventId": "0x...", "transactionHash": "0x...", "blockNumber": 12,
                       "blockHash": "0x...", "logIndex": 3, "signer": "0x..."}

(the DPP's subject carries the binding's). No extension ``@context`` is added: it would have to be
a URL that resolves, and none is published. Under JSON-LD processing the VC 2.0 context's
``@vocab`` maps such terms to ``https://www.w3.org/ns/credentials/issuer-dependent#``; a
deployment that publishes a context for ``LedgerEvidence`` appends its URL as a third ``@context``
entry, which the schema allows.

Corrections: as in EPCIS 2.0, an event declared erroneous is stated again, with the same ``id``,
at the position of the correction, with the extension property ``errorDeclaration``
(``declarationTime``, ``reason`` ``https://ref.gs1.org/cbv/ER-did_not_occur`` or
``...ER-incorrect_data``, ``correctiveEventIDs`` as event URIs, and the correction's own
``ledgerEvidence``); the original statement stays where it was.

Scopes are ``mine2cell.interop.records``'s, shared with the EPCIS export, so both formats state the
same events: a lot's whole history (every step that produced or consumed it with all its inputs
and outputs, so a step is never shown partly), or a passport's upstream chain (every upstream
lot's commissioning and custody events, every upstream step and the binding, not the steps that
led other parts of those lots to other batteries), each with the corrections declared about them.

Provenance report -> DPP (``credentialSubject``: a ``ProductPassport``)
-----------------------------------------------------------------------
- ``product``: ``id`` the passport's URI; ``name`` "Battery, passport {id}"; ``serialNumber`` the
  passport id (``granularityLevel`` "item"); ``producedByParty`` the binding's signer (its DID,
  named "Ledger participant {account}": the ledger holds no registered names);
  ``producedAtFacility``, ``countryOfProduction`` the signer's facility and country;
  ``productionDate`` the binding's block date.
- ``materialsProvenance``: one ``Material`` per (element, country of origin) of the report, in its
  order (elements by mass, the unnamed element last; countries by mass within each):
  ``name`` the element ("Cobalt"; "Material of no named element" for ``null``),
  ``originCountry`` the country the mine or recycler commissioned the lot in (for recycled feed,
  where it was recycled), ``massFraction`` = element share x country share within the element =
  the country's grams of that element / all origin grams, ``recycledMassFraction`` = pre- plus
  post-consumer grams of that element from that country / its grams (summed over the report's
  upstream lots, as the report sums its per-element recycled shares). Fractions are of the
  battery's traced raw material (mined and recycled origin mass), which is what sums to 1: the
  ledger does not know the battery's own mass (casing, electrolyte), so ``mass`` is left out.
  ``hazardous`` is left out (optional; the ledger records no hazard classification) and so is
  ``materialType`` (no classification scheme is recorded).
- ``emissionsScorecard``: ``carbonFootprint`` the report's raw-material footprint in kg CO2e,
  ``declaredUnit`` "EA" (per battery: the one item the passport names), ``operationalScope``
  "CradleToGate" (extraction or recycling through cell manufacturing), ``primarySourcedRatio`` 1
  when there is any footprint (every gram of it was declared for its own lot or step by the
  participant who performed it; mine2cell adds no secondary data), else 0. No ``reportingStandard``:
  the figures are allocated by mass (ISO 14044) but not certified to a footprint standard.
- ``circularityScorecard.recycledContent``: the report's recycled share (pre- plus post-consumer)
  of all origin mass. The pre-/post-consumer split stays in the report.
- ``traceabilityInformation``: one entry, "Battery raw materials, mine to cell", with
  ``verifiedRatio`` 1 (every gram reaches the battery through signed, on-chain events; flags such
  as corrections or unaccepted custody are the report's, not this ratio's) and a ``SecureLink`` to
  the passport's DTE: ``linkURL`` its address when served over HTTP, else (CLI) the DTE
  credential's id; ``hashDigest`` the SHA-256 of ``document_bytes(dte)``.
- Not mapped: due-diligence flags, Annex X scope and attestations (UNTP carries those as conformity
  claims backed by conformity credentials, which the ledger does not issue); ``validUntil``.

Numbers: the schema wants JSON numbers for fractions and the footprint. They are computed exactly
(``Fraction``) and converted to the nearest IEEE-754 double only at the last step, so each differs
from the report's exact value by at most one part in 2**53; their sum may miss 1 by a few such
units. The exact values are the report's (``/provenance``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, NamedTuple

from mine2cell.codes import Feedstock
from mine2cell.errors import InvalidInput
from mine2cell.ids import show_id
from mine2cell.index.store import Store
from mine2cell.interop.epcis import REJECTING, event_uri, facility_uri
from mine2cell.interop.ids import uri
from mine2cell.interop.records import (
    Custody,
    Record,
    Records,
    evidence_of,
    lot_records,
    passport_records,
)
from mine2cell.materials import describe
from mine2cell.provenance.documents import passport_document
from mine2cell.provenance.engine import IncompleteGraph
from mine2cell.provenance.model import Correction, EventRef, LotNode, ParticipantHistory, Step
from mine2cell.provenance.report import PROVENANCE_SCHEMA, fraction_from_json, hex_id

__all__ = [
    "Issuer",
    "LedgerRef",
    "document_bytes",
    "dpp_credential",
    "dte_credential",
    "dte_events",
    "ledger_issuer",
    "lot_dte",
    "lot_materials",
    "passport_dpp",
    "passport_dte",
]

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
DTE_CONTEXT = "https://test.uncefact.org/vocabulary/untp/dte/working/"
DPP_CONTEXT = "https://test.uncefact.org/vocabulary/untp/dpp/working/"
CBV = "https://ref.gs1.org/cbv/"
GRAMS = "GRM"  # UN/ECE Rec 20: gram
EACH = "EA"  # UN/ECE Rec 20: each
VALUE_CHAIN = "Battery raw materials, mine to cell"

_ERROR_REASONS = {1: f"{CBV}ER-did_not_occur", 2: f"{CBV}ER-incorrect_data"}
_FEEDSTOCK_PROCESS: dict[int, str] = {
    Feedstock.PRIMARY: "Extraction (mined feedstock)",
    Feedstock.PRE_CONSUMER: "Recycling (pre-consumer feedstock)",
    Feedstock.POST_CONSUMER: "Recycling (post-consumer feedstock)",
}


class _Custody(NamedTuple):
    process: str
    action: str
    biz_step: str  # a CBV step, or a full URI
    disposition: str | None


_CUSTODY = {
    "ship": _Custody("Shipping", "add", "shipping", "in_transit"),
    "receive": _Custody("Receiving", "observe", "receiving", "in_progress"),
    "reject": _Custody("Shipment rejected", "delete", REJECTING, "returned"),
    "recall": _Custody("Shipment recalled", "delete", "void_shipping", None),
}


# -- context --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRef:
    """The ledger the records come from: an EIP-155 chain id and the contract's address."""

    chain_id: int
    address: str

    def party(self, account: str) -> str:
        """A participant's account as a DID (did:pkh, a CAIP-10 account id)."""
        return f"did:pkh:eip155:{self.chain_id}:{account}"

    def evidence(self, event: EventRef) -> dict[str, Any]:
        """Where an event is on chain, as the ``ledgerEvidence`` extension property."""
        return {
            "type": ["LedgerEvidence"],
            "chainId": self.chain_id,
            "ledger": self.address,
            "eventId": hex_id(event.event_id),
            "transactionHash": hex_id(event.tx_hash),
            "blockNumber": event.block_number,
            "blockHash": hex_id(event.block_hash),
            "logIndex": event.log_index,
            "signer": event.actor,
        }


class Issuer(NamedTuple):
    """The credential issuer: ``id`` a DID, ``name`` the organisation's name."""

    id: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"type": ["CredentialIssuer"], "id": self.id, "name": self.name}


def ledger_issuer(ledger: LedgerRef) -> Issuer:
    """The default issuer: the ledger itself (see the module docstring)."""
    return Issuer(
        ledger.party(ledger.address),
        f"mine2cell ledger {ledger.address} (chain {ledger.chain_id})",
    )


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """The one serialization of an exported document (what the API serves and the CLI writes)."""
    return json.dumps(document, indent=2).encode()


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _credential_id(about: str, content: object) -> str:
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{about}#sha256={digest}')}"


# -- ledger events -> DTE --------------------------------------------------------------------------


class _Stated(NamedTuple):
    """A DTE event and where the chain puts it (a declaration's restatement: at the correction)."""

    position: tuple[int, int]
    timestamp: int
    event: dict[str, Any]


def lot_materials(records: Records) -> dict[bytes, int]:
    """The material of every lot the records themselves name: commissioned lots and the outputs
    of their steps. A step's input produced outside the scope is not among them."""
    found: dict[bytes, int] = {}
    for record in records.events:
        if isinstance(record, LotNode):
            found[record.lot] = record.material
        elif isinstance(record, Step):
            found.update((produced.lot, produced.material) for produced in record.outputs)
    return found


def _inputs(records: Records) -> list[bytes]:
    return [c.lot for r in records.events if isinstance(r, Step) for c in r.inputs]


def _quantity(lot: bytes, material: int, grams: int) -> dict[str, Any]:
    return {
        "productId": uri(lot),
        "productName": f"{describe(material)}, lot {show_id(lot)}",
        "quantity": grams,
        "uom": GRAMS,
    }


class _Writer:
    """Turns one scope's records into DTE events."""

    def __init__(self, records: Records, ledger: LedgerRef, materials: Mapping[bytes, int]) -> None:
        self.records = records
        self.ledger = ledger
        self.materials = materials

    def material(self, lot: bytes) -> int:
        found = self.materials.get(lot)
        if found is None:
            raise IncompleteGraph(f"the material of lot {show_id(lot)} was not loaded")
        return found

    def quantity(self, lot: bytes, grams: int) -> dict[str, Any]:
        return _quantity(lot, self.material(lot), grams)

    def location(self, account: str) -> str | None:
        history = self.records.participants.get(account)
        if history is None or not any(history.facility):
            return None
        return facility_uri(history.facility)

    def event(self, record: Record) -> dict[str, Any]:
        if isinstance(record, LotNode):
            found = self.commission(record)
        elif isinstance(record, Custody):
            found = self.custody(record)
        else:
            found = self.step(record)
        found["ledgerEvidence"] = self.ledger.evidence(evidence_of(record))
        return found

    def commission(self, lot: LotNode) -> dict[str, Any]:
        origin = lot.origin
        assert origin is not None  # the records hold commissioned lots only
        process = _FEEDSTOCK_PROCESS.get(origin.feedstock, f"Feedstock {origin.feedstock}")
        found = _event(
            "ObjectEvent",
            origin.event,
            f"{process}, {describe(lot.material)}",
            action="add",
            biz_step="commissioning",
            disposition="active",
            location=facility_uri(origin.facility) if any(origin.facility) else None,
        )
        found["quantityList"] = [_quantity(lot.lot, lot.material, lot.quantity)]
        return found

    def custody(self, hand_off: Custody) -> dict[str, Any]:
        mapping = _CUSTODY[hand_off.kind]
        found = _event(
            "TransactionEvent",
            hand_off.event,
            mapping.process,
            action=mapping.action,
            biz_step=mapping.biz_step,
            disposition=mapping.disposition,
            location=self.location(hand_off.event.actor),
        )
        found["sourceParty"] = self.ledger.party(hand_off.sender)
        found["destinationParty"] = self.ledger.party(hand_off.recipient)
        found["quantityList"] = [self.quantity(hand_off.lot, hand_off.quantity)]
        return found

    def process(self, step: Step) -> str:
        if step.kind == "bind":
            return "Cell manufacturing: passport binding"
        inputs = [self.material(consumed.lot) for consumed in step.inputs]
        outputs = [produced.material for produced in step.outputs]
        same = set(inputs) == set(outputs)
        if same and len(step.inputs) > 1 and len(step.outputs) == 1:
            verb = "Blending"
        elif same and len(step.inputs) == 1 and len(step.outputs) > 1:
            verb = "Splitting"
        else:
            verb = "Processing"
        return f"{verb}: {_names(inputs)} to {_names(outputs)}"

    def step(self, step: Step) -> dict[str, Any]:
        found = _event(
            "TransformationEvent",
            step.event,
            self.process(step),
            action=None,
            biz_step="assembling" if step.kind == "bind" else "commissioning",
            disposition="active",
            location=self.location(step.event.actor),
        )
        found["inputQuantityList"] = [
            self.quantity(consumed.lot, consumed.quantity) for consumed in step.inputs
        ]
        if step.kind == "bind":
            assert step.passport is not None  # a binding names its passport
            found["outputEPCList"] = [_battery(step.passport)]
        else:
            found["outputQuantityList"] = [
                _quantity(produced.lot, produced.material, produced.quantity)
                for produced in step.outputs
            ]
        return found

    def declared(self, correction: Correction, record: Record) -> dict[str, Any]:
        """The record stated again with the correction's errorDeclaration (EPCIS 2.0)."""
        declaration: dict[str, Any] = {"declarationTime": _time(correction.event.timestamp)}
        reason = _ERROR_REASONS.get(correction.reason)
        if reason is not None:
            declaration["reason"] = reason
        declaration["correctiveEventIDs"] = [event_uri(e) for e in correction.corrective]
        declaration["ledgerEvidence"] = self.ledger.evidence(correction.event)
        return {**self.event(record), "errorDeclaration": declaration}

    def stated(self) -> list[_Stated]:
        found = [
            _Stated(_position(evidence_of(r)), evidence_of(r).timestamp, self.event(r))
            for r in self.records.events
        ]
        found += [
            _Stated(_position(c.event), c.event.timestamp, self.declared(c, r))
            for c, r in self.records.declarations
        ]
        found.sort(key=lambda s: s.position)
        return found


def _position(event: EventRef) -> tuple[int, int]:
    return (event.block_number, event.log_index)


def _battery(passport: bytes) -> dict[str, Any]:
    return {
        "type": ["Item"],
        "id": uri(passport, "passport"),
        "name": f"Battery, passport {show_id(passport)}",
    }


def _names(codes: Iterable[int]) -> str:
    return ", ".join(describe(code) for code in dict.fromkeys(codes))


def _event(
    kind: str,
    event: EventRef,
    process: str,
    *,
    action: str | None,
    biz_step: str,
    disposition: str | None,
    location: str | None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": [kind, "Event"],
        "id": event_uri(event.event_id),
        "processType": process,
        "eventTime": _time(event.timestamp),
    }
    if action is not None:
        found["action"] = action
    if disposition is not None:
        found["disposition"] = f"{CBV}Disp-{disposition}"
    found["bizStep"] = biz_step if ":" in biz_step else f"{CBV}BizStep-{biz_step}"
    if location is not None:
        found["bizLocation"] = location
    return found


def dte_events(
    records: Records, *, ledger: LedgerRef, materials: Mapping[bytes, int] | None = None
) -> list[dict[str, Any]]:
    """The records as UNTP DTE events, in chain order, each declaration as a restatement of the
    event it corrects. ``materials``: the material of every lot the events name
    (``lot_materials(records)`` when the scope holds them all)."""
    known = lot_materials(records) if materials is None else materials
    return [s.event for s in _Writer(records, ledger, known).stated()]


def dte_credential(
    about: str,
    records: Records,
    *,
    ledger: LedgerRef,
    materials: Mapping[bytes, int] | None = None,
    issuer: Issuer | None = None,
) -> dict[str, Any]:
    """A UNTP Digital Traceability Event credential of one scope's records; ``about`` is the URI
    of the lot or passport (it seeds the credential's id)."""
    known = lot_materials(records) if materials is None else materials
    stated = _Writer(records, ledger, known).stated()
    issuer = issuer or ledger_issuer(ledger)
    subject = [s.event for s in stated]
    credential: dict[str, Any] = {
        "type": ["DigitalTraceabilityEvent", "VerifiableCredential"],
        "@context": [VC_CONTEXT, DTE_CONTEXT],
        "id": _credential_id(about, {"issuer": issuer.to_json(), "events": subject}),
        "issuer": issuer.to_json(),
    }
    if stated:
        credential["validFrom"] = _time(max(s.timestamp for s in stated))
    credential["credentialSubject"] = subject
    return credential


# -- the passport: report -> DPP -------------------------------------------------------------------


def _sum(values: Sequence[Fraction]) -> Fraction:
    """An exact sum, added as a balanced tree (the report's fractions can be thousands of bits)."""
    terms = list(values)
    if not terms:
        return Fraction(0)
    while len(terms) > 1:
        paired = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


def _ratio(part: Fraction, whole: Fraction) -> float:
    """The nearest double to ``part / whole``, computed exactly first (0 for an empty whole)."""
    return float(part / whole) if whole else 0.0


def _element_name(element: str | None) -> str:
    return "Material of no named element" if element is None else element.capitalize()


def _materials(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    whole = fraction_from_json(report["origin_grams"])
    # Recycled grams per (element, country): the report's recycled shares are per element only.
    total: dict[tuple[str | None, str], list[Fraction]] = {}
    recycled: dict[tuple[str | None, str], list[Fraction]] = {}
    for lot in report["dag"]["lots"]:
        origin = lot["origin"]
        if origin is None:
            continue
        for part in lot["by_element"]:
            key = (part["element"], origin["country"])
            grams = fraction_from_json(part["grams"])
            total.setdefault(key, []).append(grams)
            if origin["feedstock"] != Feedstock.PRIMARY:
                recycled.setdefault(key, []).append(grams)
    materials: list[dict[str, Any]] = []
    for element in report["elements"]:
        for country in element["countries"]:
            key = (element["element"], country["country"])
            grams = fraction_from_json(country["grams"])
            materials.append(
                {
                    "type": ["Material"],
                    "name": _element_name(element["element"]),
                    "originCountry": country["country"],
                    "massFraction": _ratio(grams, whole),
                    "recycledMassFraction": _ratio(
                        _sum(recycled.get(key, [])), _sum(total.get(key, []))
                    ),
                }
            )
    return materials


def _latest(report: Mapping[str, Any]) -> int:
    """The block time of the latest event the report cites."""
    times: list[int] = [report["binding"]["timestamp"]]
    times += [lot["event"]["timestamp"] for lot in report["dag"]["lots"]]
    times += [step["event"]["timestamp"] for step in report["dag"]["steps"]]
    times += [flag["event"]["timestamp"] for flag in report["flags"] if flag["event"]]
    times += [a["event"]["timestamp"] for a in report["attestations"]]
    return max(times)


def _binding_event(report: Mapping[str, Any]) -> EventRef:
    binding = report["binding"]
    return EventRef(
        bytes.fromhex(binding["event_id"][2:]),
        bytes.fromhex(binding["tx_hash"][2:]),
        binding["block_number"],
        bytes.fromhex(binding["block_hash"][2:]),
        binding["log_index"],
        binding["timestamp"],
        binding["actor"],
    )


def dpp_credential(
    report: Mapping[str, Any],
    participants: Mapping[str, ParticipantHistory],
    *,
    ledger: LedgerRef,
    issuer: Issuer | None = None,
    dte: Mapping[str, Any] | None = None,
    dte_url: str | None = None,
) -> dict[str, Any]:
    """The traceability and material-provenance part of a UNTP Digital Product Passport, from a
    passport's provenance report (``PassportProvenance.to_json()``, schema
    mine2cell.provenance/1). ``participants`` must hold the binding's signer. ``dte``: the
    passport's DTE credential, linked with its hash (at ``dte_url`` when given)."""
    if report.get("schema") != PROVENANCE_SCHEMA:
        raise InvalidInput("report", f"is not a {PROVENANCE_SCHEMA} report")
    issuer = issuer or ledger_issuer(ledger)
    passport = bytes.fromhex(report["passport"]["id"][2:])
    binding = _binding_event(report)
    maker = binding.actor
    product: dict[str, Any] = {
        "type": ["Product"],
        "id": uri(passport, "passport"),
        "name": f"Battery, passport {show_id(passport)}",
        "serialNumber": show_id(passport),
        "producedByParty": {"id": ledger.party(maker), "name": f"Ledger participant {maker}"},
    }
    history = participants.get(maker)
    if history is not None and any(history.facility):
        label = show_id(history.facility)
        product["producedAtFacility"] = {
            "id": facility_uri(history.facility),
            "name": label,
            "registeredId": label,
        }
    product["productionDate"] = _date(binding.timestamp)
    if history is not None and history.country:
        product["countryOfProduction"] = history.country
    footprint = fraction_from_json(report["footprint"]["total"])
    subject: dict[str, Any] = {
        "type": ["ProductPassport"],
        "product": product,
        "granularityLevel": "item",
        "emissionsScorecard": {
            "type": ["EmissionsPerformance"],
            "carbonFootprint": float(footprint / 1000),
            "declaredUnit": EACH,
            "operationalScope": "CradleToGate",
            "primarySourcedRatio": 1.0 if footprint else 0.0,
        },
        "circularityScorecard": {
            "type": ["CircularityPerformance"],
            "recycledContent": float(fraction_from_json(report["recycled"]["total"])),
        },
    }
    if dte is not None:
        link_url = dte_url or str(dte["id"])
        subject["traceabilityInformation"] = [
            {
                "type": ["TraceabilityPerformance"],
                "valueChainProcess": VALUE_CHAIN,
                "verifiedRatio": 1.0,
                "traceabilityEvent": [
                    {
                        "type": ["SecureLink", "Link"],
                        "linkURL": link_url,
                        "linkName": f"UNTP traceability events of passport {show_id(passport)}",
                        "linkType": "https://test.uncefact.org/vocabulary/linkTypes/dte",
                        "hashDigest": hashlib.sha256(document_bytes(dte)).hexdigest(),
                        "hashMethod": "SHA-256",
                    }
                ],
            }
        ]
    subject["materialsProvenance"] = _materials(report)
    subject["ledgerEvidence"] = ledger.evidence(binding)
    credential: dict[str, Any] = {
        "type": ["DigitalProductPassport", "VerifiableCredential"],
        "@context": [VC_CONTEXT, DPP_CONTEXT],
        "id": _credential_id(
            uri(passport, "passport"), {"issuer": issuer.to_json(), "subject": subject}
        ),
        "issuer": issuer.to_json(),
        "validFrom": _time(_latest(report)),
        "credentialSubject": subject,
    }
    return credential


# -- reading the index -----------------------------------------------------------------------------


def _materials_from(store: Store, records: Records) -> dict[bytes, int]:
    """``lot_materials(records)`` and the material of any other step input, from the index."""
    found = lot_materials(records)
    for lot in _inputs(records):
        if lot not in found:
            node = store.lot(lot)
            if node is not None:
                found[lot] = node.material
    return found


def lot_dte(
    store: Store, lot: bytes, *, ledger: LedgerRef, issuer: Issuer | None = None
) -> dict[str, Any] | None:
    """The DTE credential of a lot's history; None when the index does not know the lot."""
    records = lot_records(store, lot)
    if records is None:
        return None
    materials = _materials_from(store, records)
    return dte_credential(uri(lot), records, ledger=ledger, materials=materials, issuer=issuer)


def passport_dte(
    store: Store, passport: bytes, *, ledger: LedgerRef, issuer: Issuer | None = None
) -> dict[str, Any] | None:
    """The DTE credential of a passport's upstream chain; None when it is not bound (indexed)."""
    records = passport_records(store, passport)
    if records is None:
        return None
    materials = _materials_from(store, records)
    return dte_credential(
        uri(passport, "passport"), records, ledger=ledger, materials=materials, issuer=issuer
    )


def passport_dpp(
    store: Store,
    passport: bytes,
    *,
    ledger: LedgerRef,
    high_risk_countries: frozenset[str],
    issuer: Issuer | None = None,
    dte_url: str | None = None,
) -> dict[str, Any] | None:
    """The passport's DPP (traceability and material provenance) from its kept provenance
    report, linking its DTE; None when it is not bound (indexed)."""
    document = passport_document(store, passport, high_risk_countries=high_risk_countries)
    if document is None:
        return None
    dte = passport_dte(store, passport, ledger=ledger, issuer=issuer)
    report: dict[str, Any] = json.loads(document)
    participants = store.participants([report["binding"]["actor"]])
    return dpp_credential(
        report, participants, ledger=ledger, issuer=issuer, dte=dte, dte_url=dte_url
    )
