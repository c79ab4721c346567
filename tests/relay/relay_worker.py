"""A relay process for the crash tests: opens an outbox and a ledger, relays until nothing is left,
and kills itself (SIGKILL: no cleanup, no flush, as a power cut or the OOM killer would) when the
relay reaches a given stage of a given batch.

    RELAY_WORKER_KEY=0x... python -m tests.relay.relay_worker --rpc URL --ledger ADDRESS \\
        --outbox FILE [--die-at stored|sent|mined [--batch N]] [--max-operations N]

The relayer's key comes in the environment (RELAY_WORKER_KEY, hex): importing the test fixtures
to derive it would double the worker's start-up time.

Exit status: 0 when drained, 3 when another relay holds the outbox, -9 (killed) at the stage.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from web3 import Web3

from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.relay.outbox import Batch, Outbox
from mine2cell.relay.relay import STAGES, BatchPolicy, Relay, RelayLock
from mine2cell.signing.eip712 import LocalSigner

KEY_VARIABLE = "RELAY_WORKER_KEY"


def lock_path(outbox: Path) -> Path:
    """Where the relay's lock lives beside its outbox (as in mine2cell.service)."""
    return outbox.with_name("relay.lock")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--outbox", required=True, type=Path)
    parser.add_argument("--die-at", choices=STAGES)
    parser.add_argument("--batch", type=int, default=1, help="die at the N-th batch at the stage")
    parser.add_argument("--max-operations", type=int, default=256)
    args = parser.parse_args(argv)

    lock = RelayLock(lock_path(args.outbox))
    if not lock.acquire():
        print(f"another relay holds {lock.path}", file=sys.stderr)
        return 3
    w3 = Web3(Web3.HTTPProvider(args.rpc))
    relayer = LocalSigner(bytes.fromhex(os.environ[KEY_VARIABLE].removeprefix("0x")))
    ledger = LedgerClient(w3, args.ledger, Transactor(w3, relayer))
    reached: Counter[str] = Counter()

    def on_stage(stage: str, batch: Batch) -> None:
        reached[stage] += 1
        if stage == args.die_at and reached[stage] == args.batch:
            os.kill(os.getpid(), signal.SIGKILL)

    relay = Relay(
        ledger,
        Outbox(args.outbox),
        relayer,
        BatchPolicy(max_operations=args.max_operations),
        on_stage=on_stage,
    )
    relay.recover()
    relay.drain(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
