"""Gas per ledger operation: alone in its own transaction, and amortized in relayed batches.

Runs on a fresh anvil node started by the project. Prints the table and writes it to
bench/gas.md (committed, so a change in gas shows in review).

    .venv/bin/python bench/gas.py            # or: make gas
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import keccak
from rich.progress import Progress
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.chain.node import DevNode
from mine2cell.codes import Role
from mine2cell.signing.eip712 import (
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Correct,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    Recall,
    Receive,
    Reject,
    Ship,
    SignedOperation,
    Transform,
    text32,
)

MINE, PROCESSOR, CELL_MAKER = Role.MINE, Role.PROCESSOR, Role.CELL_MAKER
AUDITOR, RELAYER = Role.AUDITOR, Role.RELAYER
BATCHES = (10, 100)
FIXED_DEADLINE = 4_000_000_000
OUT = Path(__file__).with_name("gas.md")


class Bench:
    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        names = ["governor", "relayer", "mine", "refiner", "cell", "auditor"]
        self.keys = {n: LocalSigner(keccak(text=f"gas bench {n}")) for n in names}
        for n in ("governor", "relayer"):
            w3.provider.make_request("anvil_setBalance", [self.keys[n].address, hex(10**24)])  # type: ignore[arg-type]
        gov = self.keys["governor"]
        self.ledger = LedgerClient.deploy(w3, Transactor(w3, gov), gov.address)
        self.ledger.submit(self._accredit("relayer", RELAYER))
        self.ledger.transactor = Transactor(w3, self.keys["relayer"])
        self.counter = 0
        self.relay(
            [
                self._accredit("mine", MINE),
                self._accredit("refiner", PROCESSOR),
                self._accredit("cell", CELL_MAKER),
                self._accredit("auditor", AUDITOR),
            ]
        )

    def _accredit(self, name: str, roles: int) -> SignedOperation:
        return self.sign(
            Accredit,
            self.keys["governor"],
            participant=self.keys[name].address,
            roles=roles,
            facility=text32(name.upper()[:32]),
            country="FI",
        )

    def sign(self, op_type: type[Operation], who: LocalSigner, **fields: Any) -> SignedOperation:
        # A fixed deadline keeps the signatures, hence the calldata and the gas, reproducible.
        return self.ledger.sign(op_type, who, deadline=FIXED_DEADLINE, **fields)

    def new_id(self) -> LotId:
        self.counter += 1
        return LotId(keccak(text=f"id {self.counter}"))

    def relay(self, ops: list[SignedOperation]) -> int:
        result = self.ledger.relay(ops)
        if result.failed:
            raise SystemExit(f"benchmark setup failed: {result.failed}")
        return result.gas_used

    def single(self, op: SignedOperation, proof: bytes = b"") -> int:
        return int(self.ledger.submit(op, proof)["gasUsed"])

    # -- operation builders --------------------------------------------------------------------

    def commission(self) -> SignedOperation:
        return self.sign(
            Commission,
            self.keys["mine"],
            lot=self.new_id(),
            material=101,
            quantity=10_000_000,
            feedstock=0,
            footprint=1_234_567,
            document_hash=keccak(text="assay"),
        )

    def lots_at(self, holder: str, n: int) -> list[LotId]:
        """n fresh lots held by ``holder`` (not measured)."""
        lots: list[LotId] = []
        for start in range(0, n, 100):
            ops = [self.commission() for _ in range(min(100, n - start))]
            self.relay(ops)
            ids = [op.operation.lot for op in ops]  # type: ignore[attr-defined]
            if holder != "mine":
                self.relay([self.ship(i, holder) for i in ids])
                self.relay([self.receive(i, holder) for i in ids])
            lots += ids
        return lots

    def ship(self, lot: bytes, to: str, sender: str = "mine") -> SignedOperation:
        return self.sign(Ship, self.keys[sender], lot=lot, recipient=self.keys[to].address)

    def receive(self, lot: bytes, to: str, sender: str = "mine") -> SignedOperation:
        return self.sign(Receive, self.keys[to], lot=lot, counterparty=self.keys[sender].address)


def measure(
    bench: Bench,
    label: str,
    prepare: Callable[[int], list[SignedOperation]],
    progress: Progress,
) -> tuple[str, int, list[int]]:
    """Gas of one operation alone (its own transaction) and per operation in batches."""
    task = progress.add_task(label, total=1 + len(BATCHES))
    single = bench.single(prepare(1)[0])
    progress.advance(task)
    amortized: list[int] = []
    for size in BATCHES:
        ops = prepare(size)
        amortized.append(bench.relay(ops) // size)
        progress.advance(task)
    return label, single, amortized


def run() -> list[tuple[str, int, list[int]]]:
    rows: list[tuple[str, int, list[int]]] = []
    with DevNode() as node, Progress() as progress:
        b = Bench(Web3(Web3.HTTPProvider(node.url)))

        def accredit(n: int) -> list[SignedOperation]:
            out = []
            for _ in range(n):
                key = LocalSigner(b.new_id())
                b.keys[key.address] = key
                out.append(b._accredit(key.address, PROCESSOR))
            return out

        def certify(n: int) -> list[SignedOperation]:
            return [
                b.sign(
                    Certify,
                    b.keys["governor"],
                    participant=b.keys["refiner"].address,
                    scheme=b.new_id(),
                    valid_until=2_000_000_000,
                    document_hash=keccak(text="certificate"),
                )
                for _ in range(n)
            ]

        def commission(n: int) -> list[SignedOperation]:
            return [b.commission() for _ in range(n)]

        shipped: list[bytes] = []

        def ship(n: int) -> list[SignedOperation]:
            lots = b.lots_at("mine", n)
            shipped.extend(lots)
            return [b.ship(lot, "refiner") for lot in lots]

        def receive(n: int) -> list[SignedOperation]:
            lots = [shipped.pop(0) for _ in range(n)]
            return [b.receive(lot, "refiner") for lot in lots]

        def reject(n: int) -> list[SignedOperation]:
            lots = b.lots_at("mine", n)
            b.relay([b.ship(lot, "refiner") for lot in lots])
            return [
                b.sign(Reject, b.keys["refiner"], lot=lot, counterparty=b.keys["mine"].address)
                for lot in lots
            ]

        def recall(n: int) -> list[SignedOperation]:
            lots = b.lots_at("mine", n)
            b.relay([b.ship(lot, "refiner") for lot in lots])
            return [
                b.sign(Recall, b.keys["mine"], lot=lot, counterparty=b.keys["refiner"].address)
                for lot in lots
            ]

        def transform(n: int) -> list[SignedOperation]:
            lots = b.lots_at("refiner", 2 * n)
            return [
                b.sign(
                    Transform,
                    b.keys["refiner"],
                    inputs=(Input(lots[2 * i], 6_000_000), Input(lots[2 * i + 1], 4_000_000)),
                    outputs=(Output(b.new_id(), 102, 15_000_000, keccak(text="sulfate assay")),),
                    footprint=2_500_000,
                )
                for i in range(n)
            ]

        def bind(n: int) -> list[SignedOperation]:
            lots = b.lots_at("mine", 2 * n)
            b.relay([b.ship(lot, "cell") for lot in lots])
            b.relay([b.receive(lot, "cell") for lot in lots])
            return [
                b.sign(
                    BindPassport,
                    b.keys["cell"],
                    passport=b.new_id(),
                    inputs=(Input(lots[2 * i], 400_000), Input(lots[2 * i + 1], 300_000)),
                    footprint=80_000_000,
                    document_hash=keccak(text="passport data"),
                )
                for i in range(n)
            ]

        passports: list[bytes] = []

        def attest(n: int) -> list[SignedOperation]:
            binds = bind(n)
            b.relay(binds)
            ids = [op.operation.passport for op in binds]  # type: ignore[attr-defined]
            passports.extend(ids)
            return [
                b.sign(
                    Attest,
                    b.keys["auditor"],
                    passport=p,
                    verdict=1,
                    report_hash=keccak(text="report"),
                )
                for p in ids
            ]

        def correct(n: int) -> list[SignedOperation]:
            return [
                b.sign(
                    Correct,
                    b.keys["auditor"],
                    target=b.new_id(),
                    reason=2,
                    corrective=(b.new_id(),),
                )
                for _ in range(n)
            ]

        for label, prepare in (
            ("accredit", accredit),
            ("certify", certify),
            ("commission", commission),
            ("ship", ship),
            ("receive", receive),
            ("reject", reject),
            ("recall", recall),
            ("transform 2 in / 1 out", transform),
            ("bind passport (2 inputs)", bind),
            ("attest", attest),
            ("correct (auditor)", correct),
        ):
            rows.append(measure(b, label, prepare, progress))
    by_label = {label: (single, amortized) for label, single, amortized in rows}
    ship_row, receive_row = by_label["ship"], by_label["receive"]
    rows.append(
        (
            "custody hand-off (ship + receive)",
            ship_row[0] + receive_row[0],
            [s + r for s, r in zip(ship_row[1], receive_row[1], strict=True)],
        )
    )
    return rows


def table(rows: list[tuple[str, int, list[int]]]) -> str:
    head = "| operation | alone (own tx) | " + " | ".join(f"per op, batch of {n}" for n in BATCHES)
    lines = [head + " |", "|---|---:|" + "---:|" * len(BATCHES)]
    for label, single, amortized in rows:
        cells = " | ".join(f"{g:,}" for g in amortized)
        lines.append(f"| {label} | {single:,} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-write", action="store_true", help="print only; do not update gas.md")
    args = parser.parse_args()
    rendered = table(run())
    note = (
        "Gas used by each ledger operation, measured on anvil by `make gas` "
        "(bench/gas.py). 'alone' includes the 21,000 base cost of its own transaction; "
        "batch figures are the relay transaction's gas divided by the batch size.\n\n"
    )
    print(rendered)
    if not args.no_write:
        OUT.write_text("# Gas per operation\n\n" + note + rendered + "\n")
        print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
