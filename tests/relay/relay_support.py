"""Helpers shared by the relay tests: accepting operations, building relays, and reading back from
the chain's own logs where (and how many times) each operation was recorded."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient
from mine2cell.relay import intake
from mine2cell.relay.outbox import Accepted, Outbox, State
from mine2cell.relay.relay import BatchPolicy, Relay
from mine2cell.signing.eip712 import LotId, SignedOperation
from tests.chain.ledger_support import commission, delivery, lot_id
from tests.conftest import Cast

# The event each operation type emits when it is recorded (the ledger's other events, such as
# LotConsumed, repeat the event id of the operation that caused them).
RECORD_EVENTS = (
    "ParticipantAccredited",
    "ParticipantRevoked",
    "CertificationRecorded",
    "LotCommissioned",
    "LotShipped",
    "LotReceived",
    "ShipmentRejected",
    "ShipmentRecalled",
    "LotsTransformed",
    "PassportBound",
    "EventCorrected",
    "PassportAttested",
)


def records(ledger: LedgerClient) -> dict[bytes, list[bytes]]:
    """Per event id, the hashes of the transactions whose logs record it (eth_getLogs over the
    whole chain): an operation recorded exactly once has one."""
    events: dict[bytes, Any] = {}
    for name in RECORD_EVENTS:
        event = getattr(ledger.contract.events, name)()
        events[bytes(HexBytes(event.topic))] = event
    logs = ledger.w3.eth.get_logs({"address": ledger.address, "fromBlock": 0, "toBlock": "latest"})
    found: dict[bytes, list[bytes]] = defaultdict(list)
    for log in logs:
        event = events.get(bytes(log["topics"][0]))
        if event is not None:
            event_id = bytes(event.process_log(log)["args"]["eventId"])
            found[event_id].append(bytes(log["transactionHash"]))
    return dict(found)


def accept(outbox: Outbox, ledger: LedgerClient, ops: Sequence[SignedOperation]) -> list[bytes]:
    """Accept operations that must all be acknowledged; return their event ids."""
    results = intake.accept(outbox, ledger, [(op, b"") for op in ops])
    acknowledged = [r for r in results if isinstance(r, Accepted)]
    assert len(acknowledged) == len(ops), results
    assert all(r.stored for r in acknowledged)
    return [r.event_id for r in acknowledged]


def new_relay(cast: Cast, outbox: Outbox, **policy: Any) -> Relay:
    relay = Relay(cast.ledger, outbox, cast.relayer, BatchPolicy(**policy))
    relay.recover()
    return relay


def commissions(cast: Cast, n: int, prefix: str = "ore") -> list[SignedOperation]:
    return [commission(cast, lot_id(f"{prefix} {i}")) for i in range(n)]


def deliveries(cast: Cast, n: int, prefix: str = "delivery") -> list[SignedOperation]:
    """n lots, each commissioned by the Congolese mine, shipped to the refiner and received: three
    operations per lot, each depending on the one before."""
    ops: list[SignedOperation] = []
    for i in range(n):
        ops += delivery(cast, LotId(lot_id(f"{prefix} {i}")), cast.refiner)
    return ops


def assert_recorded_exactly_once(
    ledger: LedgerClient, outbox: Outbox, ids: Sequence[bytes]
) -> None:
    """Every operation is confirmed, recorded by exactly one log on chain, in the transaction and
    the block its status names."""
    on_chain = records(ledger)
    statuses = outbox.statuses(list(ids))
    assert {s.state for s in statuses.values()} == {State.CONFIRMED}, [
        (s.kind, s.state, s.error) for s in statuses.values() if s.state is not State.CONFIRMED
    ]
    assert len(statuses) == len(ids)
    counts = {eid: len(on_chain.get(eid, [])) for eid in ids}
    assert set(counts.values()) == {1}, {"0x" + e.hex(): n for e, n in counts.items() if n != 1}
    for eid in ids:
        assert statuses[eid].tx_hash == on_chain[eid][0]
    for tx_hash in {s.tx_hash for s in statuses.values()}:
        receipt = ledger.w3.eth.get_transaction_receipt(HexBytes(tx_hash or b""))
        where = (receipt["blockNumber"], bytes(receipt["blockHash"]))
        named = {(s.block_number, s.block_hash) for s in statuses.values() if s.tx_hash == tx_hash}
        assert named == {where}


def saved_state(state_file: Path, w3: Web3, timeout: float = 5.0) -> bytes:
    """The node's state file once it holds every block mined so far (anvil writes it once a
    second with ``--state-interval 1``)."""
    head = w3.eth.block_number
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = state_file.read_bytes() if state_file.exists() else b""
        try:
            if int(json.loads(raw)["best_block_number"]) >= head:
                return raw
        except (ValueError, KeyError):
            pass  # not written yet, or caught half-written
        time.sleep(0.05)
    raise AssertionError(f"the node did not save block {head} within {timeout} s")
