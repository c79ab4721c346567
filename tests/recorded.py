"""A small supply chain recorded through the Service on the embedded node, the way the CLI and
the server record: keys in a data directory, everyone accredited and certified, ore mined,
refined and bound to passport PASS-1. The CLI and API tests copy the data directory it leaves."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mine2cell.codes import Feedstock, Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.relay.outbox import State
from mine2cell.service import Service
from mine2cell.signing.eip712 import Input, LotId, Output, text32
from tests.e2e.cli_support import PASSPHRASE, make_keys

KEYS = ("governor", "relayer", "kolwezi", "kokkola", "skelleftea", "auditor")
YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Template:
    data_dir: Path
    ledger: str


def record_chain(data_dir: Path) -> Template:
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
