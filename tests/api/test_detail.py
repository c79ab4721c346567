"""The detail tier (read tokens), participants, lot history and trace, the audit route, hosted-key
mode, Prometheus metrics and CORS, over the recorded chain: ore KOL-1 mined at Kolwezi (CD),
refined at Kokkola into SUL-1, 45 kg of it bound to passport PASS-1 at Skelleftea."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from fastapi.testclient import TestClient

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.signing.keystore import Keystore
from tests.api.support import problem
from tests.e2e.cli_support import PASSPHRASE
from tests.recorded import Template

pytestmark = pytest.mark.anvil

DETAIL_ROUTES = [
    "/v1/passports/PASS-1/provenance",
    "/v1/passports/PASS-1/audit",
    "/v1/lots/SUL-1",
    "/v1/lots/SUL-1/history",
    "/v1/lots/SUL-1/upstream",
    "/v1/lots/KOL-1/downstream",
    "/v1/participants",
    "/metrics",
]


def wait_settled(client: TestClient, status_url: str) -> dict[str, Any]:
    for _ in range(200):
        status: dict[str, Any] = client.get(status_url).json()
        if status["status"] in ("confirmed", "rejected"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"{status_url} did not settle: {status}")


def address(template: Template, name: str) -> str:
    return Keystore(template.data_dir / "keys").entry(name).address


# -- access tiers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", DETAIL_ROUTES)
def test_detail_routes_refuse_a_request_without_a_token(client: TestClient, route: str) -> None:
    response = client.get(route)
    body = problem(response, 401)

    assert response.headers["www-authenticate"].startswith("Bearer")
    assert body["errors"][0]["field"] == "Authorization"
    assert "mine2cell token create" in body["detail"]


def test_a_wrong_or_revoked_token_is_refused(client: TestClient, data_dir: Path) -> None:
    with closing(TokenStore(data_dir / "access.db")) as tokens:
        token, text = tokens.create("read", "to be revoked")
        route = "/v1/passports/PASS-1/provenance"
        assert client.get(route, headers={"Authorization": f"Bearer {text}"}).status_code == 200
        tampered = text[:-1] + ("A" if text[-1] != "A" else "B")

        wrong = problem(client.get(route, headers={"Authorization": f"Bearer {tampered}"}), 401)
        tokens.revoke(token.id)
        revoked = problem(client.get(route, headers={"Authorization": f"Bearer {text}"}), 401)

    assert "not valid" in wrong["detail"] and "not valid" in revoked["detail"]


def test_tokens_are_stored_as_hashes_only(data_dir: Path) -> None:
    with closing(TokenStore(data_dir / "access.db")) as tokens:
        token, text = tokens.create("read", "hash check")
    secret = text.removeprefix(f"m2c_{token.id}_")  # the secret may hold "_" itself
    # The write-ahead log exists only while another connection (a running app's) is open.
    files = [data_dir / "access.db", data_dir / "access.db-wal"]
    raw = b"".join(path.read_bytes() for path in files if path.exists())
    with closing(sqlite3.connect(data_dir / "access.db")) as conn:
        (stored,) = conn.execute(
            "SELECT secret_sha256 FROM tokens WHERE id = ?", (token.id,)
        ).fetchone()

    assert secret.encode() not in raw
    assert stored == hashlib.sha256(secret.encode()).digest()
    assert (data_dir / "access.db").stat().st_mode & 0o077 == 0


def test_the_public_routes_need_no_token(client: TestClient) -> None:
    for route in ("/v1/passports/PASS-1/summary", "/v1/passports/PASS-1/attestations"):
        assert client.get(route).status_code == 200, route


# -- participants ----------------------------------------------------------------------------------


def test_participants_list_roles_country_and_valid_certifications(
    client: TestClient, reader: dict[str, str], template: Template
) -> None:
    body = client.get("/v1/participants", headers=reader).json()
    by_account = {p["account"]: p for p in body["participants"]}
    mine = by_account[address(template, "kolwezi")]
    auditor = by_account[address(template, "auditor")]

    assert mine["roles"] == ["mine"] and mine["country"] == "CD"
    assert mine["facility"]["label"] == "CD-KOLWEZI-1" and mine["accredited"] is True
    (cert,) = mine["certifications"]
    assert cert["scheme"]["label"] == "RMAP" and cert["valid_now"] and cert["in_force"]
    assert cert["evidence"]["tx_hash"].startswith("0x")
    assert auditor["certifications"] == [] and auditor["roles"] == ["auditor"]


def test_participants_filter_by_role_and_country(
    client: TestClient, reader: dict[str, str], template: Template
) -> None:
    mines = client.get("/v1/participants?role=mine", headers=reader).json()["participants"]
    finnish = client.get("/v1/participants?country=fi", headers=reader).json()["participants"]

    assert [p["account"] for p in mines] == [address(template, "kolwezi")]
    assert [p["account"] for p in finnish] == [address(template, "kokkola")]


def test_one_participant_with_its_accreditation_history(
    client: TestClient, reader: dict[str, str], template: Template
) -> None:
    account = address(template, "kokkola")
    body = client.get(f"/v1/participants/{account.lower()}", headers=reader).json()

    assert body["account"] == account and body["roles"] == ["processor"]
    assert [h["change"] for h in body["history"]] == ["accredit"]


def test_participant_errors_name_the_field(client: TestClient, reader: dict[str, str]) -> None:
    unknown = problem(client.get("/v1/participants/0x" + "12" * 20, headers=reader), 404)
    malformed = problem(client.get("/v1/participants/0x1234", headers=reader), 422)
    bad_role = problem(client.get("/v1/participants?role=miner", headers=reader), 422)

    assert unknown["errors"][0]["field"] == "account"
    assert malformed["errors"][0]["field"] == "account"
    assert bad_role["errors"][0]["field"] == "role" and "mine" in bad_role["detail"]


# -- lots ------------------------------------------------------------------------------------------


def test_a_lots_history_lists_every_event_with_evidence(
    client: TestClient, reader: dict[str, str], template: Template
) -> None:
    body = client.get("/v1/lots/SUL-1/history", headers=reader).json()
    events = body["events"]

    assert [e["kind"] for e in events] == ["produce", "ship", "receive", "consume"]
    produced, shipped, received, consumed = events
    assert produced["quantity_grams"] == 20_000_000 and produced["step"]["kind"] == "transform"
    assert shipped["counterparty"] == address(template, "skelleftea")
    assert received["counterparty"] == address(template, "kokkola")
    assert consumed["quantity_grams"] == 45_000
    assert consumed["remaining_grams"] == 20_000_000 - 45_000
    assert consumed["step"]["passport"]["label"] == "PASS-1"
    blocks = [e["evidence"]["block_number"] for e in events]
    assert blocks == sorted(blocks) and all(e["corrections"] == [] for e in events)


def test_a_lots_upstream_trace_reaches_the_mine(client: TestClient, reader: dict[str, str]) -> None:
    body = client.get("/v1/lots/SUL-1/upstream", headers=reader).json()

    assert [c["country"] for c in body["countries"]] == ["CD"]
    assert body["facilities"][0]["facility"]["label"] == "CD-KOLWEZI-1"


def test_a_lots_downstream_trace_reaches_the_passport(
    client: TestClient, reader: dict[str, str]
) -> None:
    body = client.get("/v1/lots/KOL-1/downstream", headers=reader).json()

    assert [p["passport"]["label"] for p in body["passports"]] == ["PASS-1"]


def test_an_unknown_lot_history_is_a_404(client: TestClient, reader: dict[str, str]) -> None:
    body = problem(client.get("/v1/lots/NOPE-9/history", headers=reader), 404)

    assert body["errors"][0]["field"] == "lot"


# -- audit -----------------------------------------------------------------------------------------


def test_the_audit_route_verifies_the_chain_and_gives_the_report_hash(
    client: TestClient, reader: dict[str, str]
) -> None:
    response = client.get("/v1/passports/PASS-1/audit", headers=reader)
    body = response.json()

    assert response.status_code == 200, response.text
    assert body["schema"] == "mine2cell.audit/1" and body["verdict"] == "pass", [
        c["id"] for c in body["checks"] if not c["passed"]
    ]
    assert body["parameters"]["compared_with"].endswith("/PASS-1/provenance")
    assert response.headers["report-keccak256"] == "0x" + keccak(response.content).hex()


def test_auditing_an_unbound_passport_is_a_404(client: TestClient, reader: dict[str, str]) -> None:
    problem(client.get("/v1/passports/NOPE-1/audit", headers=reader), 404)


# -- hosted keys -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hosted(data_dir: Path) -> dict[str, str]:
    """Headers with a hosted token for the Kolwezi mine's key."""
    with closing(TokenStore(data_dir / "access.db")) as tokens:
        _, text = tokens.create("hosted", "Kolwezi ERP", key_name="kolwezi")
    return {"Authorization": f"Bearer {text}"}


def test_the_service_signs_for_a_hosted_key_with_its_token(
    client: TestClient, hosted: dict[str, str], reader: dict[str, str]
) -> None:
    lot = "0x" + parse_id("KOL-HOSTED-1").hex()
    message = {"lot": lot, "material": 2701, "quantity": 5_000_000, "footprint": 4_000_000}

    response = client.post(
        "/v1/hosted/kolwezi/operations",
        json={"type": "Commission", "message": message},
        headers=hosted,
    )

    assert response.status_code == 202, response.text
    assert wait_settled(client, response.headers["location"])["status"] == "confirmed"
    state = client.get("/v1/lots/KOL-HOSTED-1", headers=reader).json()
    assert state["remaining_grams"] == 5_000_000


def test_hosted_signing_needs_the_token_of_that_key(
    client: TestClient, hosted: dict[str, str], reader: dict[str, str]
) -> None:
    body = {"type": "Receive", "message": {"lot": "0x" + "ab" * 32}}

    other_key = problem(
        client.post("/v1/hosted/kokkola/operations", json=body, headers=hosted), 403
    )
    read_only = problem(
        client.post("/v1/hosted/kolwezi/operations", json=body, headers=reader), 403
    )
    no_token = problem(client.post("/v1/hosted/kolwezi/operations", json=body), 401)

    assert "kolwezi" in other_key["detail"] and "read token" in read_only["detail"]
    assert no_token["errors"][0]["field"] == "Authorization"


def test_hosted_operations_are_checked_like_signed_ones(
    client: TestClient, hosted: dict[str, str]
) -> None:
    ship_unheld = {
        "type": "Ship",
        "message": {"lot": "0x" + parse_id("SUL-1").hex(), "recipient": "0x" + "12" * 20},
    }
    typo = {"type": "Commission", "message": {"lot": "0x" + "cd" * 32, "quantiti": 5}}

    not_held = problem(
        client.post("/v1/hosted/kolwezi/operations", json=ship_unheld, headers=hosted), 422
    )
    unknown_field = problem(
        client.post("/v1/hosted/kolwezi/operations", json=typo, headers=hosted), 422
    )

    assert not_held["errors"][0]["field"] == "lot" and "held by" in not_held["detail"]
    assert unknown_field["errors"][0]["field"] == "message.quantiti"
    assert "quantity" in unknown_field["detail"]


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_report_latency_by_route_queue_and_index_lag(
    client: TestClient, reader: dict[str, str]
) -> None:
    client.get("/v1/lots/SUL-1", headers=reader)
    text = client.get("/metrics", headers=reader).text

    assert 'mine2cell_http_request_duration_seconds_count{method="GET",route="/v1/lots/{lot}"' in (
        text
    )
    assert 'mine2cell_relay_operations{state="confirmed"}' in text
    assert (
        "mine2cell_index_lag_blocks " in text and "mine2cell_relay_batch_operations_bucket" in text
    )
    assert "SUL-1" not in text  # ids never become label values


# -- CORS ------------------------------------------------------------------------------------------


def preflight(client: TestClient, origin: str) -> Any:
    return client.options(
        "/v1/passports/PASS-1/summary",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )


def test_cors_is_closed_by_default(client: TestClient) -> None:
    response = preflight(client, "https://portal.example")

    assert "access-control-allow-origin" not in response.headers


@pytest.fixture
def open_to_portal(template: Template, tmp_path: Path) -> Iterator[TestClient]:
    data_dir = tmp_path / "data"
    shutil.copytree(template.data_dir, data_dir)
    settings = Settings(
        data_dir=data_dir,
        rpc_url=None,
        ledger_address=template.ledger,
        cors_origins="https://portal.example",
    )
    with TestClient(create_app(settings, passphrase=lambda: PASSPHRASE)) as client:
        yield client


def test_cors_admits_only_the_named_origins(open_to_portal: TestClient) -> None:
    allowed = preflight(open_to_portal, "https://portal.example")
    other = preflight(open_to_portal, "https://elsewhere.example")

    assert allowed.headers["access-control-allow-origin"] == "https://portal.example"
    assert "access-control-allow-origin" not in other.headers


# -- a service without the relayer's key -----------------------------------------------------------


@pytest.fixture
def read_only(template: Template, tmp_path: Path) -> Iterator[TestClient]:
    """The recorded chain served from a data directory without the relayer's key file, as a
    reader's replica or a demo's data directory is."""
    data_dir = tmp_path / "data"
    shutil.copytree(template.data_dir, data_dir)
    (data_dir / "keys" / "relayer.json").unlink()
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=template.ledger)

    def no_passphrase() -> str:
        raise AssertionError("a read-only service must not ask for a passphrase")

    with TestClient(create_app(settings, passphrase=no_passphrase)) as client:
        yield client


def test_without_the_relayer_key_the_service_serves_reads_and_refuses_writes(
    read_only: TestClient,
) -> None:
    summary = read_only.get("/v1/passports/PASS-1/summary")
    refused = problem(read_only.post("/v1/operations", json={"type": "Ship"}), 503)

    assert summary.status_code == 200
    assert read_only.get("/v1/ready").json()["relaying"] is False
    assert "reads only" in refused["detail"]
