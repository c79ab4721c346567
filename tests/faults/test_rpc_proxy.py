"""The fault tests' JSON-RPC proxy does to a client what it claims, in front of a real anvil."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3
from web3.types import RPCEndpoint

from mine2cell.chain.node import DevNode
from mine2cell.service import fund_on_dev_node
from tests.faults.rpc_proxy import INJECTED_RPC_ERROR, Fault, RpcProxy

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def node() -> Iterator[DevNode]:
    with DevNode() as dev_node:
        yield dev_node


@pytest.fixture
def proxy(node: DevNode) -> Iterator[RpcProxy]:
    with RpcProxy(node.url) as running:
        yield running


def call(client: httpx.Client, method: str, params: list[Any] | None = None) -> dict[str, Any]:
    reply = client.post("/", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def test_each_fault_reaches_the_client_as_it_would_from_a_failing_node(
    node: DevNode, proxy: RpcProxy
) -> None:
    with httpx.Client(base_url=proxy.url, timeout=0.5) as client:
        assert int(call(client, "eth_chainId")["result"], 16) == node.chain_id

        proxy.set(Fault.REFUSE)
        with pytest.raises(httpx.RemoteProtocolError):  # an open connection: closed, unanswered
            call(client, "eth_chainId")
        with pytest.raises(httpx.ConnectError):  # and the port no longer listens
            call(client, "eth_chainId")
        proxy.set(Fault.PASS)
        assert "result" in call(client, "eth_chainId")

        proxy.set(Fault.HTTP_ERROR, status=503)
        with pytest.raises(httpx.HTTPStatusError) as answered:
            call(client, "eth_chainId")
        assert answered.value.response.status_code == 503

        proxy.set(Fault.RPC_ERROR, methods={"eth_blockNumber"})
        assert call(client, "eth_blockNumber")["error"] == INJECTED_RPC_ERROR
        assert "result" in call(client, "eth_chainId")
        batch = client.post(
            "/",
            json=[
                {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
            ],
        ).json()
        assert "result" in batch[0] and batch[1]["error"] == INJECTED_RPC_ERROR

        proxy.set(Fault.HANG)
        with pytest.raises(httpx.ReadTimeout):
            call(client, "eth_chainId")
        proxy.set(Fault.PASS)
        assert "result" in call(client, "eth_chainId")

    assert proxy.faults(Fault.RPC_ERROR, "eth_blockNumber") == 2
    assert proxy.faults(Fault.HANG) == 1 and proxy.faults(Fault.REFUSE) == 1


def test_a_dropped_answer_leaves_the_transaction_sent(node: DevNode, proxy: RpcProxy) -> None:
    w3 = Web3(Web3.HTTPProvider(node.url))
    sender = Account.create()
    fund_on_dev_node(w3, sender.address)
    tx = sender.sign_transaction(
        {
            "chainId": node.chain_id,
            "nonce": 0,
            "gas": 21_000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
            "to": sender.address,
            "value": 1,
            "type": 2,
        }
    )
    proxy.set(Fault.DROP_RESPONSE, methods={"eth_sendRawTransaction"})
    with httpx.Client(base_url=proxy.url, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            call(client, "eth_sendRawTransaction", ["0x" + tx.raw_transaction.hex()])
        assert "result" in call(client, "eth_chainId")  # other methods are answered
    reply = w3.provider.make_request(
        RPCEndpoint("eth_getTransactionReceipt"), ["0x" + bytes(tx.hash).hex()]
    )
    assert reply["result"]["status"] == "0x1"  # the node took it
    assert proxy.faults(Fault.DROP_RESPONSE) == 1
