"""The URIs of the EPCIS documents and their inverses: lots and passports (mine2cell.interop.ids:
GS1 Digital Link, plain lot numbers, hashed ids, foreign URIs), participants, facilities,
materials and events; and the capture's reading of a document (schema formats, masses, event
identity), without a chain."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from eth_utils import keccak

from mine2cell.errors import InvalidInput
from mine2cell.ids import parse_id
from mine2cell.interop import capture
from mine2cell.interop.epcis import (
    event_of,
    event_uri,
    facility_of,
    facility_uri,
    material_code,
    material_uri,
    participant_of,
    participant_uri,
)
from mine2cell.interop.ids import lot_id, uri
from mine2cell.signing.eip712 import text32
from tests.interop.epcis_support import SHARED

GTIN = "09506000134352"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"(01){GTIN}(10)LOT-7", f"https://id.gs1.org/01/{GTIN}/10/LOT-7"),
        (f"(01){GTIN}(10)A/B", f"https://id.gs1.org/01/{GTIN}/10/A%2FB"),
        ("KOL-2026-0042", "urn:mine2cell:lot:KOL-2026-0042"),
        ("lot 7 (wet)", "urn:mine2cell:lot:lot%207%20%28wet%29"),
        ("https://ex.com/lots/7", "https://ex.com/lots/7"),
        ("urn:epc:class:lgtin:4012.01.7", "urn:epc:class:lgtin:4012.01.7"),
    ],
)
def test_a_lot_number_becomes_a_uri_that_names_it_again(text: str, expected: str) -> None:
    assert uri(parse_id(text)) == expected
    assert lot_id(expected) == parse_id(text)


def test_a_hashed_id_is_exported_as_its_hex_and_read_back() -> None:
    long_uri = "urn:epc:class:lgtin:4012345.012345.998877-EXTRA"
    hashed = parse_id(long_uri)
    assert hashed == keccak(text=long_uri)
    exported = uri(hashed)
    assert exported == f"urn:mine2cell:lot:0x{hashed.hex()}"
    assert lot_id(exported) == hashed
    # A foreign system's long URI names the same lot each time it is captured.
    assert lot_id(long_uri) == hashed


def test_a_passport_uri_is_of_its_own_kind() -> None:
    passport = parse_id("PASS-1", "passport")
    assert uri(passport, "passport") == "urn:mine2cell:passport:PASS-1"
    assert lot_id("urn:mine2cell:passport:PASS-1", "p", "passport") == passport
    # No Digital Link (GTIN + lot) for a passport: a battery is an instance, not a batch.
    element = f"(01){GTIN}(10)LOT-7"
    assert uri(parse_id(element), "passport").startswith("urn:mine2cell:passport:")
    assert lot_id(uri(parse_id(element), "passport"), "p", "passport") == parse_id(element)
    with pytest.raises(InvalidInput) as wrong:
        lot_id("urn:mine2cell:passport:PASS-1", "outputEPCList[0]")
    assert wrong.value.field == "outputEPCList[0]"
    assert "names a passport, not a lot" in wrong.value.problem


def test_participant_facility_material_and_event_uris_round_trip() -> None:
    account = "0x5788E3E690840B7DD2E0f9DA5c0C83B25578c390"
    assert participant_uri(account.lower()) == f"urn:mine2cell:participant:{account}"
    assert participant_of(f"urn:mine2cell:participant:{account.lower()}") == account
    assert participant_of("urn:epc:id:pgln:0614141.00001") is None
    for facility in (text32("FI-KOKKOLA"), text32("Mine no. 7/B"), keccak(text="x")):
        assert facility_of(facility_uri(facility)) == facility
    assert facility_uri(text32("Mine no. 7/B")) == "urn:mine2cell:facility:Mine%20no.%207%2FB"
    assert material_uri(102) == "urn:mine2cell:material:102"
    assert material_code("urn:mine2cell:material:102", "m") == 102
    assert material_code("urn:mine2cell:material:co-sulfate", "m") == 102
    with pytest.raises(InvalidInput) as unknown:
        material_code("urn:mine2cell:material:unobtainium", "ilmd.material")
    assert unknown.value.field == "ilmd.material"
    with pytest.raises(InvalidInput):
        material_code("urn:mine2cell:material:4294967296", "m")  # beyond uint32
    event_id = keccak(text="an event")
    assert event_of(event_uri(event_id)) == event_id
    assert event_of("urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8") is None


def _document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-22T08:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-11-22T08:00:00.5+01:00",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        "epcList": ["urn:mine2cell:lot:KOL-1"],
        **fields,
    }


def test_the_schema_formats_are_checked() -> None:
    capture.validate(_document(_event()))
    for fields, path in (
        ({"eventTime": "2026-13-01T00:00:00Z"}, "$.epcisBody.eventList[0].eventTime"),
        ({"eventTime": "22/11/2026"}, "$.epcisBody.eventList[0].eventTime"),
        ({"epcList": ["KOL 1"]}, "$.epcisBody.eventList[0].epcList[0]"),
        ({"readPoint": {}}, "$.epcisBody.eventList[0].readPoint.id"),
    ):
        with pytest.raises(capture.SchemaInvalid) as refused:
            capture.validate(_document(_event(**fields)))
        assert refused.value.field == path, refused.value.errors


def test_the_official_examples_validate() -> None:
    examples = sorted(SHARED.glob("*.jsonld")) if SHARED.is_dir() else []
    examples = [e for e in examples if "context" not in e.name]
    if not examples:
        pytest.skip(f"no examples in {SHARED}")
    for example in examples:
        capture.validate(json.loads(example.read_text()))


@pytest.mark.parametrize(
    ("quantity", "uom", "grams"),
    [(12_500, "GRM", 12_500), (Decimal("12.5"), "KGM", 12_500), (Decimal("0.75"), "TNE", 750_000)],
)
def test_masses_are_whole_grams(quantity: Decimal, uom: str, grams: int) -> None:
    assert capture._grams({"quantity": quantity, "uom": uom}, "$.q") == grams


@pytest.mark.parametrize(
    ("item", "field", "problem"),
    [
        ({"quantity": Decimal("1.5"), "uom": "GRM"}, "$.q.quantity", "not a whole number"),
        ({"quantity": 3, "uom": "LTR"}, "$.q.uom", "GRM (grams), KGM or TNE"),
        ({"quantity": 3}, "$.q.uom", "counts instances"),
        ({"epcClass": "urn:x:y"}, "$.q", "quantity and uom"),
    ],
)
def test_a_mass_that_is_not_whole_grams_is_refused(
    item: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        capture._grams(item, "$.q")
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_an_events_identity_is_its_event_id_or_its_content() -> None:
    with_id = _event(eventID="urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8")
    assert capture._identity(with_id) == "urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8"
    plain = _event()
    recorded_later = {**plain, "recordTime": "2026-11-23T00:00:00Z"}
    assert capture._identity(plain) == capture._identity(recorded_later)
    assert capture._identity(plain) != capture._identity(_event(action="ADD"))
    declared = {**with_id, "errorDeclaration": {"declarationTime": "2026-11-23T00:00:00Z"}}
    assert capture._identity(declared) != capture._identity(with_id)
    nonces = {capture.capture_nonce(capture._identity(e)) for e in (plain, with_id, declared)}
    assert len(nonces) == 3
    assert all(2**128 < n < 2**256 for n in nonces)


def test_a_document_is_read_with_decimal_numbers() -> None:
    loaded = capture.load('{"quantity": 0.1, "n": 3}')
    assert loaded == {"quantity": Decimal("0.1"), "n": 3}
    with pytest.raises(InvalidInput) as refused:
        capture.load(b"\xff not json")
    assert refused.value.field == "$"
