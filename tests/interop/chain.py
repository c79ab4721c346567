"""The interop suites' supply chain, recorded through the Service on the embedded node: two cobalt
lots mined at Kolwezi (one refused on delivery, shipped again), a third shipped and recalled, the
two blended and refined into cobalt sulfate at Kokkola, split in two, one part shipped to the
cell maker at Skellefteå and bound to passport PASS-1 (what is left of it sent back to the
refinery), and the refinery's declaration that its split recorded incorrect data (the shipment
after it named as corrective).

``cast_ledger`` accredits the same cast (same keys, facilities, countries) on a ledger with no
lots, for captures and round trips."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import keccak
from web3.types import RPCEndpoint

from mine2cell.client import INCORRECT_DATA
from mine2cell.codes import Feedstock, Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.relay.outbox import Accepted, State
from mine2cell.service import Service
from mine2cell.signing.eip712 import Input, LotId, Output, text32
from tests.e2e.cli_support import PASSPHRASE, make_keys

KEYS = ("governor", "relayer", "kolwezi", "kokkola", "skelleftea", "auditor")
YEAR = 365 * 24 * 3600
HOUR = 3600
MEMBERS = (
    ("kolwezi", Role.MINE, "CD-KOLWEZI-1", "CD"),
    ("kokkola", Role.PROCESSOR, "FI-KOKKOLA", "FI"),
    ("skelleftea", Role.CELL_MAKER, "SE-SKELLEFTEA", "SE"),
    ("auditor", Role.AUDITOR, "BE-ANTWERP-AUDIT", "BE"),
)
ASSAY = keccak(text="assay of KOL-1")
CERTIFICATE = keccak(text="certificate of analysis of SUL-1A")
BATTERY_FILE = keccak(text="battery passport file")


def lot(text: str) -> LotId:
    return LotId(parse_id(text))


PASSPORT = parse_id("PASS-1", "passport")


@dataclass
class Recorded:
    data_dir: Path
    ledger: str
    accounts: dict[str, str] = field(default_factory=dict)
    events: dict[str, bytes] = field(default_factory=dict)  # name -> ledger event id


def settings(data_dir: Path, ledger: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, rpc_url=None, ledger_address=ledger)


@contextmanager
def opened(data_dir: Path, ledger: str | None = None) -> Iterator[Service]:
    with Service(settings(data_dir, ledger), passphrase=lambda: PASSPHRASE) as service:
        yield service


def settle(service: Service, *accepted: Accepted) -> list[bytes]:
    ids = [a.event_id for a in accepted]
    statuses = service.settle(ids)
    assert all(statuses[i].state is State.CONFIRMED for i in ids), statuses
    return ids


def _accredit(service: Service) -> dict[str, str]:
    governor = service.client("governor")
    settle(
        service,
        *(
            governor.accredit(service.account(n), roles=r, facility=text32(f), country=c)
            for n, r, f, c in MEMBERS
        ),
    )
    settle(
        service,
        *(
            governor.certify(
                service.account(n),
                scheme=text32("RMAP"),
                valid_until=int(time.time()) + YEAR,
                document_hash=bytes(32),
            )
            for n, *_ in MEMBERS[:3]
        ),
    )
    return {name: service.account(name) for name in KEYS}


def cast_ledger(data_dir: Path, keys_from: Path) -> Recorded:
    """A new ledger on a new node with the recorded chain's participants accredited (the same key
    files), and no lots."""
    data_dir.mkdir(parents=True)
    shutil.copytree(keys_from / "keys", data_dir / "keys")
    with opened(data_dir) as service:
        accounts = _accredit(service)
        return Recorded(data_dir, service.ledger.address, accounts)


def record(data_dir: Path) -> Recorded:
    make_keys(data_dir, KEYS)
    with opened(data_dir) as service:
        recorded = Recorded(data_dir, "", _accredit(service))
        recorded.ledger = service.ledger.address
        mine, refinery = service.client("kolwezi"), service.client("kokkola")
        cells = service.client("skelleftea")
        refinery_at, cells_at = recorded.accounts["kokkola"], recorded.accounts["skelleftea"]
        hydroxide, sulfate = material("co-hydroxide").code, material("co-sulfate").code
        ids = recorded.events

        def step(name: str, accepted: Accepted) -> None:
            (ids[name],) = settle(service, accepted)

        ids["commission KOL-1"], ids["commission KOL-2"], ids["commission KOL-3"] = settle(
            service,
            mine.commission(
                lot("KOL-1"),
                material=hydroxide,
                quantity=12_000_000,
                feedstock=Feedstock.PRIMARY,
                footprint=9_600_000,
                document_hash=ASSAY,
            ),
            mine.commission(lot("KOL-2"), material=hydroxide, quantity=3_000_000, footprint=2_400),
            mine.commission(lot("KOL-3"), material=hydroxide, quantity=500_000),
        )
        ids["ship KOL-1"], ids["ship KOL-2"], ids["ship KOL-3"] = settle(
            service,
            mine.ship(lot("KOL-1"), refinery_at),
            mine.ship(lot("KOL-2"), refinery_at),
            mine.ship(lot("KOL-3"), refinery_at),
        )
        ids["receive KOL-1"], ids["reject KOL-2"], ids["recall KOL-3"] = settle(
            service,
            refinery.receive(lot("KOL-1")),
            refinery.reject(lot("KOL-2")),
            mine.recall(lot("KOL-3")),
        )
        # An hour later: a participant's export can be bounded between the two hours.
        service.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [HOUR])
        step("ship KOL-2 again", mine.ship(lot("KOL-2"), refinery_at))
        step("receive KOL-2", refinery.receive(lot("KOL-2")))
        step(
            "blend",
            refinery.transform(
                [Input(lot("KOL-1"), 12_000_000), Input(lot("KOL-2"), 3_000_000)],
                [Output(lot("SUL-1"), sulfate, 20_000_000)],
                footprint=31_000_000,
            ),
        )
        step(
            "split",
            refinery.transform(
                [Input(lot("SUL-1"), 20_000_000)],
                [
                    Output(lot("SUL-1A"), sulfate, 15_000_000, CERTIFICATE),
                    Output(lot("SUL-1B"), sulfate, 5_000_000),
                ],
                footprint=120_000,
            ),
        )
        step("ship SUL-1A", refinery.ship(lot("SUL-1A"), cells_at))
        step("receive SUL-1A", cells.receive(lot("SUL-1A")))
        step(
            "bind",
            cells.bind_passport(
                PASSPORT,
                [Input(lot("SUL-1A"), 45_000)],
                footprint=610_000,
                document_hash=BATTERY_FILE,
            ),
        )
        # What the binding left of SUL-1A goes back to the refinery: it moves 14.955 t.
        step("ship SUL-1A back", cells.ship(lot("SUL-1A"), refinery_at))
        step("receive SUL-1A back", refinery.receive(lot("SUL-1A")))
        step(
            "correct split",
            refinery.correct(ids["split"], reason=INCORRECT_DATA, corrective=[ids["ship SUL-1A"]]),
        )
        service.indexer().sync()
        return recorded


def copy(recorded: Recorded, target: Path) -> Recorded:
    """The recorded data directory (keys, node state, outbox, index) under ``target``."""
    shutil.copytree(recorded.data_dir, target)
    return Recorded(target, recorded.ledger, dict(recorded.accounts), dict(recorded.events))
