"""Loading the compiled contract artifacts shipped in the package."""

from __future__ import annotations

from typing import Any

import pytest

from mine2cell.chain.artifacts import artifact_names, load_artifact, parse_artifact


def artifact_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "contractName": "Ledger",
        "sourceName": "contracts/Ledger.sol",
        "abi": [{"type": "function", "name": "f", "inputs": [], "outputs": []}],
        "bytecode": "0x6080aa",
        "deployedBytecode": "0xaa",
        "compiler": {"name": "solc-js", "version": "0.8.37+commit.f401782d"},
        "settings": {"evmVersion": "cancun"},
        "sources": {"contracts/Ledger.sol": {"keccak256": "0x" + "11" * 32}},
        "metadata": "{}",
    }
    data.update(overrides)
    return data


def test_parse_artifact_decodes_the_code_to_bytes() -> None:
    artifact = parse_artifact(artifact_json())

    assert artifact.contract_name == "Ledger"
    assert artifact.bytecode == bytes.fromhex("6080aa")
    assert artifact.deployed_bytecode == b"\xaa"
    assert artifact.compiler_version == "0.8.37+commit.f401782d"
    assert artifact.sources == {"contracts/Ledger.sol": "0x" + "11" * 32}
    assert artifact.abi[0]["name"] == "f"


def test_parse_artifact_rejects_code_without_0x_prefix() -> None:
    with pytest.raises(ValueError, match="bytecode is not 0x-prefixed"):
        parse_artifact(artifact_json(bytecode="6080"))


def test_load_artifact_names_the_missing_contract() -> None:
    with pytest.raises(FileNotFoundError, match="'NoSuchContract'"):
        load_artifact("NoSuchContract")


def test_load_artifact_rejects_a_path_as_name() -> None:
    with pytest.raises(ValueError, match="not a contract name"):
        load_artifact("../artifacts/Ledger")


@pytest.mark.parametrize("name", artifact_names())
def test_every_shipped_artifact_loads(name: str) -> None:
    artifact = load_artifact(name)

    assert artifact.contract_name == name
    assert artifact.deployed_bytecode
    assert artifact.bytecode
    assert artifact.compiler_version.startswith("0.8.")
    assert load_artifact(name) is artifact
