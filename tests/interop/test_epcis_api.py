"""EPCIS 2.0 over HTTP and on the command line, on a copy of the interop chain: the read tier's
exports (lot, passport, participant in a time range) as application/ld+json, capture with a hosted
token (per-event results, a 422 problem naming the path for a schema-invalid document), the
passport page's link to its export, and `mine2cell export epcis` and `mine2cell import` of a
.jsonld document."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.interop.epcis import CONTEXT, MEDIA_TYPE, event_of, participant_uri
from mine2cell.interop.records import parse_instant
from tests.api.support import problem
from tests.e2e.cli_support import PASSPHRASE, Cli
from tests.interop.chain import Recorded, copy, record, settings
from tests.interop.epcis_support import assert_valid, events

pytestmark = pytest.mark.anvil

NOW = "2026-11-22T08:00:00Z"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("epcis-api-chain") / "data")


@pytest.fixture(scope="module")
def served(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return copy(recorded, tmp_path_factory.mktemp("epcis-api") / "data")


@pytest.fixture(scope="module")
def client(served: Recorded) -> Iterator[TestClient]:
    app = create_app(settings(served.data_dir, served.ledger), passphrase=lambda: PASSPHRASE)
    with TestClient(app) as test_client:
        yield test_client


def _token(served: Recorded, tier: str, key: str | None = None) -> dict[str, str]:
    with closing(TokenStore(served.data_dir / "access.db")) as tokens:
        if tier == "hosted":
            assert key is not None
            _, text = tokens.create("hosted", "epcis tests", key_name=key)
        else:
            _, text = tokens.create("read", "epcis tests")
    return {"Authorization": f"Bearer {text}"}


@pytest.fixture(scope="module")
def reader(served: Recorded) -> dict[str, str]:
    return _token(served, "read")


@pytest.fixture(scope="module")
def mine_host(served: Recorded) -> dict[str, str]:
    return _token(served, "hosted", "kolwezi")


def _document(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    found: dict[str, Any] = response.json()
    assert_valid(found)
    return found


def test_the_read_tier_exports_a_lot_a_passport_and_a_participant(
    served: Recorded, client: TestClient, reader: dict[str, str]
) -> None:
    lot = _document(client.get("/v1/lots/KOL-2/epcis", headers=reader))
    assert [e.get("bizStep") for e in events(lot)][:2] == ["commissioning", "shipping"]
    passport = _document(client.get("/v1/passports/PASS-1/epcis", headers=reader))
    assert len(events(passport)) == 16
    refinery = served.accounts["kokkola"]
    everything = _document(client.get(f"/v1/participants/{refinery}/epcis", headers=reader))
    assert len(events(everything)) == 15
    # Bounded at the hour's pause before KOL-2 was shipped again.
    pivot = next(
        e["eventTime"]
        for e in events(everything)
        if event_of(e["eventID"]) == served.events["ship KOL-2 again"]
    )
    before = _document(
        client.get(
            f"/v1/participants/{refinery.lower()}/epcis",
            params={"from": "2000-01-01", "to": pivot},
            headers=reader,
        )
    )
    after = _document(
        client.get(f"/v1/participants/{refinery}/epcis", params={"from": pivot}, headers=reader)
    )
    assert (len(events(before)), len(events(after))) == (6, 9)
    assert all(
        parse_instant(e["eventTime"], "t") < parse_instant(pivot, "t") for e in events(before)
    )


def test_exports_need_a_read_token_and_name_what_is_wrong(
    served: Recorded, client: TestClient, reader: dict[str, str]
) -> None:
    problem(client.get("/v1/passports/PASS-1/epcis"), 401)
    body = problem(client.get("/v1/lots/NOPE/epcis", headers=reader), 404)
    assert body["errors"][0]["field"] == "lot"
    body = problem(client.get("/v1/passports/NOPE/epcis", headers=reader), 404)
    assert body["errors"][0]["field"] == "passport"
    refinery = served.accounts["kokkola"]
    body = problem(
        client.get(
            f"/v1/participants/{refinery}/epcis", params={"from": "last week"}, headers=reader
        ),
        422,
    )
    assert body["errors"][0]["field"] == "from"
    body = problem(client.get("/v1/participants/0x1234/epcis", headers=reader), 422)
    assert body["errors"][0]["field"] == "account"


def _envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": NOW,
        "epcisBody": {"eventList": list(events)},
    }


def _commissioning(lot: str, event_id: str) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": NOW,
        "eventTimeZoneOffset": "+00:00",
        "eventID": event_id,
        "action": "ADD",
        "bizStep": "commissioning",
        "quantityList": [{"epcClass": f"urn:mine2cell:lot:{lot}", "quantity": 750, "uom": "KGM"}],
        "ilmd": {"m2c:material": "urn:mine2cell:material:101", "m2c:feedstock": "primary"},
    }


def _shipping(lot: str, to: str, event_id: str) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": NOW,
        "eventTimeZoneOffset": "+00:00",
        "eventID": event_id,
        "action": "OBSERVE",
        "bizStep": "shipping",
        "quantityList": [{"epcClass": f"urn:mine2cell:lot:{lot}", "quantity": 750, "uom": "KGM"}],
        "destinationList": [{"type": "possessing_party", "destination": participant_uri(to)}],
    }


def test_capture_signs_each_event_with_the_hosted_key_and_reports_it(
    served: Recorded, client: TestClient, mine_host: dict[str, str]
) -> None:
    refinery = served.accounts["kokkola"]
    doc = _envelope(
        _commissioning("H-1", "urn:uuid:7e1d0000-0000-4000-8000-000000000001"),
        _shipping("H-1", refinery, "urn:uuid:7e1d0000-0000-4000-8000-000000000002"),
        _shipping("H-404", refinery, "urn:uuid:7e1d0000-0000-4000-8000-000000000003"),
    )
    response = client.post(
        "/v1/epcis/capture",
        content=json.dumps(doc),
        headers={**mine_host, "Content-Type": MEDIA_TYPE},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["signer"] == served.accounts["kolwezi"]
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (2, 0, 1)
    first, second, third = report["events"]
    assert (first["result"], first["operation"]) == ("accepted", "Commission")
    assert (second["result"], second["operation"]) == ("accepted", "Ship")
    assert third["result"] == "rejected"
    assert third["field"] == "$.epcisBody.eventList[2].quantityList[0].epcClass"
    assert "lot H-404 does not exist" in third["reason"]
    deadline = time.monotonic() + 30
    for accepted in (first, second):
        while True:
            status = client.get(accepted["statusUrl"]).json()
            if status["status"] == "confirmed" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status["status"] == "confirmed", status
        assert status["eventId"] == accepted["ledgerEventId"]
    again = client.post("/v1/epcis/capture", content=json.dumps(doc), headers=mine_host).json()
    assert [e["result"] for e in again["events"]] == ["duplicate", "duplicate", "rejected"]


def test_capture_refuses_a_schema_invalid_document_with_the_path(
    client: TestClient, mine_host: dict[str, str]
) -> None:
    event = _commissioning("H-2", "urn:uuid:7e1d0000-0000-4000-8000-000000000010")
    del event["eventTimeZoneOffset"]
    response = client.post("/v1/epcis/capture", json=_envelope(event), headers=mine_host)
    body = problem(response, 422)
    assert body["type"].endswith("/epcis-schema-invalid")
    assert body["errors"][0]["field"] == "$.epcisBody.eventList[0].eventTimeZoneOffset"
    body = problem(client.post("/v1/epcis/capture", content=b"{not json", headers=mine_host), 422)
    assert body["errors"][0]["field"] == "$"


def test_capture_needs_the_hosted_token_of_the_key(
    served: Recorded, client: TestClient, reader: dict[str, str], mine_host: dict[str, str]
) -> None:
    doc = _envelope(_commissioning("H-3", "urn:uuid:7e1d0000-0000-4000-8000-000000000020"))
    problem(client.post("/v1/epcis/capture", json=doc), 401)
    problem(client.post("/v1/epcis/capture", json=doc, headers=reader), 403)
    body = problem(
        client.post("/v1/epcis/capture", json=doc, params={"key": "kokkola"}, headers=mine_host),
        403,
    )
    assert "kolwezi" in body["detail"]


def test_the_openapi_description_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    capture = spec["paths"]["/v1/epcis/capture"]["post"]
    assert MEDIA_TYPE in capture["requestBody"]["content"]
    assert capture["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CaptureReport"
    )
    assert "422" in capture["responses"]
    for path in (
        "/v1/lots/{lot}/epcis",
        "/v1/passports/{passport}/epcis",
        "/v1/participants/{account}/epcis",
    ):
        assert MEDIA_TYPE in spec["paths"][path]["get"]["responses"]["200"]["content"]


def test_the_passport_page_links_to_its_epcis_export(
    client: TestClient, reader: dict[str, str]
) -> None:
    page = client.get("/passports/PASS-1", headers=reader)
    assert page.status_code == 200
    link = "/v1/passports/0x" + b"PASS-1".ljust(32, b"\0").hex() + "/epcis"
    assert link in page.text
    assert link not in client.get("/passports/PASS-1").text  # not on the public tier


def test_the_command_line_exports_and_captures(
    recorded: Recorded, tmp_path_factory: pytest.TempPathFactory
) -> None:
    here = copy(recorded, tmp_path_factory.mktemp("epcis-cli") / "data")
    cli = Cli(here.data_dir)
    exported = here.data_dir.parent / "passport.jsonld"
    cli("export", "epcis", "--passport", "PASS-1", "--output", str(exported)).ok()
    passport = json.loads(exported.read_text())
    assert_valid(passport)
    assert len(events(passport)) == 16
    doc = _envelope(
        _commissioning("C-1", "urn:uuid:7e1d0000-0000-4000-8000-000000000030"),
        _shipping("C-1", here.accounts["kokkola"], "urn:uuid:7e1d0000-0000-4000-8000-000000000031"),
        {
            "type": "TransactionEvent",
            "eventTime": NOW,
            "eventTimeZoneOffset": "+00:00",
            "action": "ADD",
            "bizTransactionList": [{"type": "po", "bizTransaction": "urn:example:po:1"}],
            "epcList": ["urn:mine2cell:lot:C-1"],
        },
    )
    path = Path(here.data_dir.parent / "capture.jsonld")
    path.write_text(json.dumps(doc))
    first = cli("import", str(path), "--as", "kolwezi")
    assert first.returncode == 1, first.explain()
    assert "$.epcisBody.eventList[2].type" in first.stderr
    assert "TransactionEvent is not supported" in first.stderr
    assert first.stdout.strip() == "2 events confirmed, 0 already captured, 1 refused, of 3"
    second = cli("import", str(path), "--as", "kolwezi", "--json")
    assert second.returncode == 1, second.explain()
    assert [e["result"] for e in json.loads(second.stdout)] == [
        "duplicate",
        "duplicate",
        "rejected",
    ]
