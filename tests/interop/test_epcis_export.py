"""EPCIS 2.0 export from the index of a real chain (tests/interop/chain.py on the embedded anvil
node): every document (each lot, the passport, each participant, a participant's time range)
validates against the official EPCIS 2.0 JSON schema; each ledger event maps to its EPCIS event;
the quantities are the on-chain grams and the evidence points at the very log of the event."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mine2cell.ids import parse_id
from mine2cell.interop.epcis import LedgerRef, document, event_of, material_code, participant_of
from mine2cell.interop.ids import lot_id, uri
from mine2cell.interop.records import (
    lot_records,
    parse_instant,
    participant_scope,
    passport_records,
)
from mine2cell.service import Service
from tests.interop.chain import PASSPORT, Recorded, opened, record
from tests.interop.epcis_support import (
    OFFICIAL_SCHEMA,
    VENDORED_SCHEMA,
    assert_valid,
    events,
    ledger_logs,
)

pytestmark = pytest.mark.anvil

LOTS = ("KOL-1", "KOL-2", "KOL-3", "SUL-1", "SUL-1A", "SUL-1B")
PEOPLE = ("kolwezi", "kokkola", "skelleftea", "auditor")
REJECTING = "https://mine2cell.example/epcis/BizStep-rejecting"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("epcis-export") / "data")


@pytest.fixture(scope="module")
def service(recorded: Recorded) -> Iterator[Service]:
    with opened(recorded.data_dir, recorded.ledger) as opened_service:
        opened_service.indexer().sync()
        yield opened_service


def _ledger(service: Service) -> LedgerRef:
    return LedgerRef(service.ledger.domain.chain_id, service.ledger.address)


def lot_document(service: Service, name: str) -> dict[str, Any]:
    records = lot_records(service.store(), parse_id(name))
    assert records is not None, name
    return document(records, _ledger(service), created=0)


def passport_document(service: Service) -> dict[str, Any]:
    records = passport_records(service.store(), PASSPORT)
    assert records is not None
    return document(records, _ledger(service), created=0)


def participant_document(
    service: Service, account: str, since: int = 0, until: int | None = None
) -> dict[str, Any]:
    records = participant_scope(
        service.store(),
        service.w3,
        service.ledger.address,
        account,
        from_block=0,
        since=since,
        until=until,
    )
    return document(records, _ledger(service), created=0)


def named(recorded: Recorded, doc: dict[str, Any]) -> list[str]:
    """The recorded names of the document's events (a declaration as 'declared NAME')."""
    names = {event_id: name for name, event_id in recorded.events.items()}
    found = []
    for event in events(doc):
        eid = event_of(event["eventID"])
        assert eid is not None
        name = names[eid]
        found.append(f"declared {name}" if "errorDeclaration" in event else name)
    return found


def test_the_vendored_schema_is_the_official_one() -> None:
    if not OFFICIAL_SCHEMA.is_file():
        pytest.skip(f"{OFFICIAL_SCHEMA} is not beside the checkout")
    assert VENDORED_SCHEMA.read_bytes() == OFFICIAL_SCHEMA.read_bytes()


def test_every_exported_document_validates_against_the_official_schema(
    recorded: Recorded, service: Service
) -> None:
    documents = [lot_document(service, name) for name in LOTS]
    documents.append(passport_document(service))
    documents += [participant_document(service, recorded.accounts[p]) for p in PEOPLE]
    for doc in documents:
        assert_valid(doc)
    assert sum(len(events(d)) for d in documents) > 40


def test_a_lots_history_maps_each_custody_event(recorded: Recorded, service: Service) -> None:
    doc = lot_document(service, "KOL-2")
    assert named(recorded, doc) == [
        "commission KOL-2",
        "ship KOL-2",
        "reject KOL-2",
        "ship KOL-2 again",
        "receive KOL-2",
        "blend",
    ]
    commission, ship, reject, _, receive, blend = events(doc)
    assert (commission["action"], commission["bizStep"], commission["disposition"]) == (
        "ADD",
        "commissioning",
        "active",
    )
    assert (ship["action"], ship["bizStep"], ship["disposition"]) == (
        "OBSERVE",
        "shipping",
        "in_transit",
    )
    assert (reject["bizStep"], reject["disposition"]) == (REJECTING, "returned")
    assert (receive["bizStep"], receive["disposition"]) == ("receiving", "in_progress")
    mine, refinery = recorded.accounts["kolwezi"], recorded.accounts["kokkola"]
    for event in (ship, reject, receive):
        assert {s["type"] for s in event["sourceList"]} == {"owning_party", "possessing_party"}
        assert {participant_of(s["source"]) for s in event["sourceList"]} == {mine}
        assert {participant_of(d["destination"]) for d in event["destinationList"]} == {refinery}
    assert participant_of(ship["m2c:actor"]) == mine
    assert participant_of(receive["m2c:actor"]) == refinery
    assert ship["readPoint"] == {"id": "urn:mine2cell:facility:CD-KOLWEZI-1"}
    assert "bizLocation" not in ship  # in transit
    assert receive["bizLocation"] == {"id": "urn:mine2cell:facility:FI-KOKKOLA"}
    assert reject["bizLocation"] == {"id": "urn:mine2cell:facility:CD-KOLWEZI-1"}
    assert commission["ilmd"] == {
        "m2c:material": "urn:mine2cell:material:101",
        "m2c:feedstock": "primary",
        "m2c:countryOfOrigin": "CD",
    }
    assert commission["m2c:footprint"] == {"quantity": 2_400, "uom": "GRM"}
    assert blend["type"] == "TransformationEvent"
    recall = events(lot_document(service, "KOL-3"))[-1]
    assert (recall["bizStep"], participant_of(recall["m2c:actor"])) == ("void_shipping", mine)
    assert {participant_of(d["destination"]) for d in recall["destinationList"]} == {refinery}


def test_the_passport_export_is_its_whole_upstream_chain_with_the_correction(
    recorded: Recorded, service: Service
) -> None:
    doc = passport_document(service)
    assert sorted(named(recorded, doc)) == sorted(
        [
            "commission KOL-1",
            "commission KOL-2",
            "ship KOL-1",
            "ship KOL-2",
            "receive KOL-1",
            "reject KOL-2",
            "ship KOL-2 again",
            "receive KOL-2",
            "blend",
            "split",
            "ship SUL-1A",
            "receive SUL-1A",
            "bind",
            "ship SUL-1A back",
            "receive SUL-1A back",
            "declared split",
        ]
    )
    listed = events(doc)
    positions = [
        (e["m2c:evidence"]["blockNumber"], e["m2c:evidence"]["logIndex"])
        for e in listed
        if "errorDeclaration" not in e
    ]
    assert positions == sorted(positions)  # chain order
    declared = next(e for e in listed if "errorDeclaration" in e)
    split = next(e for e in listed if e["eventID"] == declared["eventID"] and e is not declared)
    assert {k: v for k, v in declared.items() if k not in ("errorDeclaration", "recordTime")} == {
        k: v for k, v in split.items() if k != "recordTime"
    }
    declaration = declared["errorDeclaration"]
    assert declaration["reason"] == "incorrect_data"
    assert [event_of(e) for e in declaration["correctiveEventIDs"]] == [
        recorded.events["ship SUL-1A"]
    ]
    assert participant_of(declaration["m2c:declaredBy"]) == recorded.accounts["kokkola"]
    assert declaration["m2c:evidence"]["eventId"] == "0x" + recorded.events["correct split"].hex()
    back = next(e for e in listed if event_of(e["eventID"]) == recorded.events["ship SUL-1A back"])
    assert back["quantityList"] == [  # what the binding left of it
        {"epcClass": "urn:mine2cell:lot:SUL-1A", "quantity": 14_955_000, "uom": "GRM"}
    ]
    bind = next(e for e in listed if e.get("bizStep") == "assembling")
    assert bind["outputEPCList"] == [uri(PASSPORT, "passport")]
    assert bind["inputQuantityList"] == [
        {"epcClass": "urn:mine2cell:lot:SUL-1A", "quantity": 45_000, "uom": "GRM"}
    ]
    masterdata = doc["epcisHeader"]["epcisMasterData"]["vocabularyList"][0]
    assert {
        e["id"]: e["attributes"][0]["attribute"] for e in masterdata["vocabularyElementList"]
    } == {
        "urn:mine2cell:facility:CD-KOLWEZI-1": "CD",
        "urn:mine2cell:facility:FI-KOKKOLA": "FI",
        "urn:mine2cell:facility:SE-SKELLEFTEA": "SE",
    }


def test_quantities_and_materials_are_the_on_chain_ones(service: Service) -> None:
    """Every quantity of the passport's document against the ledger's logs read from the node:
    commissioned and produced grams, consumed grams, and what a lot held when it moved (its
    recorded grams less what was consumed of it before)."""
    commissioned: dict[str, tuple[int, int]] = {}  # event id -> (grams, material)
    consumed: dict[str, list[tuple[bytes, int]]] = defaultdict(list)
    produced: dict[str, list[tuple[bytes, int, int]]] = defaultdict(list)
    moved: dict[str, int] = {}
    held: dict[bytes, int] = {}
    for log in ledger_logs(service):
        a, eid = log.args, "0x" + bytes(log.args.get("eventId", b"")).hex()
        if log.name == "LotCommissioned":
            commissioned[eid] = (a["quantity"], a["material"])
            held[a["lot"]] = a["quantity"]
        elif log.name == "LotProduced":
            produced[eid].append((a["lot"], a["quantity"], a["material"]))
            held[a["lot"]] = a["quantity"]
        elif log.name == "LotConsumed":
            consumed[eid].append((a["lot"], a["quantity"]))
            held[a["lot"]] = a["remaining"]
        elif log.name in ("LotShipped", "LotReceived", "ShipmentRejected", "ShipmentRecalled"):
            moved[eid] = held[a["lot"]]
    checked = 0
    for event in events(passport_document(service)):
        eid = event["m2c:evidence"]["eventId"]
        if event["type"] == "TransformationEvent":
            assert [
                (lot_id(q["epcClass"]), q["quantity"]) for q in event["inputQuantityList"]
            ] == consumed[eid]
            if "outputQuantityList" in event:
                materials = {
                    lot_id(m["lot"]): material_code(m["material"], "material")
                    for m in event["ilmd"]["m2c:outputMaterials"]
                }
                assert [
                    (lot_id(q["epcClass"]), q["quantity"], materials[lot_id(q["epcClass"])])
                    for q in event["outputQuantityList"]
                ] == produced[eid]
        else:
            (quantity,) = event["quantityList"]
            assert quantity["uom"] == "GRM" and isinstance(quantity["quantity"], int)
            if event["action"] == "ADD":
                material = material_code(event["ilmd"]["m2c:material"], "material")
                assert (quantity["quantity"], material) == commissioned[eid]
            else:
                assert quantity["quantity"] == moved[eid]
        checked += 1
    assert checked == 16


def test_the_evidence_is_the_log_of_the_event(service: Service) -> None:
    logs = {(log.tx_hash, log.log_index): log for log in ledger_logs(service)}
    doc = passport_document(service)
    evidence = [e["m2c:evidence"] for e in events(doc)]
    evidence += [
        e["errorDeclaration"]["m2c:evidence"] for e in events(doc) if "errorDeclaration" in e
    ]
    for item in evidence:
        assert item["chainId"] == service.ledger.domain.chain_id
        assert item["ledger"] == service.ledger.address
        log = logs[(bytes.fromhex(item["txHash"][2:]), item["logIndex"])]
        assert "0x" + bytes(log.args["eventId"]).hex() == item["eventId"]
        assert (log.block_number, "0x" + log.block_hash.hex()) == (
            item["blockNumber"],
            item["blockHash"],
        )


def test_a_participants_export_holds_what_it_signed_or_was_party_to_in_the_range(
    recorded: Recorded, service: Service
) -> None:
    refinery = recorded.accounts["kokkola"]
    whole = participant_document(service, refinery)
    assert_valid(whole)
    assert sorted(named(recorded, whole)) == sorted(
        [
            "ship KOL-1",  # shipped to it
            "ship KOL-2",
            "ship KOL-3",
            "receive KOL-1",
            "reject KOL-2",
            "recall KOL-3",  # a recall of a shipment to it
            "ship KOL-2 again",
            "receive KOL-2",
            "blend",
            "split",
            "ship SUL-1A",
            "receive SUL-1A",  # its shipment received
            "ship SUL-1A back",
            "receive SUL-1A back",
            "declared split",
        ]
    )
    # The chain took an hour's pause before "ship KOL-2 again": bound the export there.
    pivot = next(
        e["eventTime"]
        for e in events(whole)
        if event_of(e["eventID"]) == recorded.events["ship KOL-2 again"]
    )
    boundary = parse_instant(pivot, "from")
    before = participant_document(service, refinery, until=boundary)
    after = participant_document(service, refinery, since=boundary)
    assert_valid(before)
    assert_valid(after)
    assert named(recorded, before) == [
        "ship KOL-1",
        "ship KOL-2",
        "ship KOL-3",
        "receive KOL-1",
        "reject KOL-2",
        "recall KOL-3",
    ]
    assert sorted(named(recorded, before) + named(recorded, after)) == sorted(
        named(recorded, whole)
    )
    assert events(participant_document(service, refinery, since=boundary + 10**6)) == []
    assert named(recorded, participant_document(service, recorded.accounts["auditor"])) == []


def test_an_export_is_json_without_floats(service: Service, tmp_path: Path) -> None:
    text = json.dumps(passport_document(service))
    loaded = json.loads(text, parse_float=lambda value: pytest.fail(f"a float: {value}"))
    assert loaded["schemaVersion"] == "2.0"
    assert loaded["@context"][0] == "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
    assert loaded["@context"][1]["m2c"] == "https://mine2cell.example/epcis/"
