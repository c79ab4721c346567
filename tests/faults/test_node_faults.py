"""The node fails under a running `mine2cell serve` while writers post signed operations: it is
killed mid-batch and comes back from older saved state (its last blocks lost), it is unreachable
for seconds, it answers JSON-RPC errors, a gateway in front of it answers 502/503, it hangs past
the service's timeout, and it takes a transaction whose answer is lost on the way back.

Throughout, POST /v1/operations answers 202 (the outbox accepts) or a 503 problem, never a 500;
/v1/ready says the node does not answer while it does not, and recovers after. At the end every
operation the service acknowledged is on chain exactly once (counted in the ledger's own logs)
and GET /v1/operations/{id} reports it confirmed where it is.

One service, node and proxy serve the whole module (each test heals its fault before the next)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.serve_support import wait_ready
from tests.faults.fault_support import (
    Rig,
    Writers,
    assert_confirmed_exactly_once,
    not_ready,
    open_rig,
    records,
    wait_for,
)
from tests.faults.rpc_proxy import Fault

pytestmark = pytest.mark.anvil

# How long a fault lasts: several of the relay's batches (each waits 50 ms for company) and of the
# index's follow intervals (0.5 s).
FAULT_SECONDS = 1.5


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with open_rig(tmp_path_factory.mktemp("node-faults")) as running:
        yield running


@pytest.fixture(autouse=True)
def healed(rig: Rig) -> Iterator[None]:
    """Each test starts and ends with the node answering through the proxy."""
    yield
    rig.proxy.set(Fault.PASS)
    if rig.node.pid is None:
        rig.restart_node()


def recorded(rig: Rig, event_ids: list[str]) -> int:
    on_chain = records(rig.direct(), rig.ledger)
    return sum(1 for eid in event_ids if eid in on_chain)


def writing(rig: Rig, prefix: str) -> Writers:
    """Writers posting until stopped, once the relay has recorded their first operations."""
    writers = Writers(rig.server.url, rig.chains(prefix, 150)).start()
    wait_for("a first batch recorded", lambda: recorded(rig, writers.event_ids) >= 4)
    return writers


def during_fault(writers: Writers, seconds: float = FAULT_SECONDS) -> None:
    """Wait out a fault while the writers post: they must have been answered meanwhile (202, or
    a 503 problem), never with a 500."""
    before = sum(writers.answers.values())
    time.sleep(seconds)
    assert sum(writers.answers.values()) > before, writers.report()
    assert writers.answers[500] == 0, writers.report()


def finish(rig: Rig, writers: Writers) -> None:
    """Stop the writers and check every acknowledged operation on chain and through the API,
    and that the service is ready again, its index caught up."""
    writers.stop().join()
    ready = wait_ready(rig.http, rig.server)
    assert ready["relaying"] is True
    assert_confirmed_exactly_once(rig.http, rig.direct(), rig.ledger, writers.event_ids)
    wait_for("the index catching up", lambda: rig.http.get("/v1/ready").json()["index_lag"] == 0)


def test_node_killed_mid_batch_and_back_without_its_last_blocks_loses_no_operation(
    rig: Rig,
) -> None:
    writers = writing(rig, "killed")
    saved = rig.saved_state()
    saved_head = rig.direct().eth.block_number
    wait_for(
        "batches after the saved state", lambda: rig.direct().eth.block_number > saved_head + 2
    )
    head = rig.direct().eth.block_number
    dropped = len(rig.batches("dropped"))
    rig.node.kill()  # while the writers post and the relay sends
    assert not writers.done
    rig.state_file.write_bytes(saved)  # it comes back without the blocks after saved_head

    not_ready(rig.http)
    acknowledged = len(writers.acked)
    during_fault(writers)
    assert len(writers.acked) > acknowledged  # the outbox kept accepting
    not_ready(rig.http)
    rig.restart_node()
    assert rig.direct().eth.block_number < head  # blocks were lost

    finish(rig, writers)
    assert len(rig.batches("dropped")) > dropped  # their batches were found gone and sent again


def test_node_unreachable_for_seconds_then_back_loses_no_operation(rig: Rig) -> None:
    writers = writing(rig, "unreachable")

    rig.proxy.set(Fault.REFUSE)
    not_ready(rig.http)
    acknowledged = len(writers.acked)
    during_fault(writers)
    assert len(writers.acked) > acknowledged
    not_ready(rig.http)
    rig.proxy.set(Fault.PASS)

    finish(rig, writers)


SEND = "eth_sendRawTransaction"
RECEIPT = "eth_getTransactionReceipt"
# Methods the relay calls and nothing else in the service does (/v1/ready and the index ask for
# the head, blocks and logs).
RELAY_METHODS = (SEND, RECEIPT, "eth_call", "eth_getTransactionCount")
# A fault on some methods only: (fault, methods or None for all, HTTP status of HTTP_ERROR).
Phase = tuple[Fault, frozenset[str] | None, int]


@pytest.mark.parametrize(
    "phases",
    [
        pytest.param(
            [(Fault.RPC_ERROR, frozenset({SEND}), 0), (Fault.RPC_ERROR, frozenset({RECEIPT}), 0)],
            id="rpc-errors",
        ),
        pytest.param(
            [(Fault.HTTP_ERROR, frozenset({SEND}), 502), (Fault.HTTP_ERROR, None, 503)],
            id="http-5xx",
        ),
        pytest.param([(Fault.HANG, frozenset({SEND}), 0), (Fault.HANG, None, 0)], id="timeouts"),
        pytest.param([(Fault.DROP_RESPONSE, frozenset({SEND}), 0)], id="answer-to-send-lost"),
    ],
)
def test_node_failing_requests_loses_no_operation(rig: Rig, phases: list[Phase]) -> None:
    writers = writing(rig, "-".join(f"{fault}{status or ''}" for fault, _, status in phases))

    for fault, methods, status in phases:
        rig.proxy.set(fault, methods=methods, status=status)
        if methods is None:
            not_ready(rig.http)
        during_fault(writers, FAULT_SECONDS / len(phases) + 0.5)
        # The fault did reach the relay's requests.
        hit = {m: rig.proxy.faults(fault, m) for m in methods or RELAY_METHODS}
        assert all(hit.values()) if methods else any(hit.values()), (fault, hit)
        if methods is None:
            not_ready(rig.http)
    rig.proxy.set(Fault.PASS)

    finish(rig, writers)
