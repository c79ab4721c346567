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
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from mine2cell.errors import ConfigurationError, NodeError
from mine2cell.index.events import LedgerLog, decode_log
from mine2cell.index.store import Checkpoint, Store

# How far back (in stored blocks) a reorganisation is looked for at each sync.
REORG_WINDOW = 64


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
        if not isinstance(w3.provider, HTTPProvider):
            raise ConfigurationError("the index follows a JSON-RPC node over HTTP")
        self.provider: HTTPProvider = w3.provider
        self.address = to_checksum_address(ledger_address)
        self.store = store
        self.confirmations = confirmations
        self.start_block = start_block
        self.page_blocks = page_blocks

    # -- JSON-RPC --------------------------------------------------------------------------------

    def _call(self, method: str, params: list[Any]) -> Any:
        reply = self.provider.make_request(RPCEndpoint(method), params)
        if "error" in reply:
            raise NodeError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def _headers(self, numbers: Sequence[int]) -> dict[int, tuple[bytes, int]]:
        """number -> (hash, timestamp) of canonical blocks, in batches of JSON-RPC requests;
        a number beyond the head is absent from the answer."""
        found: dict[int, tuple[bytes, int]] = {}
        for start in range(0, len(numbers), 500):
            chunk = numbers[start : start + 500]
            replies = self.provider.make_batch_request(
                [(RPCEndpoint("eth_getBlockByNumber"), [hex(n), False]) for n in chunk]
            )
            if not isinstance(replies, list):
                raise NodeError(f"eth_getBlockByNumber failed: {replies.get('error')}")
            for number, reply in zip(chunk, replies, strict=True):
                block = reply.get("result")
                if block is not None:
                    found[number] = (bytes.fromhex(block["hash"][2:]), int(block["timestamp"], 16))
        return found

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
        page = self.page_blocks
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
            blocks = self._blocks_of(logs, end)
            if blocks is None:
                # A block of this page left the chain while it was read: read it again.
                continue
            stored += self.store.ingest(logs, blocks, Checkpoint(end, blocks[end][0]))
            logs_read += len(logs)
            if progress is not None:
                progress(first, end, target)
            start = end + 1
            page = self.page_blocks
        return SyncResult(
            first,
            max(first - 1, target),
            logs_read,
            stored,
            rolled_back,
            time.monotonic() - started,
        )

    def _blocks_of(
        self, logs: Sequence[LedgerLog], end: int
    ) -> dict[int, tuple[bytes, int]] | None:
        """The page's blocks (those with logs, and its last) as they are on the canonical chain
        now; None if a log's block is no longer canonical."""
        numbers = sorted({log.block_number for log in logs} | {end})
        headers = self._headers(numbers)
        if end not in headers:
            return None
        for log in logs:
            canonical = headers.get(log.block_number)
            if canonical is None or canonical[0] != log.block_hash:
                return None
        return headers

    def _undo_reorg(self) -> int | None:
        """If stored blocks are no longer canonical, roll the store back to the highest stored
        block that still is (the fork point) and return it."""
        checkpoint = self.store.checkpoint()
        if checkpoint is None:
            return None
        stored = self.store.stored_blocks(checkpoint.block_number, REORG_WINDOW)
        if not stored:
            return None
        canonical = self._headers([n for n, _ in stored])
        if all(canonical.get(n, (None,))[0] == h for n, h in stored):
            return None
        fork = -1
        while stored:
            for number, block_hash in stored:
                if canonical.get(number, (None,))[0] == block_hash:
                    fork = number
                    break
            else:
                # Nothing in this window is canonical: look further back.
                lowest = stored[-1][0]
                stored = self.store.stored_blocks(lowest - 1, REORG_WINDOW)
                canonical = self._headers([n for n, _ in stored])
                continue
            break
        self.store.rollback(fork)
        return fork

    def follow(
        self,
        stop: threading.Event,
        interval: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Keep the store current until ``stop`` is set (the server runs this in a thread)."""
        while not stop.is_set():
            try:
                self.sync()
            except (NodeError, OSError) as exc:
                if on_error is not None:
                    on_error(exc)
            stop.wait(interval)

    def lag(self) -> int:
        """Blocks between the head and the checkpoint."""
        checkpoint = self.store.checkpoint()
        return self.head() - (checkpoint.block_number if checkpoint else self.start_block - 1)
