"""Is the contract at a ledger address the code built from this repository's sources?

The runtime code a node returns for the address must equal the artifact's deployed bytecode byte
for byte, except where the constructor wrote immutables (the governor, the EIP-712 domain): those
ranges are compared masked and their deployed values reported. The artifact's trailing metadata
hash commits to the compiler version, the settings and every source file, so equal code means the
rules were enforced by the code in contracts/ as compiled with the recorded settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from mine2cell.chain.artifacts import Artifact, load_artifact


@dataclass(frozen=True)
class Immutable:
    name: str
    start: int
    length: int
    value: bytes  # as deployed


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of comparing the code at ``address`` with the artifact."""

    address: str
    chain_id: int
    matches: bool
    problem: str  # why not, when it does not match
    code_hash: bytes  # keccak256 of the deployed runtime code
    size: int  # bytes of deployed runtime code
    expected_size: int
    first_difference: int | None  # byte offset of the first difference outside immutables
    immutables: tuple[Immutable, ...]
    contract_name: str
    compiler_version: str
    settings: dict[str, Any]  # evmVersion, optimizer, viaIR, metadata
    sources: dict[str, str]  # source unit -> keccak256

    def immutable(self, name: str) -> bytes | None:
        """The deployed value of immutable ``name`` (the first, if it is read in several places)."""
        return next((i.value for i in self.immutables if i.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "chain_id": self.chain_id,
            "matches": self.matches,
            "problem": self.problem or None,
            "code_hash": "0x" + self.code_hash.hex(),
            "size": self.size,
            "expected_size": self.expected_size,
            "first_difference": self.first_difference,
            "immutables": [
                {
                    "name": i.name,
                    "start": i.start,
                    "length": i.length,
                    "value": "0x" + i.value.hex(),
                }
                for i in self.immutables
            ],
            "artifact": {
                "contract": self.contract_name,
                "compiler": self.compiler_version,
                "settings": self.settings,
                "sources": self.sources,
            },
        }


def _masked(code: bytes, ranges: tuple[tuple[int, int], ...]) -> bytes:
    out = bytearray(code)
    for start, length in ranges:
        out[start : start + length] = bytes(length)
    return bytes(out)


def compare_code(code: bytes, artifact: Artifact) -> tuple[str, int | None]:
    """Why ``code`` is not the artifact's runtime code ("" when it is), and the offset of the
    first differing byte outside the immutables."""
    expected = artifact.deployed_bytecode
    if not code:
        return "there is no contract code at this address", None
    ranges = artifact.immutable_ranges
    if len(code) != len(expected):
        common = min(len(code), len(expected))
        mine, theirs = _masked(code[:common], ranges), _masked(expected[:common], ranges)
        first = next((i for i in range(common) if mine[i] != theirs[i]), common)
        return (
            f"the deployed runtime code is {len(code):,} bytes, the artifact's "
            f"{len(expected):,} bytes: it is another contract or another build",
            first,
        )
    mine, theirs = _masked(code, ranges), _masked(expected, ranges)
    if mine == theirs:
        return "", None
    first = next(i for i in range(len(mine)) if mine[i] != theirs[i])
    return (
        f"the deployed runtime code differs from the artifact's from byte {first:,} (outside the "
        "immutables): it was built from other sources or with other settings",
        first,
    )


def check_code(w3: Web3, address: str, artifact: Artifact | None = None) -> CodeCheck:
    """Compare the runtime code at ``address`` on ``w3``'s chain with the ledger's artifact."""
    artifact = artifact or load_artifact("Ledger")
    account = to_checksum_address(address)
    code = bytes(w3.eth.get_code(account))
    problem, first = compare_code(code, artifact)
    fits = len(code) == len(artifact.deployed_bytecode)
    settings: dict[str, Any] = {
        key: artifact.settings[key]
        for key in ("evmVersion", "optimizer", "viaIR", "metadata")
        if key in artifact.settings
    }
    return CodeCheck(
        address=account,
        chain_id=w3.eth.chain_id,
        matches=not problem,
        problem=problem,
        code_hash=keccak(code),
        size=len(code),
        expected_size=len(artifact.deployed_bytecode),
        first_difference=first,
        immutables=tuple(
            Immutable(
                artifact.immutable_names.get(start, ""), start, length, code[start : start + length]
            )
            for start, length in artifact.immutable_ranges
        )
        if fits
        else (),
        contract_name=artifact.contract_name,
        compiler_version=artifact.compiler_version,
        settings=settings,
        sources=dict(artifact.sources),
    )
