"""Everything on chain an audit of one passport looks at, read from a node by indexed topics.

Starting at the passport's binding, the walk goes upstream a level at a time: the steps' inputs
and outputs (``LotConsumed`` / ``LotProduced`` by event id), then every event that ever touched
each newly reached lot (by lot id: its creation, custody events, and every consumption, also by
steps that lead to other passports), then the steps that produced those lots. Then the
corrections of every event seen, the accreditation and certification history of every account
involved, the canonical header of every block and the transaction of every event (its calldata
holds the signed operation). A few dozen ``eth_getLogs`` calls and batches of requests, whatever
the size of the ledger; nothing is read from the mine2cell index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eth_utils import to_checksum_address
from web3 import Web3

from mine2cell.chain.rpc import JsonRpc
from mine2cell.index.events import LedgerLog, decode_log, topic0

# Ids per eth_getLogs topic list: nodes cap the size of a filter.
TOPICS_PER_FILTER = 400

_LOT_EVENTS = (
    "LotCommissioned",
    "LotProduced",
    "LotShipped",
    "LotReceived",
    "ShipmentRejected",
    "ShipmentRecalled",
    "LotConsumed",
)
_PARTICIPANT_EVENTS = ("ParticipantAccredited", "ParticipantRevoked", "CertificationRecorded")


class Transaction(NamedTuple):
    hash: bytes
    to: str | None
    input: bytes
    block_number: int | None
    block_hash: bytes | None
    status: int | None  # the receipt's: 1 succeeded, 0 reverted, None no receipt


@dataclass
class ChainRecord:
    """What the node holds about one passport's chain."""

    ledger: str
    passport: bytes
    chain_id: int
    head: int
    logs: list[LedgerLog] = field(default_factory=list)  # in chain order, each once
    blocks: dict[int, tuple[bytes, int]] = field(default_factory=dict)  # canonical hash, time
    transactions: dict[bytes, Transaction] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0


def _chunks(items: Sequence[str], size: int = TOPICS_PER_FILTER) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _topic(value: bytes) -> str:
    return "0x" + value.hex()


class ChainReader:
    """Reads one passport's record from a node (JSON-RPC over HTTP)."""

    def __init__(
        self,
        w3: Web3,
        ledger: str,
        *,
        from_block: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.rpc = JsonRpc(w3, "an audit")
        self.ledger = to_checksum_address(ledger)
        self.from_block = from_block
        self.progress = progress or (lambda _message: None)
        self._seen: set[tuple[bytes, int]] = set()
        self._logs: list[LedgerLog] = []
        self._to_block = 0

    def head(self) -> int:
        """The node's head, which bounds every query of this reader from now on."""
        self._to_block = int(self.rpc.call("eth_blockNumber", []), 16)
        return self._to_block

    def logs_where(
        self,
        names: Sequence[str],
        position: int = 0,
        values: Sequence[str] = (),
        *,
        blocks: tuple[int, int] | None = None,
        keep: Callable[[LedgerLog], bool] | None = None,
    ) -> list[LedgerLog]:
        """Ledger logs of events ``names`` whose indexed topic ``position`` (1-3) is one of
        ``values`` (any, with position 0), in ``blocks`` (default: all) and kept by ``keep``;
        each log is kept once."""
        first, last = blocks if blocks is not None else (self.from_block, self._to_block)
        filters: list[list[str] | None] = [None]
        if position:
            filters = list(_chunks(sorted(set(values))))
        found: list[LedgerLog] = []
        for chunk in filters:
            topics: list[Any] = [[topic0(name) for name in names]]
            if chunk is not None:
                topics += [None] * (position - 1) + [chunk]
            raw = self.rpc.call(
                "eth_getLogs",
                [
                    {
                        "address": self.ledger,
                        "fromBlock": hex(max(first, self.from_block)),
                        "toBlock": hex(min(last, self._to_block)),
                        "topics": topics,
                    }
                ],
            )
            for item in raw:
                log = decode_log(item)
                if log is None or (keep is not None and not keep(log)):
                    continue
                key = (log.tx_hash, log.log_index)
                if key not in self._seen:
                    self._seen.add(key)
                    self._logs.append(log)
                    found.append(log)
        return found

    def read(self, passport: bytes) -> ChainRecord:
        started = time.perf_counter()
        chain_id = int(self.rpc.call("eth_chainId", []), 16)
        head = self.head()
        record = ChainRecord(self.ledger, passport, chain_id, head)

        # A node answers eth_getLogs by scanning the blocks of the range, so each query is given
        # the narrowest one known: a step's inputs and outputs are in its own block (where the
        # log naming the step was found); the events of a lot may be anywhere.
        bound = self.logs_where(("PassportBound", "PassportAttested"), 1, [_topic(passport)])
        at: dict[bytes, int] = {
            log.args["eventId"]: log.block_number for log in bound if log.name == "PassportBound"
        }
        steps = sorted(at)
        bindings = set(steps)
        lots_seen: set[bytes] = set()
        level = 0
        while steps:
            level += 1
            self.progress(f"level {level}: {len(steps)} steps")
            span = (min(at[s] for s in steps), max(at[s] for s in steps))
            parts = self.logs_where(
                ("LotConsumed", "LotProduced"), 2, [_topic(s) for s in steps], blocks=span
            )
            transforms = [_topic(s) for s in steps if s not in bindings]
            if transforms:
                self.logs_where(("LotsTransformed",), 1, transforms, blocks=span)
            inputs = {
                log.args["lot"]
                for log in parts
                if log.name == "LotConsumed" and log.args["lot"] not in lots_seen
            }
            lots_seen |= inputs
            self.progress(f"level {level}: every event of {len(inputs)} lots")
            touching = self.logs_where(_LOT_EVENTS, 1, [_topic(lot) for lot in inputs])
            producers = {
                log.args["eventId"]: log.block_number
                for log in touching
                if log.name == "LotProduced" and log.args["eventId"] not in at
            }
            at.update(producers)
            steps = sorted(producers)

        # Corrections and accreditations are few on any ledger: one query for all of them, of
        # which the record keeps the corrections of the events seen and the history of the
        # accounts involved (their signers included).
        event_ids = {log.args["eventId"] for log in self._logs if "eventId" in log.args}
        self.progress(f"corrections of {len(event_ids)} events, and accreditations")
        found = self.logs_where(
            ("EventCorrected", *_PARTICIPANT_EVENTS),
            keep=lambda log: log.name != "EventCorrected" or log.args["target"] in event_ids,
        )
        accounts = {
            log.args[name]
            for log in self._logs
            for name in ("actor", "from", "to", "auditor")
            if name in log.args
        }
        unrelated = {
            (log.tx_hash, log.log_index)
            for log in found
            if log.name != "EventCorrected" and log.args["participant"] not in accounts
        }
        self._logs = [log for log in self._logs if (log.tx_hash, log.log_index) not in unrelated]

        record.logs = sorted(self._logs, key=lambda log: (log.block_number, log.log_index))
        numbers = sorted({log.block_number for log in record.logs})
        self.progress(f"{len(numbers)} block headers")
        record.blocks = self.rpc.headers(numbers)
        hashes = sorted({log.tx_hash for log in record.logs})
        self.progress(f"{len(hashes)} transactions")
        txs = self.rpc.batch("eth_getTransactionByHash", [[_topic(h)] for h in hashes])
        receipts = self.rpc.batch("eth_getTransactionReceipt", [[_topic(h)] for h in hashes])
        for tx_hash, tx, receipt in zip(hashes, txs, receipts, strict=True):
            if tx is None:
                continue
            record.transactions[tx_hash] = Transaction(
                tx_hash,
                to_checksum_address(tx["to"]) if tx.get("to") else None,
                bytes.fromhex(tx["input"][2:]),
                int(tx["blockNumber"], 16) if tx.get("blockNumber") else None,
                bytes.fromhex(tx["blockHash"][2:]) if tx.get("blockHash") else None,
                int(receipt["status"], 16) if receipt is not None else None,
            )
        record.requests = self.rpc.requests
        record.seconds = time.perf_counter() - started
        return record


def attestations(w3: Web3, ledger: str, passport: bytes) -> list[tuple[LedgerLog, int]]:
    """The passport's attestations on the ledger, in chain order, with their block times."""
    reader = ChainReader(w3, ledger)
    reader.head()
    found = reader.logs_where(("PassportAttested",), 1, [_topic(passport)])
    blocks = reader.rpc.headers(sorted({log.block_number for log in found}))
    found.sort(key=lambda log: (log.block_number, log.log_index))
    return [(log, blocks.get(log.block_number, (b"", 0))[1]) for log in found]
