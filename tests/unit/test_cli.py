"""The command line's commands that need no node."""

from __future__ import annotations

from eth_utils import keccak
from typer.testing import CliRunner

from mine2cell import __version__
from mine2cell.chain.artifacts import load_artifact
from mine2cell.cli import app

runner = CliRunner()


def test_contract_shows_the_compiler_and_the_runtime_hash_of_the_shipped_ledger() -> None:
    result = runner.invoke(app, ["contract"])

    artifact = load_artifact("Ledger")
    assert result.exit_code == 0, result.output
    assert artifact.compiler_version in result.output
    assert "0x" + keccak(artifact.deployed_bytecode).hex() in result.output


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["version"])

    assert result.exit_code == 0
    assert result.output.strip() == __version__


def test_unknown_command_fails_with_a_usage_message() -> None:
    result = runner.invoke(app, ["frobnicate"])

    assert result.exit_code == 2
    assert "No such command" in result.output
