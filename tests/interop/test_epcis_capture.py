"""EPCIS 2.0 capture into a ledger on the embedded anvil node, through the relay: a valid
document is confirmed; a schema-invalid one is refused whole, naming the path; events that cannot
map to the ledger are refused one by one while the others go through; capturing a document twice
records nothing twice; and export -> capture into a fresh ledger -> export gives the same events,
apart from their on-chain evidence."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from mine2cell.ids import parse_id
from mine2cell.interop import capture as capturing
from mine2cell.interop.epcis import CONTEXT, LedgerRef, document, participant_uri
from mine2cell.interop.records import lot_records, passport_records
from mine2cell.relay.outbox import State
from mine2cell.service import Service
from tests.interop.chain import (
    BATTERY_FILE,
    CERTIFICATE,
    PASSPORT,
    Recorded,
    cast_ledger,
    lot,
    opened,
    record,
    settle,
)
from tests.interop.epcis_support import assert_valid, comparable, events, ledger_logs

pytestmark = pytest.mark.anvil

NOW = "2026-11-22T08:00:00Z"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("epcis-source") / "data")


@pytest.fixture(scope="module")
def cast(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """The same participants on a fresh ledger, with no lots."""
    return cast_ledger(tmp_path_factory.mktemp("epcis-fresh") / "data", recorded.data_dir)


@pytest.fixture(scope="module")
def fresh(cast: Recorded) -> Iterator[Service]:
    with opened(cast.data_dir, cast.ledger) as service:
        yield service


def envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": NOW,
        "epcisBody": {"eventList": list(events)},
    }


def head(kind: str, event_id: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"type": kind, "eventTime": NOW, "eventTimeZoneOffset": "+00:00"}
    if event_id is not None:
        found["eventID"] = event_id
    return found


def commissioning(
    lot_uri: str, grams: float, event_id: str | None, uom: str = "GRM", **extra: Any
) -> dict[str, Any]:
    return {
        **head("ObjectEvent", event_id),
        "action": "ADD",
        "bizStep": "commissioning",
        "quantityList": [{"epcClass": lot_uri, "quantity": grams, "uom": uom}],
        "ilmd": {"m2c:material": "urn:mine2cell:material:co-hydroxide"},
        **extra,
    }


def shipping(lot_uri: str, to: str, event_id: str | None, **extra: Any) -> dict[str, Any]:
    return {
        **head("ObjectEvent", event_id),
        "action": "OBSERVE",
        "bizStep": "shipping",
        "epcList": [lot_uri],
        "destinationList": [{"type": "owning_party", "destination": participant_uri(to)}],
        **extra,
    }


def receiving(lot_uri: str, event_id: str | None) -> dict[str, Any]:
    return {
        **head("ObjectEvent", event_id),
        "action": "OBSERVE",
        "bizStep": "https://ref.gs1.org/cbv/BizStep-receiving",
        "epcList": [lot_uri],
    }


def run(service: Service, key: str, doc: Any) -> list[capturing.EventOutcome]:
    """Capture as ``key`` (the document through JSON, as a file or a request brings it: numbers
    are read back as decimals), and wait for the accepted operations."""
    outcomes = capturing.capture(
        capturing.load(json.dumps(doc)),
        service.ledger,
        service.outbox,
        service.signer(key),
    )
    ids = [o.event_id for o in outcomes if o.event_id is not None]
    return list(capturing.settled(outcomes, service.settle(ids) if ids else {}))


def results(outcomes: list[capturing.EventOutcome]) -> list[str]:
    return [
        o.result if o.status is None else f"{o.result}:{o.status.state.value}" for o in outcomes
    ]


def test_a_valid_document_goes_through_the_relay_and_is_confirmed(
    cast: Recorded, fresh: Service
) -> None:
    refinery = cast.accounts["kokkola"]
    doc = envelope(
        commissioning(
            "urn:mine2cell:lot:V-1",
            12.5,
            "urn:uuid:5b0c6f3e-0001-4000-8000-000000000001",
            uom="TNE",
            **{"m2c:footprint": {"quantity": 9600, "uom": "KGM"}},
        ),
        shipping(
            "urn:mine2cell:lot:V-1", refinery, "urn:uuid:5b0c6f3e-0001-4000-8000-000000000002"
        ),
    )
    outcomes = run(fresh, "kolwezi", doc)
    assert results(outcomes) == ["accepted:confirmed", "accepted:confirmed"]
    assert [o.operation for o in outcomes] == ["Commission", "Ship"]
    view = fresh.ledger.lot(parse_id("V-1"))
    assert view is not None
    assert (view.custodian, view.recipient, view.remaining) == (
        cast.accounts["kolwezi"],
        refinery,
        12_500_000,
    )
    fresh.indexer().sync()
    node = fresh.store().lot(parse_id("V-1"))
    assert node is not None and node.origin is not None
    assert (node.quantity, node.origin.footprint) == (12_500_000, 9_600_000)
    assert node.origin.event.event_id == outcomes[0].event_id


def test_a_schema_invalid_document_is_refused_whole_with_the_path(fresh: Service) -> None:
    good = commissioning("urn:mine2cell:lot:S-1", 1_000, "urn:uuid:5b0c6f3e-0002-4000-8000-0001")
    bad = commissioning("urn:mine2cell:lot:S-2", 1_000, "urn:uuid:5b0c6f3e-0002-4000-8000-0002")
    del bad["eventTime"]
    worse = copy.deepcopy(good)
    worse["quantityList"][0]["quantity"] = "1000"
    before = fresh.outbox.counts()
    for doc, path in (
        (envelope(good, bad), "$.epcisBody.eventList[1].eventTime"),
        (envelope(good, worse), "$.epcisBody.eventList[1].quantityList[0].quantity"),
        ({**envelope(good), "schemaVersion": None}, "$.schemaVersion"),
    ):
        with pytest.raises(capturing.SchemaInvalid) as refused:
            run(fresh, "kolwezi", doc)
        assert refused.value.field == path
        assert path in [p for p, _ in refused.value.errors]
        assert "nothing was captured" in str(refused.value)
    assert fresh.outbox.counts() == before
    assert fresh.ledger.lot(parse_id("S-1")) is None


def test_events_that_cannot_map_are_refused_one_by_one_while_the_others_go_through(
    cast: Recorded, fresh: Service
) -> None:
    mine, refinery, cells = (cast.accounts[k] for k in ("kolwezi", "kokkola", "skelleftea"))
    # R-0 mined, delivered to the refinery, and on its way from there to the cell maker.
    kolwezi, kokkola = fresh.client("kolwezi"), fresh.client("kokkola")
    settle(fresh, kolwezi.commission(lot("R-0"), material=101, quantity=5_000))
    settle(fresh, kolwezi.ship(lot("R-0"), refinery))
    settle(fresh, kokkola.receive(lot("R-0")))
    settle(fresh, kokkola.ship(lot("R-0"), cells))
    aggregation = {
        **head("AggregationEvent", "urn:uuid:5b0c6f3e-0003-4000-8000-0005"),
        "action": "ADD",
        "parentID": "urn:epc:id:sscc:4012345.0000000001",
        "childEPCs": ["urn:mine2cell:lot:R-1"],
    }
    doc = envelope(
        commissioning("urn:mine2cell:lot:R-1", 7_000, "urn:uuid:5b0c6f3e-0003-4000-8000-0001"),
        shipping("urn:mine2cell:lot:NOPE", refinery, "urn:uuid:5b0c6f3e-0003-4000-8000-0002"),
        shipping("urn:mine2cell:lot:R-0", refinery, "urn:uuid:5b0c6f3e-0003-4000-8000-0003"),
        receiving("urn:mine2cell:lot:R-0", "urn:uuid:5b0c6f3e-0003-4000-8000-0004"),
        aggregation,
        commissioning(
            "urn:mine2cell:lot:R-2",
            1_000,
            "urn:uuid:5b0c6f3e-0003-4000-8000-0006",
            **{"m2c:actor": participant_uri(refinery)},
        ),
        shipping("urn:mine2cell:lot:R-1", refinery, "urn:uuid:5b0c6f3e-0003-4000-8000-0007"),
        commissioning(
            "urn:mine2cell:lot:R-3",
            0.0005,
            "urn:uuid:5b0c6f3e-0003-4000-8000-0008",
            uom="KGM",
        ),
        {
            **commissioning("urn:mine2cell:lot:R-4", 10, "urn:uuid:5b0c6f3e-0003-4000-8000-0009"),
            "ilmd": {"m2c:material": "urn:mine2cell:material:unobtainium"},
        },
        {
            **commissioning("urn:mine2cell:lot:R-5", 10, "urn:uuid:5b0c6f3e-0003-4000-8000-0010"),
            "bizLocation": {"id": "urn:mine2cell:facility:FI-KOKKOLA"},
        },
    )
    outcomes = run(fresh, "kolwezi", doc)
    assert results(outcomes) == [
        "accepted:confirmed",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted:confirmed",
        "rejected",
        "rejected",
        "rejected",
    ]
    refusals = {o.index: (o.field, o.reason or "") for o in outcomes if o.result == "rejected"}
    path = "$.epcisBody.eventList"
    # Unknown lot.
    assert refusals[1][0] == f"{path}[1].epcList[0]"
    assert "lot NOPE does not exist on this ledger" in refusals[1][1]
    # Wrong party: shipping a lot the signer does not hold.
    assert refusals[2][0] == f"{path}[2].epcList[0]"
    assert f"lot R-0 is held by {refinery}, not by {mine}" in refusals[2][1]
    # Wrong party: receiving a shipment addressed to someone else.
    assert refusals[3][0] == f"{path}[3].epcList[0]"
    assert f"lot R-0 is shipped to {cells}, not to {mine}" in refusals[3][1]
    # Unsupported event type.
    assert refusals[4][0] == f"{path}[4].type"
    assert refusals[4][1].startswith("AggregationEvent is not supported")
    # Wrong party: the document says someone else commissioned it.
    assert refusals[5][0] == f"{path}[5]['m2c:actor']"
    assert f"names {refinery} as the participant that performs this event" in refusals[5][1]
    # Half a gram; an unknown material; another participant's facility.
    assert refusals[7] == (
        f"{path}[7].quantityList[0].quantity",
        "0.0005 KGM is not a whole number of grams",
    )
    assert refusals[8][0] == f"{path}[8].ilmd['m2c:material']"
    assert "unknown material 'unobtainium'" in refusals[8][1]
    assert refusals[9][0] == f"{path}[9].bizLocation.id"
    assert "is not the facility of the signer" in refusals[9][1]
    view = fresh.ledger.lot(parse_id("R-1"))
    assert view is not None and (view.custodian, view.recipient) == (mine, refinery)
    for name in ("R-2", "R-3", "R-4", "R-5"):
        assert fresh.ledger.lot(parse_id(name)) is None


def test_capturing_the_same_document_twice_records_nothing_twice(
    cast: Recorded, fresh: Service
) -> None:
    refinery = cast.accounts["kokkola"]
    doc = envelope(
        commissioning("urn:mine2cell:lot:D-1", 2_000, "urn:uuid:5b0c6f3e-0004-4000-8000-0001"),
        shipping("urn:mine2cell:lot:D-1", refinery, None),  # identified by its content
    )
    text = json.dumps(doc)
    signer = fresh.signer("kolwezi")
    first = capturing.capture(capturing.load(text), fresh.ledger, fresh.outbox, signer)
    # Again before the first is mined: queued, not signed again.
    again = capturing.capture(capturing.load(text), fresh.ledger, fresh.outbox, signer)
    assert [o.result for o in first] == ["accepted", "accepted"]
    assert [o.result for o in again] == ["duplicate", "duplicate"]
    assert all("queued in the outbox" in (o.reason or "") for o in again)
    ids = [o.event_id for o in first if o.event_id is not None]
    assert all(s.state is State.CONFIRMED for s in fresh.settle(ids).values())
    logs, operations = len(ledger_logs(fresh)), sum(fresh.outbox.counts().values())
    third = run(fresh, "kolwezi", doc)
    assert [o.result for o in third] == ["duplicate", "duplicate"]
    assert all("recorded on the ledger" in (o.reason or "") for o in third)
    assert (len(ledger_logs(fresh)), sum(fresh.outbox.counts().values())) == (logs, operations)
    fresh.indexer().sync()
    history = fresh.store().history(parse_id("D-1"))
    assert [item.kind for item in history] == ["commission", "ship"]


def _export(service: Service) -> dict[str, Any]:
    service.indexer().sync()
    ledger = LedgerRef(service.ledger.domain.chain_id, service.ledger.address)
    passport = passport_records(service.store(), PASSPORT)
    recalled = lot_records(service.store(), parse_id("KOL-3"))
    assert passport is not None and recalled is not None
    passport.events += [r for r in recalled.events if r not in passport.events]
    return document(passport, ledger, created=0)


def test_export_capture_into_a_fresh_ledger_export_gives_the_same_events(
    recorded: Recorded, cast: Recorded, fresh: Service
) -> None:
    """The passport's chain and the recalled lot KOL-3: every kind of ledger event, a blend, a
    split and a declaration. Each participant captures the document in turn (the others' events
    are refused as the wrong party); a pass that records nothing ends it, since an event that
    waits for another participant's is refused until that one is recorded."""
    with opened(recorded.data_dir, recorded.ledger) as source:
        exported = _export(source)
    assert_valid(exported)
    text = json.dumps(exported)
    for _ in range(4):
        recorded_now = 0
        for key in ("kolwezi", "kokkola", "skelleftea"):
            outcomes = run(fresh, key, json.loads(text))
            assert all(o.status is None or o.status.state is State.CONFIRMED for o in outcomes)
            recorded_now += sum(o.result == "accepted" for o in outcomes)
        if recorded_now == 0:
            break
    imported = _export(fresh)
    assert_valid(imported)
    assert len(events(imported)) == len(events(exported)) == 19
    assert comparable(imported) == comparable(exported)
    # The documents' hashes of an output and of the binding travel both ways.
    for digest in (CERTIFICATE, BATTERY_FILE):
        assert "0x" + digest.hex() in text and "0x" + digest.hex() in json.dumps(imported)
    # Only the evidence differs: another ledger, other transactions and event ids.
    assert {e["m2c:evidence"]["ledger"] for e in events(imported)} == {fresh.ledger.address}
    assert not {e["eventID"] for e in events(imported)} & {e["eventID"] for e in events(exported)}
