"""GS1 EPCIS 2.0 capture: a participant's EPCIS capture document becomes signed ledger operations
(``mine2cell import FILE.jsonld --as KEY``, ``POST /v1/epcis/capture``), each signed with that
participant's key and queued in the relay's outbox like any other operation.

Validation. The whole document is first validated against the official EPCIS 2.0 JSON schema
(``schema/EPCIS-JSON-Schema.json``, GS1's ``https://gs1.github.io/EPCIS/EPCIS-JSON-Schema.json``
as published with EPCIS 2.0, byte for byte), with the schema's ``uri`` and ``date-time`` formats
checked (RFC 3986 scheme syntax, JSON-LD blank nodes ``_:`` allowed; RFC 3339). Any error refuses
the whole document (``SchemaInvalid``, naming the JSON path of each error) and nothing is
signed. A document is an ``EPCISDocument`` (or an ``EPCISQueryDocument``'s results).

Mapping. Each event of a valid document maps to exactly one ledger operation, the inverse of the
export (``mine2cell.interop.epcis``; CBV values as bare words or GS1 Web URIs):

- ObjectEvent ADD, bizStep ``commissioning`` -> Commission: the lot and its mass (quantityList);
  ilmd ``m2c:material`` (required), ``m2c:feedstock`` (default primary), ``m2c:documentHash``;
  ``m2c:footprint`` (default 0).
- ObjectEvent OBSERVE, ``shipping`` -> Ship: the lot; the recipient, the participant named as
  owning or possessing party among the destinations (required).
- ObjectEvent OBSERVE, ``receiving`` -> Receive; ``m2c`` ``BizStep-rejecting`` -> Reject;
  ``void_shipping`` -> Recall: the lot.
- TransformationEvent with outputQuantityList -> Transform: inputQuantityList,
  outputQuantityList, ilmd ``m2c:outputMaterials`` (each output's material, and optionally its
  ``documentHash``), ``m2c:footprint``.
- TransformationEvent with outputEPCList of one passport -> BindPassport: inputQuantityList, the
  passport, ``m2c:footprint``, ``m2c:documentHash``.
- Any event with an errorDeclaration -> Correct: the event's eventID is the target, with the
  declaration's reason (``did_not_occur`` or ``incorrect_data``) and correctiveEventIDs.

Quantities are masses with uom GRM, KGM or TNE that come to a whole number of grams (numbers are
read as decimals, never as binary floats). The ledger moves whole lots and names one lot per
operation: a custody event names one lot, and its quantity, when given, must be what the lot
holds. Anything else (AggregationEvent, AssociationEvent, TransactionEvent, another bizStep or
action, instance-level EPCs where quantities are needed) is refused for that event with the
reason.

Parties. Every event is signed by the capturing participant, so the document must not say that
someone else performed it: ``m2c:actor``, the acting party among the owning/possessing sources
(shipping, recall) or destinations (receiving, rejecting), ``m2c:declaredBy``, and a
``urn:mine2cell:facility:`` bizLocation or ``m2c:countryOfOrigin`` other than the signer's
accredited ones are refused as the wrong party. Then the signing client's own checks run (the lot
exists, the signer holds it, it is not in transit, the shipment is addressed to the signer, there
is enough of it, the roles allow it...), each refusal naming the JSON path it is about.

Order. Events are taken in document order, error declarations last (they name events by their
eventIDs, which may come later in the document). The checks see the ledger as it will be once
the document's earlier operations are recorded: the relay sends the outbox's operations in the
order they were accepted, so a document may commission a lot and ship it, or receive a lot and
transform it. A declaration names the ledger events this capture's events became, or an event
of this ledger by its ``urn:mine2cell:event:0x...`` URI (an exported event whose
``m2c:evidence`` names another ledger is not taken for one of this ledger). An event this
participant captured in an earlier run is not named that way: the ledger event it became is not
looked up (its operation's deadline, hence its event id, was of that run).

Idempotence. Each event's nonce is derived from its identity: keccak-256 of the EPCIS
``eventID`` (for an event without one, the SHA-256 of its canonical JSON, recordTime left out;
for a declaration, the eventID with its declarationTime). The ledger accepts each nonce of a
signer once, ever, so the same event captured twice by the same participant can never be recorded
twice, whichever service, process or crash is involved; before signing, an event whose nonce is
already used on chain or held by an operation in the outbox is reported ``duplicate`` and nothing
is signed. An event the ledger rejected leaves its nonce unused, so capturing the document again
retries exactly the events that did not go through. The price: a nonce anywhere in the 256-bit
space takes a storage word of its own in the ledger's nonce bitmap (measured on anvil: a
commission in its own transaction costs 89,794 gas with such a nonce, 72,334 with a sequential
one).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Literal

from eth_typing import ChecksumAddress
from eth_utils import is_address, keccak, to_checksum_address
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match, relevance

from mine2cell.chain.ledger import LedgerClient, LotView
from mine2cell.client import SigningClient
from mine2cell.codes import Feedstock
from mine2cell.errors import InvalidInput
from mine2cell.ids import show_id
from mine2cell.interop.epcis import (
    ERROR_REASONS,
    FEEDSTOCK_NAMES,
    M2C,
    REJECTING,
    event_of,
    facility_of,
    facility_uri,
    material_code,
    participant_of,
)
from mine2cell.interop.ids import lot_id
from mine2cell.relay.outbox import OperationStatus, Outbox
from mine2cell.signing.codec import parse_hex
from mine2cell.signing.eip712 import Input, LocalSigner, LotId, Output
from mine2cell.units import format_mass

MAX_SCHEMA_ERRORS = 20
GRAMS_PER_UNIT = {"GRM": 1, "KGM": 1_000, "TNE": 1_000_000}
NONCE_DOMAIN = "mine2cell/epcis-capture/1 "

Result = Literal["accepted", "duplicate", "rejected"]


# -- the schema ----------------------------------------------------------------------------------

FORMATS = FormatChecker(formats=())
_URI = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*|_):[^\s<>\"{}|\\^`]*$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or _URI.match(value) is not None


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if _DATE_TIME.match(value) is None:
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@cache
def schema() -> dict[str, Any]:
    """The official EPCIS 2.0 JSON schema."""
    text = resources.files(__package__ or "mine2cell.interop").joinpath(
        "schema/EPCIS-JSON-Schema.json"
    )
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


@cache
def validator() -> Draft7Validator:
    return Draft7Validator(schema(), format_checker=FORMATS)


class SchemaInvalid(InvalidInput):
    """The document does not validate against the EPCIS 2.0 JSON schema: ``errors`` are
    (JSON path, message), most relevant first."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        path, message = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(
            path,
            f"{message}{more}: the document does not validate against the EPCIS 2.0 JSON "
            "schema; nothing was captured",
        )


def _error_path(error: ValidationError) -> str:
    path = error.json_path
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [p for p in required if p not in error.instance]
        if missing:
            path += f".{missing[0]}" if re.fullmatch(r"\w+", missing[0]) else f"['{missing[0]}']"
    return path


def validate(document: object) -> None:
    """Raise SchemaInvalid unless ``document`` is a valid EPCIS 2.0 document."""
    found: list[tuple[str, str]] = []
    for error in sorted(validator().iter_errors(document), key=relevance, reverse=True):
        # An anyOf / if-then failure names the event; its most relevant cause names the field.
        cause = best_match([error]) or error
        item = (_error_path(cause), cause.message)
        if item not in found:
            found.append(item)
    if found:
        raise SchemaInvalid(found[:MAX_SCHEMA_ERRORS])


def load(text: str | bytes) -> Any:
    """A JSON document with its numbers as decimals (a mass is never a binary float)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("$", f"is not JSON: {exc}") from None


def event_list(document: Any) -> tuple[str, list[Any]]:
    """The JSON path and the events of a valid capture document."""
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "EPCISDocument":
        events: list[Any] = document["epcisBody"]["eventList"]
        return "$.epcisBody.eventList", events
    if kind == "EPCISQueryDocument":
        events = document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        return "$.epcisBody.queryResults.resultsBody.eventList", events
    raise InvalidInput(
        "$.type", f"{kind!r}: a capture document is an EPCISDocument (or an EPCISQueryDocument)"
    )


# -- reading events --------------------------------------------------------------------------------


def _cbv(value: object, kind: str) -> str | None:
    """A CBV value as its bare word, also when written as its GS1 Web URI (the JSON schema
    refuses the CBV URNs); any other URI as is."""
    if not isinstance(value, str):
        return None
    prefix = f"https://ref.gs1.org/cbv/{kind}-"
    return value[len(prefix) :] if value.startswith(prefix) else value


class _Namespace:
    """Finds this project's extension terms in a document, whatever prefix its @context gives
    the namespace (``m2c:`` also when the context does not declare it), or as full IRIs."""

    def __init__(self, context: object) -> None:
        items = context if isinstance(context, list) else [context]
        self.prefixes: dict[str, str] = {}
        for item in items:
            if isinstance(item, dict):
                for key, value in item.items():
                    iri = value.get("@id") if isinstance(value, dict) else value
                    if isinstance(iri, str) and ":" not in key:
                        self.prefixes[key] = iri
        self.prefixes.setdefault("m2c", M2C)

    def name(self, key: str) -> str | None:
        if key.startswith(M2C):
            return key[len(M2C) :]
        prefix, colon, local = key.partition(":")
        if colon and self.prefixes.get(prefix) == M2C:
            return local
        return None

    def get(self, item: object, term: str) -> tuple[str, Any] | None:
        """(key, value) of ``term`` of the namespace in ``item``, if there."""
        if isinstance(item, dict):
            for key, value in item.items():
                if self.name(key) == term:
                    return key, value
        return None


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"\w+", key) else f"{path}['{key}']"


def _grams(item: object, path: str, what: str = "quantity") -> int:
    """Whole grams of a quantity element (or of a footprint object)."""
    if not isinstance(item, dict) or "quantity" not in item:
        raise InvalidInput(path, f"the ledger needs the {what} as a mass: quantity and uom")
    uom = item.get("uom")
    if uom not in GRAMS_PER_UNIT:
        raise InvalidInput(
            f"{path}.uom",
            f"{uom!r}: a mass is given in GRM (grams), KGM or TNE"
            if uom is not None
            else "is missing: without a uom a quantity counts instances; give the mass in GRM",
        )
    try:
        grams = Decimal(str(item["quantity"])) * GRAMS_PER_UNIT[uom]
    except InvalidOperation:
        raise InvalidInput(f"{path}.quantity", "is not a number") from None
    if grams != grams.to_integral_value() or grams < 0:
        raise InvalidInput(
            f"{path}.quantity", f"{item['quantity']} {uom} is not a whole number of grams"
        )
    return int(grams)


def _participants(items: object, key: str, path: str) -> tuple[ChecksumAddress | None, str]:
    """The participant named as owning or possessing party in a source or destination list
    (None when none is), and the path of its first mention."""
    found: dict[ChecksumAddress, str] = {}
    if isinstance(items, list):
        for n, item in enumerate(items):
            if not isinstance(item, dict) or _cbv(item.get("type"), "SDT") not in (
                "owning_party",
                "possessing_party",
            ):
                continue
            account = participant_of(str(item.get(key, "")))
            if account is not None:
                found.setdefault(account, f"{path}[{n}].{key}")
    if len(found) > 1:
        raise InvalidInput(
            path, f"names {len(found)} different participants: {', '.join(found)}; one is needed"
        )
    for account, where in found.items():
        return account, where
    return None, path


@dataclass
class _Plan:
    """One EPCIS event read as one ledger operation, with what the document says about it."""

    kind: str  # the operation's EIP-712 type
    fields: dict[str, Any]  # SigningClient.perform's
    paths: dict[str, str]  # the client's field names -> JSON paths of the document
    key: str  # the event's identity (nonce source)
    parties: list[tuple[str, str]] = field(default_factory=list)  # (account, path): the signer
    facility: tuple[bytes, str] | None = None  # bizLocation facility, path
    country: tuple[str, str] | None = None  # m2c:countryOfOrigin, path
    moved: tuple[int, str] | None = None  # custody: grams said to move, path
    counterparty: tuple[str, str] | None = None  # custody: the other side as named
    target: str | None = None  # a declaration: the eventID declared erroneous
    corrective: tuple[str, ...] = ()
    evidence: tuple[int, str] | None = None  # (chain id, ledger) the event says it is from


def _identity(event: dict[str, Any]) -> str:
    declared = event.get("errorDeclaration")
    base = event.get("eventID")
    if not isinstance(base, str):
        content = {k: v for k, v in event.items() if k not in ("recordTime", "eventID")}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        base = "ni:///sha-256;" + hashlib.sha256(canonical.encode()).hexdigest()
    if isinstance(declared, dict):
        return f"{base}#errorDeclaration@{declared.get('declarationTime')}"
    return base


def capture_nonce(identity: str) -> int:
    """The nonce an event with this identity is signed with (any signer)."""
    return int.from_bytes(keccak(text=NONCE_DOMAIN + identity), "big")


class _Reader:
    def __init__(self, namespace: _Namespace) -> None:
        self.ns = namespace

    def plan(self, event: dict[str, Any], path: str) -> _Plan:
        key = _identity(event)
        if isinstance(event.get("errorDeclaration"), dict):
            return self.declaration(event, path, key)
        kind = event.get("type")
        if kind == "ObjectEvent":
            action, step = event.get("action"), _cbv(event.get("bizStep"), "BizStep")
            if action == "ADD" and step == "commissioning":
                return self.commission(event, path, key)
            if action == "OBSERVE" and step in (
                "shipping",
                "receiving",
                "void_shipping",
                REJECTING,
            ):
                return self.custody(event, path, key, step)
            raise InvalidInput(
                _key(path, "bizStep"),
                f"an ObjectEvent with action {action} and bizStep {event.get('bizStep')!r} does "
                "not map to a ledger operation; the ledger records commissioning (ADD), and "
                f"shipping, receiving, {REJECTING} and void_shipping (OBSERVE)",
            )
        if kind == "TransformationEvent":
            return self.transformation(event, path, key)
        raise InvalidInput(
            _key(path, "type"),
            f"{kind} is not supported: the ledger records ObjectEvents (commissioning, shipping, "
            "receiving, rejecting, recalling), TransformationEvents (transformations and "
            "passport bindings) and error declarations",
        )

    def actor(self, event: dict[str, Any], path: str, plan: _Plan) -> None:
        found = self.ns.get(event, "actor")
        if found is not None:
            where = _key(path, found[0])
            account = participant_of(str(found[1]))
            if account is None:
                raise InvalidInput(
                    where, "is not a participant URI (urn:mine2cell:participant:0x...)"
                )
            plan.parties.append((account, where))

    def site(self, event: dict[str, Any], path: str, plan: _Plan) -> None:
        location = event.get("bizLocation")
        if isinstance(location, dict):
            facility = facility_of(str(location.get("id", "")))
            if facility is not None:
                plan.facility = (facility, f"{path}.bizLocation.id")

    def footprint(self, event: dict[str, Any], path: str) -> int:
        found = self.ns.get(event, "footprint")
        if found is None:
            return 0
        where = _key(path, found[0])
        value = found[1]
        if isinstance(value, dict):
            # Nested keys come from the namespace (scoped @vocab): plain or prefixed.
            value = {self.ns.name(k) or k: v for k, v in value.items()}
        return _grams(value, where, "footprint")

    def hash32(self, item: object, path: str) -> bytes:
        found = self.ns.get(item, "documentHash")
        if found is None:
            return bytes(32)
        return parse_hex(_key(path, found[0]), found[1], 32)

    @staticmethod
    def one_lot(event: dict[str, Any], path: str) -> tuple[bytes, dict[str, Any] | None, str]:
        """The single lot of an ObjectEvent: (id, its quantity element or None, path)."""
        quantities = event.get("quantityList") or []
        epcs = event.get("epcList") or []
        if len(quantities) + len(epcs) != 1:
            where = _key(path, "quantityList" if quantities else "epcList")
            raise InvalidInput(
                where,
                f"names {len(quantities) + len(epcs)} lots; a ledger operation is about one lot: "
                "give one event per lot",
            )
        if quantities:
            where = f"{path}.quantityList[0]"
            return lot_id(str(quantities[0]["epcClass"]), f"{where}.epcClass"), quantities[0], where
        where = f"{path}.epcList[0]"
        return lot_id(str(epcs[0]), where), None, where

    def commission(self, event: dict[str, Any], path: str, key: str) -> _Plan:
        lot, quantity, where = self.one_lot(event, path)
        if quantity is None:
            raise InvalidInput(where, "a commissioned lot needs its mass: give a quantityList")
        grams = _grams(quantity, where)
        ilmd = event.get("ilmd")
        ilmd_path = f"{path}.ilmd"
        found = self.ns.get(ilmd, "material")
        if found is None:
            raise InvalidInput(
                ilmd_path,
                "m2c:material is missing: the ledger records the lot's material "
                "(urn:mine2cell:material:CODE)",
            )
        material = material_code(found[1], _key(ilmd_path, found[0]))
        feedstock = Feedstock.PRIMARY
        stock = self.ns.get(ilmd, "feedstock")
        if stock is not None:
            names = {name: Feedstock(code) for code, name in FEEDSTOCK_NAMES.items()}
            if stock[1] not in names:
                raise InvalidInput(
                    _key(ilmd_path, stock[0]),
                    f"{stock[1]!r} is not one of {', '.join(names)}",
                )
            feedstock = names[stock[1]]
        plan = _Plan(
            "Commission",
            {
                "lot": lot,
                "material": material,
                "quantity": grams,
                "feedstock": feedstock,
                "footprint": self.footprint(event, path),
                "document_hash": self.hash32(ilmd, ilmd_path),
            },
            {"lot": f"{where}.epcClass", "signer": path},
            key,
        )
        country = self.ns.get(ilmd, "countryOfOrigin")
        if country is not None:
            plan.country = (str(country[1]), _key(ilmd_path, country[0]))
        self.actor(event, path, plan)
        self.site(event, path, plan)
        return plan

    def custody(self, event: dict[str, Any], path: str, key: str, step: str) -> _Plan:
        lot, quantity, where = self.one_lot(event, path)
        kind = {
            "shipping": "Ship",
            "receiving": "Receive",
            REJECTING: "Reject",
            "void_shipping": "Recall",
        }[step]
        sender, sender_path = _participants(event.get("sourceList"), "source", f"{path}.sourceList")
        recipient, recipient_path = _participants(
            event.get("destinationList"), "destination", f"{path}.destinationList"
        )
        lot_path = f"{where}.epcClass" if quantity is not None else where
        plan = _Plan(kind, {"lot": lot}, {"lot": lot_path, "signer": path}, key)
        if kind in ("Ship", "Recall"):
            if sender is not None:
                plan.parties.append((sender, sender_path))
            if kind == "Ship":
                if recipient is None:
                    raise InvalidInput(
                        recipient_path,
                        "names no recipient: give the participant the lot is shipped to "
                        "(urn:mine2cell:participant:0x...) as owning_party or possessing_party",
                    )
                plan.fields["recipient"] = recipient
                plan.paths["recipient"] = recipient_path
            elif recipient is not None:
                plan.counterparty = (recipient, recipient_path)
        else:
            if recipient is not None:
                plan.parties.append((recipient, recipient_path))
            if sender is not None:
                plan.counterparty = (sender, sender_path)
        if quantity is not None:
            plan.moved = (_grams(quantity, where), f"{where}.quantity")
        self.actor(event, path, plan)
        return plan

    def transformation(self, event: dict[str, Any], path: str, key: str) -> _Plan:
        if event.get("inputEPCList") and not event.get("inputQuantityList"):
            raise InvalidInput(
                f"{path}.inputEPCList",
                "names instances; the ledger consumes masses of lots: give inputQuantityList",
            )
        inputs_path = f"{path}.inputQuantityList"
        raw_inputs = event.get("inputQuantityList") or []
        if not raw_inputs:
            raise InvalidInput(inputs_path, "is missing: the ledger consumes masses of lots")
        inputs = [
            Input(
                LotId(lot_id(str(item["epcClass"]), f"{inputs_path}[{n}].epcClass")),
                _grams(item, f"{inputs_path}[{n}]"),
            )
            for n, item in enumerate(raw_inputs)
        ]
        paths = {"inputs": inputs_path, "signer": path}
        footprint = self.footprint(event, path)
        outputs_raw = event.get("outputQuantityList") or []
        passports = event.get("outputEPCList") or []
        if passports and not outputs_raw:
            if len(passports) != 1:
                raise InvalidInput(
                    f"{path}.outputEPCList",
                    f"names {len(passports)} passports; a binding is of one battery passport",
                )
            where = f"{path}.outputEPCList[0]"
            passport = lot_id(str(passports[0]), where, "passport")
            plan = _Plan(
                "BindPassport",
                {
                    "passport": passport,
                    "inputs": inputs,
                    "footprint": footprint,
                    "document_hash": self.hash32(event, path),
                },
                {**paths, "passport": where},
                key,
            )
        else:
            if passports:
                raise InvalidInput(
                    f"{path}.outputEPCList",
                    "a transformation gives its outputs as outputQuantityList (lots), a passport "
                    "binding as outputEPCList (one passport), not both",
                )
            if not outputs_raw:
                raise InvalidInput(
                    f"{path}.outputQuantityList", "is missing: the ledger records produced lots"
                )
            plan = _Plan(
                "Transform",
                {
                    "inputs": inputs,
                    "outputs": self.outputs(event, path, outputs_raw),
                    "footprint": footprint,
                },
                {**paths, "outputs": f"{path}.outputQuantityList"},
                key,
            )
        self.actor(event, path, plan)
        self.site(event, path, plan)
        return plan

    def outputs(self, event: dict[str, Any], path: str, raw: list[Any]) -> list[Output]:
        ilmd_path = f"{path}.ilmd"
        found = self.ns.get(event.get("ilmd"), "outputMaterials")
        listed = found[1] if found is not None and isinstance(found[1], list) else []
        list_path = _key(ilmd_path, found[0]) if found is not None else ilmd_path
        materials: dict[bytes, tuple[int, bytes]] = {}
        for n, entry in enumerate(listed):
            where = f"{list_path}[{n}]"
            entry = (
                {self.ns.name(k) or k: v for k, v in entry.items()}
                if isinstance(entry, dict)
                else {}
            )
            if "lot" not in entry or "material" not in entry:
                raise InvalidInput(where, "needs the output's lot and material")
            lot = lot_id(str(entry["lot"]), f"{where}.lot")
            document = (
                parse_hex(f"{where}.documentHash", entry["documentHash"], 32)
                if "documentHash" in entry
                else bytes(32)
            )
            materials[lot] = (material_code(entry["material"], f"{where}.material"), document)
        outputs: list[Output] = []
        for n, item in enumerate(raw):
            where = f"{path}.outputQuantityList[{n}]"
            lot = lot_id(str(item["epcClass"]), f"{where}.epcClass")
            if lot not in materials:
                raise InvalidInput(
                    list_path,
                    f"m2c:outputMaterials gives no material for output lot {show_id(lot)}: the "
                    "ledger records each produced lot's material",
                )
            material, document = materials[lot]
            outputs.append(Output(LotId(lot), material, _grams(item, where), document))
        return outputs

    def declaration(self, event: dict[str, Any], path: str, key: str) -> _Plan:
        declared: dict[str, Any] = event["errorDeclaration"]
        where = f"{path}.errorDeclaration"
        target = event.get("eventID")
        if not isinstance(target, str):
            raise InvalidInput(
                _key(path, "eventID"),
                "is missing: an error declaration names the erroneous event by its eventID",
            )
        reason_text = _cbv(declared.get("reason"), "ER")
        reasons = {name: code for code, name in ERROR_REASONS.items()}
        if reason_text not in reasons:
            raise InvalidInput(
                f"{where}.reason",
                f"{declared.get('reason')!r}: the ledger records the reasons "
                f"{' and '.join(reasons)}",
            )
        plan = _Plan(
            "Correct",
            {"reason": reasons[reason_text]},
            {"target": _key(path, "eventID"), "signer": where, "reason": f"{where}.reason"},
            key,
            target=target,
            corrective=tuple(str(e) for e in declared.get("correctiveEventIDs") or ()),
        )
        found = self.ns.get(event, "evidence")
        if found is not None and isinstance(found[1], dict):
            source = {self.ns.name(k) or k: v for k, v in found[1].items()}
            chain, ledger = source.get("chainId"), source.get("ledger")
            if isinstance(chain, int) and isinstance(ledger, str) and is_address(ledger):
                plan.evidence = (chain, to_checksum_address(ledger))
        by = self.ns.get(declared, "declaredBy")
        if by is not None:
            account = participant_of(str(by[1]))
            if account is None:
                raise InvalidInput(_key(where, by[0]), "is not a participant URI")
            plan.parties.append((account, _key(where, by[0])))
        return plan


# -- the ledger as it will be ----------------------------------------------------------------------


class _Pending(LedgerClient):
    """The ledger seen through the operations this capture queued before: the signing client's
    checks of a later event see the lots they create, move and consume."""

    def __init__(self, base: LedgerClient) -> None:
        super().__init__(base.w3, base.address, base.transactor)
        self.lots: dict[bytes, LotView] = {}
        self.binders: dict[bytes, ChecksumAddress] = {}

    def lot(self, lot_id: bytes) -> LotView | None:
        return self.lots.get(lot_id) or super().lot(lot_id)

    def passport_binder(self, passport: bytes) -> ChecksumAddress | None:
        return self.binders.get(passport) or super().passport_binder(passport)

    def apply(self, plan: _Plan, actor: ChecksumAddress) -> None:
        f = plan.fields
        if plan.kind == "Commission":
            self.lots[f["lot"]] = LotView(actor, None, f["quantity"], f["material"])
            return
        if plan.kind in ("Transform", "BindPassport"):
            for item in f["inputs"]:
                view = self.lot(item.lot)
                if view is not None:
                    remaining = max(0, view.remaining - item.quantity)
                    self.lots[item.lot] = replace(view, remaining=remaining)
            for out in f.get("outputs", ()):
                self.lots[out.lot] = LotView(actor, None, out.quantity, out.material)
            if plan.kind == "BindPassport":
                self.binders[f["passport"]] = actor
            return
        view = self.lot(f["lot"]) if "lot" in f else None
        if view is None:
            return
        if plan.kind == "Ship":
            self.lots[f["lot"]] = replace(view, recipient=f["recipient"])
        elif plan.kind == "Receive":
            self.lots[f["lot"]] = replace(view, custodian=actor, recipient=None)
        elif plan.kind in ("Reject", "Recall"):
            self.lots[f["lot"]] = replace(view, recipient=None)


class _CaptureClient(SigningClient):
    """The signing client, signing each operation with the nonce of its EPCIS event."""

    planned_nonce = 0

    def _nonce(self) -> int:
        return self.planned_nonce


# -- capturing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventOutcome:
    """What became of one event of the document (``index`` in its eventList)."""

    index: int
    epcis_event_id: str | None
    result: Result
    operation: str | None = None
    event_id: bytes | None = None  # the ledger event id (EIP-712 digest) of the operation
    status: OperationStatus | None = None
    field: str | None = None  # JSON path of what was refused
    reason: str | None = None

    def with_status(self, status: OperationStatus | None) -> EventOutcome:
        return replace(self, status=status) if status is not None else self

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "index": self.index,
            "eventID": self.epcis_event_id,
            "result": self.result,
            "operation": self.operation,
        }
        if self.event_id is not None:
            event_id = "0x" + self.event_id.hex()
            found["ledgerEventId"] = event_id
            found["statusUrl"] = f"/v1/operations/{event_id}"
        if self.status is not None:
            found["status"] = self.status.state.value
            if self.status.reason:
                found["reason"] = self.status.reason
        if self.field is not None:
            found["field"] = self.field
        if self.reason is not None:
            found["reason"] = self.reason
        return found


class Capture:
    """One participant's capture: each event of a document becomes an operation signed by
    ``signer`` and queued in ``outbox``."""

    def __init__(self, ledger: LedgerClient, outbox: Outbox, signer: LocalSigner) -> None:
        self.ledger = _Pending(ledger)
        self.outbox = outbox
        self.client = _CaptureClient(self.ledger, outbox, signer)
        self.signer = signer.address
        self._me = ledger.participant(self.signer)
        self._reserved = outbox.reserved_nonces(self.signer)
        self._signed: set[int] = set()  # the nonces this capture signed with
        # EPCIS eventID -> the ledger event id its operation has (events queued by this capture).
        self._recorded: dict[str, bytes] = {}

    def run(self, document: object) -> list[EventOutcome]:
        """Validate the document (SchemaInvalid: nothing is signed), then map, check, sign and
        queue each event; per event, in document order, what became of it."""
        validate(document)
        base, events = event_list(document)
        assert isinstance(document, dict)
        reader = _Reader(_Namespace(document.get("@context")))
        order = sorted(
            range(len(events)), key=lambda i: isinstance(events[i].get("errorDeclaration"), dict)
        )
        outcomes: dict[int, EventOutcome] = {}
        for index in order:
            outcomes[index] = self._one(reader, f"{base}[{index}]", index, events[index])
        return [outcomes[i] for i in range(len(events))]

    def _one(self, reader: _Reader, path: str, index: int, event: dict[str, Any]) -> EventOutcome:
        epcis_id = event.get("eventID") if isinstance(event.get("eventID"), str) else None

        def refused(where: str, reason: str, operation: str | None = None) -> EventOutcome:
            return EventOutcome(index, epcis_id, "rejected", operation, field=where, reason=reason)

        try:
            plan = reader.plan(event, path)
        except InvalidInput as exc:
            return refused(exc.field, exc.problem)
        wrong = self._wrong_party(plan)
        if wrong is not None:
            return refused(*wrong, plan.kind)
        nonce = capture_nonce(plan.key)
        duplicate = self._duplicate(plan, nonce, index, epcis_id)
        if duplicate is not None:
            return duplicate
        try:
            if plan.kind == "Correct":
                self._resolve(plan)
            else:
                self._check_custody(plan)
            self.client.planned_nonce = nonce
            accepted = self.client.perform(plan.kind, plan.fields)
        except InvalidInput as exc:
            if exc.field == "message.nonce":  # another capture of this event got there first
                return EventOutcome(
                    index,
                    epcis_id,
                    "duplicate",
                    plan.kind,
                    reason=f"already captured: {exc.problem}",
                )
            where = plan.paths.get(exc.field) or (exc.field if exc.field[:1] == "$" else path)
            return refused(where, exc.problem, plan.kind)
        self._reserved.add(nonce)
        self._signed.add(nonce)
        self.ledger.apply(plan, self.signer)
        if epcis_id is not None and plan.kind != "Correct":
            self._recorded[epcis_id] = accepted.event_id
        return EventOutcome(
            index, epcis_id, "accepted", plan.kind, accepted.event_id, accepted.status
        )

    def _wrong_party(self, plan: _Plan) -> tuple[str, str] | None:
        for account, where in plan.parties:
            if account != self.signer:
                return where, (
                    f"names {account} as the participant that performs this event, but the "
                    f"document is captured by {self.signer}: each participant captures, and "
                    "signs, its own events"
                )
        me = self._me
        if plan.facility is not None and me is not None and plan.facility[0] != me.facility:
            facility, where = plan.facility
            return where, (
                f"{facility_uri(facility)} is not the facility of the signer {self.signer} "
                f"({facility_uri(me.facility)}): the ledger records the signer's own facility"
            )
        if plan.country is not None and me is not None and plan.country[0] != me.country:
            country, where = plan.country
            return where, (
                f"{country!r} is not the country the signer {self.signer} is accredited in "
                f"({me.country}): the ledger records the signer's own country"
            )
        return None

    def _duplicate(
        self, plan: _Plan, nonce: int, index: int, epcis_id: str | None
    ) -> EventOutcome | None:
        recorded = self.ledger.nonce_used(self.signer, nonce)
        queued = not recorded and nonce in self._reserved
        if not (queued or recorded):
            return None
        if queued and nonce not in self._signed:
            # Queued before, still on its way ahead of this capture's operations: they see what
            # it does. (An event listed twice in this document has done so already.)
            self.ledger.apply(plan, self.signer)
        where = "recorded on the ledger" if recorded else "queued in the outbox, not yet recorded"
        return EventOutcome(
            index,
            epcis_id,
            "duplicate",
            plan.kind,
            reason=f"already captured by {self.signer} and {where} (nonce {nonce}, derived from "
            "this event's identity): nothing was signed",
        )

    def _ledger_event(self, text: str, where: str, elsewhere: str | None) -> bytes:
        """The ledger event an EPCIS eventID names: the operation an event of this capture
        became, or an event of this ledger by its URI (not of ``elsewhere``, another ledger)."""
        if text in self._recorded:
            return self._recorded[text]
        found = event_of(text)
        if found is None or elsewhere is not None:
            named = f"names an event of {elsewhere}" if found is not None else "is no event URI"
            raise InvalidInput(
                where,
                f"{text!r} {named}, and no event of this document with that eventID was "
                "recorded by this capture: a declaration names an event this document records "
                "now, or an event of this ledger (urn:mine2cell:event:0x...)",
            )
        return found

    def _resolve(self, plan: _Plan) -> None:
        assert plan.target is not None
        here = (self.ledger.domain.chain_id, self.ledger.address)
        elsewhere = None
        if plan.evidence is not None and plan.evidence != here:
            elsewhere = f"ledger {plan.evidence[1]} on chain {plan.evidence[0]}"
        plan.fields["target"] = self._ledger_event(plan.target, plan.paths["target"], elsewhere)
        where = plan.paths["signer"] + ".correctiveEventIDs"
        plan.fields["corrective"] = tuple(
            self._ledger_event(text, f"{where}[{n}]", elsewhere)
            for n, text in enumerate(plan.corrective)
        )

    def _check_custody(self, plan: _Plan) -> None:
        """What the document says moved, and between whom, against the lot as it will be."""
        if plan.kind not in ("Ship", "Receive", "Reject", "Recall"):
            return
        lot = plan.fields["lot"]
        view = self.ledger.lot(lot)
        if view is None:
            return  # the signing client says so, precisely
        if plan.moved is not None and plan.moved[0] != view.remaining:
            grams, where = plan.moved
            raise InvalidInput(
                where,
                f"the ledger moves whole lots: lot {show_id(lot)} holds "
                f"{format_mass(view.remaining)} ({view.remaining} g), the event moves {grams} g",
            )
        if plan.counterparty is None or view.recipient is None:
            return
        account, where = plan.counterparty
        expected = view.custodian if plan.kind in ("Receive", "Reject") else view.recipient
        if account != expected:
            role = "sender" if plan.kind in ("Receive", "Reject") else "recipient"
            raise InvalidInput(
                where, f"lot {show_id(lot)} is in transit with {expected} as {role}, not {account}"
            )


def capture(
    document: object, ledger: LedgerClient, outbox: Outbox, signer: LocalSigner
) -> list[EventOutcome]:
    """Capture ``document`` for ``signer`` (see the module's description)."""
    return Capture(ledger, outbox, signer).run(document)


def counts(outcomes: Sequence[EventOutcome]) -> Mapping[Result, int]:
    found: dict[Result, int] = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for outcome in outcomes:
        found[outcome.result] += 1
    return found


def settled(
    outcomes: Sequence[EventOutcome], statuses: Mapping[bytes, OperationStatus]
) -> Iterator[EventOutcome]:
    """The outcomes with the statuses their operations reached."""
    for outcome in outcomes:
        if outcome.event_id is not None:
            yield outcome.with_status(statuses.get(outcome.event_id))
        else:
            yield outcome
