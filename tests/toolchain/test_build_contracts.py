"""The Solidity build: committed artifacts are current, builds are reproducible.

Tests marked `compiler` run the real compiler (node + solc-js from node_modules),
several seconds per compilation of the ledger, so the repository is compiled once
per test run (`repo_build`), however many xdist workers ask for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from scripts import build_contracts

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The artifacts of contracts/ as compiled now, by the same code as `--check`."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build_contracts.compile_contracts(REPO_ROOT)
    # xdist workers of one run share the parent of their base temp dirs: the first
    # worker to get here compiles, the others wait on the lock and read its result.
    shared = tmp_path_factory.getbasetemp().parent / "repo_build.json"
    with shared.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shared.is_file():
            built: dict[str, dict[str, Any]] = json.loads(shared.read_text())
            return built
        built = build_contracts.compile_contracts(REPO_ROOT)
        shared.write_text(json.dumps(built))
        return built


def make_checkout(destination: Path, *, with_contracts: bool = True) -> Path:
    """A second copy of the build inputs at another path, sharing node_modules."""
    (destination / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "scripts" / "solc.cjs", destination / "scripts" / "solc.cjs")
    (destination / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    if with_contracts:
        shutil.copytree(REPO_ROOT / "contracts", destination / "contracts")
    else:
        (destination / "contracts").mkdir()
    return destination


def fake_artifact(name: str, runtime: str = "0x6001") -> dict[str, Any]:
    return {
        "contractName": name,
        "sourceName": f"contracts/{name}.sol",
        "abi": [],
        "bytecode": "0x60016002",
        "deployedBytecode": runtime,
    }


@pytest.mark.compiler
def test_committed_artifacts_match_the_contracts(repo_build: dict[str, dict[str, Any]]) -> None:
    # What `scripts/build_contracts.py --check` does: CI fails here when a contract
    # was edited without `make contracts`.
    directory = REPO_ROOT / build_contracts.ARTIFACTS_SUBDIR
    problems = build_contracts.stale_artifacts(repo_build, directory)
    problems += build_contracts.oversized(repo_build)

    assert not problems, "\n".join([*problems, "run `make contracts` and commit the result"])


@pytest.mark.compiler
def test_compiling_in_another_checkout_gives_identical_artifacts(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if not build_contracts.collect_sources(REPO_ROOT):
        pytest.skip("no contracts to compile yet")
    elsewhere = build_contracts.compile_contracts(make_checkout(tmp_path / "elsewhere"))
    # Requested only now, so that under xdist this compilation overlaps with the
    # repository's on the other worker.
    repo_build: dict[str, dict[str, Any]] = request.getfixturevalue("repo_build")

    assert repo_build, "contracts/ defines no deployable contract"
    assert {name: a["deployedBytecode"] for name, a in elsewhere.items()} == {
        name: a["deployedBytecode"] for name, a in repo_build.items()
    }
    assert {name: build_contracts.render(a) for name, a in elsewhere.items()} == {
        name: build_contracts.render(a) for name, a in repo_build.items()
    }


@pytest.mark.compiler
def test_compile_errors_are_reported_with_their_source_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = make_checkout(tmp_path / "broken", with_contracts=False)
    (checkout / "contracts" / "Broken.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract Broken { uint x = }\n"
    )

    exit_code = build_contracts.main([], root=checkout)

    assert exit_code == 1
    stderr = capsys.readouterr().err
    assert "ParserError" in stderr
    assert "contracts/Broken.sol:3:" in stderr
    assert not (checkout / build_contracts.ARTIFACTS_SUBDIR).exists()


def test_check_fails_naming_an_artifact_without_a_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = make_checkout(tmp_path / "orphan", with_contracts=False)
    directory = checkout / build_contracts.ARTIFACTS_SUBDIR
    directory.mkdir(parents=True)
    (directory / "Gone.json").write_text(build_contracts.render(fake_artifact("Gone")))

    exit_code = build_contracts.main(["--check"], root=checkout)

    assert exit_code == 1
    assert "Gone: stale artifact Gone.json" in capsys.readouterr().err
    assert (directory / "Gone.json").exists()


def test_stale_artifacts_names_the_field_that_differs(tmp_path: Path) -> None:
    built = {"Ledger": fake_artifact("Ledger")}
    (tmp_path / "Ledger.json").write_text(
        build_contracts.render(fake_artifact("Ledger", runtime="0x6002"))
    )

    problems = build_contracts.stale_artifacts(built, tmp_path)

    assert problems == ["Ledger: stale artifact Ledger.json, differs in deployedBytecode"]


def test_stale_artifacts_reports_missing_and_orphaned_files(tmp_path: Path) -> None:
    (tmp_path / "Gone.json").write_text(build_contracts.render(fake_artifact("Gone")))

    problems = build_contracts.stale_artifacts({"Ledger": fake_artifact("Ledger")}, tmp_path)

    assert problems == [
        "Ledger: missing artifact Ledger.json",
        "Gone: stale artifact Gone.json, no deployable contract of that name in contracts/",
    ]


def test_stale_artifacts_accepts_exactly_what_write_artifacts_wrote(tmp_path: Path) -> None:
    built = {"Ledger": fake_artifact("Ledger"), "Registry": fake_artifact("Registry")}
    (tmp_path / "Old.json").write_text("{}\n")

    build_contracts.write_artifacts(built, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["Ledger.json", "Registry.json"]
    assert build_contracts.stale_artifacts(built, tmp_path) == []
    text = (tmp_path / "Ledger.json").read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == built["Ledger"]


def test_stale_artifacts_rejects_a_hand_formatted_file(tmp_path: Path) -> None:
    built = {"Ledger": fake_artifact("Ledger")}
    (tmp_path / "Ledger.json").write_text(json.dumps(built["Ledger"]))

    problems = build_contracts.stale_artifacts(built, tmp_path)

    assert problems == ["Ledger: Ledger.json has the right content but not the canonical layout"]


def test_settings_pin_the_evm_version_and_the_optimizer() -> None:
    settings = build_contracts.compiler_settings()

    assert settings["evmVersion"] == "cancun"
    assert settings["optimizer"] == {"enabled": True, "runs": build_contracts.OPTIMIZER_RUNS}
    assert settings["viaIR"] is build_contracts.VIA_IR
    assert settings["metadata"] == {"bytecodeHash": "ipfs"}
