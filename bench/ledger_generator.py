"""A realistic, deterministic ledger for benchmarks, recorded on a given anvil node.

The supply chain, simulated in periods (each period every stage acts once, in this order):

- mines in eight countries commission lots (cobalt hydroxide in DR Congo, nickel MHP in Indonesia
  and the Philippines, spodumene in Australia, lithium carbonate from brine in Chile and
  Argentina, manganese sulfate in South Africa and Gabon, natural graphite in Mozambique and
  China) and recyclers in Germany and Norway commission black mass (pre- and post-consumer), each
  with its declared footprint; every lot is shipped to a refiner of its material (brine carbonate
  and manganese sulfate go straight to cathode makers), who receives it;
- refiners run campaigns once they hold enough feed: a transformation that blends several lots
  (first in, first out; the last one partly) into one or two sulfate / hydroxide / spherical
  graphite lots, shipped to cathode makers (graphite to cell makers) and received;
- cathode makers blend nickel, cobalt and manganese sulfates and lithium (partly consuming many
  lots) into NMC cathode (CAM) lots, shipped to cell makers and received;
- cell makers bind battery passports, each consuming about 110 kg of CAM and 70 kg of spherical
  graphite from one or two lots.

Quantities are integer grams at industrial scale (20-40 t lots of hydroxide, 400-900 t of
spodumene, refining campaigns of hundreds of tonnes, 110 kg of CAM per battery); footprints are
integer grams of CO2e. Everything derives from the seed: keys, lot and passport ids, quantities,
and (with a fixed deadline and fixed nonces) every event id.

The target: one passport whose upstream is 1,002 lots (four CAM lots blended from 35 refined
lots of nickel and cobalt sulfate, lithium hydroxide and spherical graphite, which come from 963
mined lots), identical in structure, quantities and event ids whatever the size of the ledger
around it: its lots are its own, its random numbers come from its own generator, and its
operations use nonces from a range of their own. Its operations are spread over the ledger (mine
lots over the first 40 %, refining at 50 %, cathode at 65 %, the binding at 80 %), so the same
query can be timed on a small and a large ledger.

Recording: operations are signed by their participants (in worker processes: signing is the
participants' work, done on their own machines) and go through the service's own path: accepted
into an outbox in chunks with ``intake.accept`` (signature, signer and deadline checked) while a
``Relay`` in a process of its own batches them onto the chain.

    .venv/bin/python bench/ledger_generator.py --lots 100000 [--rpc-url http://127.0.0.1:8545]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import keccak
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient
from mine2cell.chain.node import DevNode
from mine2cell.codes import Feedstock, Role
from mine2cell.errors import Mine2CellError
from mine2cell.relay import intake
from mine2cell.relay.outbox import Outbox, State
from mine2cell.relay.relay import BatchPolicy, Relay
from mine2cell.service import deploy_ledger, fund_on_dev_node
from mine2cell.signing.eip712 import (
    Accredit,
    BindPassport,
    Certify,
    Commission,
    Domain,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    Receive,
    Ship,
    SignedOperation,
    Transform,
    sign,
    text32,
)

TONNE = 1_000_000  # grams
KG = 1_000
DEFAULT_SEED = 2026
# 2100-01-01: a fixed deadline, so that event ids do not depend on when the bench runs.
DEADLINE = 4_102_444_800
# The target's operations take their nonces from here on: apart from the rest of the ledger, so
# the target's event ids are the same whatever the size of the ledger around it.
TARGET_NONCE_BASE = 1 << 40
# Passports bound per period (over all cell makers): enough to keep above three operations per lot.
PASSPORTS_PER_PERIOD = 12
SIGN_CHUNK = 256  # operations per signing task and per intake.accept call
SETTLE_TIMEOUT_SECONDS = 1800.0

# (operation type name, signer index, nonce, the operation's own fields in declaration order)
Spec = tuple[str, int, int, tuple[Any, ...]]

OPERATION_TYPES: dict[str, type[Operation]] = {
    t.__name__: t for t in (Accredit, Certify, Commission, Ship, Receive, Transform, BindPassport)
}

# -- the cast ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    key: str
    roles: int
    facility: str
    country: str
    # Certification: scheme and valid-until (unix seconds); None for no certificate.
    scheme: str | None = None
    valid_until: int = 0


@dataclass(frozen=True)
class Source:
    """A mine or recycler: what it commissions, in lots of what size, how often."""

    member: str
    material: int
    tonnes: tuple[int, int]
    per_period: float  # expected lots per period
    kg_co2e_per_tonne: int
    post_consumer_share: float | None = None  # recyclers: share of post-consumer lots


@dataclass(frozen=True)
class Refinery:
    member: str
    feed: int
    products: tuple[tuple[int, int], ...]  # (material, kg of product per tonne of feed)
    campaign_tonnes: tuple[int, int]
    kg_co2e_per_tonne: int  # per tonne of product
    ships_to: str  # "cam" or "cell"


END_2027 = 1_830_297_599  # 2027-12-31 23:59:59 UTC
MID_2025 = 1_751_327_999  # 2025-06-30 23:59:59 UTC: expired before any block of the bench
MINE, RECYCLER, PROCESSOR, CELL_MAKER = Role.MINE, Role.RECYCLER, Role.PROCESSOR, Role.CELL_MAKER

CAST: tuple[Member, ...] = (
    Member("mine-kolwezi", MINE, "CD-KOLWEZI-CO-01", "CD", "RMI-RMAP", END_2027),
    Member("mine-tenke", MINE, "CD-TENKE-CO-02", "CD", "IRMA-75", END_2027),
    Member("mine-morowali", MINE, "ID-MOROWALI-HPAL-1", "ID", "IRMA-50", END_2027),
    Member("mine-weda", MINE, "ID-WEDA-BAY-HPAL-1", "ID"),
    Member("mine-coralbay", MINE, "PH-PALAWAN-HPAL-1", "PH", "ISO-14001", END_2027),
    Member("mine-greenbushes", MINE, "AU-GREENBUSHES-LI-1", "AU", "IRMA-75", END_2027),
    Member("mine-pilgangoora", MINE, "AU-PILGANGOORA-LI-1", "AU", "ISO-14001", END_2027),
    Member("mine-atacama", MINE, "CL-ATACAMA-BRINE-1", "CL", "IRMA-75", END_2027),
    Member("mine-olaroz", MINE, "AR-OLAROZ-BRINE-1", "AR", "ISO-14001", MID_2025),
    Member("mine-kalahari", MINE, "ZA-KALAHARI-MN-1", "ZA", "ISO-14001", END_2027),
    Member("mine-moanda", MINE, "GA-MOANDA-MN-1", "GA", "ISO-14001", END_2027),
    Member("mine-balama", MINE, "MZ-BALAMA-GR-1", "MZ"),
    Member("mine-jixi", MINE, "CN-JIXI-GR-1", "CN", "ISO-14001", END_2027),
    Member("recycler-hamburg", RECYCLER, "DE-HAMBURG-REC-1", "DE", "ISO-14001", END_2027),
    Member("recycler-fredrikstad", RECYCLER, "NO-FREDRIKSTAD-REC-1", "NO", "ISO-14001", END_2027),
    Member("refiner-kokkola", PROCESSOR, "FI-KOKKOLA-CO-1", "FI", "RMI-RMAP", END_2027),
    Member("refiner-quzhou", PROCESSOR, "CN-QUZHOU-CO-1", "CN", "RMI-RMAP", MID_2025),
    Member("refiner-harjavalta", PROCESSOR, "FI-HARJAVALTA-NI-1", "FI", "RMI-RMAP", END_2027),
    Member("refiner-obi", PROCESSOR, "ID-OBI-NI-1", "ID", "RMI-RMAP", END_2027),
    Member("refiner-sichuan", PROCESSOR, "CN-SICHUAN-LI-1", "CN", "RMI-RMAP", END_2027),
    Member("refiner-guben", PROCESSOR, "DE-GUBEN-LI-1", "DE", "RMI-RMAP", END_2027),
    Member("refiner-hoboken", PROCESSOR, "BE-HOBOKEN-HYDRO-1", "BE", "RMI-RMAP", END_2027),
    Member("refiner-jixi", PROCESSOR, "CN-JIXI-SPG-1", "CN"),
    Member("cam-nysa", PROCESSOR, "PL-NYSA-CAM-1", "PL", "ISO-14001", END_2027),
    Member("cam-gwangyang", PROCESSOR, "KR-GWANGYANG-CAM-1", "KR", "ISO-14001", END_2027),
    Member("cam-hamina", PROCESSOR, "FI-HAMINA-CAM-1", "FI", "ISO-14001", END_2027),
    Member("cell-skelleftea", CELL_MAKER, "SE-SKELLEFTEA-1", "SE", "ISO-14001", END_2027),
    Member("cell-debrecen", CELL_MAKER, "HU-DEBRECEN-1", "HU", "ISO-14001", END_2027),
    Member("cell-gruenheide", CELL_MAKER, "DE-GRUENHEIDE-1", "DE", "ISO-14001", END_2027),
)

CO_HYDROXIDE, CO_SULFATE = 101, 102
SPODUMENE, LI_CARBONATE, LI_HYDROXIDE = 200, 201, 202
NI_MHP, NI_SULFATE = 301, 302
GRAPHITE, GRAPHITE_SPHERICAL = 400, 401
MN_SULFATE, BLACK_MASS, CAM_NMC = 500, 600, 701

SOURCES: tuple[Source, ...] = (
    Source("mine-kolwezi", CO_HYDROXIDE, (18, 26), 1.0, 6_000),
    Source("mine-tenke", CO_HYDROXIDE, (18, 26), 1.0, 6_500),
    Source("mine-morowali", NI_MHP, (25, 40), 3.0, 13_000),
    Source("mine-weda", NI_MHP, (25, 40), 3.0, 12_000),
    Source("mine-coralbay", NI_MHP, (20, 35), 2.5, 9_000),
    Source("mine-greenbushes", SPODUMENE, (400, 900), 0.25, 350),
    Source("mine-pilgangoora", SPODUMENE, (400, 900), 0.25, 380),
    Source("mine-atacama", LI_CARBONATE, (18, 25), 1.0, 2_800),
    Source("mine-olaroz", LI_CARBONATE, (18, 25), 1.0, 3_100),
    Source("mine-kalahari", MN_SULFATE, (20, 30), 1.0, 1_400),
    Source("mine-moanda", MN_SULFATE, (20, 30), 1.0, 1_600),
    Source("mine-balama", GRAPHITE, (20, 40), 1.0, 900),
    Source("mine-jixi", GRAPHITE, (20, 40), 1.0, 1_100),
    Source("recycler-hamburg", BLACK_MASS, (5, 15), 1.0, 600, post_consumer_share=0.6),
    Source("recycler-fredrikstad", BLACK_MASS, (5, 15), 1.0, 500, post_consumer_share=0.8),
)

REFINERIES: tuple[Refinery, ...] = (
    Refinery("refiner-kokkola", CO_HYDROXIDE, ((CO_SULFATE, 1_600),), (60, 140), 3_000, "cam"),
    Refinery("refiner-quzhou", CO_HYDROXIDE, ((CO_SULFATE, 1_600),), (60, 140), 3_500, "cam"),
    Refinery("refiner-harjavalta", NI_MHP, ((NI_SULFATE, 1_700),), (150, 300), 2_500, "cam"),
    Refinery("refiner-obi", NI_MHP, ((NI_SULFATE, 1_700),), (150, 300), 6_000, "cam"),
    Refinery("refiner-sichuan", SPODUMENE, ((LI_HYDROXIDE, 150),), (400, 900), 9_000, "cam"),
    Refinery("refiner-guben", SPODUMENE, ((LI_HYDROXIDE, 150),), (400, 900), 5_000, "cam"),
    Refinery(
        "refiner-hoboken",
        BLACK_MASS,
        ((NI_SULFATE, 600), (CO_SULFATE, 250)),
        (20, 45),
        2_000,
        "cam",
    ),
    Refinery("refiner-jixi", GRAPHITE, ((GRAPHITE_SPHERICAL, 600),), (40, 90), 5_000, "cell"),
)
CAM_MAKERS = ("cam-nysa", "cam-gwangyang", "cam-hamina")
CELL_MAKERS = ("cell-skelleftea", "cell-debrecen", "cell-gruenheide")
# kg of each input per tonne of NMC 811 cathode; lithium from hydroxide, or carbonate instead.
CAM_RECIPE: tuple[tuple[int, int], ...] = (
    (NI_SULFATE, 2_350),
    (CO_SULFATE, 300),
    (MN_SULFATE, 250),
)
LITHIUM = ((LI_HYDROXIDE, 450), (LI_CARBONATE, 400))
CAM_TONNES = (30, 60)
CAM_KG_CO2E_PER_TONNE = 11_000
CELL_CAM_KG = (95, 130)
CELL_GRAPHITE_KG = (60, 80)
CELL_KG_CO2E = (2_500, 3_500)  # cell and pack manufacturing, per battery

# Where each commissioned material goes.
_FEED_OF: dict[int, tuple[str, ...]] = {}
for _refinery in REFINERIES:
    _FEED_OF[_refinery.feed] = (*_FEED_OF.get(_refinery.feed, ()), _refinery.member)
_FEED_OF[LI_CARBONATE] = CAM_MAKERS
_FEED_OF[MN_SULFATE] = CAM_MAKERS

# The target's shape: per cathode batch, (sulfate lots, feed lots per sulfate lot).
TARGET_CAM_BATCHES = 4
TARGET_NI = (6, 29)
TARGET_CO = (2, 26)
TARGET_LIOH = (1, 10)  # batches 0 and 2; batches 1 and 3 use brine carbonate lots instead:
TARGET_BRINE_LOTS = 2
TARGET_MN_LOTS = 2
TARGET_GRAPHITE_FEED = 27
# Progress (lots created / lots wanted) at which each stage of the target is recorded.
TARGET_MINE_SLICES = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
TARGET_REFINE_AT, TARGET_CAM_AT, TARGET_BIND_AT = 0.50, 0.65, 0.80


def participant_key(seed: int, name: str) -> bytes:
    return keccak(text=f"mine2cell bench ledger {seed} participant {name}")


def tonnes(rng: random.Random, bounds: tuple[int, int]) -> int:
    """A quantity in grams between ``bounds`` tonnes, to the kilogram."""
    return rng.randint(bounds[0] * 1_000, bounds[1] * 1_000) * KG


# -- planning ----------------------------------------------------------------------------------


@dataclass
class Held:
    """A lot in a participant's stock: what is left of it."""

    lot: bytes
    remaining: int


class Stock:
    """A participant's lots of one material, first in first out, and their total."""

    def __init__(self) -> None:
        self.lots: deque[Held] = deque()
        self.total = 0

    def add(self, held: Held) -> None:
        self.lots.append(held)
        self.total += held.remaining

    def take(self, grams: int) -> list[tuple[bytes, int]]:
        """Consume ``grams``, oldest lots first; the last lot may be left partly consumed."""
        taken: list[tuple[bytes, int]] = []
        self.total -= grams
        while grams > 0:
            held = self.lots[0]
            used = min(held.remaining, grams)
            taken.append((held.lot, used))
            held.remaining -= used
            grams -= used
            if held.remaining == 0:
                self.lots.popleft()
        return taken


@dataclass
class Wave:
    """Operations of one stage of a period: acts (commissions, transformations), then the ships
    of the lots they made, then the receipts; so each operation follows what it depends on."""

    acts: list[Spec] = field(default_factory=list)
    ships: list[Spec] = field(default_factory=list)
    receives: list[Spec] = field(default_factory=list)

    def drain(self) -> list[Spec]:
        ops = self.acts + self.ships + self.receives
        self.acts, self.ships, self.receives = [], [], []
        return ops


class Planner:
    """The ledger as a sequence of operations to sign, in an order that respects dependencies."""

    def __init__(self, lots: int, seed: int, *, target: bool) -> None:
        self.wanted = lots
        self.seed = seed
        self.rng = random.Random(seed)
        names = ["governor", "relayer", *(m.key for m in CAST)]
        self.keys = [participant_key(seed, n) for n in names]
        self.index = {n: i for i, n in enumerate(names)}
        self.addresses: list[ChecksumAddress] = [LocalSigner(k).address for k in self.keys]
        self.nonces: Counter[int] = Counter()
        self.target_nonces: Counter[int] = Counter()
        self.stock: dict[str, dict[int, Stock]] = {m.key: {} for m in CAST}
        self.lots = 0
        self.passports = 0
        self.kinds: Counter[str] = Counter()
        self.target_passport: bytes | None = None
        self.target_upstream: set[bytes] = set()
        self.periods = 0
        self._general_lot_count = 0
        self._target_lot_count = 0
        self._target_stages: list[tuple[float, Callable[[], list[Spec]]]] = (
            self._target_plan() if target else []
        )

    # -- building operations --------------------------------------------------------------------

    def _op(self, kind: str, who: str, fields: tuple[Any, ...], *, target: bool = False) -> Spec:
        signer = self.index[who]
        if target:
            nonce = TARGET_NONCE_BASE + self.target_nonces[signer]
            self.target_nonces[signer] += 1
        else:
            nonce = self.nonces[signer]
            self.nonces[signer] += 1
        self.kinds[kind] += 1
        return (kind, signer, nonce, fields)

    def _lot_id(self, space: str, n: int) -> bytes:
        return keccak(text=f"mine2cell bench ledger {self.seed} {space} lot {n}")

    def _new_lot(self, *, target: bool) -> bytes:
        self.lots += 1
        if target:
            self._target_lot_count += 1
            lot = self._lot_id("target", self._target_lot_count)
            self.target_upstream.add(lot)
            return lot
        self._general_lot_count += 1
        return self._lot_id("general", self._general_lot_count)

    def _document(self, lot: bytes) -> bytes:
        return keccak(b"documents " + lot)

    def _handoff(self, wave: Wave, lot: bytes, sender: str, recipient: str, target: bool) -> None:
        to, frm = self.addresses[self.index[recipient]], self.addresses[self.index[sender]]
        wave.ships.append(self._op("Ship", sender, (lot, to), target=target))
        wave.receives.append(self._op("Receive", recipient, (lot, frm), target=target))

    def _commission(
        self,
        wave: Wave,
        rng: random.Random,
        source: Source,
        recipient: str,
        *,
        target: bool = False,
    ) -> Held:
        lot = self._new_lot(target=target)
        quantity = tonnes(rng, source.tonnes)
        feedstock = Feedstock.PRIMARY
        if source.post_consumer_share is not None:
            post = rng.random() < source.post_consumer_share
            feedstock = Feedstock.POST_CONSUMER if post else Feedstock.PRE_CONSUMER
        footprint = quantity * source.kg_co2e_per_tonne // 1_000
        fields = (lot, source.material, quantity, int(feedstock), footprint, self._document(lot))
        wave.acts.append(self._op("Commission", source.member, fields, target=target))
        self._handoff(wave, lot, source.member, recipient, target)
        return Held(lot, quantity)

    def _transform(
        self,
        wave: Wave,
        who: str,
        inputs: Sequence[tuple[bytes, int]],
        outputs: Sequence[tuple[int, int]],
        kg_co2e_per_tonne: int,
        *,
        target: bool = False,
    ) -> list[Held]:
        """Record a transformation; returns its outputs (not yet shipped)."""
        made = [Held(self._new_lot(target=target), quantity) for _, quantity in outputs]
        out = tuple(
            (held.lot, material, quantity, self._document(held.lot))
            for held, (material, quantity) in zip(made, outputs, strict=True)
        )
        footprint = sum(quantity for _, quantity in outputs) * kg_co2e_per_tonne // 1_000
        wave.acts.append(self._op("Transform", who, (tuple(inputs), out, footprint), target=target))
        return made

    def _stocked(self, member: str, material: int) -> Stock:
        stock = self.stock[member].get(material)
        if stock is None:
            stock = self.stock[member][material] = Stock()
        return stock

    @staticmethod
    def _split(rng: random.Random, total: int, parts: int) -> list[int]:
        """``total`` grams in ``parts`` uneven positive parts (to the kilogram where possible)."""
        if parts == 1:
            return [total]
        weights = [rng.uniform(0.6, 1.4) for _ in range(parts)]
        scale = sum(weights)
        shares = [int(total * w / scale) // KG * KG for w in weights[:-1]]
        return [*shares, total - sum(shares)]

    # -- the general ledger ---------------------------------------------------------------------

    def prelude(self) -> list[Spec]:
        """Accreditations and certifications, by the governor (its nonce 0 went to the relayer's
        accreditation at deployment)."""
        self.nonces[self.index["governor"]] = 1
        ops = [
            self._op(
                "Accredit",
                "governor",
                (self.addresses[self.index[m.key]], int(m.roles), text32(m.facility), m.country),
            )
            for m in CAST
        ]
        for m in CAST:
            if m.scheme is not None:
                participant = self.addresses[self.index[m.key]]
                document = keccak(text=f"certificate {m.scheme} {m.facility}")
                fields = (participant, text32(m.scheme), m.valid_until, document)
                ops.append(self._op("Certify", "governor", fields))
        return ops

    def period(self) -> list[Spec]:
        rng = self.rng
        ops: list[Spec] = []
        for threshold, stage in list(self._target_stages):
            if self.lots >= threshold * self.wanted:
                ops += stage()
                self._target_stages.remove((threshold, stage))
        self.periods += 1
        # Mines and recyclers.
        wave = Wave()
        for source in SOURCES:
            count = int(source.per_period) + (rng.random() < source.per_period % 1)
            for _ in range(count):
                recipient = rng.choice(_FEED_OF[source.material])
                held = self._commission(wave, rng, source, recipient)
                self._stocked(recipient, source.material).add(held)
        ops += wave.drain()
        # Refining campaigns.
        for refinery in REFINERIES:
            stock = self._stocked(refinery.member, refinery.feed)
            campaign = tonnes(rng, refinery.campaign_tonnes)
            if stock.total < campaign:
                continue
            inputs = stock.take(campaign)
            outputs: list[tuple[int, int]] = []
            for material, kg_per_tonne in refinery.products:
                product = campaign * kg_per_tonne // 1_000
                parts = 1 if len(refinery.products) > 1 else rng.randint(1, 2)
                outputs += [(material, q) for q in self._split(rng, product, parts)]
            made = self._transform(
                wave, refinery.member, inputs, outputs, refinery.kg_co2e_per_tonne
            )
            for held, (material, _) in zip(made, outputs, strict=True):
                customers = CAM_MAKERS if refinery.ships_to == "cam" else CELL_MAKERS
                customer = rng.choice(customers)
                self._handoff(wave, held.lot, refinery.member, customer, False)
                self._stocked(customer, material).add(held)
        ops += wave.drain()
        # Cathode batches.
        for maker in CAM_MAKERS:
            batch = tonnes(rng, CAM_TONNES)
            needs = [(m, batch * kg // 1_000) for m, kg in CAM_RECIPE]
            lithium = next(
                (
                    (m, batch * kg // 1_000)
                    for m, kg in LITHIUM
                    if self._stocked(maker, m).total >= batch * kg // 1_000
                ),
                None,
            )
            if lithium is None or any(self._stocked(maker, m).total < grams for m, grams in needs):
                continue
            blend: list[tuple[bytes, int]] = []
            for m, grams in [*needs, lithium]:
                blend += self._stocked(maker, m).take(grams)
            outputs = [(CAM_NMC, q) for q in self._split(rng, batch, rng.randint(1, 2))]
            made = self._transform(wave, maker, blend, outputs, CAM_KG_CO2E_PER_TONNE)
            for held in made:
                cell = rng.choice(CELL_MAKERS)
                self._handoff(wave, held.lot, maker, cell, False)
                self._stocked(cell, CAM_NMC).add(held)
        ops += wave.drain()
        # Batteries.
        for n in range(PASSPORTS_PER_PERIOD):
            cell = CELL_MAKERS[n % len(CELL_MAKERS)]
            cam, graphite = self._stocked(cell, CAM_NMC), self._stocked(cell, GRAPHITE_SPHERICAL)
            cam_grams = rng.randint(*CELL_CAM_KG) * KG
            graphite_grams = rng.randint(*CELL_GRAPHITE_KG) * KG
            if cam.total < cam_grams or graphite.total < graphite_grams:
                continue
            inputs = cam.take(cam_grams) + graphite.take(graphite_grams)
            ops.append(self._bind(cell, inputs, rng.randint(*CELL_KG_CO2E) * KG, target=False))
        return ops

    def _bind(
        self, cell: str, inputs: Sequence[tuple[bytes, int]], footprint: int, *, target: bool
    ) -> Spec:
        self.passports += 1
        space = "target" if target else f"general {self.passports}"
        passport = keccak(text=f"mine2cell bench ledger {self.seed} passport {space}")
        if target:
            self.target_passport = passport
        document = keccak(b"battery documents " + passport)
        return self._op(
            "BindPassport", cell, (passport, tuple(inputs), footprint, document), target=target
        )

    def done(self) -> bool:
        return self.lots >= self.wanted and not self._target_stages

    def plan(self) -> Iterator[list[Spec]]:
        """The operations, period by period (the prelude first)."""
        yield self.prelude()
        while not self.done():
            if self.lots >= self.wanted:
                # Lots enough: record what is left of the target, then stop.
                ops: list[Spec] = []
                for _, stage in self._target_stages:
                    ops += stage()
                self._target_stages.clear()
                yield ops
                break
            yield self.period()

    # -- the target -----------------------------------------------------------------------------

    def _target_plan(self) -> list[tuple[float, Callable[[], list[Spec]]]]:
        """The target's operations, staged. Built from its own random generator and only from
        its own lots, so it comes out the same whatever else the ledger holds."""
        rng = random.Random(f"mine2cell bench target {self.seed}")
        sources = {s.member: s for s in SOURCES}
        refineries = {r.member: r for r in REFINERIES}
        cell = CELL_MAKERS[0]

        @dataclass
        class Campaign:
            refinery: Refinery
            feeds: list[tuple[Source, Held]] = field(default_factory=list)
            product: Held | None = None
            spare: bool = False  # a second output that nothing downstream consumes

        @dataclass
        class CamBatch:
            maker: str
            campaigns: list[Campaign] = field(default_factory=list)
            direct: list[tuple[int, Held]] = field(default_factory=list)  # brine, manganese
            lot: Held | None = None

        def campaign(refinery: str, mines: Sequence[str], feeds: int, spare: bool) -> Campaign:
            c = Campaign(refineries[refinery], spare=spare)
            c.feeds = [(sources[mines[i % len(mines)]], Held(b"", 0)) for i in range(feeds)]
            return c

        batches: list[CamBatch] = []
        for b in range(TARGET_CAM_BATCHES):
            batch = CamBatch(CAM_MAKERS[b % len(CAM_MAKERS)])
            ni_refiner = ("refiner-harjavalta", "refiner-obi")[b % 2]
            for i in range(TARGET_NI[0]):
                batch.campaigns.append(
                    campaign(
                        ni_refiner,
                        ("mine-morowali", "mine-weda", "mine-coralbay"),
                        TARGET_NI[1],
                        spare=i % 2 == 0,
                    )
                )
            co_refiner = ("refiner-kokkola", "refiner-quzhou")[b % 2]
            for _ in range(TARGET_CO[0]):
                batch.campaigns.append(
                    campaign(co_refiner, ("mine-kolwezi", "mine-tenke"), TARGET_CO[1], False)
                )
            if b % 2 == 0:
                li_refiner = ("refiner-sichuan", "refiner-guben")[b // 2 % 2]
                mines = ("mine-greenbushes", "mine-pilgangoora")
                batch.campaigns.append(campaign(li_refiner, mines, TARGET_LIOH[1], False))
            else:
                batch.direct += [(LI_CARBONATE, Held(b"", 0)) for _ in range(TARGET_BRINE_LOTS)]
            batch.direct += [(MN_SULFATE, Held(b"", 0)) for _ in range(TARGET_MN_LOTS)]
            batches.append(batch)
        graphite = campaign(
            "refiner-jixi", ("mine-balama", "mine-jixi"), TARGET_GRAPHITE_FEED, False
        )
        campaigns = [c for b in batches for c in b.campaigns] + [graphite]
        direct_sources = {LI_CARBONATE: "mine-atacama", MN_SULFATE: "mine-kalahari"}

        # Every mine lot of the target, in the order they are commissioned.
        mine_lots: list[Callable[[Wave], None]] = []
        for c in campaigns:
            for i, (source, _) in enumerate(c.feeds):

                def commission(wave: Wave, c: Campaign = c, i: int = i, s: Source = source) -> None:
                    c.feeds[i] = (s, self._commission(wave, rng, s, c.refinery.member, target=True))

                mine_lots.append(commission)
        for batch in batches:
            for i, (material, _) in enumerate(batch.direct):
                source = sources[direct_sources[material]]

                def direct(wave: Wave, b: CamBatch = batch, i: int = i, s: Source = source) -> None:
                    held = self._commission(wave, rng, s, b.maker, target=True)
                    b.direct[i] = (b.direct[i][0], held)

                mine_lots.append(direct)
        slices = len(TARGET_MINE_SLICES)

        def mine_slice(k: int) -> Callable[[], list[Spec]]:
            def run() -> list[Spec]:
                wave = Wave()
                for commission in mine_lots[k::slices]:
                    commission(wave)
                return wave.drain()

            return run

        def refine() -> list[Spec]:
            wave = Wave()
            for c in campaigns:
                # Every feed lot whole but the last, of which about 60 % is used.
                inputs = [(held.lot, held.remaining) for _, held in c.feeds[:-1]]
                last = c.feeds[-1][1]
                inputs.append((last.lot, last.remaining * rng.randint(40, 80) // 100 // KG * KG))
                feed = sum(q for _, q in inputs)
                material, kg_per_tonne = c.refinery.products[0]
                product = feed * kg_per_tonne // 1_000
                outputs = [(material, product)]
                if c.spare:
                    used = product * rng.randint(55, 75) // 100 // KG * KG
                    outputs = [(material, used), (material, product - used)]
                made = self._transform(
                    wave,
                    c.refinery.member,
                    inputs,
                    outputs,
                    c.refinery.kg_co2e_per_tonne,
                    target=True,
                )
                c.product = made[0]
                for spare in made[1:]:
                    self.target_upstream.discard(spare.lot)  # made, never consumed downstream
                customer = (
                    cell if c is graphite else next(b.maker for b in batches if c in b.campaigns)
                )
                self._handoff(wave, made[0].lot, c.refinery.member, customer, True)
            return wave.drain()

        def cathode() -> list[Spec]:
            wave = Wave()
            for batch in batches:
                grams = tonnes(rng, CAM_TONNES)
                wants = dict(CAM_RECIPE)
                lithium = (
                    LITHIUM[0]
                    if any(c.refinery.feed == SPODUMENE for c in batch.campaigns)
                    else LITHIUM[1]
                )
                wants[lithium[0]] = lithium[1]
                inputs: list[tuple[bytes, int]] = []
                by_material: dict[int, list[Held]] = {}
                for c in batch.campaigns:
                    assert c.product is not None
                    by_material.setdefault(c.refinery.products[0][0], []).append(c.product)
                for material, held in batch.direct:
                    by_material.setdefault(material, []).append(held)
                for material, kg_per_tonne in wants.items():
                    lots = by_material[material]
                    shares = self._split(rng, grams * kg_per_tonne // 1_000, len(lots))
                    inputs += [(held.lot, q) for held, q in zip(lots, shares, strict=True)]
                (made,) = self._transform(
                    wave,
                    batch.maker,
                    inputs,
                    [(CAM_NMC, grams)],
                    CAM_KG_CO2E_PER_TONNE,
                    target=True,
                )
                batch.lot = made
                self._handoff(wave, made.lot, batch.maker, cell, True)
            return wave.drain()

        def bind() -> list[Spec]:
            cam_total = rng.randint(*CELL_CAM_KG) * KG
            shares = self._split(rng, cam_total, len(batches))
            inputs = [(b.lot.lot, q) for b, q in zip(batches, shares, strict=True) if b.lot]
            assert graphite.product is not None
            inputs.append((graphite.product.lot, rng.randint(*CELL_GRAPHITE_KG) * KG))
            return [self._bind(cell, inputs, rng.randint(*CELL_KG_CO2E) * KG, target=True)]

        stages: list[tuple[float, Callable[[], list[Spec]]]] = [
            (at, mine_slice(k)) for k, at in enumerate(TARGET_MINE_SLICES)
        ]
        stages += [(TARGET_REFINE_AT, refine), (TARGET_CAM_AT, cathode), (TARGET_BIND_AT, bind)]
        return stages


# -- signing -----------------------------------------------------------------------------------


def _inputs(items: Iterable[tuple[bytes, int]]) -> tuple[Input, ...]:
    return tuple(Input(LotId(lot), quantity) for lot, quantity in items)


class Signers:
    """The participants' keys, signing planned operations for one ledger."""

    def __init__(self, keys: Sequence[bytes], chain_id: int, ledger: ChecksumAddress) -> None:
        self.signers = [LocalSigner(k) for k in keys]
        self.domain = Domain(chain_id, ledger)

    def sign(self, specs: Sequence[Spec]) -> list[SignedOperation]:
        signed: list[SignedOperation] = []
        for kind, who, nonce, fields in specs:
            signer = self.signers[who]
            if kind == "Transform":
                inputs, outputs, footprint = fields
                made = tuple(Output(LotId(lot), m, q, doc) for lot, m, q, doc in outputs)
                fields = (_inputs(inputs), made, footprint)
            elif kind == "BindPassport":
                passport, inputs, footprint, document = fields
                fields = (passport, _inputs(inputs), footprint, document)
            op = OPERATION_TYPES[kind](signer.address, nonce, DEADLINE, *fields)
            signed.append(sign(op, signer, self.domain))
        return signed


_WORKER_SIGNERS: list[Signers] = []


def _init_worker(keys: Sequence[bytes], chain_id: int, ledger: ChecksumAddress) -> None:
    _WORKER_SIGNERS.append(Signers(keys, chain_id, ledger))


def _sign_in_worker(specs: Sequence[Spec]) -> list[SignedOperation]:
    return _WORKER_SIGNERS[0].sign(specs)


# -- recording ---------------------------------------------------------------------------------


def _relay_process(
    url: str, ledger: str, outbox_path: Path, relayer_key: bytes, ready: Event, stop: Event
) -> None:
    """The service's relay, in a process of its own (so that it does not share a GIL with the
    intake), until ``stop`` is set."""
    client = LedgerClient(Web3(Web3.HTTPProvider(url)), ledger)
    outbox = Outbox(outbox_path)
    relay = Relay(client, outbox, LocalSigner(relayer_key), BatchPolicy())
    relay.recover()
    ready.set()
    # Relay.run only calls is_set() and wait(), which a multiprocessing Event has too.
    relay.run(stop)  # type: ignore[arg-type]
    outbox.close()


@dataclass(frozen=True)
class Recorded:
    operations: int
    seconds: float
    batches: int

    @property
    def ops_per_second(self) -> float:
        return self.operations / self.seconds


def record(
    url: str,
    ledger: LedgerClient,
    relayer_key: bytes,
    keys: Sequence[bytes],
    specs: Sequence[Spec],
    outbox_path: Path,
    *,
    workers: int,
    progress: Progress,
    label: str,
) -> Recorded:
    """Sign the operations (in ``workers`` processes; 0: here), accept them into a fresh outbox in
    chunks while a relay process batches them onto the chain; return once all are confirmed.
    Any refusal or rejection stops the run: the plan is meant to be valid throughout."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    relay = context.Process(
        target=_relay_process,
        args=(url, ledger.address, outbox_path, relayer_key, ready, stop),
        name="relay",
        daemon=True,
    )
    outbox = Outbox(outbox_path)
    accepted_task = progress.add_task(f"{label}: signed and accepted", total=len(specs))
    confirmed_task = progress.add_task(f"{label}: confirmed on chain", total=len(specs))
    domain = ledger.domain
    pool = (
        context.Pool(workers, _init_worker, (list(keys), domain.chain_id, ledger.address))
        if workers
        else None
    )
    here = None if pool else Signers(keys, domain.chain_id, ledger.address)
    relay.start()
    accepted = 0
    last_poll = 0.0

    def poll(final: bool = False) -> int:
        nonlocal last_poll
        if not final and time.monotonic() - last_poll < 0.5:
            return -1
        last_poll = time.monotonic()
        counts = outbox.counts()
        progress.update(confirmed_task, completed=counts[State.CONFIRMED])
        if counts[State.REJECTED]:
            (first,) = outbox.recent(1, State.REJECTED)
            raise SystemExit(
                f"{label}: the ledger rejected {counts[State.REJECTED]} operations, e.g. a "
                f"{first.kind} of {first.actor}: {first.error} {first.reason}"
            )
        if relay.exitcode is not None:
            raise SystemExit(f"{label}: the relay process exited with code {relay.exitcode}")
        return counts[State.CONFIRMED]

    def accept(signed: list[SignedOperation]) -> None:
        nonlocal accepted
        results = intake.accept(outbox, ledger, [(s, b"") for s in signed])
        refused = [r for r in results if isinstance(r, Mine2CellError)]
        if refused:
            raise SystemExit(f"{label}: intake refused {len(refused)} operations: {refused[0]}")
        accepted += len(signed)
        progress.update(accepted_task, completed=accepted)
        poll()

    try:
        while not ready.wait(0.1):
            if relay.exitcode is not None:
                raise SystemExit(f"{label}: the relay process exited with code {relay.exitcode}")
        started = time.perf_counter()
        window: deque[AsyncResult[list[SignedOperation]]] = deque()
        for start in range(0, len(specs), SIGN_CHUNK):
            chunk = specs[start : start + SIGN_CHUNK]
            if pool is None:
                assert here is not None
                accept(here.sign(chunk))
                continue
            window.append(pool.apply_async(_sign_in_worker, (chunk,)))
            while len(window) > 2 * workers or (window and window[0].ready()):
                accept(window.popleft().get())
        while window:
            accept(window.popleft().get())
        while poll(final=True) < len(specs):
            if time.perf_counter() - started > SETTLE_TIMEOUT_SECONDS:
                raise SystemExit(f"{label}: not settled within {SETTLE_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        batches = len(outbox.batches("mined"))
    finally:
        stop.set()
        relay.join(30)
        if relay.exitcode is None:
            relay.terminate()
        if pool is not None:
            pool.terminate()
        outbox.close()
    return Recorded(len(specs), seconds, batches)


# -- the whole ledger --------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    url: str
    ledger: ChecksumAddress
    deploy_block: int
    head_block: int
    lots: int
    operations: int
    kinds: dict[str, int]
    passports: int
    periods: int
    target_passport: bytes | None
    target_upstream_lots: int
    plan_seconds: float
    record_seconds: float
    batches: int

    @property
    def ops_per_second(self) -> float:
        return self.operations / self.record_seconds

    def summary(self) -> str:
        kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(self.kinds.items()))
        target = (
            f"; target passport 0x{self.target_passport.hex()} with "
            f"{self.target_upstream_lots:,} lots upstream"
            if self.target_passport
            else ""
        )
        return (
            f"ledger {self.ledger}: {self.lots:,} lots, {self.passports:,} passports, "
            f"{self.operations:,} operations ({kinds}) in {self.periods:,} periods, "
            f"blocks {self.deploy_block}-{self.head_block} ({self.batches:,} batches){target}; "
            f"planned in {self.plan_seconds:.1f} s, signed and recorded in "
            f"{self.record_seconds:.1f} s ({self.ops_per_second:,.0f} operations/s)"
        )


def default_workers() -> int:
    """Signing processes: every CPU but one (the intake, the relay and the node need it)."""
    return max(1, (multiprocessing.cpu_count() or 2) - 1)


def generate(
    url: str,
    *,
    lots: int,
    work_dir: Path,
    seed: int = DEFAULT_SEED,
    target: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
    label: str = "ledger",
) -> Generated:
    """Deploy a ledger on the anvil node at ``url`` and record a supply chain of at least ``lots``
    lots on it (with the target ancestry unless ``target`` is False). The outbox goes to
    ``work_dir``."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    planner = Planner(lots, seed, target=target)
    governor, relayer = LocalSigner(planner.keys[0]), LocalSigner(planner.keys[1])
    for account in (governor, relayer):
        fund_on_dev_node(w3, account.address)
    ledger, deploy_block = deploy_ledger(w3, governor, relayer)
    started = time.perf_counter()
    specs = [op for ops in planner.plan() for op in ops]
    plan_seconds = time.perf_counter() - started
    outbox_path = work_dir / f"outbox-{label.replace(' ', '-')}.sqlite"
    for stale in work_dir.glob(outbox_path.name + "*"):
        stale.unlink()  # a fresh ledger needs a fresh outbox
    workers = default_workers() if workers is None else workers

    def run(progress: Progress) -> Recorded:
        return record(
            url,
            ledger,
            relayer.key_bytes,
            planner.keys,
            specs,
            outbox_path,
            workers=workers,
            progress=progress,
            label=label,
        )

    if progress is None:
        with new_progress() as own:
            recorded = run(own)
    else:
        recorded = run(progress)
    return Generated(
        url=url,
        ledger=ledger.address,
        deploy_block=deploy_block,
        head_block=w3.eth.block_number,
        lots=planner.lots,
        operations=len(specs),
        kinds=dict(planner.kinds),
        passports=planner.passports,
        periods=planner.periods,
        target_passport=planner.target_passport,
        target_upstream_lots=len(planner.target_upstream),
        plan_seconds=plan_seconds,
        record_seconds=recorded.seconds,
        batches=recorded.batches,
    )


def new_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lots", type=int, default=100_000, help="lots to create (at least)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-target", action="store_true", help="leave out the target ancestry")
    parser.add_argument(
        "--workers", type=int, default=None, help="signing processes (0: sign in this process)"
    )
    parser.add_argument(
        "--rpc-url", help="an anvil node to record on (default: start one for this run)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="with no --rpc-url: keep the node's state in this file (anvil --state)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-generator-") as tmp:
        if args.rpc_url:
            url, node = args.rpc_url, None
        else:
            node = DevNode(state_file=args.state, extra_args=DEV_NODE_ARGS).start()
            url = node.url
        try:
            generated = generate(
                url,
                lots=args.lots,
                work_dir=Path(tmp),
                seed=args.seed,
                target=not args.no_target,
                workers=args.workers,
            )
        finally:
            if node is not None:
                node.stop(timeout=120)
    print(generated.summary())


# For the anvil nodes started here. A base fee of zero keeps gas free however full the blocks
# (EIP-1559 raises the base fee after every block over half full, and a large ledger takes
# thousands of blocks). --prune-history keeps no past states: by default anvil writes older states
# to disk as JSON, the whole state at every block (measured: 6 GB written, and every batch slower
# than the one before, by 220,000 operations); blocks, receipts and logs are all kept.
DEV_NODE_ARGS = ("--block-base-fee-per-gas", "0", "--prune-history")


if __name__ == "__main__":
    main()
