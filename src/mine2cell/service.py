"""The service as commands and the server use it: the node (the embedded dev node, or a node at
an RPC URL), the ledger on it, that ledger's outbox and relay, and the participants' keys.

    with Service(settings, passphrase=ask) as service:
        accepted = service.client("kolwezi").ship(lot, refinery)
        service.settle([accepted.event_id])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.types import RPCEndpoint

from mine2cell.chain.deployment import Deployment
from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.chain.node import DevNode, connect
from mine2cell.client import SigningClient
from mine2cell.codes import Role
from mine2cell.config import Settings
from mine2cell.errors import ConfigurationError, InvalidInput, NodeError
from mine2cell.index.store import SqliteStore
from mine2cell.index.sync import Indexer
from mine2cell.relay.outbox import Batch, OperationStatus, Outbox, State
from mine2cell.relay.relay import BatchPolicy, Relay, RelayError, RelayLock
from mine2cell.signing.eip712 import Accredit, LocalSigner, SignedOperation, text32
from mine2cell.signing.keystore import Keystore, KeystoreError

# Gas money for the governor and the relayer on the embedded dev node (anvil_setBalance).
DEV_FUNDS_WEI = 10**22


def deploy_ledger(
    w3: Web3, governor: LocalSigner, relayer: LocalSigner, *, relayer_country: str = "BE"
) -> tuple[LedgerClient, int]:
    """Deploy a ledger governed by ``governor`` and accredit ``relayer`` to submit batches (the
    governor submits that first operation itself). Returns the client and the deployment block."""
    ledger = LedgerClient.deploy(w3, Transactor(w3, governor), governor.address)
    block = w3.eth.block_number
    ledger.submit(relayer_accreditation(ledger, governor, relayer.address, relayer_country))
    ledger.transactor = Transactor(w3, relayer)
    return ledger, block


def relayer_accreditation(
    ledger: LedgerClient, governor: LocalSigner, relayer: str, country: str = "BE"
) -> SignedOperation:
    """The governor's accreditation of ``relayer`` to submit batches (at deployment, or again
    after a revocation)."""
    return ledger.sign(
        Accredit,
        governor,
        participant=relayer,
        roles=Role.RELAYER,
        facility=text32("mine2cell relay"),
        country=country,
    )


def fund_on_dev_node(w3: Web3, address: str) -> None:
    reply = w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [address, hex(DEV_FUNDS_WEI)])
    if "error" in reply:
        raise NodeError(f"the node refused anvil_setBalance: {reply['error']}")


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        passphrase: Callable[[], str],
        notify: Callable[[str], None] = lambda message: None,
        policy: BatchPolicy | None = None,
        new_ledger: bool = False,
    ) -> None:
        self.settings = settings
        # Open on a ledger deployed now (`mine2cell deploy`), not on the configured or known one.
        self._new_ledger = new_ledger
        self._ask_passphrase = passphrase
        self._passphrase: str | None = None
        self.notify = notify
        self.policy = policy
        self.keystore = Keystore(settings.keys_dir)
        self._stack = ExitStack()
        self.node: DevNode | None = None
        self.w3: Web3
        self.ledger: LedgerClient
        self.outbox: Outbox
        self._signers: dict[str, LocalSigner] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Service:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _open(self) -> None:
        settings = self.settings
        if settings.rpc_url:
            self.w3 = connect(settings.rpc_url, settings.rpc_timeout)
        else:
            node = DevNode(state_file=settings.node_state_file, anvil_path=settings.anvil_path)
            self.node = self._stack.enter_context(node)
            self.w3 = connect(node.url, settings.rpc_timeout)
        chain_id = self.w3.eth.chain_id
        self.ledger = self._ledger(chain_id)
        path = settings.ledger_dir(chain_id, self.ledger.address) / "outbox.sqlite"
        self.outbox = Outbox(path)
        self._stack.callback(self.outbox.close)
        self._store: SqliteStore | None = None

    @property
    def rpc_url(self) -> str:
        """The URL of the node in use (the embedded one's when no RPC URL is configured)."""
        if self.settings.rpc_url:
            return self.settings.rpc_url
        assert self.node is not None
        return self.node.url

    def _ledger(self, chain_id: int) -> LedgerClient:
        settings = self.settings
        if self._new_ledger:
            return self.deploy()
        if settings.ledger_address:
            address = settings.ledger_address
            if not is_address(address):
                raise InvalidInput("ledger", f"{address!r} is not an address")
            self._require_code(address)
            return LedgerClient(self.w3, address)
        known = Deployment.load(settings.data_dir, chain_id)
        if known is not None and self.w3.eth.get_code(known.address):
            return LedgerClient(self.w3, known.address)
        if settings.rpc_url:
            where = f"{known.address} (recorded, but the node has no code there)" if known else ""
            raise ConfigurationError(
                f"no ledger known on chain {chain_id} {where}: give --ledger ADDRESS "
                "(MINE2CELL_LEDGER_ADDRESS), or deploy one with `mine2cell deploy`"
            )
        if known is not None:
            self.notify(
                f"the embedded node has no ledger at {known.address} (its state was reset); "
                "deploying a new one"
            )
        return self.deploy(dev_funds=True)

    def _require_code(self, address: str) -> None:
        if not self.w3.eth.get_code(to_checksum_address(address)):
            raise ConfigurationError(
                f"there is no contract at {address} on chain {self.w3.eth.chain_id}; check the "
                "ledger address and the RPC URL"
            )

    def deployment_block(self) -> int:
        """Where the ledger's history starts, when this data directory deployed it (else 0)."""
        known = Deployment.load(self.settings.data_dir, self.ledger.domain.chain_id)
        return known.block if known is not None and known.address == self.ledger.address else 0

    def deploy(self, *, dev_funds: bool = False) -> LedgerClient:
        """Deploy a ledger with the governor and relayer keys (created when missing) and remember
        it for this chain."""
        governor = self.signer(self.settings.governor_key, create=True)
        relayer = self.signer(self.settings.relayer_key, create=True)
        if dev_funds:
            for account in (governor.address, relayer.address):
                fund_on_dev_node(self.w3, account)
        ledger, block = deploy_ledger(self.w3, governor, relayer)
        record = Deployment.now(
            self.w3.eth.chain_id, ledger.address, block, governor.address, relayer.address
        )
        path = record.save(self.settings.data_dir)
        self.notify(
            f"deployed the ledger at {ledger.address} on chain {record.chain_id} "
            f"(governor {governor.address}, relayer {relayer.address}); remembered in {path}"
        )
        return ledger

    # -- keys -----------------------------------------------------------------------------------

    def passphrase(self) -> str:
        if self._passphrase is None:
            self._passphrase = self._ask_passphrase()
        return self._passphrase

    def signer(self, name: str, *, create: bool = False) -> LocalSigner:
        """The key named ``name``, decrypted (once per service)."""
        if name not in self._signers:
            try:
                self.keystore.entry(name)
            except KeystoreError:
                if not create:
                    raise
                entry = self.keystore.new(name, self.passphrase())
                self.notify(f"created key {name!r} ({entry.address}) in {self.keystore.directory}")
            self._signers[name] = self.keystore.signer(name, self.passphrase())
        return self._signers[name]

    def has_key(self, name: str) -> bool:
        """Whether the data directory holds the key file ``name`` (no passphrase needed)."""
        return self.keystore.has(name)

    def account(self, text: str, field: str = "participant") -> ChecksumAddress:
        """An address given as 0x... or as the name of a key file."""
        if is_address(text):
            return to_checksum_address(text)
        try:
            return self.keystore.entry(text).address
        except (KeystoreError, InvalidInput):
            raise InvalidInput(
                field, f"{text!r} is neither an address nor the name of a key file"
            ) from None

    def client(self, name: str) -> SigningClient:
        return SigningClient(self.ledger, self.outbox, self.signer(name))

    # -- the index -----------------------------------------------------------------------------

    def index_path(self) -> Path:
        return self.settings.ledger_dir(self.w3.eth.chain_id, self.ledger.address) / "index.sqlite"

    def store(self) -> SqliteStore:
        if self._store is None:
            self._store = SqliteStore(self.index_path())
            self._stack.callback(self._store.close)
        return self._store

    def indexer(self) -> Indexer:
        known = Deployment.load(self.settings.data_dir, self.w3.eth.chain_id)
        start = known.block if known is not None and known.address == self.ledger.address else 0
        return Indexer(
            self.w3,
            self.ledger.address,
            self.store(),
            confirmations=self.settings.confirmations,
            start_block=start,
        )

    def rebuild_index(self) -> None:
        """Forget the index (a corrupted file included); the next sync reads the chain again."""
        if self._store is not None:
            self._store.close()
            self._store = None
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.index_path()) + suffix).unlink(missing_ok=True)

    # -- relaying ------------------------------------------------------------------------------

    def relay(self, on_stage: Callable[[str, Batch], None] | None = None) -> Relay:
        policy = self.policy or BatchPolicy(reconcile_every=self.settings.relay_reconcile_seconds)
        return Relay(
            self.ledger,
            self.outbox,
            self.signer(self.settings.relayer_key),
            policy,
            on_stage=on_stage,
        )

    def lock_path(self) -> Path:
        return self.outbox.path.with_name("relay.lock")

    def settle(
        self, event_ids: Sequence[bytes], timeout: float = 120.0
    ) -> dict[bytes, OperationStatus]:
        """Wait until these operations are confirmed or rejected. This process relays them when
        no other relay (a running server) holds the outbox; otherwise it watches the outbox."""
        lock = RelayLock(self.lock_path())
        if lock.acquire():
            try:
                relay = self.relay()
                relay.recover()
                relay.wait_for(event_ids, timeout)
            except RelayError as exc:
                raise self._still_queued(exc, event_ids) from exc
            finally:
                lock.release()
        else:
            deadline = time.monotonic() + timeout
            while not self._settled(event_ids):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        return self.outbox.statuses(list(event_ids))

    def _still_queued(self, exc: RelayError, event_ids: Sequence[bytes]) -> RelayError:
        """``exc``, saying which of the operations are kept in the outbox: not lost, relayed by
        the next command or server that can."""
        waiting = [
            "0x" + s.event_id.hex()
            for s in self.outbox.statuses(list(event_ids)).values()
            if s.state in (State.PENDING, State.SUBMITTED)
        ]
        if not waiting:
            return exc
        which = (
            f"operation {waiting[0]} stays"
            if len(waiting) == 1
            else f"{len(waiting)} operations stay"
        )
        return RelayError(f"{exc}; {which} queued in the outbox, relayed once the relay can submit")

    def _settled(self, event_ids: Sequence[bytes]) -> bool:
        statuses = self.outbox.statuses(list(event_ids)).values()
        return all(s.state in (State.CONFIRMED, State.REJECTED) for s in statuses)
