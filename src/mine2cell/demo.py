"""The demo: a small, realistic battery supply chain recorded on a freshly deployed ledger.

Cobalt from two mines (DR Congo and Australia) and recycled black mass are refined into cobalt
sulfate in Finland; a cathode maker in Poland turns it, with Chilean lithium carbonate, into NMC
cathode material; a cell maker in Sweden builds batteries and binds each to its passport id; an
auditor attests one passport. Every operation is signed by its participant and relayed in batches.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from eth_utils import keccak
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from web3 import Web3

from mine2cell.audit.html import write_reports
from mine2cell.audit.verify import verify
from mine2cell.chain.ledger import LedgerClient
from mine2cell.chain.node import DevNode, connect
from mine2cell.codes import Feedstock, Role
from mine2cell.config import Settings
from mine2cell.errors import NodeError
from mine2cell.ids import show_id
from mine2cell.index.store import SqliteStore
from mine2cell.index.sync import Indexer
from mine2cell.materials import describe, material
from mine2cell.provenance.engine import passport_provenance
from mine2cell.provenance.text import print_provenance
from mine2cell.service import deploy_ledger, fund_on_dev_node
from mine2cell.signing.eip712 import (
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    Receive,
    Ship,
    SignedOperation,
    Transform,
    text32,
)
from mine2cell.units import format_mass

MINE, RECYCLER, PROCESSOR = Role.MINE, Role.RECYCLER, Role.PROCESSOR
CELL_MAKER, AUDITOR = Role.CELL_MAKER, Role.AUDITOR
PRIMARY, POST_CONSUMER = Feedstock.PRIMARY, Feedstock.POST_CONSUMER
TONNE = 1_000_000  # grams
KG = 1_000


@dataclass(frozen=True)
class Member:
    key: str
    name: str
    roles: int
    facility: str
    country: str


CAST: tuple[Member, ...] = (
    Member("mine_cd", "Kolwezi North cobalt mine", MINE, "CD-KOLWEZI-N-01", "CD"),
    Member("mine_au", "Murrin East nickel-cobalt mine", MINE, "AU-MURRIN-E-02", "AU"),
    Member("mine_cl", "Salar Norte lithium operation", MINE, "CL-SALAR-N-01", "CL"),
    Member("recycler", "Hamburg battery recycling", RECYCLER, "DE-HAMBURG-REC-1", "DE"),
    Member("refiner", "Kokkola cobalt refinery", PROCESSOR, "FI-KOKKOLA-REF-1", "FI"),
    Member("cathode", "Nysa cathode plant", PROCESSOR, "PL-NYSA-CAM-1", "PL"),
    Member("cell", "Skelleftea cell factory", CELL_MAKER, "SE-SKELLEFTEA-1", "SE"),
    Member("auditor", "Antwerp battery audit", AUDITOR, "BE-ANTWERP-AUD-1", "BE"),
)


@dataclass
class Record:
    step: str
    operations: int
    tx_hash: bytes
    block: int
    gas: int


@dataclass
class DemoRun:
    ledger: LedgerClient
    keys: dict[str, LocalSigner]
    run_id: str
    records: list[Record] = field(default_factory=list)
    passports: list[bytes] = field(default_factory=list)
    audit_report: Path | None = None  # the auditor's JSON report of passport 1

    def lot_id(self, name: str) -> LotId:
        """A readable lot number, unique to this run (it shows as text on chain)."""
        return LotId(text32(f"{name}-{self.run_id}", "lot"))

    def sign(self, op_type: type[Operation], who: str, **fields: Any) -> SignedOperation:
        return self.ledger.sign(op_type, self.keys[who], **fields)

    def batch(self, step: str, ops: list[SignedOperation]) -> None:
        result = self.ledger.relay(ops)
        if result.failed:
            reasons = "; ".join(f"#{i}: {err}" for i, err in result.failed.items())
            raise NodeError(f"demo step '{step}' was rejected: {reasons}")
        self.records.append(
            Record(step, len(ops), result.tx_hash, result.block_number, result.gas_used)
        )


@contextmanager
def embedded_or_remote(settings: Settings, console: Console) -> Iterator[Web3]:
    """A web3 connection to the configured node, or to the embedded dev node started here."""
    if settings.rpc_url:
        yield connect(settings.rpc_url)
        return
    node = DevNode(state_file=settings.node_state_file, anvil_path=settings.anvil_path)
    console.print(
        f"starting the embedded node (anvil, chain {node.chain_id}) on {node.url}, "
        f"state in {settings.node_state_file}"
    )
    with node:
        yield connect(node.url)


def _steps(
    run: DemoRun, audit: Callable[[bytes], tuple[int, bytes]]
) -> list[tuple[str, Callable[[], None]]]:
    lot = run.lot_id
    addr = {k: v.address for k, v in run.keys.items()}

    def accredit() -> None:
        ops = [
            run.sign(
                Accredit,
                "governor",
                participant=addr[m.key],
                roles=m.roles,
                facility=text32(m.facility),
                country=m.country,
            )
            for m in CAST
        ]
        ops += [
            run.sign(
                Certify,
                "governor",
                participant=addr[who],
                scheme=text32(scheme),
                valid_until=int(time.time()) + 365 * 86400,
                document_hash=keccak(text=f"{run.run_id}/{who}/{scheme} certificate"),
            )
            for who, scheme in (
                ("refiner", "RMAP"),
                ("mine_cd", "IRMA"),
                ("mine_au", "IRMA"),
                ("mine_cl", "IRMA"),
                ("recycler", "ISO 14001"),
                ("cathode", "ISO 14001"),
                ("cell", "ISO 14001"),
            )
        ]
        run.batch("accredit cast, record certificates", ops)

    def commission() -> None:
        lots = (
            ("mine_cd", "co-hydroxide-cd", "co-hydroxide", 12 * TONNE, PRIMARY, 9_600 * KG),
            ("mine_au", "co-hydroxide-au", "co-hydroxide", 8 * TONNE, PRIMARY, 7_200 * KG),
            ("recycler", "black-mass-de", "black-mass", 3 * TONNE, POST_CONSUMER, 1_500 * KG),
            ("mine_cl", "li-carbonate-cl", "li-carbonate", 10 * TONNE, PRIMARY, 28_000 * KG),
        )
        run.batch(
            "commission mined + recycled lots",
            [
                run.sign(
                    Commission,
                    who,
                    lot=lot(name),
                    material=material(mat).code,
                    quantity=grams,
                    feedstock=feedstock,
                    footprint=footprint,
                    document_hash=keccak(text=f"{run.run_id}/{name} assay and permits"),
                )
                for who, name, mat, grams, feedstock, footprint in lots
            ],
        )

    def ship_to_refiner() -> None:
        shipments = (
            ("mine_cd", "co-hydroxide-cd", "refiner"),
            ("mine_au", "co-hydroxide-au", "refiner"),
            ("recycler", "black-mass-de", "refiner"),
            ("mine_cl", "li-carbonate-cl", "cathode"),
        )
        run.batch(
            "ship to refinery and cathode plant",
            [run.sign(Ship, s, lot=lot(n), recipient=addr[r]) for s, n, r in shipments],
        )
        run.batch(
            "recipients receive (custody moves)",
            [run.sign(Receive, r, lot=lot(n), counterparty=addr[s]) for s, n, r in shipments],
        )

    def refine() -> None:
        run.batch(
            "refine: blend 3 lots, split 2 sulfates",
            [
                run.sign(
                    Transform,
                    "refiner",
                    inputs=(
                        Input(lot("co-hydroxide-cd"), 12 * TONNE),
                        Input(lot("co-hydroxide-au"), 8 * TONNE),
                        Input(lot("black-mass-de"), 3 * TONNE),
                    ),
                    outputs=(
                        Output(lot("co-sulfate-1"), material("co-sulfate").code, 20 * TONNE),
                        Output(lot("co-sulfate-2"), material("co-sulfate").code, 15 * TONNE),
                    ),
                    footprint=31_000 * KG,
                )
            ],
        )

    def hand_off(what: str, name: str, sender: str, recipient: str) -> None:
        """Ship one lot and have its recipient receive it, each in its own batch."""
        run.batch(
            f"ship {what}", [run.sign(Ship, sender, lot=lot(name), recipient=addr[recipient])]
        )
        run.batch(
            f"receive {what}",
            [run.sign(Receive, recipient, lot=lot(name), counterparty=addr[sender])],
        )

    def to_cathode() -> None:
        hand_off("cobalt sulfate", "co-sulfate-1", "refiner", "cathode")
        run.batch(
            "make NMC cathode material",
            [
                run.sign(
                    Transform,
                    "cathode",
                    inputs=(
                        Input(lot("co-sulfate-1"), 20 * TONNE),
                        Input(lot("li-carbonate-cl"), 6 * TONNE),
                    ),
                    outputs=(Output(lot("cam-nmc-1"), material("cam-nmc").code, 18 * TONNE),),
                    footprint=54_000 * KG,
                )
            ],
        )

    def to_cells() -> None:
        hand_off("cathode material", "cam-nmc-1", "cathode", "cell")

    def bind() -> None:
        run.passports = [text32(f"BAT-{run.run_id}-{i + 1}", "passport") for i in range(3)]
        run.batch(
            "bind 3 batteries to passports",
            [
                run.sign(
                    BindPassport,
                    "cell",
                    passport=p,
                    inputs=(Input(lot("cam-nmc-1"), 45 * KG),),
                    footprint=610 * KG,
                    document_hash=keccak(text=f"{run.run_id}/battery data {i}"),
                )
                for i, p in enumerate(run.passports)
            ],
        )

    def attest() -> None:
        verdict, report_hash = audit(run.passports[0])
        run.batch(
            "audit passport 1, attest",
            [
                run.sign(
                    Attest,
                    "auditor",
                    passport=run.passports[0],
                    verdict=verdict,
                    report_hash=report_hash,
                )
            ],
        )

    return [
        ("accredit participants", accredit),
        ("commission lots", commission),
        ("ship and receive", ship_to_refiner),
        ("refine", refine),
        ("make cathode material", to_cathode),
        ("deliver to the cell maker", to_cells),
        ("bind passports", bind),
        ("attest", attest),
    ]


def _bootstrap(w3: Web3, console: Console) -> DemoRun:
    """Fresh keys for this run, gas money on the dev node, a new ledger and its relayer."""
    keys = {name: LocalSigner(secrets.token_bytes(32)) for name in ("governor", "relayer")}
    keys.update({m.key: LocalSigner(secrets.token_bytes(32)) for m in CAST})
    for who in ("governor", "relayer"):
        try:
            fund_on_dev_node(w3, keys[who].address)
        except NodeError:
            raise NodeError(
                "the demo funds its accounts with anvil_setBalance, which this node refused; "
                "run the demo on the embedded node (no --rpc-url)"
            ) from None
    ledger, _ = deploy_ledger(w3, keys["governor"], keys["relayer"])
    console.print(f"deployed the ledger at {ledger.address} (governor {keys['governor'].address})")
    return DemoRun(ledger, keys, run_id=secrets.token_hex(3))


def run_demo(settings: Settings, console: Console) -> DemoRun:
    with embedded_or_remote(settings, console) as w3:
        run = _bootstrap(w3, console)
        steps = _steps(run, _auditor(run, settings, w3))
        columns = (TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("recording the supply chain", total=len(steps))
            for label, step in steps:
                progress.update(task, description=label)
                step()
                progress.advance(task)
            progress.update(task, description="done")
        _report(run, console)
        _provenance(run, settings, w3, console)
    return run


def _auditor(run: DemoRun, settings: Settings, w3: Web3) -> Callable[[bytes], tuple[int, bytes]]:
    """The auditor's work before it attests: an independent audit of the passport against the
    node, its reports written to DATA_DIR/audits; returns the verdict and the report's hash."""

    def audit(passport: bytes) -> tuple[int, bytes]:
        result = verify(
            w3,
            run.ledger.address,
            passport,
            rpc_url=str(getattr(w3.provider, "endpoint_uri", "")),
            high_risk_countries=settings.high_risk_country_set,
        )
        folder = settings.data_dir / "audits"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{show_id(passport)}.json"
        _, digest = write_reports(result.to_json(), path, path.with_suffix(".html"))
        run.audit_report = path
        return (1 if result.passed else 2), digest

    return audit


def _provenance(run: DemoRun, settings: Settings, w3: Web3, console: Console) -> None:
    """Index the new ledger and print where each passport's raw materials come from."""
    ledger = run.ledger
    path = settings.ledger_dir(ledger.domain.chain_id, ledger.address) / "index.sqlite"
    store = SqliteStore(path)
    try:
        result = Indexer(w3, ledger.address, store).sync()
        console.print(
            f"indexed {result.logs} ledger events in {result.seconds * 1000:.0f} ms ({path})"
        )
        names: dict[str, str] = {signer.address: name for name, signer in run.keys.items()}
        for i, passport in enumerate(run.passports):
            graph = store.upstream(passport)
            if graph is None:
                raise NodeError(f"passport 0x{passport.hex()} is missing from the index")
            report = passport_provenance(
                graph,
                passport,
                high_risk_countries=settings.high_risk_country_set,
                now=int(time.time()),
            )
            console.rule(f"provenance of passport {i + 1} of {len(run.passports)}")
            print_provenance(
                console, report, title=f"passport {show_id(passport)}", names=names, tree=i == 0
            )
        first = show_id(run.passports[0])
        console.print(
            f"\nLook again: mine2cell passport show {first} --ledger {ledger.address} "
            "(--json for the full report; `lot trace LOT --downstream` for where a lot went)",
            highlight=False,
        )
        if run.audit_report is not None:
            console.print(
                f"Audit it yourself: mine2cell audit verify {first} --ledger {ledger.address}\n"
                f"The auditor's report {run.audit_report} (and .html) is the one attested on "
                f"chain: mine2cell audit show {first} --ledger {ledger.address} --report "
                f"{run.audit_report}",
                highlight=False,
            )
        console.print(
            f"Its passport page: mine2cell serve --ledger {ledger.address}, then open "
            f"http://127.0.0.1:8000/passports/{quote(first, safe='')} (the public tier; for the "
            "facility and volume detail, `mine2cell token create --read NAME` and open the page "
            "with ?token=...)",
            highlight=False,
        )
    finally:
        store.close()


def _report(run: DemoRun, console: Console) -> None:
    steps = Table(title="What was recorded", show_lines=False)
    for column in ("step", "ops", "block", "gas", "transaction"):
        steps.add_column(column, justify="right" if column in ("ops", "block", "gas") else "left")
    for r in run.records:
        steps.add_row(
            r.step, str(r.operations), str(r.block), f"{r.gas:,}", "0x" + r.tx_hash.hex()[:12] + "…"
        )
    console.print(steps)

    lots = Table(title="Lots on the ledger")
    for column in ("lot", "material", "custodian", "remaining"):
        lots.add_column(column, justify="right" if column == "remaining" else "left")
    names: dict[str, str] = {v.address: k for k, v in run.keys.items()}
    for name in (
        "co-hydroxide-cd",
        "co-hydroxide-au",
        "black-mass-de",
        "li-carbonate-cl",
        "co-sulfate-1",
        "co-sulfate-2",
        "cam-nmc-1",
    ):
        view = run.ledger.lot(run.lot_id(name))
        if view is None:
            continue
        remaining = format_mass(view.remaining) if view.remaining else "closed"
        lots.add_row(
            name, describe(view.material), names.get(view.custodian, view.custodian), remaining
        )
    console.print(lots)
    for p in run.passports:
        binder = run.ledger.passport_binder(p)
        shown = names.get(binder, binder) if binder else "nobody"
        console.print(f"passport {show_id(p)} bound by {shown}")
    console.print(f"ledger {run.ledger.address} on chain {run.ledger.domain.chain_id}")
