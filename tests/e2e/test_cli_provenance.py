"""The provenance commands as an auditor or a recall desk runs them: `sync`, `passport show` and
`lot trace`, the installed console script in a subprocess on the embedded node.

One small supply chain, recorded once per worker through the same Service the commands use (the
template), and its provenance worked out by hand below; every mass, share and footprint is then
compared exactly (num/den), not as a rounded decimal. Every command starts a node, so the
module runs as few as it can: the read commands and the JSON sync tests share one copy of the
template per worker, synced once from its empty index; the text sync gets a copy of its own.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_typing import ChecksumAddress

from mine2cell.chain.deployment import Deployment
from mine2cell.chain.node import DEV_CHAIN_ID
from mine2cell.codes import Feedstock, Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.provenance.report import fraction_from_json
from mine2cell.relay.outbox import Accepted, OperationStatus, State
from mine2cell.service import Service
from mine2cell.signing.eip712 import Input, LotId, Output, text32
from tests.e2e.cli_support import PASSPHRASE, Cli, Result, make_keys

pytestmark = pytest.mark.anvil

KEY_NAMES = ("governor", "relayer", "kolwezi", "murrin", "hydrovolt", "kokkola", "skelleftea")
CO_HYDROXIDE = material("co-hydroxide").code
BLACK_MASS = material("black-mass").code
CO_SULFATE = material("co-sulfate").code
TEN_YEARS = 10 * 365 * 24 * 3600

# -- the supply chain, and its provenance worked out by hand -----------------------------------
#
#   kolwezi    mine, CD-KOLWEZI-1, CD      KOL-1 cobalt hydroxide 12 t, footprint 9.6 t CO2e
#                                          KOL-2 cobalt hydroxide  1 t, footprint 0.8 t (kept)
#   murrin     mine, AU-MURRIN, AU         MUR-1 cobalt hydroxide  8 t, footprint 4 t
#   hydrovolt  recycler, NO-HYDROVOLT, NO  BM-1  black mass 3 t post-consumer, footprint 0.6 t
#   kokkola    processor, FI-KOKKOLA, FI   receives KOL-1, MUR-1, BM-1 and transforms
#                                          KOL-1 12 t + MUR-1 6 t (of 8 t) + BM-1 3 t
#                                          -> SUL-1 cobalt sulfate 20 t + SUL-2 15 t, 31 t CO2e
#   skelleftea cell maker, SE              receives SUL-1; binds PASS-1 with 45 kg of it, 610 kg
#
# Every participant holds an RMAP certificate valid for ten years from before its first event,
# so the only due-diligence flag is the high-risk origin of KOL-1 (CD is on the default list).

# PASS-1 holds 45 kg of the transformation's 35 t of output, 9/7000 of it, so 9/7000 of each
# input. Black mass names no element: it is traced as cobalt, the element of what it became.
PASS_SHARE_OF_TRANSFORM = Fraction(45_000, 35_000_000)  # 9/7000
PASS_KOL = Fraction(108_000, 7)  # 12 t * 9/7000 = 15 428.571 g
PASS_MUR = Fraction(54_000, 7)  # 6 t * 9/7000 = 7 714.286 g
PASS_BM = Fraction(27_000, 7)  # 3 t * 9/7000 = 3 857.143 g
PASS_ORIGIN = Fraction(27_000)  # 21 t * 9/7000 = 27 kg, the sum of the three
# Footprint, in grams of CO2e: each event's recorded footprint times the battery's part of the
# event's output (the lot's whole quantity for a commissioning, even if only part was consumed).
PASS_EXTRACTION = Fraction(16_200)  # 9.6 t * (108000/7)/12 t + 4 t * (54000/7)/8 t = 113400/7
PASS_RECYCLING = Fraction(5_400, 7)  # 0.6 t * (27000/7)/3 t = 771.429 g
PASS_PROCESSING = Fraction(279_000, 7)  # 31 t * 9/7000 = 39 857.143 g
PASS_CELL = Fraction(610_000)  # the binding's footprint is all the battery's
PASS_FOOTPRINT = Fraction(4_667_800, 7)  # 626 200 + 284 400/7 = 666 828.571 g

# Downstream of KOL-1: all 12 t went into the transformation and were shared by mass among its
# outputs, 20/35 into SUL-1 and 15/35 into SUL-2; PASS-1 took 45 kg of SUL-1's 20 t of it.
KOL_IN_SUL1 = Fraction(48_000_000, 7)  # 12 t * 20/35 = 6.857143 t
KOL_IN_SUL2 = Fraction(36_000_000, 7)  # 12 t * 15/35 = 5.142857 t
KOL_IN_PASS = KOL_IN_SUL1 * 45_000 / 20_000_000  # = 108000/7, what the passport shows upstream

# Upstream of SUL-2, as if all of its 15 t were bound: 15/35 = 3/7 of each input and of the
# transformation's footprint.
SUL2_KOL = Fraction(36_000_000, 7)  # 12 t * 3/7
SUL2_MUR = Fraction(18_000_000, 7)  # 6 t * 3/7
SUL2_BM = Fraction(9_000_000, 7)  # 3 t * 3/7
SUL2_ORIGIN = Fraction(9_000_000)  # 21 t * 3/7
SUL2_EXTRACTION = Fraction(5_400_000)  # 3/7 * (9.6 t + 4 t * 6/8) = 3/7 * 12.6 t
SUL2_RECYCLING = Fraction(1_800_000, 7)  # 3/7 * 0.6 t
SUL2_PROCESSING = Fraction(93_000_000, 7)  # 3/7 * 31 t
SUL2_FOOTPRINT = Fraction(132_600_000, 7)  # 5.4 t + 94.8 t/7 = 18 942.857 kg

# What the index holds of this chain (the deployment accredits the relayer: 5 + 1 accredits).
INDEX_ROWS = {
    "participant_changes": 6,
    "certifications": 5,
    "commissions": 4,  # KOL-1, KOL-2, MUR-1, BM-1
    "steps": 2,  # the transformation and the binding
    "consumptions": 4,  # three by the transformation, one by the binding
    "productions": 2,  # SUL-1, SUL-2
    "handoffs": 8,  # four shipments, each received
    "corrections": 0,
    "attestations": 0,
}
LEDGER_EVENTS = sum(INDEX_ROWS.values())  # 31: every event of this chain is stored as a row


# -- the console script ------------------------------------------------------------------------


# -- the template: the chain above, recorded through the Service --------------------------------


@dataclass(frozen=True)
class Template:
    data_dir: Path
    deployment_block: int
    head: int
    addresses: Mapping[str, ChecksumAddress]  # by key name
    events: Mapping[str, OperationStatus]  # "commission KOL-1", "transform", "bind PASS-1"...

    def name_of(self, address: str) -> str:
        return next(name for name, known in self.addresses.items() if known == address)


def _settle(service: Service, accepted: Sequence[Accepted]) -> list[OperationStatus]:
    statuses = service.settle([a.event_id for a in accepted])
    settled = [statuses[a.event_id] for a in accepted]
    assert all(s.state is State.CONFIRMED for s in settled), settled
    return settled


def _build_template(data_dir: Path) -> Template:
    make_keys(data_dir, KEY_NAMES)
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=None)
    events: dict[str, OperationStatus] = {}

    def record(service: Service, labelled: Sequence[tuple[str, Accepted]]) -> None:
        settled = _settle(service, [accepted for _, accepted in labelled])
        events.update((label, status) for (label, _), status in zip(labelled, settled, strict=True))

    with Service(settings, passphrase=lambda: PASSPHRASE) as service:
        addresses = {name: service.account(name) for name in KEY_NAMES}
        governor = service.client("governor")
        cast = [
            ("kolwezi", Role.MINE, "CD-KOLWEZI-1", "CD"),
            ("murrin", Role.MINE, "AU-MURRIN", "AU"),
            ("hydrovolt", Role.RECYCLER, "NO-HYDROVOLT", "NO"),
            ("kokkola", Role.PROCESSOR, "FI-KOKKOLA", "FI"),
            ("skelleftea", Role.CELL_MAKER, "SE-SKELLEFTEA", "SE"),
        ]
        record(
            service,
            [
                (
                    f"accredit {name}",
                    governor.accredit(
                        addresses[name], roles=roles, facility=text32(site), country=country
                    ),
                )
                for name, roles, site, country in cast
            ],
        )
        valid_until = int(time.time()) + TEN_YEARS
        record(
            service,
            [
                (
                    f"certify {name}",
                    governor.certify(
                        addresses[name],
                        scheme=text32("RMAP"),
                        valid_until=valid_until,
                        document_hash=bytes(32),
                    ),
                )
                for name, *_ in cast
            ],
        )

        kolwezi, murrin = service.client("kolwezi"), service.client("murrin")
        hydrovolt = service.client("hydrovolt")
        kokkola, skelleftea = service.client("kokkola"), service.client("skelleftea")
        commissions = [
            ("KOL-1", kolwezi, CO_HYDROXIDE, 12_000_000, Feedstock.PRIMARY, 9_600_000),
            ("KOL-2", kolwezi, CO_HYDROXIDE, 1_000_000, Feedstock.PRIMARY, 800_000),
            ("MUR-1", murrin, CO_HYDROXIDE, 8_000_000, Feedstock.PRIMARY, 4_000_000),
            ("BM-1", hydrovolt, BLACK_MASS, 3_000_000, Feedstock.POST_CONSUMER, 600_000),
        ]
        record(
            service,
            [
                (
                    f"commission {lot}",
                    by.commission(
                        parse_id(lot),
                        material=code,
                        quantity=grams,
                        feedstock=feed,
                        footprint=co2e,
                    ),
                )
                for lot, by, code, grams, feed, co2e in commissions
            ],
        )
        refinery = addresses["kokkola"]
        shippers = [("KOL-1", kolwezi), ("MUR-1", murrin), ("BM-1", hydrovolt)]
        record(service, [(f"ship {lot}", by.ship(parse_id(lot), refinery)) for lot, by in shippers])
        record(service, [(f"receive {lot}", kokkola.receive(parse_id(lot))) for lot, _ in shippers])
        transform = kokkola.transform(
            [
                Input(LotId(parse_id("KOL-1")), 12_000_000),
                Input(LotId(parse_id("MUR-1")), 6_000_000),
                Input(LotId(parse_id("BM-1")), 3_000_000),
            ],
            [
                Output(LotId(parse_id("SUL-1")), CO_SULFATE, 20_000_000),
                Output(LotId(parse_id("SUL-2")), CO_SULFATE, 15_000_000),
            ],
            footprint=31_000_000,
        )
        record(service, [("transform", transform)])
        record(service, [("ship SUL-1", kokkola.ship(parse_id("SUL-1"), addresses["skelleftea"]))])
        record(service, [("receive SUL-1", skelleftea.receive(parse_id("SUL-1")))])
        bind = skelleftea.bind_passport(
            parse_id("PASS-1", "passport"),
            [Input(LotId(parse_id("SUL-1")), 45_000)],
            footprint=610_000,
        )
        record(service, [("bind PASS-1", bind)])
        head = service.w3.eth.block_number
    deployment = Deployment.load(data_dir, DEV_CHAIN_ID)
    assert deployment is not None
    return Template(data_dir, deployment.block, head, addresses, events)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return _build_template(tmp_path_factory.mktemp("template") / "data")


@pytest.fixture
def cli(template: Template, tmp_path: Path) -> Cli:
    """The console script on this test's own copy of the template (its index still empty)."""
    data_dir = tmp_path / "data"
    shutil.copytree(template.data_dir, data_dir)
    return Cli(data_dir)


@dataclass(frozen=True)
class Reader:
    cli: Cli
    first_sync: dict[str, Any]  # what `sync --json` said when the index was empty


@pytest.fixture(scope="module")
def shared(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Reader:
    """A copy shared by the tests that only read (the chain never changes; a sync or a rebuild
    of its index leaves the same index), synced once from an empty index: every command starts
    a node, so the module runs as few as it can."""
    data_dir = tmp_path_factory.mktemp("reader") / "data"
    shutil.copytree(template.data_dir, data_dir)
    cli = Cli(data_dir)
    return Reader(cli, cli("sync", "--json").json())


@pytest.fixture(scope="module")
def reader(shared: Reader) -> Cli:
    return shared.cli


@pytest.fixture(scope="module")
def passport_report(reader: Cli) -> dict[str, Any]:
    report: dict[str, Any] = reader("passport", "show", "PASS-1", "--json").json()
    return report


@pytest.fixture(scope="module")
def passport_text(reader: Cli) -> list[str]:
    return reader("passport", "show", "PASS-1").lines()


@pytest.fixture(scope="module")
def kol_downstream(reader: Cli) -> dict[str, Any]:
    result: dict[str, Any] = reader("lot", "trace", "KOL-1", "--downstream", "--json").json()
    return result


@pytest.fixture(scope="module")
def sul2_upstream(reader: Cli) -> dict[str, Any]:
    report: dict[str, Any] = reader("lot", "trace", "SUL-2", "--json").json()
    return report


# -- reading reports ---------------------------------------------------------------------------


def exact(value: Mapping[str, Any]) -> Fraction:
    """A Share, Grams or CO2e of a report, exactly; its hex num/den must be reduced."""
    found = fraction_from_json(value)
    assert (int(value["num"], 16), int(value["den"], 16)) == (
        found.numerator,
        found.denominator,
    ), f"{value} is not a reduced fraction"
    return found


def by_label(items: Sequence[Mapping[str, Any]], key: str, value: str) -> dict[str, Fraction]:
    """``{item[key]["label"]: exact(item[value])}`` (``item[key]`` itself for a plain string)."""
    found: dict[str, Fraction] = {}
    for item in items:
        name = item[key] if isinstance(item[key], str) else item[key]["label"]
        found[name] = exact(item[value])
    return found


def ordered(items: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    return [item[key] if isinstance(item[key], str) else item[key]["label"] for item in items]


def table_rows(lines: Sequence[str], title: str) -> list[list[str]]:
    """The body rows of the table printed under ``title``, as stripped cell texts."""
    assert title in lines, f"no table {title!r} in\n" + "\n".join(lines)
    rows: list[list[str]] = []
    in_body = False
    for line in lines[lines.index(title) + 1 :]:
        if line.startswith("┡"):
            in_body = True
        elif line.startswith("└"):
            break
        elif in_body and line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


# -- sync ------------------------------------------------------------------------------------------


def test_sync_prints_the_block_range_and_the_counts_it_indexed(
    cli: Cli, template: Template
) -> None:
    lines = cli("sync").lines()

    blocks = f"{template.deployment_block}..{template.head}"
    expected = rf"indexed blocks {blocks}: 31 events \(31 new\) in \d+\.\d\d s \([\d,]+/s\)"
    assert re.fullmatch(expected, lines[0]), lines
    assert lines[1:] == [
        "4 lots commissioned, 2 produced, 2 transformations and bindings, 8 hand-offs"
    ]


def test_sync_json_reports_the_blocks_the_events_and_the_rows_of_the_index(
    shared: Reader, template: Template
) -> None:
    synced = shared.first_sync

    assert (synced["fromBlock"], synced["toBlock"]) == (template.deployment_block, template.head)
    assert (synced["logs"], synced["stored"]) == (LEDGER_EVENTS, LEDGER_EVENTS), synced
    assert synced["rolledBackTo"] is None
    assert synced["rows"] == INDEX_ROWS
    assert isinstance(synced["seconds"], float | int) and synced["seconds"] >= 0, synced


def test_sync_run_again_stores_nothing_new(shared: Reader, template: Template) -> None:
    again = shared.cli("sync", "--json").json()

    assert (again["logs"], again["stored"]) == (0, 0), again
    assert again["toBlock"] == template.head, again
    assert again["rows"] == INDEX_ROWS


def test_sync_rebuild_reads_every_block_again_with_the_same_counts(
    shared: Reader, template: Template
) -> None:
    first = shared.first_sync

    rebuilt = shared.cli("sync", "--rebuild", "--json").json()

    assert (rebuilt["fromBlock"], rebuilt["toBlock"]) == (template.deployment_block, template.head)
    assert (rebuilt["logs"], rebuilt["stored"]) == (first["logs"], first["stored"]), rebuilt
    assert rebuilt["rows"] == first["rows"] == INDEX_ROWS


# -- passport show --json --------------------------------------------------------------------------


def test_passport_report_names_its_schema_passport_and_binding(
    passport_report: dict[str, Any], template: Template
) -> None:
    bind = template.events["bind PASS-1"]
    assert bind.tx_hash is not None

    assert passport_report["schema"] == "mine2cell.provenance/1"
    assert passport_report["passport"] == {
        "id": "0x" + parse_id("PASS-1", "passport").hex(),
        "label": "PASS-1",
    }
    binding = passport_report["binding"]
    assert binding["event_id"] == "0x" + bind.event_id.hex()
    assert binding["tx_hash"] == "0x" + bind.tx_hash.hex()
    assert binding["block_number"] == bind.block_number
    assert binding["actor"] == template.addresses["skelleftea"]
    assert passport_report["grams_bound"] == 45_000
    assert exact(passport_report["origin_grams"]) == PASS_ORIGIN


def test_passport_report_shares_origins_by_country_exactly(
    passport_report: dict[str, Any],
) -> None:
    countries = passport_report["countries"]

    assert ordered(countries, "country") == ["CD", "AU", "NO"]  # largest first
    assert by_label(countries, "country", "grams") == {
        "CD": PASS_KOL,
        "AU": PASS_MUR,
        "NO": PASS_BM,
    }
    assert by_label(countries, "country", "share") == {
        "CD": Fraction(4, 7),
        "AU": Fraction(2, 7),
        "NO": Fraction(1, 7),
    }
    assert [c["share"]["percent"] for c in countries] == ["57.1429", "28.5714", "14.2857"]


def test_passport_report_shares_origins_by_facility_exactly(
    passport_report: dict[str, Any], template: Template
) -> None:
    facilities = passport_report["facilities"]

    assert ordered(facilities, "facility") == ["CD-KOLWEZI-1", "AU-MURRIN", "NO-HYDROVOLT"]
    assert by_label(facilities, "facility", "grams") == {
        "CD-KOLWEZI-1": PASS_KOL,
        "AU-MURRIN": PASS_MUR,
        "NO-HYDROVOLT": PASS_BM,
    }
    assert by_label(facilities, "facility", "share") == {
        "CD-KOLWEZI-1": Fraction(4, 7),
        "AU-MURRIN": Fraction(2, 7),
        "NO-HYDROVOLT": Fraction(1, 7),
    }
    assert [(f["country"], template.name_of(f["actor"])) for f in facilities] == [
        ("CD", "kolwezi"),
        ("AU", "murrin"),
        ("NO", "hydrovolt"),
    ]


def test_passport_report_traces_all_origin_mass_as_cobalt_with_the_black_mass_recycled(
    passport_report: dict[str, Any],
) -> None:
    (cobalt,) = passport_report["elements"]

    assert (cobalt["element"], cobalt["annex_x"]) == ("cobalt", True)
    assert exact(cobalt["grams"]) == PASS_ORIGIN
    assert exact(cobalt["share"]) == 1
    assert by_label(cobalt["countries"], "country", "share") == {
        "CD": Fraction(4, 7),
        "AU": Fraction(2, 7),
        "NO": Fraction(1, 7),
    }
    recycled = cobalt["recycled"]
    assert exact(recycled["post_consumer"]) == Fraction(1, 7)  # BM-1's 27000/7 of 27000 g
    assert exact(recycled["pre_consumer"]) == 0
    assert exact(recycled["total"]) == Fraction(1, 7)
    assert passport_report["recycled"] == recycled  # one element: the same shares overall


def test_passport_report_footprint_per_stage_and_total_in_grams_co2e(
    passport_report: dict[str, Any],
) -> None:
    footprint = passport_report["footprint"]

    stages = {s["stage"]: exact(s["co2e"]) for s in footprint["stages"]}
    assert list(stages) == ["extraction", "recycling", "processing", "cell manufacturing"]
    assert stages == {
        "extraction": PASS_EXTRACTION,
        "recycling": PASS_RECYCLING,
        "processing": PASS_PROCESSING,
        "cell manufacturing": PASS_CELL,
    }
    assert exact(footprint["total"]) == PASS_FOOTPRINT == sum(stages.values())
    assert (footprint["total"]["grams"], footprint["total"]["kg"]) == ("666828.571", "666.829")


def test_passport_report_footprint_lists_each_event_contribution_in_chain_order(
    passport_report: dict[str, Any], template: Template
) -> None:
    steps = passport_report["footprint"]["steps"]

    events = {"0x" + status.event_id.hex(): label for label, status in template.events.items()}
    assert [(events[s["event_id"]], s["stage"], exact(s["co2e"])) for s in steps] == [
        ("commission KOL-1", "extraction", Fraction(86_400, 7)),  # 9.6 t * 9/7000
        ("commission MUR-1", "extraction", Fraction(27_000, 7)),  # 4 t * (54000/7)/8 t
        ("commission BM-1", "recycling", PASS_RECYCLING),
        ("transform", "processing", PASS_PROCESSING),
        ("bind PASS-1", "cell manufacturing", PASS_CELL),
    ]
    # MUR-1 was only partly consumed: its part is of the 8 t commissioned, not of the 6 t used.
    mur = steps[1]
    assert (mur["base"], exact(mur["fraction"])) == (8_000_000, PASS_MUR / 8_000_000)


def test_passport_report_dag_holds_each_upstream_lot_with_the_grams_of_it_in_the_battery(
    passport_report: dict[str, Any],
) -> None:
    lots = passport_report["dag"]["lots"]

    assert ordered(lots, "lot") == ["SUL-1", "KOL-1", "MUR-1", "BM-1"]  # binding's input first
    assert by_label(lots, "lot", "grams") == {
        "SUL-1": Fraction(45_000),
        "KOL-1": PASS_KOL,
        "MUR-1": PASS_MUR,
        "BM-1": PASS_BM,
    }
    assert by_label(lots, "lot", "weight") == {
        "SUL-1": Fraction(45_000, 20_000_000),
        "KOL-1": PASS_SHARE_OF_TRANSFORM,
        "MUR-1": Fraction(27, 28_000),  # (54000/7) g of 8 t
        "BM-1": PASS_SHARE_OF_TRANSFORM,
    }
    feedstocks = {lot["lot"]["label"]: (lot["origin"] or {}).get("feedstock") for lot in lots}
    assert feedstocks == {
        "SUL-1": None,
        "KOL-1": Feedstock.PRIMARY,
        "MUR-1": Feedstock.PRIMARY,
        "BM-1": Feedstock.POST_CONSUMER,
    }


def test_passport_report_flags_the_high_risk_origin_of_the_congolese_lot_only(
    passport_report: dict[str, Any], template: Template
) -> None:
    (flag,) = passport_report["flags"]  # MUR-1 (AU) and BM-1 (NO) raise none; all certified

    assert flag["code"] == "high-risk-origin"
    assert flag["lot"]["label"] == "KOL-1"
    assert flag["account"] == template.addresses["kolwezi"]
    assert flag["event"]["event_id"] == "0x" + template.events["commission KOL-1"].event_id.hex()
    assert flag["message"] == (
        "lot KOL-1 was mined at facility CD-KOLWEZI-1 in CD, a high-risk country"
    )
    assert passport_report["attestations"] == []


# -- passport show (text) --------------------------------------------------------------------------


def test_passport_text_opens_with_the_binding_the_masses_and_the_footprint(
    passport_text: list[str], template: Template
) -> None:
    bind = template.events["bind PASS-1"]
    assert bind.tx_hash is not None

    assert passport_text[:2] == [
        f"passport PASS-1  bound by skelleftea in block {bind.block_number} "
        f"(tx 0x{bind.tx_hash.hex()})",
        "45 kg bound; 27 kg of mined and recycled material behind it; raw-material carbon "
        "footprint 666.829 kg CO2e",
    ]


def test_passport_text_tables_show_the_shares_rounded_for_people(
    passport_text: list[str],
) -> None:
    # Masses are rounded to the gram (108000/7 g -> 15 429 g), shares to 0.01 %.
    assert table_rows(passport_text, "Materials by element (EU 2023/1542 Annex X)") == [
        ["cobalt", "yes", "27 kg", "100.00 %", "0.00 %", "14.29 %"],
    ]
    assert table_rows(passport_text, "Origins by country") == [
        ["CD", "15.429 kg", "57.14 %"],
        ["AU", "7.714 kg", "28.57 %"],
        ["NO", "3.857 kg", "14.29 %"],
    ]
    assert table_rows(passport_text, "Origins by mine or recycler") == [
        ["CD-KOLWEZI-1", "CD", "kolwezi", "15.429 kg", "57.14 %"],
        ["AU-MURRIN", "AU", "murrin", "7.714 kg", "28.57 %"],
        ["NO-HYDROVOLT", "NO", "hydrovolt", "3.857 kg", "14.29 %"],
    ]


def test_passport_text_footprint_table_and_flags(passport_text: list[str]) -> None:
    # Stage shares of the total 4667800/7 g: 113400, 5400, 279000 and 4270000 of 4667800.
    assert table_rows(passport_text, "Raw-material carbon footprint by stage") == [
        ["extraction", "16.200 kg", "2.43 %"],
        ["recycling", "0.771 kg", "0.12 %"],
        ["processing", "39.857 kg", "5.98 %"],
        ["cell manufacturing", "610.000 kg", "91.48 %"],
        ["total", "666.829 kg", "100.00 %"],
    ]
    flags = passport_text.index("Due-diligence flags (1)")
    assert passport_text[flags + 1] == (
        "  high-risk-origin  lot KOL-1 was mined at facility CD-KOLWEZI-1 in CD, a high-risk "
        "country"
    )


def test_passport_text_draws_the_tree_down_to_the_commissioned_lots(
    passport_text: list[str],
) -> None:
    root = passport_text.index("passport PASS-1")

    assert passport_text[root:] == [
        "passport PASS-1",
        "└── SUL-1  Cobalt sulfate  45 kg consumed",
        "    ├── KOL-1  Cobalt hydroxide  12 t consumed",
        "    │   primary, from CD-KOLWEZI-1 (CD)",
        "    ├── MUR-1  Cobalt hydroxide  6 t consumed",
        "    │   primary, from AU-MURRIN (AU)",
        "    └── BM-1  Black mass (battery recycling)  3 t consumed",
        "        post-consumer, from NO-HYDROVOLT (NO)",
    ]


# -- lot trace ---------------------------------------------------------------------------------


def test_trace_downstream_of_a_mine_lot_finds_the_passport_with_its_grams_of_that_lot(
    kol_downstream: dict[str, Any], template: Template
) -> None:
    assert kol_downstream["schema"] == "mine2cell.downstream/1"
    assert ordered(kol_downstream["start"], "label") == ["KOL-1"]
    assert kol_downstream["start_grams"] == 12_000_000
    (passport,) = kol_downstream["passports"]
    assert passport["passport"]["label"] == "PASS-1"
    assert exact(passport["content"]) == KOL_IN_PASS == PASS_KOL
    bind = template.events["bind PASS-1"]
    assert passport["binding"]["event_id"] == "0x" + bind.event_id.hex()


def test_trace_downstream_of_a_mine_lot_lists_every_lot_holding_its_material(
    kol_downstream: dict[str, Any],
) -> None:
    lots = kol_downstream["lots"]

    assert ordered(lots, "lot") == ["KOL-1", "SUL-1", "SUL-2"]  # the start lot first
    assert by_label(lots, "lot", "content") == {
        "KOL-1": Fraction(12_000_000),
        "SUL-1": KOL_IN_SUL1,
        "SUL-2": KOL_IN_SUL2,
    }
    assert by_label(lots, "lot", "share") == {
        "KOL-1": Fraction(1),
        "SUL-1": Fraction(12, 35),  # (48e6/7) g of 20 t
        "SUL-2": Fraction(12, 35),  # (36e6/7) g of 15 t
    }
    contents = [(s["kind"], exact(s["content"])) for s in kol_downstream["steps"]]
    assert contents == [("transform", Fraction(12_000_000)), ("bind", KOL_IN_PASS)]


def test_trace_downstream_text_shows_the_passport_and_the_lots(
    reader: Cli, template: Template
) -> None:
    lines = reader("lot", "trace", "KOL-1", "--downstream").lines()

    assert lines[0] == "lot KOL-1: 12 t at the start"
    bind_block = template.events["bind PASS-1"].block_number
    assert table_rows(lines, "Passports containing this material") == [
        ["PASS-1", str(bind_block), "15.429 kg"],
    ]
    assert table_rows(lines, "Lots containing this material") == [
        ["KOL-1", "Cobalt hydroxide", "12 t", "12 t"],
        ["SUL-1", "Cobalt sulfate", "20 t", "6.857143 t"],
        ["SUL-2", "Cobalt sulfate", "15 t", "5.142857 t"],
    ]


def test_trace_of_a_facility_starts_from_every_lot_commissioned_there(reader: Cli) -> None:
    result = reader("lot", "trace", "--facility", "CD-KOLWEZI-1", "--json").json()

    assert ordered(result["start"], "label") == ["KOL-1", "KOL-2"]
    assert result["start_grams"] == 13_000_000
    assert by_label(result["passports"], "passport", "content") == {"PASS-1": PASS_KOL}
    assert by_label(result["lots"], "lot", "content") == {
        "KOL-1": Fraction(12_000_000),
        "KOL-2": Fraction(1_000_000),  # never consumed: all of it still in the lot
        "SUL-1": KOL_IN_SUL1,
        "SUL-2": KOL_IN_SUL2,
    }


def test_trace_upstream_of_a_sulfate_lot_gives_its_origins(
    sul2_upstream: dict[str, Any],
) -> None:
    assert sul2_upstream["schema"] == "mine2cell.provenance/1"
    assert sul2_upstream["passport"]["label"] == "SUL-2"
    assert sul2_upstream["grams_bound"] == 15_000_000
    assert exact(sul2_upstream["origin_grams"]) == SUL2_ORIGIN
    assert by_label(sul2_upstream["facilities"], "facility", "grams") == {
        "CD-KOLWEZI-1": SUL2_KOL,
        "AU-MURRIN": SUL2_MUR,
        "NO-HYDROVOLT": SUL2_BM,
    }
    assert by_label(sul2_upstream["countries"], "country", "share") == {
        "CD": Fraction(4, 7),
        "AU": Fraction(2, 7),
        "NO": Fraction(1, 7),
    }
    assert exact(sul2_upstream["recycled"]["post_consumer"]) == Fraction(1, 7)
    assert [flag["lot"]["label"] for flag in sul2_upstream["flags"]] == ["KOL-1"]


def test_trace_upstream_of_a_sulfate_lot_gives_its_footprint(
    sul2_upstream: dict[str, Any],
) -> None:
    footprint = sul2_upstream["footprint"]

    assert {s["stage"]: exact(s["co2e"]) for s in footprint["stages"]} == {
        "extraction": SUL2_EXTRACTION,
        "recycling": SUL2_RECYCLING,
        "processing": SUL2_PROCESSING,
        "cell manufacturing": Fraction(0),  # no battery yet
    }
    assert exact(footprint["total"]) == SUL2_FOOTPRINT


def test_trace_upstream_of_a_lot_lists_each_event_once_and_no_binding(
    sul2_upstream: dict[str, Any], template: Template
) -> None:
    events = {"0x" + status.event_id.hex(): label for label, status in template.events.items()}

    steps = [(s["kind"], events[s["event"]["event_id"]]) for s in sul2_upstream["dag"]["steps"]]
    assert steps == [("transform", "transform")]
    contributions = [events[s["event_id"]] for s in sul2_upstream["footprint"]["steps"]]
    assert contributions == ["commission KOL-1", "commission MUR-1", "commission BM-1", "transform"]


# -- refused reads: exit code 1, one error line, no traceback --------------------------------------


@pytest.fixture(scope="module")
def unknown_passport(reader: Cli) -> Result:
    return reader("passport", "show", "NOPE-9")


def test_show_of_an_unknown_passport_is_refused(unknown_passport: Result) -> None:
    line = unknown_passport.refusal()

    assert line == "error: passport: passport NOPE-9 is not bound on this ledger"


def test_trace_without_a_lot_or_a_facility_is_refused(reader: Cli) -> None:
    line = reader("lot", "trace").refusal()

    assert line == "error: lot: give a lot, or --facility for all lots of a mine"


def test_trace_with_both_a_lot_and_a_facility_is_refused(reader: Cli) -> None:
    line = reader("lot", "trace", "KOL-1", "--facility", "CD-KOLWEZI-1").refusal()

    assert line == "error: lot: give a lot, or --facility for all lots of a mine"


def test_trace_of_a_facility_where_no_lot_was_commissioned_is_refused(reader: Cli) -> None:
    line = reader("lot", "trace", "--facility", "NOWHERE-1").refusal()

    assert line == "error: facility: no lot was commissioned at 'NOWHERE-1'"


def test_trace_of_an_unknown_lot_is_refused(reader: Cli) -> None:
    line = reader("lot", "trace", "NOPE-1").refusal()

    assert line == "error: lot: lot NOPE-1 is not in the index of this ledger"


def test_trace_downstream_of_an_unknown_lot_is_refused(reader: Cli) -> None:
    line = reader("lot", "trace", "NOPE-1", "--downstream").refusal()

    assert line == "error: lot: lot NOPE-1 is not in the index of this ledger"


def test_a_refused_read_writes_only_its_error_line_on_stderr(unknown_passport: Result) -> None:
    assert unknown_passport.returncode == 1, unknown_passport.explain()
    assert unknown_passport.stderr == (
        "error: passport: passport NOPE-9 is not bound on this ledger\n"
    )
