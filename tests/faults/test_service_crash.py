"""`mine2cell serve` killed (SIGKILL: no shutdown, no cleanup) while writers post and a batch is
in flight, its transaction mined but its receipt not yet read, then started again on the same data
directory and port: the new process takes the relay's lock (the kernel released the dead one's),
settles the batch from its receipt instead of sending its operations again, relays what the dead
one had accepted, and every operation acknowledged by either process is on chain exactly once and
reported confirmed. The writers' POSTs that got no answer are sent again, as a client would; the
same document is acknowledged with the same event id.

The service is started with --passphrase-file, as an operator's unit file would."""

from __future__ import annotations

from pathlib import Path

import pytest
from hexbytes import HexBytes

from tests.e2e.cli_support import PASSPHRASE
from tests.e2e.serve_support import wait_ready
from tests.faults.fault_support import (
    Writers,
    assert_confirmed_exactly_once,
    open_rig,
    records,
    wait_for,
)
from tests.faults.rpc_proxy import Fault

pytestmark = pytest.mark.anvil

RECEIPT = "eth_getTransactionReceipt"


def test_serve_killed_mid_batch_and_restarted_loses_and_repeats_no_operation(
    tmp_path: Path,
) -> None:
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    args = ("--passphrase-file", str(passphrase_file))
    with open_rig(tmp_path, serve_args=args) as rig:
        w3 = rig.direct()
        writers = Writers(rig.server.url, rig.chains("crash", 150)).start()
        wait_for("a first batch recorded", lambda: len(records(w3, rig.ledger)) >= 6)

        # A batch in flight: sent and mined (anvil mines at once), its receipt not read.
        rig.proxy.set(Fault.HANG, methods={RECEIPT})
        wait_for("a batch waiting for its receipt", lambda: rig.proxy.faults(Fault.HANG) > 0)
        [(batch, nonce, tx_hash)] = rig.batches("sending")
        rig.server.kill()
        rig.proxy.set(Fault.PASS)
        assert not writers.done
        assert w3.eth.get_transaction_receipt(HexBytes(tx_hash))["status"] == 1
        mined_before = rig.batches("mined")

        rig.restart_server()
        assert wait_ready(rig.http, rig.server)["relaying"] is True  # the dead one's lock is gone
        writers.stop().join()

        assert writers.lost_answers > 0  # the writers were posting while it was down
        assert_confirmed_exactly_once(rig.http, w3, rig.ledger, writers.event_ids)
        # The batch in flight was settled from its receipt, not sent again in another one.
        assert (batch, nonce, tx_hash) in rig.batches("mined")
        assert rig.batches("mined")[: len(mined_before) + 1] == [
            *mined_before,
            (batch, nonce, tx_hash),
        ]
        assert rig.batches("dropped") == [] and rig.batches("sending") == []
