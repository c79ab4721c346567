"""Compiled contract artifacts shipped inside the package.

The artifacts are produced by ``scripts/build_contracts.py`` and committed, so
deploying or talking to the ledger never needs a Solidity compiler.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Artifact:
    """One deployable contract: its interface, its code and how it was built."""

    contract_name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    settings: dict[str, Any]
    # source unit name -> keccak256 of its content (0x hex), OpenZeppelin's included
    sources: dict[str, str]
    # (start, length) of each immutable in deployed_bytecode: the constructor writes them
    immutable_ranges: tuple[tuple[int, int], ...] = ()
    # start of each of those ranges -> the immutable's name (e.g. _cachedChainId)
    immutable_names: Mapping[int, str] = field(default_factory=dict)


def _hex_to_bytes(value: str, *, field: str, name: str) -> bytes:
    if not value.startswith("0x"):
        raise ValueError(f"artifact {name}: {field} is not 0x-prefixed hex")
    return bytes.fromhex(value[2:])


def artifact_names() -> list[str]:
    """Names of every contract artifact shipped with the package, sorted."""
    directory = resources.files("mine2cell.chain").joinpath("artifacts")
    if not directory.is_dir():
        return []
    return sorted(
        entry.name.removesuffix(".json")
        for entry in directory.iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    )


@functools.cache
def load_artifact(name: str = "Ledger") -> Artifact:
    """Load the artifact of contract ``name`` (e.g. ``"Ledger"``) from the package data.

    The result is cached and shared: treat its ``abi`` and ``settings`` as read-only.
    """
    if not name.isidentifier():
        raise ValueError(f"not a contract name: {name!r}")
    resource = resources.files("mine2cell.chain").joinpath("artifacts").joinpath(f"{name}.json")
    if not resource.is_file():
        available = ", ".join(artifact_names()) or "none"
        raise FileNotFoundError(
            f"no compiled artifact for contract {name!r} (available: {available}); "
            "run `make contracts` to build them"
        )
    return parse_artifact(json.loads(resource.read_text(encoding="utf-8")))


def parse_artifact(data: Mapping[str, Any]) -> Artifact:
    """Build an Artifact from the JSON object written by scripts/build_contracts.py."""
    name = data["contractName"]
    return Artifact(
        contract_name=name,
        abi=data["abi"],
        bytecode=_hex_to_bytes(data["bytecode"], field="bytecode", name=name),
        deployed_bytecode=_hex_to_bytes(
            data["deployedBytecode"], field="deployedBytecode", name=name
        ),
        compiler_version=data["compiler"]["version"],
        settings=data["settings"],
        sources={unit: entry["keccak256"] for unit, entry in data["sources"].items()},
        immutable_ranges=tuple(
            sorted(
                (int(ref["start"]), int(ref["length"]))
                for refs in data.get("immutableReferences", {}).values()
                for ref in refs
            )
        ),
        immutable_names={
            int(ref["start"]): names[ast_id]
            for ast_id, refs in data.get("immutableReferences", {}).items()
            for ref in refs
            if ast_id in (names := data.get("immutableNames", {}))
        },
    )
