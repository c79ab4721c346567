"""The passport page over a real service (the embedded anvil node, the index in SQLite): the
public tier shows shares and verdicts and never a facility, lot, mass, account or transaction; a
read token adds them, with the evidence of every event; errors are pages for people."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mine2cell.ids import parse_id
from mine2cell.signing.eip712 import text32
from tests.web.conftest import REPORT_HASH

pytestmark = pytest.mark.anvil

FACILITIES = ("CD-KOLWEZI-1", "FI-KOKKOLA", "SE-SKELLEFTEA", "BE-ANTWERP-AUDIT")
LOTS = ("KOL-1", "SUL-1")
PAGE = "/passports/PASS-1"


@pytest.fixture(scope="module")
def report(client: TestClient, reader: dict[str, str]) -> dict[str, Any]:
    """The JSON report the page is drawn from (detail tier)."""
    body: dict[str, Any] = client.get("/v1/passports/PASS-1/provenance", headers=reader).json()
    return body


@pytest.fixture(scope="module")
def public(client: TestClient) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page: str = response.text
    return page


@pytest.fixture(scope="module")
def detail(client: TestClient, reader: dict[str, str]) -> str:
    response = client.get(PAGE, headers=reader)
    assert response.status_code == 200, response.text
    page: str = response.text
    return page


def svgs(page: str) -> dict[str, ET.Element]:
    """Every inline SVG of the page, parsed as XML (so each is well formed), by its class."""
    found: dict[str, ET.Element] = {}
    for match in re.finditer(r"<svg\b.*?</svg>", page, re.S):
        element = ET.fromstring(match.group(0))
        found.setdefault(element.get("class", ""), element)
    return found


def evidence_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    dag = report["dag"]
    events = [lot["event"] for lot in dag["lots"]] + [step["event"] for step in dag["steps"]]
    return events + [a["event"] for a in report["attestations"]]


def test_the_public_page_puts_the_verdict_and_summary_first(public: str) -> None:
    order = [public.index(f'id="{part}"') for part in ("verdict", "materials", "provenance")]

    assert order == sorted(order)
    assert "Audit passed" in public and "1 due-diligence flag" in public
    assert "DR Congo (CD)" in public and "Cobalt" in public and "Annex X" in public
    assert "701.350" in public  # kg CO2e: 12 t * 9.6 t CO2e ... as the report rounds it


def test_the_public_page_draws_the_charts_the_graph_and_the_qr_code(public: str) -> None:
    found = svgs(public)

    assert {"chart", "stack", "graph", "qr"} <= set(found)
    graph = found["graph"]
    texts = {"".join(t.itertext()) for t in graph.iter("text")}
    assert {"Cobalt hydroxide", "Mined in DR Congo (CD)", "Battery", "100.0 %"} <= texts


def test_the_public_page_shows_no_facility_lot_mass_account_or_transaction(
    public: str, report: dict[str, Any]
) -> None:
    for name in FACILITIES + LOTS:
        assert name not in public
    ids = [lot["lot"]["id"] for lot in report["dag"]["lots"]]
    ids += ["0x" + text32(name).hex() for name in FACILITIES]
    ids += [event["tx_hash"] for event in evidence_of(report)]
    ids += [event["event_id"] for event in evidence_of(report)]
    for value in ids:
        assert value.lower() not in public.lower()
    assert (
        re.search(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])", public.replace(ledger(public), "")) is None
    )
    masses = re.findall(r"\d[\d,.]*\s?(?:t|kg|g)\b(?!\s*CO)", public.replace("&nbsp;", " "))
    assert masses == []


def ledger(page: str) -> str:
    """The ledger's contract address, which the footer names (the one address the public sees)."""
    found = re.search(r"Recorded on the ledger (0x[0-9a-fA-F]{40})", page)
    assert found is not None
    return found.group(1)


def test_the_public_page_names_the_audit_by_its_report_hash(public: str) -> None:
    assert "0x" + REPORT_HASH.hex() in public
    assert "named in the detail view" in public


def test_the_detail_page_needs_a_read_token(client: TestClient) -> None:
    forged = {"Authorization": "Bearer m2c_00000000_" + "A" * 43}

    page = client.get(PAGE, headers=forged).text

    assert "Public view" in page and "FI-KOKKOLA" not in page


def test_a_read_token_in_the_cookie_shows_the_detail(client: TestClient, read_token: str) -> None:
    client.cookies.set("mine2cell_token", read_token)
    try:
        page = client.get(PAGE).text
    finally:
        client.cookies.clear()

    assert "Detail view" in page and "CD-KOLWEZI-1" in page


def test_a_token_link_moves_the_token_into_a_cookie_and_reloads_without_it(
    client: TestClient, read_token: str
) -> None:
    try:
        response = client.get(PAGE, params={"token": read_token}, follow_redirects=False)
        cookie = response.headers["set-cookie"]
        page = client.get(response.headers["location"]).text  # the client keeps the cookie
    finally:
        client.cookies.clear()

    assert response.status_code == 303
    assert response.headers["location"] == "http://testserver/passports/PASS-1"
    assert cookie.startswith(f"mine2cell_token={read_token};")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Detail view" in page


def test_a_link_with_a_token_that_is_not_valid_is_a_401_page(client: TestClient) -> None:
    response = client.get(PAGE, params={"token": "m2c_0000_nope"}, follow_redirects=False)

    page = problem_page(response, 401)
    assert "Link not valid" in page and "set-cookie" not in response.headers


def test_the_detail_page_shows_facilities_grams_and_every_events_evidence(
    detail: str, report: dict[str, Any]
) -> None:
    assert "Detail view" in detail
    for name in ("CD-KOLWEZI-1", "FI-KOKKOLA", "SE-SKELLEFTEA", "BE-ANTWERP-AUDIT"):
        assert name in detail
    for event in evidence_of(report):
        assert event["tx_hash"] in detail
        assert f"block {event['block_number']}" in detail or f">{event['block_number']}<" in detail
    for flag in report["flags"]:
        assert flag["message"] in detail


def test_the_detail_graph_links_every_lot_and_labels_every_edge_with_its_mass(
    detail: str, report: dict[str, Any]
) -> None:
    graph = svgs(detail)["graph"]
    links = {a.get("href") for a in graph.iter("a")}
    labels = [
        "".join(text.itertext())
        for group in graph.iter("g")
        if group.get("class") == "flow-labels"
        for text in group.iter("text")
    ]

    for lot in report["dag"]["lots"]:
        assert f"http://testserver/v1/lots/{lot['lot']['id']}" in links
    # KOL-1 -> refining: 12 t consumed; refining -> SUL-1: 20 t produced; SUL-1 -> PASS-1: 45 kg.
    assert sorted(labels) == ["12 t", "20 t", "45 kg"]


def test_a_lot_link_of_the_detail_graph_answers(
    client: TestClient, reader: dict[str, str], report: dict[str, Any]
) -> None:
    lot = report["dag"]["lots"][0]["lot"]["id"]

    assert client.get(f"/v1/lots/{lot}", headers=reader).json()["lot"]["id"] == lot


def test_the_detail_page_names_the_auditor_and_the_attestation_transaction(
    detail: str, report: dict[str, Any]
) -> None:
    attestation = report["attestations"][-1]

    assert attestation["event"]["actor"] in detail
    assert attestation["event"]["tx_hash"] in detail
    assert "0x" + REPORT_HASH.hex() in detail


def test_the_page_of_a_hex_id_is_the_page_of_its_number(client: TestClient) -> None:
    hex_id = "0x" + parse_id("PASS-1", "passport").hex()

    page = client.get(f"/passports/{hex_id}").text

    assert "http://testserver/passports/PASS-1" in page


def problem_page(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    text: str = response.text
    return text


def test_an_unknown_passport_is_a_404_page(client: TestClient) -> None:
    page = problem_page(client.get("/passports/PASS-404"), 404)

    assert "Passport not found" in page
    assert "No battery passport PASS-404 is bound on this ledger" in page


def test_a_malformed_passport_id_is_a_422_page(client: TestClient) -> None:
    page = problem_page(client.get("/passports/0x" + "a" * 63), 422)

    assert "Not a passport id" in page and "has 63 digits; an id has 64" in page


def test_an_overlong_passport_id_is_a_422_page(client: TestClient) -> None:
    page = problem_page(client.get("/passports/" + "x" * 201), 422)

    assert "at most 200 characters" in page


def test_the_error_pages_escape_what_the_caller_sent(client: TestClient) -> None:
    page = problem_page(client.get("/passports/<img src=x onerror=alert(1)>"), 404)

    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
