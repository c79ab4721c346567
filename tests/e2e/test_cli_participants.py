"""The participants' commands as a participant runs them: the installed console script in a
subprocess, on the embedded node (started by each command, its state kept in the data
directory), with the passphrase in the environment and no terminal to prompt on.

Every command starts a node, so most tests start from a copy of one prepared data directory
(the template: a ledger, accredited participants and a few lots, built once per worker through
the same Service the commands use) and run only the commands whose behaviour they check. The
full walk from mine to passport runs on a fresh directory, where the first command deploys the
ledger.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_typing import ChecksumAddress
from eth_utils import keccak

from mine2cell.chain.deployment import Deployment
from mine2cell.chain.node import DEV_CHAIN_ID
from mine2cell.codes import Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.relay.outbox import Accepted, Outbox, State
from mine2cell.service import Service
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import Commission, Domain, LocalSigner, LotId, sign, text32
from mine2cell.signing.keystore import Keystore
from tests.e2e import cli_support
from tests.e2e.cli_support import PASSPHRASE

pytestmark = pytest.mark.anvil

KEY_NAMES = ("governor", "relayer", "kolwezi", "kokkola", "skelleftea")
CO_HYDROXIDE = material("co-hydroxide").code
# A participant whose key never enters the data directory: it signs documents for `submit`.
OUTSIDER = LocalSigner(keccak(text="mine2cell e2e outside signer"))

_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_DEPLOYED = "deployed the ledger at"


@dataclass(frozen=True)
class Cli(cli_support.Cli):
    """The console script on one data directory, with what these tests read beside it."""

    def address(self, key_name: str) -> ChecksumAddress:
        return Keystore(self.data_dir / "keys").entry(key_name).address

    def ledger_address(self) -> ChecksumAddress:
        record = Deployment.load(self.data_dir, DEV_CHAIN_ID)
        assert record is not None, f"no deployment record in {self.data_dir}"
        return record.address

    def recorded_operations(self) -> int:
        """How many operations the outbox holds, whatever their state: what commands recorded."""
        settings = Settings(data_dir=self.data_dir, rpc_url=None, ledger_address=None)
        path = settings.ledger_dir(DEV_CHAIN_ID, self.ledger_address()) / "outbox.sqlite"
        outbox = Outbox(path)
        try:
            return sum(outbox.counts().values())
        finally:
            outbox.close()


def make_keys(data_dir: Path) -> None:
    cli_support.make_keys(data_dir, KEY_NAMES)


# -- the template: a ledger with participants and lots ----------------------------------------


@dataclass(frozen=True)
class Template:
    data_dir: Path
    ledger: ChecksumAddress
    operations: int
    ship_event: str  # a confirmed Ship, as 0x hex


IN_TRANSIT = "TRANSIT-1"  # 4 t of cobalt hydroxide, shipped by kolwezi to kokkola
HELD = "HELD-1"  # 5 t of cobalt hydroxide, received by kokkola


def _settle(service: Service, accepted: Sequence[Accepted]) -> None:
    statuses = service.settle([a.event_id for a in accepted])
    states = {status.kind: status.state for status in statuses.values()}
    assert all(state is State.CONFIRMED for state in states.values()), states


def _build_template(data_dir: Path) -> Template:
    make_keys(data_dir)
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=None)
    with Service(settings, passphrase=lambda: PASSPHRASE) as service:
        governor = service.client("governor")
        cast = [
            (service.account("kolwezi"), Role.MINE, "CD-KOLWEZI-1", "CD"),
            (service.account("kokkola"), Role.PROCESSOR, "FI-KOKKOLA", "FI"),
            (service.account("skelleftea"), Role.CELL_MAKER, "SE-SKELLEFTEA", "SE"),
            (OUTSIDER.address, Role.MINE, "AU-MURRIN", "AU"),
        ]
        accredits = [
            governor.accredit(who, roles=roles, facility=text32(site), country=country)
            for who, roles, site, country in cast
        ]
        _settle(service, accredits)
        mine = service.client("kolwezi")
        commissions = [
            mine.commission(parse_id(IN_TRANSIT), material=CO_HYDROXIDE, quantity=4_000_000),
            mine.commission(parse_id(HELD), material=CO_HYDROXIDE, quantity=5_000_000),
        ]
        _settle(service, commissions)
        refinery = service.account("kokkola")
        ships = [mine.ship(parse_id(IN_TRANSIT), refinery), mine.ship(parse_id(HELD), refinery)]
        _settle(service, ships)
        receives = [service.client("kokkola").receive(parse_id(HELD))]
        _settle(service, receives)
        return Template(
            data_dir=data_dir,
            ledger=service.ledger.address,
            operations=len(accredits) + len(commissions) + len(ships) + len(receives),
            ship_event="0x" + ships[0].event_id.hex(),
        )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return _build_template(tmp_path_factory.mktemp("template") / "data")


@pytest.fixture
def cli(template: Template, tmp_path: Path) -> Cli:
    """The console script on this test's own copy of the template."""
    data_dir = tmp_path / "data"
    shutil.copytree(template.data_dir, data_dir)
    return Cli(data_dir)


@pytest.fixture
def fresh_cli(tmp_path: Path) -> Cli:
    """The console script on a data directory with keys only: no node state, no ledger yet."""
    data_dir = tmp_path / "data"
    make_keys(data_dir)
    return Cli(data_dir)


# -- the walk from mine to passport -----------------------------------------------------------


def test_participants_record_a_lot_from_mine_to_passport_each_step_confirmed(
    fresh_cli: Cli,
) -> None:
    run = fresh_cli
    first = run(
        "participant", "accredit", "kolwezi", "--roles", "mine",
        "--facility", "CD-KOLWEZI-1", "--country", "CD",
    ).confirmed("Accredit")  # fmt: skip
    assert _DEPLOYED in first.stderr, first.explain()
    ledger = run.ledger_address()
    assert ledger in first.stderr, first.explain()

    steps = [
        run(
            "participant", "accredit", "kokkola", "--roles", "processor",
            "--facility", "FI-KOKKOLA", "--country", "FI",
        ).confirmed("Accredit"),
        run(
            "participant", "accredit", "skelleftea", "--roles", "cell-maker",
            "--facility", "SE-SKELLEFTEA", "--country", "SE",
        ).confirmed("Accredit"),
        run(
            "participant", "certify", "kokkola", "--scheme", "RMAP", "--valid-until", "2031-12-31",
        ).confirmed("Certify"),
        run(
            "lot", "commission", "KOL-1", "--as", "kolwezi", "--material", "co-hydroxide",
            "--quantity", "12.5t", "--footprint", "9.6t",
        ).confirmed("Commission"),
    ]  # fmt: skip

    commissioned = run("lot", "show", "KOL-1", "--json").json()
    assert commissioned["remainingGrams"] == 12_500_000, commissioned
    assert commissioned["custodian"] == run.address("kolwezi"), commissioned
    assert commissioned["material"] == CO_HYDROXIDE, commissioned

    ship = run("lot", "ship", "KOL-1", "--to", "kokkola", "--as", "kolwezi", "--json")
    shipped = ship.json()
    assert shipped["status"] == "confirmed", shipped
    assert shipped["type"] == "Ship", shipped
    assert re.fullmatch(r"0x[0-9a-f]{64}", shipped["txHash"]), shipped
    assert isinstance(shipped["blockNumber"], int) and shipped["blockNumber"] > 0, shipped

    steps += [
        run("lot", "receive", "KOL-1", "--as", "kokkola").confirmed("Receive"),
        run(
            "lot", "transform", "--as", "kokkola", "--in", "KOL-1=12t",
            "--out", "SUL-1=co-sulfate:7t", "--out", "SUL-2=co-sulfate:5t",
        ).confirmed("Transform"),
    ]  # fmt: skip

    refined = run("lot", "show", "KOL-1", "--json").json()
    assert refined["remainingGrams"] == 500_000, refined  # 12.5 t - 12 t
    assert refined["custodian"] == run.address("kokkola"), refined

    steps += [
        run("lot", "ship", "SUL-1", "--to", "skelleftea", "--as", "kokkola").confirmed("Ship"),
        run("lot", "receive", "SUL-1", "--as", "skelleftea").confirmed("Receive"),
    ]
    bound = run("passport", "bind", "PASS-1", "--as", "skelleftea", "--in", "SUL-1=2t", "--json")
    assert bound.json()["status"] == "confirmed", bound.explain()

    sulfate = run("lot", "show", "SUL-1", "--json").json()
    assert sulfate["remainingGrams"] == 5_000_000, sulfate  # 7 t from the split, 2 t bound
    assert sulfate["custodian"] == run.address("skelleftea"), sulfate

    # Only the first command deployed: every later one found the remembered ledger.
    later = [*steps, ship, bound]
    assert [r.command for r in later if _DEPLOYED in r.stderr] == []
    assert run.ledger_address() == ledger


def test_commands_after_the_node_stopped_reuse_the_remembered_ledger_and_see_its_lots(
    cli: Cli, template: Template
) -> None:
    record = Deployment.path(cli.data_dir, DEV_CHAIN_ID)
    before = record.read_bytes()

    commissioned = cli(
        "lot", "commission", "KEEP-1", "--as", "kolwezi", "--material", "co-hydroxide",
        "--quantity", "3t",
    ).confirmed("Commission")  # fmt: skip
    shown = cli("lot", "show", "KEEP-1", "--json")

    assert shown.json()["remainingGrams"] == 3_000_000
    for result in (commissioned, shown):
        assert _DEPLOYED not in result.stderr, result.explain()
    assert record.read_bytes() == before
    assert cli.ledger_address() == template.ledger


# -- refused commands: one line on stderr, exit code 1, nothing recorded ------------------------


def _refused(cli: Cli, *args: str) -> str:
    before = cli.recorded_operations()
    line = cli(*args).error_line()
    assert cli.recorded_operations() == before, f"`{' '.join(args)}` recorded an operation"
    return line


def test_commission_with_a_misspelt_unit_is_refused(cli: Cli) -> None:
    line = _refused(
        cli, "lot", "commission", "NEW-1", "--as", "kolwezi", "--material", "co-hydroxide",
        "--quantity", "5tt",
    )  # fmt: skip
    assert line.startswith("error: quantity:") and "5tt" in line, line


def test_commission_of_an_unknown_material_is_refused(cli: Cli) -> None:
    line = _refused(
        cli, "lot", "commission", "NEW-1", "--as", "kolwezi", "--material", "unobtainium",
        "--quantity", "5t",
    )  # fmt: skip
    assert line.startswith("error: material:") and "unobtainium" in line, line


def test_shipping_a_lot_in_transit_is_refused(cli: Cli) -> None:
    line = _refused(cli, "lot", "ship", IN_TRANSIT, "--to", "skelleftea", "--as", "kolwezi")
    assert "in transit" in line, line


def test_receiving_a_lot_shipped_to_another_participant_is_refused(cli: Cli) -> None:
    line = _refused(cli, "lot", "receive", IN_TRANSIT, "--as", "skelleftea")
    assert f"shipped to {cli.address('kokkola')}" in line, line


def test_transform_consuming_more_than_the_lot_holds_is_refused(cli: Cli) -> None:
    line = _refused(
        cli, "lot", "transform", "--as", "kokkola", "--in", f"{HELD}=6t",
        "--out", "SUL-9=co-sulfate:5t",
    )  # fmt: skip
    assert line.startswith("error: inputs:") and "fewer than the 6 t asked" in line, line


def test_accredit_with_an_unknown_role_is_refused(cli: Cli) -> None:
    line = _refused(
        cli, "participant", "accredit", "skelleftea", "--roles", "cell-maker,wizard",
        "--facility", "SE-SKELLEFTEA", "--country", "SE",
    )  # fmt: skip
    assert line.startswith("error: roles:") and "'wizard'" in line, line


def test_signing_with_an_unknown_key_name_is_refused(cli: Cli) -> None:
    line = _refused(
        cli, "lot", "commission", "NEW-1", "--as", "nobody", "--material", "co-hydroxide",
        "--quantity", "5t",
    )  # fmt: skip
    assert "no key named 'nobody'" in line, line


def test_status_of_a_malformed_event_id_is_refused(cli: Cli) -> None:
    line = _refused(cli, "status", "0x1234")
    assert line.startswith("error: event id:"), line


# -- status ----------------------------------------------------------------------------------


def test_status_of_an_event_reports_its_block_and_confirmations(
    cli: Cli, template: Template
) -> None:
    result = cli("status", template.ship_event).ok()

    pattern = rf"confirmed\s+Ship\s+event {template.ship_event}\s+block \d+ \(\d+ confirmations?\)"
    assert re.match(pattern, result.stdout), result.explain()


def test_status_json_of_an_event_reports_its_block_and_confirmations(
    cli: Cli, template: Template
) -> None:
    status = cli("status", template.ship_event, "--json").json()

    assert status["eventId"] == template.ship_event
    assert status["status"] == "confirmed"
    assert isinstance(status["blockNumber"], int) and status["blockNumber"] > 0, status
    assert status["confirmations"] >= 1, status


def test_status_without_an_event_id_counts_the_operations_by_state(
    cli: Cli, template: Template
) -> None:
    result = cli("status").ok()

    counts = f"pending 0  submitted 0  confirmed {template.operations}  rejected 0"
    assert counts in result.stdout.splitlines(), result.explain()
    assert f"ledger {template.ledger} on chain {DEV_CHAIN_ID}" in result.stdout, result.explain()


def test_no_wait_returns_once_queued_and_a_later_command_confirms_it(cli: Cli) -> None:
    queued = cli(
        "lot", "commission", "LATER-1", "--as", "kolwezi", "--material", "co-hydroxide",
        "--quantity", "1t", "--no-wait", "--json",
    ).json()  # fmt: skip
    assert queued["status"] in ("pending", "submitted", "confirmed"), queued

    cli(
        "lot", "commission", "LATER-2", "--as", "kolwezi", "--material", "co-hydroxide",
        "--quantity", "1t",
    ).confirmed("Commission")  # fmt: skip
    later = cli("status", queued["eventId"], "--json").json()

    assert later["status"] == "confirmed", later
    assert isinstance(later["blockNumber"], int), later


# -- submit: operations signed elsewhere ------------------------------------------------------


def _signed_elsewhere(cli: Cli, path: Path, *, chain_id: int = DEV_CHAIN_ID) -> dict[str, Any]:
    """A Commission by the outsider, signed without the CLI for the data directory's ledger (on
    ``chain_id``), written to ``path`` as a signed-operation document."""
    operation = Commission(
        actor=OUTSIDER.address,
        nonce=0,
        deadline=int(time.time()) + 3600,
        lot=LotId(parse_id("OUT-1")),
        material=CO_HYDROXIDE,
        quantity=2_000_000,
        feedstock=0,
        footprint=0,
        document_hash=bytes(32),
    )
    document = to_document(sign(operation, OUTSIDER, Domain(chain_id, cli.ledger_address())))
    path.write_text(json.dumps(document))
    return document


def test_submit_relays_a_document_signed_outside_the_cli(cli: Cli, tmp_path: Path) -> None:
    document = _signed_elsewhere(cli, tmp_path / "signed.json")

    status = cli("submit", str(tmp_path / "signed.json"), "--json").json()

    assert status["status"] == "confirmed", status
    assert status["eventId"] == document["eventId"]
    assert cli("lot", "show", "OUT-1", "--json").json()["custodian"] == OUTSIDER.address


def test_submitting_the_same_document_twice_records_it_once(cli: Cli, tmp_path: Path) -> None:
    document = _signed_elsewhere(cli, tmp_path / "signed.json")
    before = cli.recorded_operations()

    first = cli("submit", str(tmp_path / "signed.json"), "--json").json()
    again = cli("submit", str(tmp_path / "signed.json"), "--json").json()

    assert first["eventId"] == again["eventId"] == document["eventId"]
    assert (first["status"], again["status"]) == ("confirmed", "confirmed")
    assert again["blockNumber"] == first["blockNumber"]
    assert cli.recorded_operations() == before + 1


def test_submit_refuses_a_document_signed_for_another_chain(cli: Cli, tmp_path: Path) -> None:
    _signed_elsewhere(cli, tmp_path / "signed.json", chain_id=1)

    line = _refused(cli, "submit", str(tmp_path / "signed.json"))

    assert line.startswith("error: eventId:"), line


def test_submit_refuses_a_signature_made_for_another_chain(cli: Cli, tmp_path: Path) -> None:
    document = _signed_elsewhere(cli, tmp_path / "signed.json", chain_id=1)
    del document["eventId"]  # nothing left to compare but the signature itself
    (tmp_path / "signed.json").write_text(json.dumps(document))

    line = _refused(cli, "submit", str(tmp_path / "signed.json"))

    assert line.startswith("error: signature:"), line
    assert f"not to the actor {OUTSIDER.address}" in line, line


# -- import: many lot events from a CSV file ---------------------------------------------------

ASSAY_HASH = "0x" + keccak(text="assay IMP-2").hex()
EVENTS_CSV = f"""\
action,lot,material,quantity,feedstock,footprint,recipient,document
commission,IMP-1,co-hydroxide,2.5t,primary,1.2t,,
commission,IMP-2,co-hydroxide,800kg,,,,{ASSAY_HASH}
ship,IMP-1,,,,,kokkola,
commission,IMP-3,unobtainium,1t,,,,
commission,IMP-4,co-hydroxide,5tt,,,,
sell,IMP-5,,,,,,
"""
GOOD_LINES, BAD_LINES = (2, 3, 4), {5: "material", 6: "quantity", 7: "action"}


def test_import_reports_each_bad_row_by_line_and_exits_1(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text(EVENTS_CSV)

    result = cli("import", str(tmp_path / "events.csv"), "--as", "kolwezi")

    assert result.returncode == 1, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    reported = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(":")[:2] for line in reported] == [
        [f"line {n}", f" {field}"] for n, field in BAD_LINES.items()
    ], result.explain()
    assert "3 rows confirmed, 3 failed, of 6" in result.stdout, result.explain()


def test_import_records_the_good_rows_and_reports_every_line_in_json(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "events.csv").write_text(EVENTS_CSV)

    result = cli("import", str(tmp_path / "events.csv"), "--as", "kolwezi", "--json")

    assert result.returncode == 1, result.explain()
    by_line = {item["line"]: item for item in json.loads(result.stdout)}
    assert sorted(by_line) == [*GOOD_LINES, *BAD_LINES], by_line
    for line in GOOD_LINES:
        assert by_line[line]["status"] == "confirmed", by_line[line]
        assert "error" not in by_line[line], by_line[line]
    for line, field in BAD_LINES.items():
        assert by_line[line]["error"].startswith(f"{field}:"), by_line[line]
        assert "status" not in by_line[line], by_line[line]

    shipped = cli("lot", "show", "IMP-1", "--json").json()
    kept = cli("lot", "show", "IMP-2", "--json").json()
    assert (shipped["remainingGrams"], shipped["inTransitTo"]) == (
        2_500_000,
        cli.address("kokkola"),
    ), shipped
    assert (kept["remainingGrams"], kept["custodian"], kept["inTransitTo"]) == (
        800_000,
        cli.address("kolwezi"),
        None,
    ), kept
