"""Fixtures: provider -> w3 -> deployed ledger with an accredited cast; each test reverts to a
snapshot. Chain tests run on eth-tester (in-process) and on anvil (a real node over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint, TxReceipt, Wei

from mine2cell.chain.artifacts import Artifact
from mine2cell.chain.ledger import BatchResult, LedgerClient, Transactor
from mine2cell.chain.node import DevNode
from mine2cell.codes import Role
from mine2cell.errors import LedgerRejected
from mine2cell.signing.eip712 import (
    Accredit,
    Certify,
    LocalSigner,
    Operation,
    SignedOperation,
    text32,
)

# Plain ints: some tests build operations without the dataclasses' checks and conversions.
MINE, RECYCLER, PROCESSOR, CELL_MAKER, AUDITOR, RELAYER = (int(role) for role in Role)
ONE_ETHER = 10**18
# Explicit gas for the test batches: it skips the node's estimate (on eth-tester a binary search
# that costs ~80 ms a transaction) and is ample for any batch the tests send.
TEST_BATCH_GAS = 8_000_000


def signer(name: str) -> LocalSigner:
    """A deterministic test key per name, so failures are reproducible."""
    return LocalSigner(keccak(text=f"mine2cell test key {name}"))


def facility(name: str) -> bytes:
    return text32(name)


def fund(w3: Web3, address: str) -> None:
    """Give an account gas money from the node's unlocked default account (both backends)."""
    tx_hash = w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": address, "value": Wei(100 * ONE_ETHER)}
    )
    w3.eth.wait_for_transaction_receipt(tx_hash)


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


_EVENTS_BY_TOPIC: dict[LedgerClient, dict[bytes, Any]] = {}


def _events_by_topic(ledger: LedgerClient) -> dict[bytes, Any]:
    if ledger not in _EVENTS_BY_TOPIC:
        _EVENTS_BY_TOPIC[ledger] = {
            bytes(HexBytes(event.topic)): event for event in ledger.contract.all_events()
        }
    return _EVENTS_BY_TOPIC[ledger]


def ledger_events(ledger: LedgerClient, receipt: TxReceipt) -> list[tuple[str, dict[str, Any]]]:
    """Decode the ledger's logs of a receipt (no eth_getLogs: it is slow on eth-tester)."""
    by_topic = _events_by_topic(ledger)
    decoded: list[tuple[str, dict[str, Any]]] = []
    for log in receipt["logs"]:
        if log["address"] != ledger.address or not log["topics"]:
            continue
        event = by_topic.get(bytes(log["topics"][0]))
        if event is not None:
            data = event.process_log(log)
            decoded.append((data["event"], dict(data["args"])))
    return decoded


@dataclass
class Cast:
    """The participants of a small battery supply chain, accredited on a fresh ledger."""

    w3: Web3
    ledger: LedgerClient
    governor: LocalSigner
    relayer: LocalSigner
    mine_cd: LocalSigner
    mine_au: LocalSigner
    recycler: LocalSigner
    refiner: LocalSigner
    cathode: LocalSigner
    cell: LocalSigner
    auditor: LocalSigner
    outsider: LocalSigner
    lots: dict[str, bytes] = field(default_factory=dict)

    def sign(self, op_type: type[Operation], who: LocalSigner, **fields: Any) -> SignedOperation:
        return self.ledger.sign(op_type, who, **fields)

    def ok(self, *ops: SignedOperation) -> BatchResult:
        """Relay operations in one batch and require every one to be recorded."""
        result = self.ledger.relay(list(ops), gas=TEST_BATCH_GAS)
        assert result.failed == {}, result.failed
        return result

    def rejected(self, op: SignedOperation) -> LedgerRejected:
        """Relay one operation alone and return the ledger's decoded reason for refusing it."""
        result = self.ledger.relay([op], gas=TEST_BATCH_GAS)
        err = result.outcomes[0]
        assert isinstance(err, LedgerRejected), f"expected a rejection, got {err!r}"
        return err

    def events(self, sent: BatchResult | TxReceipt) -> list[tuple[str, dict[str, Any]]]:
        """The ledger's events in a transaction, in log order, as (name, arguments)."""
        receipt = (
            self.w3.eth.get_transaction_receipt(HexBytes(sent.tx_hash))
            if isinstance(sent, BatchResult)
            else sent
        )
        return ledger_events(self.ledger, receipt)


ROLES = {
    "mine_cd": (MINE, "KOLWEZI-NORTH", "CD"),
    "mine_au": (MINE, "MURRIN-EAST", "AU"),
    "recycler": (RECYCLER, "HAMBURG-RECYCLING", "DE"),
    "refiner": (PROCESSOR, "KOKKOLA-REFINERY", "FI"),
    "cathode": (PROCESSOR, "NYSA-CAM-PLANT", "PL"),
    "cell": (CELL_MAKER, "SKELLEFTEA-CELLS", "SE"),
    "auditor": (AUDITOR, "ANTWERP-AUDIT", "BE"),
}


def _eth_tester_w3() -> Web3:
    return Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[DevNode]:
    with DevNode() as node:
        yield node


@pytest.fixture(
    scope="session", params=["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def w3(backend: str, request: pytest.FixtureRequest) -> Web3:
    if backend == "anvil":
        node: DevNode = request.getfixturevalue("anvil_node")
        return Web3(Web3.HTTPProvider(node.url))
    return _eth_tester_w3()


def build_cast(w3: Web3, artifact: Artifact | None = None) -> Cast:
    """The cast accredited on a new ledger (``artifact``: another build of it)."""
    governor, relayer = signer("governor"), signer("relayer")
    fund(w3, governor.address)
    fund(w3, relayer.address)
    ledger = LedgerClient.deploy(w3, Transactor(w3, governor), governor.address, artifact)
    # The governor submits the relayer's accreditation itself: nobody else may submit yet.
    ledger.submit(
        ledger.sign(
            Accredit,
            governor,
            participant=relayer.address,
            roles=RELAYER,
            facility=facility("RELAY"),
            country="BE",
        )
    )
    ledger.transactor = Transactor(w3, relayer)
    members = {name: signer(name) for name in ROLES}
    accreditations = [
        ledger.sign(
            Accredit,
            governor,
            participant=members[name].address,
            roles=roles,
            facility=facility(site),
            country=country,
        )
        for name, (roles, site, country) in ROLES.items()
    ]
    result = ledger.relay(accreditations)
    assert result.failed == {}, result.failed
    rmap = ledger.sign(
        Certify,
        governor,
        participant=members["refiner"].address,
        scheme=facility("RMAP"),
        valid_until=2_000_000_000,
        document_hash=keccak(text="rmap certificate"),
    )
    assert ledger.relay([rmap]).failed == {}
    return Cast(
        w3,
        ledger,
        governor,
        relayer,
        mine_cd=members["mine_cd"],
        mine_au=members["mine_au"],
        recycler=members["recycler"],
        refiner=members["refiner"],
        cathode=members["cathode"],
        cell=members["cell"],
        auditor=members["auditor"],
        outsider=signer("outsider"),
    )


@pytest.fixture(scope="session")
def session_cast(w3: Web3) -> Cast:
    return build_cast(w3)


@pytest.fixture
def cast(session_cast: Cast) -> Iterator[Cast]:
    """The cast on a ledger that is reverted after the test."""
    w3 = session_cast.w3
    snapshot = rpc(w3, "evm_snapshot", [])
    try:
        yield session_cast
    finally:
        rpc(w3, "evm_revert", [snapshot])
        session_cast.ledger._next_nonce.clear()
        assert session_cast.ledger.transactor is not None
        session_cast.ledger.transactor.resync_nonce()
        session_cast.lots.clear()
