"""Decode revert data into the project's errors, the same way on eth-tester and on a real node.

eth-tester raises ``TransactionFailed`` carrying the raw revert bytes; a JSON-RPC node's error
reaches web3 as ``ContractCustomError`` / ``ContractLogicError`` with the data as hex. Both are
decoded by selector against the ledger's ABI.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from mine2cell.chain.artifacts import load_artifact
from mine2cell.errors import LedgerRejected, Mine2CellError, TransactionFailed

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
_BYTES_REPR = re.compile(r"""b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*$""")


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


@cache
def _errors_by_selector() -> dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    table: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
    for item in load_artifact("Ledger").abi:
        if item["type"] != "error":
            continue
        types = tuple(_abi_type(i) for i in item["inputs"])
        names = tuple(i["name"] for i in item["inputs"])
        selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
        table[selector] = (item["name"], types, names)
    return table


def decode_revert(data: bytes) -> Mine2CellError:
    """Turn revert data into an exception (not raised)."""
    selector, body = data[:4], data[4:]
    known = _errors_by_selector().get(selector)
    if known is not None:
        name, types, names = known
        try:
            values = abi_decode(list(types), body)
        except Exception:
            return TransactionFailed(f"malformed {name} revert data 0x{data.hex()}")
        return LedgerRejected(name, dict(zip(names, values, strict=True)))
    if selector == _ERROR_STRING:
        (message,) = abi_decode(["string"], body)
        return TransactionFailed(f"reverted: {message}")
    if selector == _PANIC:
        (code,) = abi_decode(["uint256"], body)
        return TransactionFailed(f"reverted with panic code 0x{code:02x}")
    if not data:
        return TransactionFailed("reverted without a reason (out of gas or a failed call)")
    return TransactionFailed(f"reverted with unknown data 0x{data.hex()}")


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        if value.startswith("0x"):
            try:
                return bytes.fromhex(value[2:])
            except ValueError:
                return None
        # eth-tester puts the repr of the revert bytes in its message.
        literal = _BYTES_REPR.search(value)
        if literal is not None:
            parsed = ast.literal_eval(literal.group(0))
            return parsed if isinstance(parsed, bytes) else None
    return None


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by an exception from web3 or eth-tester, if any."""
    data = getattr(exc, "data", None)
    found = _as_bytes(data)
    if found is not None:
        return found
    if isinstance(data, dict):
        found = _as_bytes(data.get("data"))
        if found is not None:
            return found
    for arg in exc.args:
        found = _as_bytes(arg)
        if found is not None:
            return found
        if isinstance(arg, dict):
            found = _as_bytes(arg.get("data"))
            if found is not None:
                return found
    return None


def decode_exception(exc: BaseException) -> Mine2CellError | None:
    """The project error behind a web3/eth-tester exception, or None if it is not a revert."""
    if isinstance(exc, Mine2CellError):
        return exc
    data = revert_data(exc)
    if data is None:
        return None
    return decode_revert(data)
