"""The /v1 routes with FastAPI's TestClient over a real service: the embedded anvil node, the
outbox relayed in the app's own thread, the index followed into SQLite. Every error is an RFC
9457 problem naming the field at fault."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from mine2cell.ids import parse_id
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import Domain, LotId, Ship, sign
from mine2cell.signing.keystore import Keystore
from tests.api.support import problem
from tests.e2e.cli_support import PASSPHRASE
from tests.recorded import Template

pytestmark = pytest.mark.anvil


def test_health_answers(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}


def test_ready_names_the_ledger_and_the_index_lag(client: TestClient, template: Template) -> None:
    body = client.get("/v1/ready").json()

    assert body["ledger"] == template.ledger and body["chain_id"] == 31337
    assert body["relaying"] is True and body["index_lag"] >= 0


def test_a_lot_shows_its_custodian_and_remaining_grams(
    client: TestClient, reader: dict[str, str]
) -> None:
    body = client.get("/v1/lots/SUL-1", headers=reader).json()

    assert body["lot"]["label"] == "SUL-1" and body["remaining_grams"] == 20_000_000 - 45_000
    assert body["in_transit_to"] is None and body["closed"] is False


def test_an_unknown_lot_is_a_404_problem_naming_the_lot(
    client: TestClient, reader: dict[str, str]
) -> None:
    body = problem(client.get("/v1/lots/NOPE-1", headers=reader), 404)

    assert body["errors"] == [
        {"field": "lot", "message": "lot NOPE-1 was never commissioned or produced"}
    ]


def test_a_malformed_id_is_a_422_problem_naming_the_field(
    client: TestClient, reader: dict[str, str]
) -> None:
    body = problem(client.get("/v1/lots/0x" + "a" * 63, headers=reader), 422)

    assert body["errors"][0]["field"] == "lot"


def test_the_provenance_of_a_passport_is_the_full_report(
    client: TestClient, reader: dict[str, str]
) -> None:
    body = client.get("/v1/passports/PASS-1/provenance", headers=reader).json()

    assert body["schema"] == "mine2cell.provenance/1"
    assert body["grams_bound"] == 45_000 and body["countries"][0]["country"] == "CD"


def test_the_public_summary_has_shares_and_no_accounts(client: TestClient) -> None:
    response = client.get("/v1/passports/PASS-1/summary")
    body = response.json()

    assert body["schema"] == "mine2cell.provenance-summary/1"
    assert [c["country"] for c in body["countries"]] == ["CD"]
    assert "facilities" not in body and "dag" not in body
    assert re.search(r"\"0x[0-9a-fA-F]{40}\"", response.text) is None  # no account address


def test_an_unbound_passport_is_a_404_problem(client: TestClient) -> None:
    body = problem(client.get("/v1/passports/PASS-404/summary"), 404)

    assert body["errors"][0]["field"] == "passport"


def test_a_signed_operation_is_accepted_and_confirmed(
    client: TestClient, template: Template, reader: dict[str, str]
) -> None:
    keystore = Keystore(template.data_dir / "keys")
    cells = keystore.signer("skelleftea", PASSPHRASE)
    kokkola = keystore.entry("kokkola").address
    ready = client.get("/v1/ready").json()
    domain = Domain(ready["chain_id"], ready["ledger"])
    op = Ship(cells.address, 1000, int(time.time()) + 600, LotId(parse_id("SUL-1")), kokkola)
    document = to_document(sign(op, cells, domain))

    response = client.post("/v1/operations", json=document)

    assert response.status_code == 202, response.text
    status_url = response.json()["statusUrl"]
    assert response.headers["location"] == status_url
    for _ in range(100):
        state = client.get(status_url).json()["status"]
        if state in ("confirmed", "rejected"):
            break
        time.sleep(0.1)
    assert state == "confirmed"
    assert client.get("/v1/lots/SUL-1", headers=reader).json()["in_transit_to"] == kokkola


def test_an_operation_signed_for_another_ledger_is_refused_naming_the_signature(
    client: TestClient, template: Template
) -> None:
    keystore = Keystore(template.data_dir / "keys")
    cells = keystore.signer("skelleftea", PASSPHRASE)
    other = Domain(31337, "0x000000000000000000000000000000000000dEaD")  # type: ignore[arg-type]
    op = Ship(cells.address, 1001, int(time.time()) + 600, LotId(parse_id("SUL-1")), cells.address)

    body = problem(client.post("/v1/operations", json=to_document(sign(op, cells, other))), 422)

    # Its event id is the digest for the other ledger's domain, not for this one.
    assert body["errors"][0]["field"] == "eventId"


def test_a_body_that_is_not_an_operation_is_a_422_problem(client: TestClient) -> None:
    body = problem(client.post("/v1/operations", json={"type": "Ship"}), 422)

    assert body["errors"], body


def test_a_status_for_an_unknown_event_is_a_404_problem(client: TestClient) -> None:
    body = problem(client.get("/v1/operations/0x" + "ab" * 32), 404)

    assert body["errors"][0]["field"] == "event_id"


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    problem(client.get("/v1/nothing-here"), 404)


def test_the_openapi_document_lists_the_v1_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert {"/v1/operations", "/v1/passports/{passport}/provenance", "/v1/ready"} <= set(paths)
