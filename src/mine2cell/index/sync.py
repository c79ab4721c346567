"""Following the ledger's logs into a store, the way ethereum-etl does: pages of eth_getLogs up to
a number of confirmations behind the head, rows and checkpoint in one transaction, keyed by
(tx hash, log index) so re-running is safe, and block hashes kept so that a reorganisation is
seen and the store rolls back to the fork point and ingests again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from mine2cell.chain.rpc import JsonRpc
from mine2cell.errors import NodeError, StorageError
from mine2cell.index.events import LedgerLog, decode_log
from mine2cell.index.store import Checkpoint, Store

# How far back (in stored blocks) a reorganisation is looked for at each sync.
REORG_WINDOW = 64
# How many times a page is read again when the chain changes under it before giving up.
MAX_PAGE_RETRIES = 10
# The number of logs a page of eth_getLogs aims at (the page size in blocks adapts to it).
LOGS_PER_PAGE = 20_000


@dataclass(frozen=True)
class SyncResult:
    from_block: int
    to_block: int
    logs: int  # ledger logs read
    stored: int  # rows newly stored (0 when re-running over indexed blocks)
    rolled_back_to: int | None  # the fork point, when a reorganisation was undone
    seconds: float


class Indexer:
    def __init__(
        self,
        w3: Web3,
        ledger_address: str,
        store: Store,
        *,
        confirmations: int = 0,
        start_block: int = 0,
        page_blocks: int = 2_000,
    ) -> None:
        self.rpc = JsonRpc(w3, "the index")
        self.address = to_checksum_address(ledger_address)
        self.store = store
        self.confirmations = confirmations
        self.start_block = start_block
        self.page_blocks = page_blocks
        # Why the last sync of ``follow`` failed (a node down, a full disk); None once one succeeds.
        self.failure: Exception | None = None

    # -- JSON-RPC --------------------------------------------------------------------------------

    def _call(self, method: str, params: list[Any]) -> Any:
        return self.rpc.call(method, params)

    def head(self) -> int:
        return int(self._call("eth_blockNumber", []), 16)

    # -- syncing ---------------------------------------------------------------------------------

    def sync(
        self,
        progress: Callable[[int, int, int], None] | None = None,
        *,
        to_block: int | None = None,
    ) -> SyncResult:
        """Index up to ``confirmations`` behind the head (or ``to_block``). ``progress`` is called
        after each page with (first block, last block indexed so far, target block)."""
        started = time.monotonic()
        rolled_back = self._undo_reorg()
        checkpoint = self.store.checkpoint()
        first = checkpoint.block_number + 1 if checkpoint else self.start_block
        target = self.head() - self.confirmations if to_block is None else to_block
        logs_read = stored = 0
        start = first
        page = min(self.page_blocks, 64)  # grows while pages stay light
        retries = 0
        while start <= target:
            end = min(start + page - 1, target)
            try:
                raw = self._call(
                    "eth_getLogs",
                    [{"address": self.address, "fromBlock": hex(start), "toBlock": hex(end)}],
                )
            except NodeError:
                if page == 1:
                    raise
                page = max(1, page // 4)  # too many logs for the node in one answer
                continue
            logs = [log for log in (decode_log(item) for item in raw) if log is not None]
            blocks = self._blocks_of(logs, end, self.store.checkpoint())
            if blocks is None:
                # The chain reorganised while this page was read: undo what left the chain, then
                # read from the new checkpoint.
                retries += 1
                if retries > MAX_PAGE_RETRIES:
                    raise NodeError(
                        f"blocks {start}..{end} kept changing while they were read; the node is "
                        "reorganising or its answers are inconsistent"
                    )
                time.sleep(0.05 * retries)
                fork = self._undo_reorg()
                if fork is not None:
                    rolled_back = fork if rolled_back is None else min(rolled_back, fork)
                    start = fork + 1 if fork >= 0 else self.start_block
                continue
            retries = 0
            stored += self.store.ingest(logs, blocks, Checkpoint(end, blocks[end][0]))
            logs_read += len(logs)
            if progress is not None:
                progress(first, end, target)
            start = end + 1
            # Aim at about LOGS_PER_PAGE logs a page: a full page holds them all in memory at
            # once, and an empty one costs a round trip.
            if len(logs) > 2 * LOGS_PER_PAGE:
                page = max(1, page // 2)
            elif len(logs) < LOGS_PER_PAGE // 2:
                page = min(self.page_blocks, page * 2)
        return SyncResult(
            first,
            max(first - 1, target),
            logs_read,
            stored,
            rolled_back,
            time.monotonic() - started,
        )

    def _blocks_of(
        self, logs: Sequence[LedgerLog], end: int, checkpoint: Checkpoint | None
    ) -> dict[int, tuple[bytes, int]] | None:
        """The page's blocks (those with logs, and its last) as they are on the canonical chain
        now; None if a log's block, or the stored checkpoint the page builds on, is no longer
        canonical (the page and the store would then mix two histories)."""
        numbers = {log.block_number for log in logs} | {end}
        if checkpoint is not None:
            numbers.add(checkpoint.block_number)
        headers = self.rpc.headers(sorted(numbers))
        if end not in headers:
            return None
        if checkpoint is not None:
            canonical = headers.pop(checkpoint.block_number, None)
            if canonical is None or canonical[0] != checkpoint.block_hash:
                return None
        for log in logs:
            found = headers.get(log.block_number)
            if found is None or found[0] != log.block_hash:
                return None
        return headers

    def _undo_reorg(self) -> int | None:
        """If stored blocks are no longer canonical, roll the store back to the fork point (the
        highest stored block below every stored block that left the chain) and return it."""
        checkpoint = self.store.checkpoint()
        if checkpoint is None:
            return None
        stored = self.store.stored_blocks(checkpoint.block_number, REORG_WINDOW)
        if not stored:
            return None
        canonical = self.rpc.headers([n for n, _ in stored])
        if all(canonical.get(n, (None,))[0] == h for n, h in stored):
            return None
        fork = -1
        while stored:
            # Not merely the highest canonical block: a sync that ran across a reorganisation may
            # have stored canonical blocks above blocks that left the chain, whose rows must go.
            left = [i for i, (n, h) in enumerate(stored) if canonical.get(n, (None,))[0] != h]
            below = left[-1] + 1 if left else 0
            if below < len(stored):
                fork = stored[below][0]
                break
            # Nothing in this window is canonical below the blocks that left: look further back.
            lowest = stored[-1][0]
            stored = self.store.stored_blocks(lowest - 1, REORG_WINDOW)
            canonical = self.rpc.headers([n for n, _ in stored])
        self.store.rollback(fork)
        return fork

    def follow(
        self,
        stop: threading.Event,
        interval: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
        on_rollback: Callable[[int], None] | None = None,
    ) -> None:
        """Keep the store current until ``stop`` is set (the server runs this in a thread). A
        failed sync is retried at the next interval and kept in ``failure`` until one succeeds;
        ``on_error`` hears of each failure once, not again while it repeats. ``on_rollback``
        hears of each reorganisation undone, with the fork point (the relay checks its batches
        then)."""
        while not stop.is_set():
            try:
                result = self.sync()
                self.failure = None
                if result.rolled_back_to is not None and on_rollback is not None:
                    on_rollback(result.rolled_back_to)
            except (NodeError, StorageError, OSError) as exc:
                if on_error is not None and str(exc) != str(self.failure):
                    on_error(exc)
                self.failure = exc
            stop.wait(interval)

    def lag(self) -> int:
        """Blocks between the head and the checkpoint."""
        checkpoint = self.store.checkpoint()
        return self.head() - (checkpoint.block_number if checkpoint else self.start_block - 1)
