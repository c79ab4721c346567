"""`mine2cell audit` as an auditor runs it: verify a passport on the embedded node, write the JSON
and HTML reports, compare with the service's report, attest, and check a report file against the
attestations on the ledger."""

from __future__ import annotations

import functools
import json
import shutil
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_utils import keccak

from mine2cell.codes import Feedstock, Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.relay.outbox import State
from mine2cell.service import Service
from mine2cell.signing.eip712 import Input, LotId, Output, text32
from tests.e2e.cli_support import PASSPHRASE, Cli, make_keys

pytestmark = pytest.mark.anvil

KEYS = ("governor", "relayer", "kolwezi", "kokkola", "skelleftea", "auditor")
YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Template:
    data_dir: Path
    ledger: str


def _record(data_dir: Path) -> Template:
    """Ore mined, refined and bound to passport PASS-1; everyone accredited and certified."""
    make_keys(data_dir, KEYS)
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=None)
    with Service(settings, passphrase=lambda: PASSPHRASE) as service:

        def settle(*accepted: object) -> None:
            ids = [a.event_id for a in accepted]  # type: ignore[attr-defined]
            statuses = service.settle(ids)
            assert all(statuses[i].state is State.CONFIRMED for i in ids), statuses

        governor = service.client("governor")
        members = [
            ("kolwezi", Role.MINE, "CD-KOLWEZI-1", "CD"),
            ("kokkola", Role.PROCESSOR, "FI-KOKKOLA", "FI"),
            ("skelleftea", Role.CELL_MAKER, "SE-SKELLEFTEA", "SE"),
            ("auditor", Role.AUDITOR, "BE-ANTWERP-AUDIT", "BE"),
        ]
        settle(
            *(
                governor.accredit(service.account(n), roles=r, facility=text32(f), country=c)
                for n, r, f, c in members
            )
        )
        settle(
            *(
                governor.certify(
                    service.account(n),
                    scheme=text32("RMAP"),
                    valid_until=int(time.time()) + YEAR,
                    document_hash=bytes(32),
                )
                for n, *_ in members[:3]
            )
        )
        mine, refiner = service.client("kolwezi"), service.client("kokkola")
        cells = service.client("skelleftea")
        ore, sulfate = LotId(parse_id("KOL-1")), LotId(parse_id("SUL-1"))
        settle(
            mine.commission(
                ore,
                material=material("co-hydroxide").code,
                quantity=12_000_000,
                feedstock=Feedstock.PRIMARY,
                footprint=9_600_000,
            )
        )
        settle(mine.ship(ore, service.account("kokkola")))
        settle(refiner.receive(ore))
        settle(
            refiner.transform(
                [Input(ore, 12_000_000)],
                [Output(sulfate, material("co-sulfate").code, 20_000_000)],
                footprint=31_000_000,
            )
        )
        settle(refiner.ship(sulfate, service.account("skelleftea")))
        settle(cells.receive(sulfate))
        settle(
            cells.bind_passport(
                parse_id("PASS-1", "passport"), [Input(sulfate, 45_000)], footprint=610_000
            )
        )
        return Template(data_dir, service.ledger.address)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return _record(tmp_path_factory.mktemp("audit-template") / "data")


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
