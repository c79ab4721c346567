"""The embedded node keeps what was mined across restarts and crashes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_utils import to_checksum_address
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.chain.node import DevNode
from tests.conftest import fund, signer

pytestmark = pytest.mark.anvil


def _deploy(node: DevNode) -> str:
    w3 = Web3(Web3.HTTPProvider(node.url))
    governor = signer("governor")
    fund(w3, governor.address)
    return LedgerClient.deploy(w3, Transactor(w3, governor), governor.address).address


def test_node_restarted_after_a_clean_stop_keeps_the_ledger(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with DevNode(state_file=state) as node:
        address = _deploy(node)
    with DevNode(state_file=state) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        assert LedgerClient(w3, address).governor() == signer("governor").address


def test_node_killed_after_the_state_interval_keeps_the_ledger(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    node = DevNode(state_file=state).start()
    try:
        address = _deploy(node)
        time.sleep(2.5)  # the state is dumped every second
    finally:
        node.kill()
    with DevNode(state_file=state) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        assert len(w3.eth.get_code(to_checksum_address(address))) > 0
