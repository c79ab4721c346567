"""GS1 EPCIS 2.0 export: the ledger's events as an EPCIS 2.0 JSON-LD document (media type
``application/ld+json``), by pure functions over the records of ``mine2cell.interop.records``.
Every document validates against the official EPCIS 2.0 JSON schema; its quantities are the
ledger's integer grams.

Mapping (ledger event -> EPCIS event type, action / bizStep / disposition: other fields):

- LotCommissioned -> ObjectEvent, ADD / ``commissioning`` / ``active``: quantityList (the lot,
  its grams); readPoint = bizLocation = the origin facility; ilmd: ``m2c:material``,
  ``m2c:feedstock``, ``m2c:countryOfOrigin``, ``m2c:documentHash``; ``m2c:footprint``.
- LotShipped -> ObjectEvent, OBSERVE / ``shipping`` / ``in_transit``: quantityList (the lot, the
  grams it holds); sourceList and destinationList, each an owning_party and a possessing_party
  (sender -> recipient); readPoint = the sender's facility.
- LotReceived -> ObjectEvent, OBSERVE / ``receiving`` / ``in_progress``: as a shipment; readPoint
  = bizLocation = the recipient's facility.
- ShipmentRejected -> ObjectEvent, OBSERVE / ``m2c`` ``BizStep-rejecting`` (CBV has no step for a
  refused delivery) / ``returned``: as a shipment; readPoint = the recipient's facility,
  bizLocation = the sender's (custody stays there).
- ShipmentRecalled -> ObjectEvent, OBSERVE / ``void_shipping`` / none: as a shipment; readPoint
  = bizLocation = the sender's facility.
- LotsTransformed (refining, splitting, blending) -> TransformationEvent, ``commissioning`` (of
  the outputs) / ``active``: inputQuantityList and outputQuantityList (lots, grams); ilmd
  ``m2c:outputMaterials``; readPoint = bizLocation = the actor's facility; ``m2c:footprint``.
- PassportBound -> TransformationEvent, ``assembling`` / ``active``: inputQuantityList;
  outputEPCList = [the passport]; ``m2c:footprint``.
- EventCorrected -> the corrected event again with ``errorDeclaration`` {declarationTime, reason
  (``did_not_occur`` | ``incorrect_data``), correctiveEventIDs, ``m2c:declaredBy``,
  ``m2c:evidence``}, its recordTime the declaration's block time (EPCIS 2.0 section 7.4.1.2).

The ledger records custody (who holds a lot); the custodian is taken as both the owning and the
possessing party. A shipment moves the whole lot, so its quantity is the grams the lot held then.

Times: ``eventTime`` and ``recordTime`` are the block's timestamp (the ledger is the repository
that recorded the event, and it records no other clock), ``eventTimeZoneOffset`` is ``+00:00``.
Events are in chain order (block, then log index).

Identifiers:

- lots and passports: ``mine2cell.interop.ids.uri`` (a GS1 Digital Link when the lot number is a
  GS1 element string with GTIN and batch/lot, else the participant's own URI or
  ``urn:mine2cell:lot:...`` / ``urn:mine2cell:passport:...``);
- events: ``urn:mine2cell:event:0x{event id}``, the on-chain event id (the EIP-712 digest of the
  signed operation), so that ``correctiveEventIDs`` and declarations name ledger events;
- participants (source/destination parties, ``m2c:actor``): ``urn:mine2cell:participant:{address}``
  (EIP-55 checksummed);
- facilities (readPoint, bizLocation): ``urn:mine2cell:facility:{facility id}`` (the id the
  participant was accredited with, percent-encoded; ``0x`` and 64 hex digits when not text),
  described in the header's master data (``BusinessLocation`` with its ``countryCode``);
- materials: ``urn:mine2cell:material:{code}`` (``mine2cell.materials``).

Extension namespace ``m2c`` = ``https://mine2cell.example/epcis/`` (declared in ``@context``; its
nested objects take their keys from it through a scoped ``@vocab``):

- ``m2c:actor`` (event): the participant that signed the ledger operation;
- ``m2c:evidence`` (event, and errorDeclaration for the declaration itself): ``chainId``,
  ``ledger`` (contract address), ``txHash``, ``blockNumber``, ``blockHash``, ``logIndex``,
  ``eventId``;
- ``m2c:footprint`` (commissioning, transformation, binding): ``{"quantity": grams of CO2e of
  the step, "uom": "GRM"}``;
- ``ilmd`` of a commissioning: ``m2c:material``, ``m2c:feedstock`` (primary, pre-consumer,
  post-consumer), ``m2c:countryOfOrigin`` (ISO 3166-1 alpha-2), ``m2c:documentHash`` (of the
  off-chain document bundle, when one was recorded);
- ``ilmd`` of a transformation: ``m2c:outputMaterials``: ``[{"lot": URI, "material": URI,
  "documentHash": 0x... when one was recorded}]``; a binding's ``m2c:documentHash``;
- ``errorDeclaration``: ``m2c:declaredBy`` (the participant that declared it), ``m2c:evidence``.

"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from mine2cell.codes import Feedstock
from mine2cell.errors import InvalidInput
from mine2cell.ids import show_id
from mine2cell.interop.ids import uri
from mine2cell.interop.records import Custody, Record, Records, evidence_of
from mine2cell.materials import material as material_of
from mine2cell.provenance.model import Correction, EventRef, LotNode, ParticipantHistory, Step

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
M2C = "https://mine2cell.example/epcis/"
MEDIA_TYPE = "application/ld+json"
SCHEMA_VERSION = "2.0"
GRAMS = "GRM"  # UN/CEFACT Recommendation 20 code for the gram
TIME_ZONE = "+00:00"
REJECTING = M2C + "BizStep-rejecting"
COUNTRY_CODE = "urn:epcglobal:cbv:mda#countryCode"
BUSINESS_LOCATION = "urn:epcglobal:epcis:vtype:BusinessLocation"

_NESTED = {"@context": {"@vocab": M2C}}
CONTEXT: list[Any] = [
    EPCIS_CONTEXT,
    {
        "m2c": M2C,
        "m2c:evidence": {"@id": "m2c:evidence", **_NESTED},
        "m2c:footprint": {"@id": "m2c:footprint", **_NESTED},
        "m2c:outputMaterials": {"@id": "m2c:outputMaterials", **_NESTED},
    },
]

FEEDSTOCK_NAMES = {f.value: f.name.lower().replace("_", "-") for f in Feedstock}
ERROR_REASONS = {1: "did_not_occur", 2: "incorrect_data"}


class LedgerRef(NamedTuple):
    """The ledger the evidence is on."""

    chain_id: int
    address: str


# -- identifiers ---------------------------------------------------------------------------------

_PARTICIPANT = re.compile(r"^urn:mine2cell:participant:(0x[0-9a-fA-F]{40})$")
_FACILITY = re.compile(r"^urn:mine2cell:facility:(.+)$")
_MATERIAL = re.compile(r"^urn:mine2cell:material:(.+)$")
_EVENT = re.compile(r"^urn:mine2cell:event:0x([0-9a-fA-F]{64})$")


def participant_uri(account: str) -> str:
    return f"urn:mine2cell:participant:{to_checksum_address(account)}"


def participant_of(text: str) -> ChecksumAddress | None:
    """The address a participant URI names, or None for any other URI."""
    found = _PARTICIPANT.match(text.strip())
    return None if found is None else to_checksum_address(found.group(1))


def facility_uri(facility: bytes) -> str:
    return f"urn:mine2cell:facility:{quote(show_id(facility), safe='')}"


def facility_of(text: str) -> bytes | None:
    """The facility id a facility URI names, or None for any other URI."""
    found = _FACILITY.match(text.strip())
    if found is None:
        return None
    label = unquote(found.group(1))
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", label):
        return bytes.fromhex(label[2:])
    raw = label.encode()
    return raw.ljust(32, b"\0") if len(raw) <= 32 else None


def material_uri(code: int) -> str:
    return f"urn:mine2cell:material:{code}"


def material_code(text: object, field: str) -> int:
    """The material code a material URI names (its code, or a key such as co-hydroxide)."""
    found = _MATERIAL.match(text.strip()) if isinstance(text, str) else None
    if found is None:
        raise InvalidInput(field, f"{text!r} is not a material URI (urn:mine2cell:material:CODE)")
    value = unquote(found.group(1))
    if value.isdigit():
        code = int(value)
        if code >= 2**32:
            raise InvalidInput(field, f"material code {code} does not fit the ledger's uint32")
        return code
    try:
        return material_of(value).code
    except InvalidInput as exc:
        raise InvalidInput(field, exc.problem) from None


def event_uri(event_id: bytes) -> str:
    return f"urn:mine2cell:event:0x{event_id.hex()}"


def event_of(text: str) -> bytes | None:
    """The ledger event id an event URI of this scheme names, or None."""
    found = _EVENT.match(text.strip())
    return None if found is None else bytes.fromhex(found.group(1))


# -- the document ----------------------------------------------------------------------------------


def iso_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def evidence(event: EventRef, ledger: LedgerRef) -> dict[str, Any]:
    return {
        "chainId": ledger.chain_id,
        "ledger": ledger.address,
        "txHash": _hex(event.tx_hash),
        "blockNumber": event.block_number,
        "blockHash": _hex(event.block_hash),
        "logIndex": event.log_index,
        "eventId": _hex(event.event_id),
    }


def _grams(epc_class: str, grams: int) -> dict[str, Any]:
    return {"epcClass": epc_class, "quantity": grams, "uom": GRAMS}


def _parties(sender: str, recipient: str) -> dict[str, Any]:
    return {
        "sourceList": [
            {"type": kind, "source": participant_uri(sender)}
            for kind in ("owning_party", "possessing_party")
        ],
        "destinationList": [
            {"type": kind, "destination": participant_uri(recipient)}
            for kind in ("owning_party", "possessing_party")
        ],
    }


class _Writer:
    def __init__(self, ledger: LedgerRef, participants: Mapping[str, ParticipantHistory]) -> None:
        self.ledger = ledger
        self.participants = participants
        self.locations: dict[str, str] = {}  # facility URI -> country

    def site(self, account: str) -> dict[str, str] | None:
        found = self.participants.get(account)
        if found is None or not any(found.facility):
            return None
        return self.place(found.facility, found.country)

    def place(self, facility: bytes, country: str) -> dict[str, str]:
        uri_ = facility_uri(facility)
        self.locations.setdefault(uri_, country)
        return {"id": uri_}

    def head(self, kind: str, event: EventRef) -> dict[str, Any]:
        when = iso_time(event.timestamp)
        return {
            "type": kind,
            "eventTime": when,
            "eventTimeZoneOffset": TIME_ZONE,
            "recordTime": when,
            "eventID": event_uri(event.event_id),
        }

    def tail(self, body: dict[str, Any], event: EventRef) -> dict[str, Any]:
        body["m2c:actor"] = participant_uri(event.actor)
        body["m2c:evidence"] = evidence(event, self.ledger)
        return body

    def event(self, record: Record) -> dict[str, Any]:
        if isinstance(record, LotNode):
            return self.commissioned(record)
        if isinstance(record, Custody):
            return self.custody(record)
        return self.step(record)

    def commissioned(self, node: LotNode) -> dict[str, Any]:
        origin = node.origin
        assert origin is not None
        event = origin.event
        body = self.head("ObjectEvent", event)
        where = self.place(origin.facility, origin.country)
        ilmd: dict[str, Any] = {
            "m2c:material": material_uri(node.material),
            "m2c:feedstock": FEEDSTOCK_NAMES.get(origin.feedstock, str(origin.feedstock)),
            "m2c:countryOfOrigin": origin.country,
        }
        if any(origin.document_hash):
            ilmd["m2c:documentHash"] = _hex(origin.document_hash)
        body.update(
            action="ADD",
            bizStep="commissioning",
            disposition="active",
            quantityList=[_grams(uri(node.lot), node.quantity)],
            readPoint=where,
            bizLocation=where,
            ilmd=ilmd,
        )
        body["m2c:footprint"] = {"quantity": origin.footprint, "uom": GRAMS}
        return self.tail(body, event)

    def custody(self, record: Custody) -> dict[str, Any]:
        body = self.head("ObjectEvent", record.event)
        body["action"] = "OBSERVE"
        sender_site, recipient_site = self.site(record.sender), self.site(record.recipient)
        read_point, location = {
            "ship": (sender_site, None),
            "receive": (recipient_site, recipient_site),
            "reject": (recipient_site, sender_site),
            "recall": (sender_site, sender_site),
        }[record.kind]
        body["bizStep"] = {
            "ship": "shipping",
            "receive": "receiving",
            "reject": REJECTING,
            "recall": "void_shipping",
        }[record.kind]
        disposition = {"ship": "in_transit", "receive": "in_progress", "reject": "returned"}
        if record.kind in disposition:
            body["disposition"] = disposition[record.kind]
        body["quantityList"] = [_grams(uri(record.lot), record.quantity)]
        if read_point is not None:
            body["readPoint"] = read_point
        if location is not None:
            body["bizLocation"] = location
        body.update(_parties(record.sender, record.recipient))
        return self.tail(body, record.event)

    def step(self, step: Step) -> dict[str, Any]:
        body = self.head("TransformationEvent", step.event)
        body["inputQuantityList"] = [_grams(uri(i.lot), i.quantity) for i in step.inputs]
        if step.kind == "bind":
            assert step.passport is not None
            body["outputEPCList"] = [uri(step.passport, "passport")]
            body["bizStep"] = "assembling"
            if any(step.document_hash):
                body["m2c:documentHash"] = _hex(step.document_hash)
        else:
            body["outputQuantityList"] = [_grams(uri(o.lot), o.quantity) for o in step.outputs]
            body["bizStep"] = "commissioning"
        body["disposition"] = "active"
        site = self.site(step.event.actor)
        if site is not None:
            body["readPoint"] = site
            body["bizLocation"] = site
        if step.kind != "bind":
            body["ilmd"] = {
                "m2c:outputMaterials": [
                    {
                        "lot": uri(o.lot),
                        "material": material_uri(o.material),
                        **({"documentHash": _hex(o.document_hash)} if any(o.document_hash) else {}),
                    }
                    for o in step.outputs
                ]
            }
        body["m2c:footprint"] = {"quantity": step.footprint, "uom": GRAMS}
        return self.tail(body, step.event)

    def declaration(self, correction: Correction, record: Record) -> dict[str, Any]:
        """The corrected event again, declared erroneous (EPCIS 2.0 section 7.4.1.2)."""
        body = self.event(record)
        when = iso_time(correction.event.timestamp)
        body["recordTime"] = when
        declared: dict[str, Any] = {
            "declarationTime": when,
            "reason": ERROR_REASONS.get(correction.reason, f"{M2C}ErrorReason-{correction.reason}"),
        }
        if correction.corrective:
            declared["correctiveEventIDs"] = [event_uri(e) for e in correction.corrective]
        declared["m2c:declaredBy"] = participant_uri(correction.event.actor)
        declared["m2c:evidence"] = evidence(correction.event, self.ledger)
        # errorDeclaration follows the event's own fields, before the extensions.
        extensions: dict[str, Any] = {
            k: body.pop(k) for k in ("m2c:footprint", "m2c:actor", "m2c:evidence") if k in body
        }
        body["errorDeclaration"] = declared
        body.update(extensions)
        return body

    def master_data(self) -> dict[str, Any]:
        return {
            "epcisMasterData": {
                "vocabularyList": [
                    {
                        "type": BUSINESS_LOCATION,
                        "vocabularyElementList": [
                            {
                                "id": location,
                                "attributes": [{"id": COUNTRY_CODE, "attribute": country}],
                            }
                            for location, country in sorted(self.locations.items())
                        ],
                    }
                ]
            }
        }


def document(records: Records, ledger: LedgerRef, *, created: int) -> dict[str, Any]:
    """The EPCIS 2.0 document of ``records`` (``created``: unix seconds of its creationDate)."""
    writer = _Writer(ledger, records.participants)
    ordered: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for record in records.events:
        event = evidence_of(record)
        ordered.append(((event.block_number, event.log_index), writer.event(record)))
    for correction, record in records.declarations:
        event = correction.event
        ordered.append(
            ((event.block_number, event.log_index), writer.declaration(correction, record))
        )
    ordered.sort(key=lambda item: item[0])
    found: dict[str, Any] = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": iso_time(created),
    }
    if writer.locations:
        found["epcisHeader"] = writer.master_data()
    found["epcisBody"] = {"eventList": [body for _, body in ordered]}
    return found
