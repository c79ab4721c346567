"""The relay: takes pending operations from the outbox, simulates them as a batch, drops the ones
the ledger would refuse (with the decoded reason), and sends the rest in one transaction signed by
the relayer's key, with explicit gas, a locally tracked nonce and EIP-1559 fees; a transaction
that is not mined in time is replaced with higher fees.

Every step is written to the outbox before the next is taken. After a crash, ``recover`` finds
each batch whose transaction was signed and stored, settles it from its receipt, sends it again,
or (when its nonce went to no transaction of ours) puts its operations back to pending. Nothing
can be recorded twice: the ledger refuses a signer's nonce the second time, and an operation
refused that way is looked up by its event id and reported confirmed where it was recorded.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint

from mine2cell.chain.ledger import BATCH_BASE_GAS, LedgerClient, Transactor
from mine2cell.chain.revert import decode_exception, decode_revert
from mine2cell.errors import (
    ConfigurationError,
    LedgerRejected,
    Mine2CellError,
    NodeError,
    StorageError,
)
from mine2cell.relay.outbox import Batch, Outbox, PendingOperation, State, StoredTransaction
from mine2cell.signing.codec import from_document
from mine2cell.signing.eip712 import LocalSigner

log = logging.getLogger(__name__)

MAX_BATCH_OPERATIONS = 256  # the ledger's MAX_BATCH
NONCE_RECEIPT_GRACE_SECONDS = 2.0
_OPERATION_FAILED = "0x" + keccak(text="OperationFailed(uint256,bytes)").hex()


class RelayError(Mine2CellError):
    """The relay cannot send batches (e.g. its key is not accredited or cannot pay for gas)."""


class RelayBlocked(RelayError):
    """The relay cannot send until an operator acts: its key is not an accredited relayer, or
    cannot pay for gas. Unlike a node's passing error, retrying alone will not clear it."""


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch is sent and how its transaction is handled."""

    # A batch is sent when it holds this many operations ...
    max_operations: int = MAX_BATCH_OPERATIONS
    # ... or this much gas by the operations' upper bounds (at most 95 % of the block gas
    # limit; the gas actually used is about half the bounds) ...
    max_gas: int = 24_000_000
    # ... or when its oldest operation has waited this long (seconds).
    max_delay: float = 0.05
    # A transaction not mined after this long (seconds) is replaced with higher fees.
    replace_after: float = 30.0
    # Each replacement raises both fees by this much (nodes require at least 10 %).
    fee_bump_percent: int = 25
    # A transaction the node does not know after this long (seconds) is sent again.
    resend_after: float = 3.0
    # Mined batches this many blocks deep are final; shallower ones are checked again, so that a
    # reorganisation or a node that lost its last blocks puts their operations back to pending.
    finality_depth: int = 64
    # How often (seconds) shallow mined batches are checked.
    reconcile_every: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_operations <= MAX_BATCH_OPERATIONS:
            raise ConfigurationError(
                f"max_operations must be between 1 and {MAX_BATCH_OPERATIONS}, "
                f"got {self.max_operations}"
            )
        if self.fee_bump_percent < 10:
            raise ConfigurationError("fee_bump_percent must be at least 10 (nodes require it)")


@dataclass(frozen=True)
class Settled:
    """What one step settled: operations confirmed and rejected, and the transaction if any."""

    confirmed: int = 0
    rejected: int = 0
    batch: Batch | None = None
    gas_used: int | None = None


# Names of the points at which a relay may stop (crash tests kill the process there): a batch and
# its signed transaction are stored but not sent; the transaction is sent but its receipt not yet
# looked for; the receipt is in hand but not yet written down.
STAGES = ("stored", "sent", "mined")


def _reason(err: Mine2CellError) -> tuple[str, str]:
    name = err.error if isinstance(err, LedgerRejected) else type(err).__name__
    return name, str(err)


@dataclass(frozen=True)
class Mined:
    """What the relay needs of a batch's receipt."""

    tx_hash: bytes
    status: int
    block_number: int
    block_hash: bytes
    gas_used: int
    failures: dict[int, bytes]  # position in the batch -> the operation's revert data


class RelayLock:
    """One relay per outbox at a time: an exclusive lock on a file beside it (released by the
    kernel when the holder dies, so a crash never leaves it stuck)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        handle = open(self.path, "a")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class Relay:
    def __init__(
        self,
        ledger: LedgerClient,
        outbox: Outbox,
        relayer: LocalSigner,
        policy: BatchPolicy | None = None,
        *,
        on_stage: Callable[[str, Batch], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.outbox = outbox
        self.policy = policy or BatchPolicy()
        self.transactor = Transactor(ledger.w3, relayer)
        if ledger.transactor is None or ledger.transactor.address != relayer.address:
            ledger.transactor = self.transactor
        self.relayer = relayer.address
        self.w3 = ledger.w3
        self._on_stage = on_stage
        self._nonce: int | None = None
        self._inflight: Batch | None = None
        self._last_reconcile = 0.0
        self._gas_factor = 1
        self._block_gas_limit: int | None = None
        # Why ``run`` cannot submit batches (the relayer's key was revoked, it cannot pay for
        # gas): the operations wait in the outbox meanwhile. None once a batch goes through.
        self.blocked: RelayBlocked | None = None

    # -- driving ---------------------------------------------------------------------------------

    def recover(self) -> None:
        """Finish what a previous run left: settle, resend or requeue every stored batch, check
        recently mined ones, and take the relayer's nonce from the node."""
        self._reconcile()
        for batch in self.outbox.batches("sending"):
            self._inflight = batch
            while self._inflight is not None:
                self._advance(wait=1.0)
        self._resync_nonce()

    def step(self, *, flush: bool = False) -> Settled:
        """Do the next piece of work: follow the transaction in flight, or send the next batch
        when one is due (always when ``flush``)."""
        if time.monotonic() - self._last_reconcile > self.policy.reconcile_every:
            self._reconcile()
        if self._inflight is not None:
            return self._advance(wait=0.5)
        return self._send_next(flush=flush)

    def drain(self, timeout: float = 120.0) -> None:
        """Relay until nothing is pending or in flight."""
        deadline = time.monotonic() + timeout
        while self._inflight is not None or self.outbox.pending(1, 2**62):
            if time.monotonic() > deadline:
                raise RelayError(f"the relay did not drain within {timeout:.0f} s")
            self.step(flush=True)

    def wait_for(self, event_ids: Sequence[bytes], timeout: float = 120.0) -> None:
        """Relay until each of these operations is confirmed or rejected."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.outbox.statuses(list(event_ids))
            if all(s.state in (State.CONFIRMED, State.REJECTED) for s in statuses.values()):
                return
            if time.monotonic() > deadline:
                raise RelayError(f"operations not settled within {timeout:.0f} s")
            self.step(flush=True)

    def run(self, stop: threading.Event, idle_sleep: float = 0.01) -> None:
        """Relay until ``stop`` is set; node and storage failures (a full disk) are retried with
        backoff: every step is written down before the next, so a retry resumes where it failed."""
        backoff = 0.1
        while not stop.is_set():
            try:
                settled = self.step()
                backoff = 0.1
                if settled.batch is not None or settled.rejected:
                    self.blocked = None  # a batch was simulated, and sent if any op was kept
                if settled.batch is None and self._inflight is None:
                    stop.wait(idle_sleep)
            except (
                NodeError,
                RelayError,
                StorageError,
                OSError,
                Web3RPCError,
                sqlite3.OperationalError,
            ) as exc:
                log.warning("relay: %s; retrying in %.1f s", exc, backoff)
                if isinstance(exc, RelayBlocked):
                    self.blocked = exc  # new writes are refused until it clears
                self._nonce = None
                self._last_reconcile = 0.0
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    # -- sending ---------------------------------------------------------------------------------

    def _stage(self, name: str, batch: Batch) -> None:
        if self._on_stage is not None:
            self._on_stage(name, batch)

    def _due(self, ops: list[PendingOperation]) -> bool:
        if len(ops) >= self.policy.max_operations:
            return True
        if sum(op.gas_bound for op in ops) * 10 >= min(self.policy.max_gas, self._gas_cap()) * 9:
            return True
        return time.time() - ops[0].accepted_at >= self.policy.max_delay

    def _send_next(self, *, flush: bool) -> Settled:
        budget = min(self.policy.max_gas, self._gas_cap() - BATCH_BASE_GAS)
        ops = self.outbox.pending(self.policy.max_operations, budget)
        if not ops or not (flush or self._due(ops)):
            return Settled()
        try:
            outcomes = self.ledger.simulate([op.calldata for op in ops])
        except LedgerRejected as exc:
            raise RelayBlocked(
                f"the relayer {self.relayer} cannot submit batches: {exc}. The governor must "
                "accredit it with the relayer role"
            ) from exc
        if any(outcome is not None for outcome in outcomes) and self._reconcile():
            # Refused on a chain that has lost some of the relay's blocks: an operation may only
            # lack one that left with them (the commission of the lot it ships), pending again
            # now and ahead of it. Simulate again rather than reject it for good.
            return Settled()
        rejected, keep = self._sort_outcomes(ops, outcomes)
        if not keep:
            return Settled(rejected=rejected)
        gas = min(
            (BATCH_BASE_GAS + sum(op.gas_bound for op in keep)) * self._gas_factor,
            self._gas_cap(),
        )
        data = self.ledger.relay_calldata([op.calldata for op in keep])
        nonce = self._next_nonce()
        max_fee, tip = self.transactor.fees()
        tx = self._sign(data, gas, nonce, max_fee, tip)
        batch_id = self.outbox.create_batch(
            relayer=self.relayer,
            nonce=nonce,
            gas=gas,
            event_ids=[op.event_id for op in keep],
            transaction=tx,
        )
        self._nonce = nonce + 1
        batch = self.outbox.batch(batch_id)
        self._stage("stored", batch)
        self._inflight = batch
        settled = self._advance(wait=0.5)  # sends it, then waits for its receipt
        return Settled(settled.confirmed, settled.rejected + rejected, batch, settled.gas_used)

    def _sort_outcomes(
        self, ops: list[PendingOperation], outcomes: list[Mine2CellError | None]
    ) -> tuple[int, list[PendingOperation]]:
        """Reject the operations the simulation refused (resolving used nonces by event id);
        return how many were rejected and the operations to send."""
        keep: list[PendingOperation] = []
        rejections: dict[bytes, tuple[str, str]] = {}
        for op, outcome in zip(ops, outcomes, strict=True):
            if outcome is None:
                keep.append(op)
            elif not self._recorded_elsewhere(op.event_id, op.document, outcome):
                rejections[op.event_id] = _reason(outcome)
        self.outbox.reject(rejections)
        return len(rejections), keep

    def _recorded_elsewhere(
        self, event_id: bytes, document: dict[str, Any], outcome: Mine2CellError
    ) -> bool:
        """For an operation refused because its nonce is used: if this very operation is on
        chain (a transaction of an earlier run, or of another relay), mark it confirmed there."""
        if not (isinstance(outcome, LedgerRejected) and outcome.error == "LedgerNonceUsed"):
            return False
        signed, _ = from_document(document, self.ledger.domain)
        found = self.ledger.find_recorded(signed)
        if found is None:
            return False
        self.outbox.confirm_elsewhere(event_id, found.tx_hash, found.block_number, found.block_hash)
        return True

    def _gas_cap(self) -> int:
        if self._block_gas_limit is None:
            self._block_gas_limit = int(self.w3.eth.get_block("latest")["gasLimit"])
        return self._block_gas_limit * 95 // 100

    def _sign(self, data: bytes, gas: int, nonce: int, max_fee: int, tip: int) -> StoredTransaction:
        tx_hash, raw = self.transactor.sign_transaction(
            self.ledger.address, data, gas=gas, nonce=nonce, max_fee=max_fee, priority_fee=tip
        )
        return StoredTransaction(tx_hash, raw, max_fee, tip, time.time(), None)

    def _resync_nonce(self) -> None:
        """Next nonce: after the node's pending transactions and after every stored batch still
        being sent (whose transactions the node may have lost)."""
        node = self.w3.eth.get_transaction_count(self.relayer, "pending")
        sending = [b.nonce + 1 for b in self.outbox.batches("sending")]
        self._nonce = max([node, *sending])

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._resync_nonce()
        assert self._nonce is not None
        return self._nonce

    def _broadcast(self, batch: Batch, tx: StoredTransaction) -> None:
        """Send a stored transaction. A refusal other than "already known" is settled from the
        chain: mined after all, or its nonce taken (requeue), or a real problem (RelayError)."""
        try:
            self.w3.eth.send_raw_transaction(HexBytes(tx.raw))
        except Web3RPCError as exc:
            message = str(exc).lower()
            if "already known" in message or "already imported" in message:
                self.outbox.mark_sent(tx.tx_hash)
                return
            if self._receipt(batch) is not None:
                return  # mined already: _advance settles it
            if "nonce" in message and "low" in message:
                return  # _advance finds the nonce taken and requeues the batch
            if "underpriced" in message:
                return  # a replacement that was not enough: _advance bumps again later
            decoded = decode_exception(exc)
            self.outbox.requeue_batch(batch.id, "dropped", f"refused by the node: {exc}")
            self._inflight = None
            self._nonce = None
            if "insufficient funds" in message:
                raise RelayBlocked(
                    f"the node refused the relay's transaction: {decoded or exc}; fund the "
                    f"relayer {self.relayer}"
                ) from exc
            raise RelayError(f"the node refused the relay's transaction: {decoded or exc}") from exc
        self.outbox.mark_sent(tx.tx_hash)

    # -- following the transaction in flight ---------------------------------------------------

    def _receipt(self, batch: Batch) -> Mined | None:
        for tx in reversed(batch.transactions):
            mined = self._fetch_receipt(tx.tx_hash)
            if mined is not None:
                return mined
        return None

    def _fetch_receipt(self, tx_hash: bytes) -> Mined | None:
        if isinstance(self.w3.provider, HTTPProvider):
            # The plain JSON-RPC answer: web3's formatting of a batch receipt's hundreds of logs
            # costs about 30 ms a batch (measured), a third of the relay's time.
            reply = self.w3.provider.make_request(
                RPCEndpoint("eth_getTransactionReceipt"), ["0x" + tx_hash.hex()]
            )
            if "error" in reply:
                raise NodeError(f"eth_getTransactionReceipt failed: {reply['error']}")
            raw = reply.get("result")
            if raw is None:
                return None
            return Mined(
                tx_hash=tx_hash,
                status=int(raw["status"], 16),
                block_number=int(raw["blockNumber"], 16),
                block_hash=bytes.fromhex(raw["blockHash"][2:]),
                gas_used=int(raw["gasUsed"], 16),
                failures=self._failures(
                    (log["address"], log["topics"], log["data"]) for log in raw["logs"]
                ),
            )
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        return Mined(
            tx_hash=tx_hash,
            status=receipt["status"],
            block_number=receipt["blockNumber"],
            block_hash=bytes(receipt["blockHash"]),
            gas_used=receipt["gasUsed"],
            failures=self._failures(
                (log["address"], [HexBytes(t).to_0x_hex() for t in log["topics"]], log["data"])
                for log in receipt["logs"]
            ),
        )

    def _failures(self, logs: Iterable[tuple[str, list[str], Any]]) -> dict[int, bytes]:
        """Position -> revert data, from the ledger's OperationFailed logs."""
        failures: dict[int, bytes] = {}
        ledger = self.ledger.address.lower()
        for address, topics, data in logs:
            if address.lower() == ledger and topics and topics[0] == _OPERATION_FAILED:
                (reason,) = abi_decode(["bytes"], bytes(HexBytes(data)))
                failures[int(topics[1], 16)] = bytes(reason)
        return failures

    def _advance(self, *, wait: float) -> Settled:
        batch = self._inflight
        assert batch is not None
        if batch.latest.sent_at is None:
            # Just stored, or stored before a crash: send it before waiting for it.
            self._broadcast(batch, batch.latest)
            batch = self._inflight = self.outbox.batch(batch.id)
            self._stage("sent", batch)
        deadline = time.monotonic() + wait
        delay = 0.002
        while True:
            receipt = self._receipt(batch)
            if receipt is not None:
                self._stage("mined", batch)
                return self._settle(batch, receipt)
            if time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        # Not mined yet: is its nonce gone to another transaction, is it lost, or stuck?
        if self.w3.eth.get_transaction_count(self.relayer, "latest") > batch.nonce:
            # Mined between the two questions? A node may count the nonce a moment before it
            # serves the receipt (seen on anvil under load), so ask for a while before deciding
            # that the nonce went to another transaction.
            until = time.monotonic() + NONCE_RECEIPT_GRACE_SECONDS
            while True:
                receipt = self._receipt(batch)
                if receipt is not None:
                    self._stage("mined", batch)
                    return self._settle(batch, receipt)
                if time.monotonic() >= until:
                    break
                time.sleep(0.05)
            self.outbox.requeue_batch(batch.id, "dropped", "its nonce went to another transaction")
            self._inflight = None
            self._nonce = None
            return Settled(batch=batch)
        latest = batch.latest
        age = time.time() - latest.signed_at
        if age >= self.policy.replace_after:
            self._replace(batch)
        elif age >= self.policy.resend_after and not self._known(latest):
            self._broadcast(batch, latest)
            self._inflight = self.outbox.batch(batch.id)
        return Settled()

    def _known(self, tx: StoredTransaction) -> bool:
        try:
            self.w3.eth.get_transaction(HexBytes(tx.tx_hash))
        except TransactionNotFound:
            return False
        return True

    def _replace(self, batch: Batch) -> None:
        """Same nonce and data, fees raised by the policy's bump (and at least today's)."""
        latest = batch.latest
        bump = 100 + self.policy.fee_bump_percent
        max_fee, tip = self.transactor.fees()
        tip = max(tip, latest.priority_fee * bump // 100 + 1)
        max_fee = max(max_fee, latest.max_fee * bump // 100 + 1, tip)
        data = self.ledger.relay_calldata([self.outbox.calldata(eid) for eid in batch.event_ids])
        tx = self._sign(data, batch.gas, batch.nonce, max_fee, tip)
        self.outbox.add_transaction(batch.id, tx)
        log.info(
            "relay: batch %d (nonce %d) not mined after %.0f s; replaced with max fee %d wei",
            batch.id,
            batch.nonce,
            self.policy.replace_after,
            max_fee,
        )
        refreshed = self.outbox.batch(batch.id)
        self._inflight = refreshed
        self._broadcast(refreshed, tx)

    def _settle(self, batch: Batch, mined: Mined) -> Settled:
        # The batch stays in flight until its outcome is written: a write that fails (a full
        # disk) is retried by the next step, not forgotten until a restart.
        if mined.status != 1:
            used, limit = mined.gas_used, batch.gas
            if used * 100 >= limit * 95:
                self._gas_factor = min(self._gas_factor * 2, 8)
            self.outbox.requeue_batch(
                batch.id,
                "reverted",
                f"transaction 0x{mined.tx_hash.hex()} reverted as a whole "
                f"(gas used {used} of {limit})",
            )
            self._inflight = None
            return Settled(batch=batch, gas_used=used)
        self._gas_factor = 1
        failures: dict[int, tuple[str, str]] = {}
        for position, data in mined.failures.items():
            outcome = decode_revert(data)
            event_id = batch.event_ids[position]
            # Confirmed where it was recorded (and taken out of this batch), or rejected here.
            if not self._recorded_elsewhere(event_id, self.outbox.document(event_id), outcome):
                failures[position] = _reason(outcome)
        self.outbox.settle_batch(
            batch.id,
            tx_hash=mined.tx_hash,
            block_number=mined.block_number,
            block_hash=mined.block_hash,
            gas_used=mined.gas_used,
            failures=failures,
        )
        self._inflight = None
        return Settled(
            confirmed=len(batch.event_ids) - len(failures),
            rejected=len(failures),
            batch=batch,
            gas_used=mined.gas_used,
        )

    # -- reorganisations and lost blocks ---------------------------------------------------------

    def reconcile_soon(self) -> None:
        """Check the recently mined batches at the next step rather than when they are due (the
        index saw blocks leave the chain). Safe to call from another thread."""
        self._last_reconcile = 0.0

    def _reconcile(self) -> bool:
        """Check that the recently mined batches are still where they were mined. A batch whose
        block left the chain (a reorganisation, or a node restarted from older state) goes back
        to pending, and the relayer's nonce is taken from the node again. True if any did."""
        self._last_reconcile = time.monotonic()
        head = self.w3.eth.block_number
        since = max(0, head - self.policy.finality_depth)
        canonical: dict[int, bytes | None] = {}

        def moved(block_number: int, block_hash: bytes) -> bool:
            # One block header per height, however many batches it holds.
            if block_number not in canonical:
                try:
                    canonical[block_number] = bytes(self.w3.eth.get_block(block_number)["hash"])
                except BlockNotFound:
                    canonical[block_number] = None
            return canonical[block_number] != block_hash

        lost = False
        for batch in self.outbox.batches("mined", since_block=since):
            assert batch.block_number is not None and batch.block_hash is not None
            if moved(batch.block_number, batch.block_hash):
                log.warning(
                    "relay: batch %d left the chain; its operations are pending again", batch.id
                )
                self.outbox.requeue_batch(batch.id, "dropped", "its block left the chain")
                lost = True
        vanished = [
            event_id
            for event_id, block_number, block_hash in self.outbox.confirmed_elsewhere(since)
            if moved(block_number, block_hash)
        ]
        if vanished:
            self.outbox.requeue(vanished)
        if lost:
            # A batch being sent now came after those: its nonce is above every nonce the node
            # will see until they are sent again, so it would wait for ever (seen on anvil
            # restarted from its state file). Its operations go back to pending, behind theirs.
            # Should its transaction still be mined, the ledger refuses the operations the second
            # time and they are found recorded where the first one put them.
            for sending in self.outbox.batches("sending"):
                self.outbox.requeue_batch(
                    sending.id, "dropped", "sent after batches whose blocks left the chain"
                )
            self._inflight = None
        if lost or vanished:
            self._nonce = None
        return lost or bool(vanished)
