"""What the bad-input suites share: the chain they are refused against, the proof that a refusal
changed nothing, and signed documents that break a ledger rule.

The chain is tests/recorded.py's (ore KOL-1 mined at Kolwezi, received and refined at Kokkola
into SUL-1, 45 kg of it bound to passport PASS-1 at Skelleftea) plus what the refusals need:
TRANSIT-1 shipped by Kolwezi to Kokkola and not yet received, HELD-1 held by Kolwezi, a mine
that was accredited and then revoked (``revoked``) and a key never accredited (``outsider``).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.codes import Role
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.relay.outbox import Accepted, State
from mine2cell.service import Service, relayer_accreditation
from mine2cell.signing.codec import to_document
from mine2cell.signing.eip712 import (
    SECP256K1_N,
    BindPassport,
    Commission,
    Domain,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    Receive,
    Revoke,
    Ship,
    Transform,
    sign,
    text32,
)
from mine2cell.signing.keystore import Keystore
from tests.e2e.cli_support import PASSPHRASE, make_keys
from tests.recorded import KEYS, record_chain

EXTRA_KEYS = ("revoked", "outsider")
NAMES = (*KEYS, *EXTRA_KEYS)
TRANSIT, HELD = "TRANSIT-1", "HELD-1"
CO_HYDROXIDE = material("co-hydroxide").code
CO_SULFATE = material("co-sulfate").code
CAM_NMC = material("cam-nmc").code
SUL_1_REMAINING = 20_000_000 - 45_000  # grams of SUL-1 left after PASS-1 took 45 kg
UINT96_MAX = 2**96 - 1


def lot(text: str) -> LotId:
    return LotId(parse_id(text))


def hex_id(text: str) -> str:
    return "0x" + parse_id(text).hex()


@dataclass(frozen=True)
class Chain:
    """The recorded chain's data directory (keys, node state, outbox, index) and its ledger."""

    data_dir: Path
    ledger: ChecksumAddress
    chain_id: int
    deployment_block: int

    def settings(self, data_dir: Path | None = None, rpc_url: str | None = None) -> Settings:
        return Settings(data_dir=data_dir or self.data_dir, rpc_url=rpc_url, ledger_address=None)

    @property
    def domain(self) -> Domain:
        return Domain(self.chain_id, self.ledger)

    def signer(self, name: str) -> LocalSigner:
        return Keystore(self.data_dir / "keys").signer(name, PASSPHRASE)

    def address(self, name: str) -> ChecksumAddress:
        return Keystore(self.data_dir / "keys").entry(name).address

    def addresses(self) -> dict[str, ChecksumAddress]:
        keystore = Keystore(self.data_dir / "keys")
        return {name: keystore.entry(name).address for name in NAMES}


def _settle(service: Service, *accepted: Accepted) -> None:
    statuses = service.settle([a.event_id for a in accepted])
    assert all(s.state is State.CONFIRMED for s in statuses.values()), statuses


def record_bad_input_chain(data_dir: Path) -> Chain:
    """The recorded chain plus a lot in transit, a lot held, a revoked mine and an outsider, all
    indexed."""
    template = record_chain(data_dir)
    make_keys(data_dir, EXTRA_KEYS)
    settings = Settings(data_dir=data_dir, rpc_url=None, ledger_address=None)
    with Service(settings, passphrase=lambda: PASSPHRASE) as service:
        governor, mine = service.client("governor"), service.client("kolwezi")
        revoked = service.account("revoked")
        _settle(
            service,
            governor.accredit(revoked, roles=Role.MINE, facility=text32("CD-GONE"), country="CD"),
            mine.commission(lot(TRANSIT), material=CO_HYDROXIDE, quantity=4_000_000),
            mine.commission(lot(HELD), material=CO_HYDROXIDE, quantity=5_000_000),
        )
        _settle(
            service,
            governor.revoke(revoked),
            mine.ship(lot(TRANSIT), service.account("kokkola")),
        )
        service.indexer().sync()
        return Chain(
            data_dir,
            to_checksum_address(template.ledger),
            service.ledger.domain.chain_id,
            service.deployment_block(),
        )


# -- the no-change guarantee --------------------------------------------------------------------

# The kept reports are a cache of what the index holds (computed on the first request of a
# passport), not a record of the ledger: a read may fill them.
_CACHES = {"reports", "report_epoch"}


@dataclass(frozen=True)
class Snapshot:
    """What a refused input must leave as it was: the node's head, the ledger's logs, the
    outbox's operations by state and the index's rows."""

    block: int
    ledger_logs: int
    outbox: Mapping[str, int]
    index: str

    def but_outbox(self, **outbox: int) -> Snapshot:
        """This snapshot with the outbox holding ``outbox`` more operations by state."""
        counts = dict(self.outbox)
        for state, more in outbox.items():
            counts[state] = counts.get(state, 0) + more
        return Snapshot(self.block, self.ledger_logs, counts, self.index)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def outbox_counts(path: Path) -> dict[str, int]:
    with closing(_read_only(path)) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM operations GROUP BY state").fetchall()
    counts = dict.fromkeys((s.value for s in State), 0)
    counts.update({state: n for state, n in rows})
    return counts


def index_digest(path: Path) -> str:
    """A digest of every row of the index's tables (the checkpoint by block, not by time)."""
    digest = hashlib.sha256()
    with closing(_read_only(path)) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
            if name not in _CACHES and not name.startswith(("_yoyo", "yoyo", "sqlite_"))
        ]
        assert "commissions" in tables and "handoffs" in tables, tables
        for table in tables:
            columns = "block_number, block_hash" if table == "checkpoint" else "*"
            rows = sorted(repr(row) for row in conn.execute(f"SELECT {columns} FROM {table}"))
            digest.update(f"{table}:{len(rows)}\n".encode())
            for row in rows:
                digest.update(row.encode() + b"\n")
    return digest.hexdigest()


def take_snapshot(w3: Web3, chain: Chain, data_dir: Path) -> Snapshot:
    ledger_dir = chain.settings(data_dir).ledger_dir(chain.chain_id, chain.ledger)
    logs = w3.eth.get_logs(
        {"address": chain.ledger, "fromBlock": chain.deployment_block, "toBlock": "latest"}
    )
    return Snapshot(
        block=w3.eth.block_number,
        ledger_logs=len(logs),
        outbox=outbox_counts(ledger_dir / "outbox.sqlite"),
        index=index_digest(ledger_dir / "index.sqlite"),
    )


# -- signed documents ---------------------------------------------------------------------------

_nonces = iter(range(1_000_000, 2**62))


def signed(
    chain: Chain,
    who: str,
    op_type: type[Operation],
    *,
    domain: Domain | None = None,
    nonce: int | None = None,
    deadline: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A signed-operation document of ``who`` for the chain's ledger (or ``domain``), with a nonce
    nothing else uses unless one is given."""
    signer = chain.signer(who)
    op = op_type(
        actor=signer.address,
        nonce=next(_nonces) if nonce is None else nonce,
        deadline=int(time.time()) + 3600 if deadline is None else deadline,
        **fields,
    )
    return to_document(sign(op, signer, domain or chain.domain))


def new_commission(chain: Chain, **overrides: Any) -> dict[str, Any]:
    """A valid commission by the Kolwezi mine of a lot that does not exist yet."""
    fields: dict[str, Any] = {
        "lot": lot(f"NEW-{next(_nonces)}"),
        "material": CO_HYDROXIDE,
        "quantity": 1_000_000,
        "feedstock": 0,
        "footprint": 0,
        "document_hash": bytes(32),
    }
    options = {k: overrides.pop(k) for k in ("domain", "nonce", "deadline") if k in overrides}
    return signed(chain, "kolwezi", Commission, **options, **{**fields, **overrides})


def high_s(document: dict[str, Any]) -> dict[str, Any]:
    """The same signature in its other (high-s) form: valid ECDSA, refused by EIP-2."""
    raw = bytes.fromhex(document["signature"][2:])
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    v = 28 if raw[64] == 27 else 27
    return {**document, "signature": "0x" + (raw[:32] + s.to_bytes(32, "big") + bytes([v])).hex()}


@dataclass(frozen=True)
class RuleCase:
    """An operation signed by a participant that the ledger refuses by one of its rules."""

    id: str
    who: str
    op_type: type[Operation]
    fields: Callable[[Mapping[str, ChecksumAddress]], dict[str, Any]]
    error: str  # the ledger's error
    reason: str  # what its decoded reason says
    field: str  # the field the signing client names, refusing it before signing
    says: str  # what the signing client says

    def document(self, chain: Chain) -> dict[str, Any]:
        return signed(chain, self.who, self.op_type, **self.fields(chain.addresses()))


# Each breaks one rule of the ledger against the recorded chain, which it leaves as it is.
RULE_CASES = [
    RuleCase(
        "ship-by-non-custodian",
        "kokkola",
        Ship,
        lambda a: {"lot": lot(HELD), "recipient": a["skelleftea"]},
        "LedgerNotCustodian",
        f"does not hold lot {hex_id(HELD)}",
        "lot",
        f"lot {HELD} is held by",
    ),
    RuleCase(
        "receive-by-other-than-recipient",
        "skelleftea",
        Receive,
        lambda a: {"lot": lot(TRANSIT), "counterparty": a["kolwezi"]},
        "LedgerNotRecipient",
        f"is not the named recipient of lot {hex_id(TRANSIT)}",
        "lot",
        f"lot {TRANSIT} is shipped to",
    ),
    RuleCase(
        "double-receive",
        "kokkola",
        Receive,
        lambda a: {"lot": lot("KOL-1"), "counterparty": a["kolwezi"]},
        "LedgerLotNotInTransit",
        f"lot {hex_id('KOL-1')} is not in transit",
        "lot",
        "lot KOL-1 is not in transit",
    ),
    RuleCase(
        "ship-in-transit",
        "kolwezi",
        Ship,
        lambda a: {"lot": lot(TRANSIT), "recipient": a["skelleftea"]},
        "LedgerLotInTransit",
        f"lot {hex_id(TRANSIT)} is in transit to",
        "lot",
        f"lot {TRANSIT} is in transit to",
    ),
    RuleCase(
        "over-consumption",
        "skelleftea",
        Transform,
        lambda a: {
            "inputs": (Input(lot("SUL-1"), SUL_1_REMAINING + 1),),
            "outputs": (Output(lot("CAM-OVER"), CAM_NMC, 1_000),),
        },
        "LedgerInsufficientQuantity",
        f"holds {SUL_1_REMAINING} g, fewer than the {SUL_1_REMAINING + 1} g asked",
        "inputs",
        "holds 19.955 t, fewer than the 19.955001 t asked",
    ),
    RuleCase(
        "same-material-mass-creation",
        "skelleftea",
        Transform,
        lambda a: {
            "inputs": (Input(lot("SUL-1"), 1_000_000),),
            "outputs": (Output(lot("SUL-MORE"), CO_SULFATE, 1_000_001),),
        },
        "LedgerMassNotConserved",
        f"outputs of material {CO_SULFATE} (1000001 g) exceed the inputs of the same material "
        "consumed (1000000 g)",
        "outputs",
        "1.000001 t of material 102 produced from 1 t of it consumed: mass cannot be created",
    ),
    RuleCase(
        "double-passport-binding",
        "skelleftea",
        BindPassport,
        lambda a: {"passport": parse_id("PASS-1"), "inputs": (Input(lot("SUL-1"), 1_000),)},
        "LedgerPassportAlreadyBound",
        f"passport {hex_id('PASS-1')} is already bound",
        "passport",
        "passport PASS-1 is already bound",
    ),
    RuleCase(
        "unaccredited-signer",
        "outsider",
        Commission,
        lambda a: {
            "lot": lot("OUTSIDE-1"),
            "material": CO_HYDROXIDE,
            "quantity": 1_000,
            "feedstock": 0,
            "footprint": 0,
            "document_hash": bytes(32),
        },
        "LedgerMissingRole",
        "it holds no role",
        "signer",
        "is not an accredited participant",
    ),
    RuleCase(
        "revoked-signer",
        "revoked",
        Commission,
        lambda a: {
            "lot": lot("GONE-1"),
            "material": CO_HYDROXIDE,
            "quantity": 1_000,
            "feedstock": 0,
            "footprint": 0,
            "document_hash": bytes(32),
        },
        "LedgerMissingRole",
        "it holds no role",
        "signer",
        "is not an accredited participant",
    ),
]


def copy_of(chain: Chain, where: Path) -> Path:
    """A data directory of its own holding the recorded chain (node state, keys, databases)."""
    data_dir = where / "data"
    shutil.copytree(chain.data_dir, data_dir)
    return data_dir


def revoke_relayer(chain: Chain, w3: Web3) -> ChecksumAddress:
    """The governor revokes the service's relayer (its key stays in the data directory)."""
    governor, relayer = chain.signer("governor"), chain.address("relayer")
    as_governor = LedgerClient(w3, chain.ledger, Transactor(w3, governor))
    as_governor.submit(as_governor.sign(Revoke, governor, participant=relayer))
    return relayer


def restore_relayer(chain: Chain, w3: Web3) -> None:
    """The governor accredits the revoked relayer again, as at deployment."""
    governor = chain.signer("governor")
    as_governor = LedgerClient(w3, chain.ledger, Transactor(w3, governor))
    as_governor.submit(relayer_accreditation(as_governor, governor, chain.address("relayer")))
