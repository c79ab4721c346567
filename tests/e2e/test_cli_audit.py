"""`mine2cell audit` as an auditor runs it: verify a passport on the embedded node, write the JSON
and HTML reports, compare with the service's report, attest, and check a report file against the
attestations on the ledger."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_utils import keccak

from tests.e2e.cli_support import Cli
from tests.recorded import Template, record_chain

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return record_chain(tmp_path_factory.mktemp("audit-template") / "data")


@pytest.fixture
def cli(template: Template, tmp_path: Path) -> Cli:
    data_dir = tmp_path / "data"
    shutil.copytree(template.data_dir, data_dir)
    return Cli(data_dir)


def test_verify_passes_and_writes_the_json_and_html_reports(cli: Cli, tmp_path: Path) -> None:
    report, page = tmp_path / "audit.json", tmp_path / "audit.html"

    lines = cli("audit", "verify", "PASS-1", "--report", str(report), "--html", str(page)).lines()

    assert lines[-2].startswith("Verdict: PASS")
    body = report.read_bytes()
    assert f"{report} (keccak256 0x{keccak(body).hex()})" in lines[-1]
    document = json.loads(body)
    assert (document["schema"], document["verdict"]) == ("mine2cell.audit/1", "pass")
    assert document["provenance"]["grams_bound"] == 45_000
    html = page.read_text()
    assert html.index("PASS") < html.index("Ledger code") and "0x" + keccak(body).hex() in html


def test_verify_writes_its_reports_in_the_data_directory_by_default(cli: Cli) -> None:
    cli("audit", "verify", "PASS-1").ok()

    written = sorted(p.suffix for p in (cli.data_dir / "audits").iterdir())
    assert written == [".html", ".json"]


def test_verify_agrees_with_the_services_report(cli: Cli, tmp_path: Path) -> None:
    served = tmp_path / "served.json"
    served.write_text(cli("passport", "show", "PASS-1", "--json").stdout)

    document = cli("audit", "verify", "PASS-1", "--compare", str(served), "--json").json()

    comparison = next(c for c in document["checks"] if c["id"] == "comparison")
    assert comparison["passed"] and comparison["checked"] > 50


def test_verify_reads_the_report_to_compare_from_a_url(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "served.json").write_text(cli("passport", "show", "PASS-1", "--json").stdout)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/served.json"
        try:
            document = cli("audit", "verify", "PASS-1", "--compare", url, "--json").json()
        finally:
            server.shutdown()

    assert document["parameters"]["compared_with"] == url
    assert next(c for c in document["checks"] if c["id"] == "comparison")["passed"]


def test_verify_fails_on_a_report_that_differs_and_names_the_field(
    cli: Cli, tmp_path: Path
) -> None:
    served = cli("passport", "show", "PASS-1", "--json").json()
    served["grams_bound"] = 50_000
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(served))

    result = cli("audit", "verify", "PASS-1", "--compare", str(tampered))

    assert result.returncode == 1, result.explain()
    assert "grams_bound: service 50000, chain 45000" in result.stdout
    assert "Verdict: FAIL — Service report" in result.stdout


def test_attest_records_the_reports_hash_and_show_checks_the_file(cli: Cli, tmp_path: Path) -> None:
    report = tmp_path / "audit.json"
    cli("audit", "verify", "PASS-1", "--report", str(report), "--attest", "--as", "auditor").ok()
    digest = "0x" + keccak(report.read_bytes()).hex()

    shown = cli("audit", "show", "PASS-1", "--report", str(report), "--json").json()

    (attestation,) = shown["attestations"]
    assert (attestation["verdict"], attestation["report_hash"]) == ("pass", digest)
    assert shown["report"]["attested_by"] == [attestation]


def test_show_refuses_a_report_file_no_attestation_recorded(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text("{}")

    result = cli("audit", "show", "PASS-1", "--report", str(other))

    assert result.returncode == 1, result.explain()
    assert "matches no attestation of this passport" in result.stdout


def test_verify_of_an_unbound_passport_is_refused(cli: Cli) -> None:
    line = cli("audit", "verify", "PASS-404").refusal()

    assert "passport PASS-404 is not bound on the ledger" in line


def test_attest_without_a_key_is_refused(cli: Cli) -> None:
    line = cli("audit", "verify", "PASS-1", "--attest").refusal()

    assert "--attest needs --as KEY" in line
