"""Decoding the ledger's logs straight from JSON-RPC answers (eth_abi, no web3 formatting: a full
sync decodes hundreds of thousands of them)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from mine2cell.chain.artifacts import load_artifact

# The custody events and the kind of hand-off each records.
HANDOFF_KINDS: dict[str, Literal["ship", "receive", "reject", "recall"]] = {
    "LotShipped": "ship",
    "LotReceived": "receive",
    "ShipmentRejected": "reject",
    "ShipmentRecalled": "recall",
}


@dataclass(frozen=True)
class LedgerLog:
    """One decoded ledger event with its place on chain."""

    name: str
    args: dict[str, Any]
    tx_hash: bytes
    log_index: int
    block_number: int
    block_hash: bytes
    timestamp: int | None  # None when the node's logs do not carry it (then read the header)


@dataclass(frozen=True)
class _EventSpec:
    name: str
    indexed: tuple[tuple[str, str], ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    # Every data field a single word (uintN, address, bytesN): read by slicing, which is several
    # times faster than eth_abi for the bulk of a sync's or an audit's logs.
    static: bool


def _one_word(sol_type: str) -> bool:
    if sol_type == "address":
        return True
    if sol_type.endswith("]") or sol_type == "bytes":
        return False
    return sol_type.startswith(("uint", "bytes"))


@functools.cache
def _specs() -> dict[bytes, _EventSpec]:
    specs: dict[bytes, _EventSpec] = {}
    for item in load_artifact("Ledger").abi:
        if item.get("type") != "event":
            continue
        inputs = item["inputs"]
        signature = f"{item['name']}({','.join(i['type'] for i in inputs)})"
        specs[keccak(text=signature)] = _EventSpec(
            item["name"],
            tuple((i["name"], i["type"]) for i in inputs if i["indexed"]),
            tuple(i["name"] for i in inputs if not i["indexed"]),
            tuple(i["type"] for i in inputs if not i["indexed"]),
            all(_one_word(i["type"]) for i in inputs if not i["indexed"]),
        )
    return specs


def topic0(name: str) -> str:
    for topic, spec in _specs().items():
        if spec.name == name:
            return "0x" + topic.hex()
    raise KeyError(name)


@functools.lru_cache(maxsize=4096)
def checksummed(raw: bytes) -> str:
    # A ledger has a few hundred participants and every log names one or more of them: the
    # checksum (a keccak per call) was half of a full sync's time before this cache (profiled).
    return to_checksum_address(raw)


def _topic_value(sol_type: str, topic: bytes) -> Any:
    if sol_type == "address":
        return checksummed(topic[12:])
    if sol_type.startswith("uint"):
        return int.from_bytes(topic, "big")
    return topic


def _word_value(sol_type: str, word: bytes) -> Any:
    if sol_type == "address":
        return checksummed(word[12:])
    if sol_type.startswith("uint"):
        return int.from_bytes(word, "big")
    return word[: int(sol_type[5:])]  # bytesN, left-aligned


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def decode_log(raw: Mapping[str, Any]) -> LedgerLog | None:
    """A ledger event from an ``eth_getLogs`` entry, or None for a log of no known event."""
    topics = raw["topics"]
    if not topics:
        return None
    spec = _specs().get(_hex(topics[0]))
    if spec is None:
        return None
    args: dict[str, Any] = {}
    for (name, sol_type), topic in zip(spec.indexed, topics[1:], strict=True):
        args[name] = _topic_value(sol_type, _hex(topic))
    if spec.static:
        data = _hex(raw["data"])
        for i, (name, sol_type) in enumerate(zip(spec.data_names, spec.data_types, strict=True)):
            word = data[32 * i : 32 * i + 32]
            if len(word) != 32:
                raise ValueError(f"{spec.name}: the log's data ends before {name}")
            args[name] = _word_value(sol_type, word)
    elif spec.data_types:
        values = abi_decode(list(spec.data_types), _hex(raw["data"]))
        for name, sol_type, value in zip(spec.data_names, spec.data_types, values, strict=True):
            args[name] = checksummed(bytes.fromhex(value[2:])) if sol_type == "address" else value
    timestamp = raw.get("blockTimestamp")
    return LedgerLog(
        name=spec.name,
        args=args,
        tx_hash=_hex(raw["transactionHash"]),
        log_index=int(raw["logIndex"], 16),
        block_number=int(raw["blockNumber"], 16),
        block_hash=_hex(raw["blockHash"]),
        timestamp=None if timestamp is None else int(timestamp, 16),
    )
