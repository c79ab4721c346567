"""The request guard in front of every route: bodies over the size limit are refused with a 413
problem (declared or streamed), writes over a client's rate limit with a 429 problem and
Retry-After; a refused request is never acknowledged, reads are never rate limited, and each
client address has its own allowance."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mine2cell.api.app import create_app
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import Domain, LotId, Ship, sign
from mine2cell.signing.keystore import Keystore
from tests.api.support import problem
from tests.e2e.cli_support import PASSPHRASE
from tests.recorded import Template

pytestmark = pytest.mark.anvil

MAX_BYTES = 4096
WRITES_PER_MINUTE = 5


@pytest.fixture(scope="module")
def guarded(template: Template, data_dir: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=data_dir,
        rpc_url=None,
        ledger_address=template.ledger,
        max_request_bytes=MAX_BYTES,
        write_rate_limit=f"{WRITES_PER_MINUTE}/minute",
    )
    with TestClient(create_app(settings, passphrase=lambda: PASSPHRASE)) as test_client:
        yield test_client


def client_at(guarded: TestClient, address: str) -> TestClient:
    """Another client address on the same app (the app and its limiter are shared)."""
    other = TestClient(guarded.app, client=(address, 50000))
    return other


def ship_document(template: Template, guarded: TestClient, nonce: int) -> dict[str, Any]:
    keystore = Keystore(template.data_dir / "keys")
    cells = keystore.signer("skelleftea", PASSPHRASE)
    kokkola = keystore.entry("kokkola").address
    ready = guarded.get("/v1/ready").json()
    domain = Domain(ready["chain_id"], ready["ledger"])
    op = Ship(cells.address, nonce, int(time.time()) + 600, LotId(parse_id("SUL-1")), kokkola)
    return to_document(sign(op, cells, domain))


def test_a_body_declared_larger_than_the_limit_is_a_413_problem_naming_the_body(
    guarded: TestClient,
) -> None:
    other = client_at(guarded, "10.0.0.1")
    body = b'{"type": "Ship", "pad": "' + b"x" * MAX_BYTES + b'"}'

    response = other.post(
        "/v1/operations", content=body, headers={"Content-Type": "application/json"}
    )

    refused = problem(response, 413)
    assert refused["errors"] == [{"field": "body", "message": refused["detail"]}]
    assert f"Content-Length is {len(body)} bytes" in refused["detail"]
    assert f"at most {MAX_BYTES} bytes" in refused["detail"]
    assert "MINE2CELL_MAX_REQUEST_BYTES" in refused["detail"]


def test_a_streamed_body_without_length_is_refused_once_past_the_limit(
    guarded: TestClient,
) -> None:
    other = client_at(guarded, "10.0.0.2")

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 64 KiB in all, 16 times the limit, with no Content-Length
            yield b" " * 1024

    response = other.post(
        "/v1/operations", content=chunks(), headers={"Content-Type": "application/json"}
    )

    refused = problem(response, 413)
    assert "the body sent is longer" in refused["detail"]
    assert response.headers["connection"] == "close"


def test_a_body_within_the_limit_reaches_the_route(guarded: TestClient) -> None:
    other = client_at(guarded, "10.0.0.3")
    body = b'{"type": "Ship", "pad": "' + b"x" * (MAX_BYTES - 40) + b'"}'
    assert len(body) <= MAX_BYTES

    refused = problem(
        other.post("/v1/operations", content=body, headers={"Content-Type": "application/json"}),
        422,
    )

    assert refused["type"].endswith("/invalid-input") or refused["type"].endswith(
        "/invalid-request"
    )


def test_writes_over_the_rate_limit_are_429_problems_and_never_acknowledged(
    guarded: TestClient, template: Template
) -> None:
    writer = client_at(guarded, "10.0.0.4")
    for _ in range(WRITES_PER_MINUTE):
        problem(writer.post("/v1/operations", json={"type": "Ship"}), 422)
    document = ship_document(template, guarded, nonce=4242)

    response = writer.post("/v1/operations", json=document)

    refused = problem(response, 429)
    assert refused["errors"][0]["field"] == "request"
    assert f"over its limit of {WRITES_PER_MINUTE} writes per minute" in refused["detail"]
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= 60 and f"retry in {wait} s" in refused["detail"]
    # The signed operation refused by the limit was not taken: it is unknown to the service.
    problem(writer.get(f"/v1/operations/{document['eventId']}"), 404)


def test_reads_are_not_rate_limited(guarded: TestClient) -> None:
    reader = client_at(guarded, "10.0.0.5")
    for _ in range(WRITES_PER_MINUTE):
        reader.post("/v1/operations", json={})
    problem(reader.post("/v1/operations", json={}), 429)

    for _ in range(3 * WRITES_PER_MINUTE):
        assert reader.get("/v1/passports/PASS-1/summary").status_code == 200


def test_each_client_address_has_its_own_allowance(guarded: TestClient, template: Template) -> None:
    busy, other = client_at(guarded, "10.0.0.6"), client_at(guarded, "10.0.0.7")
    for _ in range(WRITES_PER_MINUTE):
        busy.post("/v1/operations", json={})
    problem(busy.post("/v1/operations", json={}), 429)

    response = other.post("/v1/operations", json=ship_document(template, guarded, nonce=4243))

    assert response.status_code == 202, response.text


def test_a_rate_limit_that_cannot_be_read_is_refused_with_the_notation_to_use() -> None:
    with pytest.raises(ValueError, match=r"write it as 100/second;3000/minute"):
        Settings(write_rate_limit="a hundred a second")
