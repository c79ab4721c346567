"""Raw JSON-RPC to a node over HTTP, without web3's result formatting: readers of many logs,
headers and transactions (the index, the audit) decode the answers themselves, and send
requests in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from mine2cell.errors import ConfigurationError, NodeError

BATCH_SIZE = 500


class JsonRpc:
    def __init__(self, w3: Web3, purpose: str = "this") -> None:
        if not isinstance(w3.provider, HTTPProvider):
            raise ConfigurationError(f"{purpose} needs a JSON-RPC node over HTTP")
        self.provider: HTTPProvider = w3.provider
        self.requests = 0  # round trips made

    def call(self, method: str, params: list[Any]) -> Any:
        self.requests += 1
        reply = self.provider.make_request(RPCEndpoint(method), params)
        if "error" in reply:
            raise NodeError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def headers(self, numbers: Sequence[int]) -> dict[int, tuple[bytes, int]]:
        """number -> (hash, timestamp) of the node's canonical blocks; a number beyond the head
        is absent."""
        blocks = self.batch("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
        return {
            number: (bytes.fromhex(block["hash"][2:]), int(block["timestamp"], 16))
            for number, block in zip(numbers, blocks, strict=True)
            if block is not None
        }

    def batch(self, method: str, params: Sequence[list[Any]]) -> list[Any]:
        """The results of ``method`` for each of ``params``, in batches of JSON-RPC requests
        (None where the node has no answer, e.g. a block beyond the head)."""
        results: list[Any] = []
        for start in range(0, len(params), BATCH_SIZE):
            chunk = params[start : start + BATCH_SIZE]
            self.requests += 1
            replies = self.provider.make_batch_request([(RPCEndpoint(method), p) for p in chunk])
            if not isinstance(replies, list):
                raise NodeError(f"{method} failed: {replies.get('error')}")
            for reply in replies:
                if "error" in reply:
                    raise NodeError(f"{method} failed: {reply['error']}")
                results.append(reply.get("result"))
        return results
