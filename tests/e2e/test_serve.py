"""`mine2cell serve` as an operator runs it: a real anvil node, a ledger deployed with
`mine2cell deploy`, the installed console script serving HTTP on a loopback port, and clients
that sign their own operations with keys the service never holds, POST them, poll their status
and read the passport's provenance back, exact to the gram.

The supply chain, and its provenance worked out by hand:

    mine      MINE, CD-KOLWEZI-7, CD       ORE-7 cobalt hydroxide 6 t, footprint 4.8 t CO2e
    recycler  RECYCLER, DE-HAMBURG, DE     REC-7 cobalt hydroxide 2 t post-consumer, 1 t CO2e
    refiner   PROCESSOR, FI-KOKKOLA, FI    receives both; refines ORE-7 6 t + REC-7 2 t into
                                           SUL-7 cobalt sulfate 8 t + SUL-8 2 t, 20 t CO2e
    cells     CELL_MAKER, SE-SKELLEFTEA    receives SUL-7; binds PASS-7 with 400 kg, 600 kg CO2e

PASS-7 holds 400 kg of the refinery's 10 t of output, 1/25 of it, so 1/25 of each input: 240 kg
of ORE-7 and 80 kg of REC-7, 320 kg of origin material, 3/4 from CD and 1/4 (post-consumer
recycled) from DE. Footprint: 4.8 t * 240/6000 + 1 t * 80/2000 + 20 t * 400/10000 + 600 kg
= 192 + 40 + 800 + 600 = 1,632 kg CO2e. Every participant is certified, so the only flag is the
high-risk origin of ORE-7 (CD is on the default list).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from eth_utils import keccak
from web3 import Web3

from mine2cell.chain.deployment import Deployment
from mine2cell.chain.node import DEV_CHAIN_ID, DevNode
from mine2cell.codes import Feedstock, Role
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.provenance.report import fraction_from_json
from mine2cell.signing.eip712 import (
    Accredit,
    BindPassport,
    Certify,
    Commission,
    Domain,
    Input,
    LotId,
    Output,
    PassportId,
    Receive,
    Ship,
    Transform,
    text32,
)
from mine2cell.signing.keystore import Keystore
from tests.e2e.cli_support import PASSPHRASE, Cli
from tests.e2e.serve_support import (
    STOP_TIMEOUT,
    Clients,
    Participant,
    Server,
    deploy_data_dir,
    fresh_participant,
    read_when_indexed,
    serving,
    wait_ready,
)

pytestmark = pytest.mark.anvil

YEAR = 365 * 24 * 3600

CO_HYDROXIDE = material("co-hydroxide").code
CO_SULFATE = material("co-sulfate").code
ORE, REC = LotId(parse_id("ORE-7")), LotId(parse_id("REC-7"))
SUL, SUL_KEPT = LotId(parse_id("SUL-7")), LotId(parse_id("SUL-8"))
PASSPORT = PassportId(parse_id("PASS-7", "passport"))

ORE_GRAMS, ORE_FOOTPRINT = 6_000_000, 4_800_000
REC_GRAMS, REC_FOOTPRINT = 2_000_000, 1_000_000
SUL_GRAMS, SUL_KEPT_GRAMS, REFINING_FOOTPRINT = 8_000_000, 2_000_000, 20_000_000
BOUND_GRAMS, BINDING_FOOTPRINT = 400_000, 600_000
# The passport's share of the refinery's output, hence of each of its inputs.
SHARE_OF_REFINING = Fraction(BOUND_GRAMS, SUL_GRAMS + SUL_KEPT_GRAMS)


@pytest.fixture
def node() -> Iterator[DevNode]:
    # A node of its own: the shared session node is snapshotted and reverted by the chain tests.
    with DevNode() as dev_node:
        yield dev_node


@pytest.fixture
def data_dir(node: DevNode, tmp_path: Path) -> Path:
    """A data directory with a ledger deployed by `mine2cell deploy` on ``node``."""
    return deploy_data_dir(tmp_path / "data", node.url)


@pytest.fixture
def read_token(data_dir: Path) -> str:
    """A read token (lots, full provenance), created by the operator as the README says."""
    created = Cli(data_dir)("token", "create", "--read", "e2e passport desk", "--json").json()
    token: str = created["token"]
    return token


@pytest.fixture
def server(node: DevNode, data_dir: Path, tmp_path: Path) -> Iterator[Server]:
    with serving(data_dir, node.url, tmp_path / "serve.stderr") as running:
        yield running


def ledger_logs(node: DevNode, ledger: str) -> int:
    w3 = Web3(Web3.HTTPProvider(node.url))
    return len(w3.eth.get_logs({"address": Web3.to_checksum_address(ledger), "fromBlock": 0}))


def test_a_served_ledger_records_a_supply_chain_signed_by_its_clients(
    node: DevNode, data_dir: Path, read_token: str, server: Server
) -> None:
    deployment = Deployment.load(data_dir, DEV_CHAIN_ID)
    assert deployment is not None
    reader = {"Authorization": f"Bearer {read_token}"}
    with (
        httpx.Client(base_url=server.url, timeout=10.0, headers=reader) as http,
        httpx.Client(base_url=server.url, timeout=10.0) as public,
    ):
        ready = wait_ready(http, server)
        assert ready["ledger"] == deployment.address and ready["chain_id"] == DEV_CHAIN_ID
        assert ready["relaying"] is True
        # Clients need no token: each operation is authenticated by its signature.
        clients = Clients(public, Domain(ready["chain_id"], ready["ledger"]))

        governor = Participant(Keystore(data_dir / "keys").signer("governor", PASSPHRASE))
        mine, recycler = fresh_participant(), fresh_participant()
        refiner, cells = fresh_participant(), fresh_participant()
        cast = [
            (mine, Role.MINE, "CD-KOLWEZI-7", "CD"),
            (recycler, Role.RECYCLER, "DE-HAMBURG", "DE"),
            (refiner, Role.PROCESSOR, "FI-KOKKOLA", "FI"),
            (cells, Role.CELL_MAKER, "SE-SKELLEFTEA", "SE"),
        ]
        clients.run(
            *(
                clients.document(
                    governor,
                    Accredit,
                    participant=who.address,
                    roles=role,
                    facility=text32(site),
                    country=country,
                )
                for who, role, site, country in cast
            )
        )
        clients.run(
            *(
                clients.document(
                    governor,
                    Certify,
                    participant=who.address,
                    scheme=text32("RMAP"),
                    valid_until=int(time.time()) + YEAR,
                    document_hash=keccak(text=f"certificate of {site}"),
                )
                for who, _, site, _ in cast
            )
        )

        clients.run(
            clients.document(
                mine,
                Commission,
                lot=ORE,
                material=CO_HYDROXIDE,
                quantity=ORE_GRAMS,
                feedstock=Feedstock.PRIMARY,
                footprint=ORE_FOOTPRINT,
                document_hash=keccak(text="assay ORE-7"),
            ),
            clients.document(
                recycler,
                Commission,
                lot=REC,
                material=CO_HYDROXIDE,
                quantity=REC_GRAMS,
                feedstock=Feedstock.POST_CONSUMER,
                footprint=REC_FOOTPRINT,
                document_hash=keccak(text="assay REC-7"),
            ),
        )
        clients.run(
            clients.document(mine, Ship, lot=ORE, recipient=refiner.address),
            clients.document(recycler, Ship, lot=REC, recipient=refiner.address),
        )
        assert http.get("/v1/lots/ORE-7").json()["in_transit_to"] == refiner.address
        clients.run(
            clients.document(refiner, Receive, lot=ORE, counterparty=mine.address),
            clients.document(refiner, Receive, lot=REC, counterparty=recycler.address),
        )
        clients.run(
            clients.document(
                refiner,
                Transform,
                inputs=(Input(ORE, ORE_GRAMS), Input(REC, REC_GRAMS)),
                outputs=(
                    Output(SUL, CO_SULFATE, SUL_GRAMS),
                    Output(SUL_KEPT, CO_SULFATE, SUL_KEPT_GRAMS),
                ),
                footprint=REFINING_FOOTPRINT,
            )
        )
        clients.run(clients.document(refiner, Ship, lot=SUL, recipient=cells.address))
        clients.run(clients.document(cells, Receive, lot=SUL, counterparty=refiner.address))
        bind = clients.document(
            cells,
            BindPassport,
            passport=PASSPORT,
            inputs=(Input(SUL, BOUND_GRAMS),),
            footprint=BINDING_FOOTPRINT,
        )
        (bound,) = clients.run(bind)

        # Custody and quantities on the ledger, as the service reads them.
        ore = http.get("/v1/lots/ORE-7").json()
        assert ore["remaining_grams"] == 0 and ore["closed"] is True
        sulfate = http.get("/v1/lots/SUL-7").json()
        assert sulfate["custodian"] == cells.address and sulfate["in_transit_to"] is None
        assert sulfate["remaining_grams"] == SUL_GRAMS - BOUND_GRAMS

        # The provenance report: exact grams, shares and footprint.
        report = read_when_indexed(http, "/v1/passports/PASS-7/provenance")
        assert report["schema"] == "mine2cell.provenance/1"
        assert report["passport"]["label"] == "PASS-7"
        assert report["binding"]["event_id"] == bind["eventId"]
        assert report["binding"]["block_number"] == bound["blockNumber"]
        assert report["grams_bound"] == BOUND_GRAMS
        ore_grams, rec_grams = ORE_GRAMS * SHARE_OF_REFINING, REC_GRAMS * SHARE_OF_REFINING
        assert (ore_grams, rec_grams) == (Fraction(240_000), Fraction(80_000))
        assert fraction_from_json(report["origin_grams"]) == ore_grams + rec_grams
        assert [
            (c["country"], fraction_from_json(c["grams"]), fraction_from_json(c["share"]))
            for c in report["countries"]
        ] == [("CD", ore_grams, Fraction(3, 4)), ("DE", rec_grams, Fraction(1, 4))]
        assert [(f["facility"]["label"], f["actor"]) for f in report["facilities"]] == [
            ("CD-KOLWEZI-7", mine.address),
            ("DE-HAMBURG", recycler.address),
        ]
        assert [(e["element"], fraction_from_json(e["share"])) for e in report["elements"]] == [
            ("cobalt", Fraction(1))
        ]
        recycled = {k: fraction_from_json(v) for k, v in report["recycled"].items()}
        assert recycled == {
            "pre_consumer": 0,
            "post_consumer": Fraction(1, 4),
            "total": Fraction(1, 4),
        }
        extraction = ORE_FOOTPRINT * Fraction(ore_grams, ORE_GRAMS)
        recycling = REC_FOOTPRINT * Fraction(rec_grams, REC_GRAMS)
        processing = REFINING_FOOTPRINT * SHARE_OF_REFINING
        footprint = report["footprint"]
        assert {s["stage"]: fraction_from_json(s["co2e"]) for s in footprint["stages"]} == {
            "extraction": extraction,
            "recycling": recycling,
            "processing": processing,
            "cell manufacturing": BINDING_FOOTPRINT,
        }
        assert fraction_from_json(footprint["total"]) == 1_632_000
        assert footprint["total"]["kg"] == "1632.000"
        assert [(f["code"], f["lot"]["label"]) for f in report["flags"]] == [
            ("high-risk-origin", "ORE-7")
        ]

        # The public summary, with no token: the same figures, no accounts.
        summary = read_when_indexed(public, "/v1/passports/PASS-7/summary")
        assert summary["schema"] == "mine2cell.provenance-summary/1"
        assert [(c["country"], fraction_from_json(c["share"])) for c in summary["countries"]] == [
            ("CD", Fraction(3, 4)),
            ("DE", Fraction(1, 4)),
        ]
        assert fraction_from_json(summary["recycled"]["post_consumer"]) == Fraction(1, 4)
        assert fraction_from_json(summary["footprint"]) == 1_632_000
        assert summary["flags"] == {"high-risk-origin": 1} and summary["attestations"] == 0
        assert mine.address not in str(summary) and cells.address not in str(summary)

        # A ship by a participant that does not hold the lot: accepted (it is well signed), then
        # rejected by the ledger's simulation with the decoded reason, and never recorded.
        logs_before = ledger_logs(node, ready["ledger"])
        thief = clients.document(mine, Ship, lot=SUL, recipient=refiner.address)
        (refused,) = clients.settle(clients.post(thief))
        assert refused["status"] == "rejected", refused
        assert refused["error"] == "LedgerNotCustodian", refused
        assert "custodian" in refused["reason"] and "txHash" not in refused, refused
        assert http.get("/v1/lots/SUL-7").json()["custodian"] == cells.address

        # The same signed binding again: the same event and status, nothing sent or recorded.
        head = Web3(Web3.HTTPProvider(node.url)).eth.block_number
        replay = public.post("/v1/operations", json=bind)
        assert replay.status_code == 202, replay.text
        assert replay.json()["eventId"] == bind["eventId"]
        assert replay.json()["status"] == "confirmed"
        time.sleep(0.5)  # ten times the relay's batching wait: a resend would be mined by now
        (again,) = clients.settle(replay.json()["statusUrl"])
        assert (again["txHash"], again["blockNumber"]) == (bound["txHash"], bound["blockNumber"])
        assert Web3(Web3.HTTPProvider(node.url)).eth.block_number == head
        assert ledger_logs(node, ready["ledger"]) == logs_before
        assert http.get("/v1/lots/SUL-7").json()["remaining_grams"] == SUL_GRAMS - BOUND_GRAMS
        report_again = read_when_indexed(http, "/v1/passports/PASS-7/provenance")
        assert report_again["grams_bound"] == BOUND_GRAMS
        assert report_again["dag"]["steps"][0]["event"]["event_id"] == bind["eventId"]

        # A document altered after signing is refused at the door, naming the signature.
        forged = clients.document(refiner, Ship, lot=SUL_KEPT, recipient=cells.address)
        forged["message"]["recipient"] = mine.address
        del forged["eventId"]
        refused_at_door = public.post("/v1/operations", json=forged)
        assert refused_at_door.status_code == 422, refused_at_door.text
        assert refused_at_door.headers["content-type"] == "application/problem+json"
        problem = refused_at_door.json()
        assert problem["status"] == 422 and problem["errors"][0]["field"] == "signature"

    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`mine2cell serve` still running {STOP_TIMEOUT} s after SIGTERM")
    assert code == 0, server.explain()
    assert "Application shutdown complete." in server.stderr(), server.explain()
    assert "Traceback" not in server.stderr(), server.explain()
