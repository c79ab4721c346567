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

    def timestamp(self, log: LedgerLog) -> int:
        return self.blocks[log.block_number][1] if log.block_number in self.blocks else 0


def _chunks(items: Sequence[str], size: int = TOPICS_PER_FILTER) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _topic(value: bytes) -> str:
    return "0x" + value.hex()


def _address_topic(address: str) -> str:
    return "0x" + bytes.fromhex(address[2:]).rjust(32, b"\0").hex()


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
        self, names: Sequence[str], position: int, values: Sequence[str]
    ) -> list[LedgerLog]:
        """Ledger logs of events ``names`` whose indexed topic ``position`` (1-3) is one of
        ``values``; each log is kept once."""
        found: list[LedgerLog] = []
        for chunk in _chunks(sorted(set(values))):
            topics: list[Any] = [[topic0(name) for name in names]]
            topics += [None] * (position - 1) + [chunk]
            raw = self.rpc.call(
                "eth_getLogs",
                [
                    {
                        "address": self.ledger,
                        "fromBlock": hex(self.from_block),
                        "toBlock": hex(self._to_block),
                        "topics": topics,
                    }
                ],
            )
            for item in raw:
                log = decode_log(item)
                if log is None:
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

        bound = self.logs_where(("PassportBound", "PassportAttested"), 1, [_topic(passport)])
        steps = [log.args["eventId"] for log in bound if log.name == "PassportBound"]
        lots_seen: set[bytes] = set()
        steps_seen: set[bytes] = set(steps)
        level = 0
        while steps:
            level += 1
            self.progress(f"level {level}: {len(steps)} steps")
            parts = self.logs_where(("LotConsumed", "LotProduced"), 2, [_topic(s) for s in steps])
            transforms = [s for s in steps if s not in {b.args["eventId"] for b in bound}]
            if transforms:
                self.logs_where(("LotsTransformed",), 1, [_topic(s) for s in transforms])
            inputs = {
                log.args["lot"]
                for log in parts
                if log.name == "LotConsumed" and log.args["lot"] not in lots_seen
            }
            lots_seen |= inputs
            self.progress(f"level {level}: every event of {len(inputs)} lots")
            touching = self.logs_where(_LOT_EVENTS, 1, [_topic(lot) for lot in inputs])
            producers = {
                log.args["eventId"]
                for log in touching
                if log.name == "LotProduced" and log.args["eventId"] not in steps_seen
            }
            steps_seen |= producers
            steps = sorted(producers)

        event_ids = {log.args["eventId"] for log in self._logs if "eventId" in log.args}
        self.progress(f"corrections of {len(event_ids)} events")
        self.logs_where(("EventCorrected",), 1, [_topic(e) for e in event_ids])
        accounts = set()
        for log in self._logs:
            for name in ("actor", "from", "to", "auditor"):
                if name in log.args:
                    accounts.add(log.args[name])
        self.progress(f"accreditations of {len(accounts)} participants")
        self.logs_where(_PARTICIPANT_EVENTS, 1, [_address_topic(a) for a in accounts])

        record.logs = sorted(self._logs, key=lambda log: (log.block_number, log.log_index))
        numbers = sorted({log.block_number for log in record.logs})
        self.progress(f"{len(numbers)} block headers")
        headers = self.rpc.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
        for number, header in zip(numbers, headers, strict=True):
            if header is not None:
                record.blocks[number] = (
                    bytes.fromhex(header["hash"][2:]),
                    int(header["timestamp"], 16),
                )
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
    numbers = sorted({log.block_number for log in found})
    headers = reader.rpc.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
    times = {
        number: int(header["timestamp"], 16)
        for number, header in zip(numbers, headers, strict=True)
        if header is not None
    }
    found.sort(key=lambda log: (log.block_number, log.log_index))
    return [(log, times.get(log.block_number, 0)) for log in found]
