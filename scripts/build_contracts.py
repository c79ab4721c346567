"""Compile contracts/ into the artifacts shipped in src/mine2cell/chain/artifacts/.

    python scripts/build_contracts.py           compile and (re)write the artifacts
    python scripts/build_contracts.py --check   compile in memory; exit 1 if the
                                                committed artifacts are stale

The compiler is solc-js (npm `solc`, pinned in package-lock.json) behind
scripts/solc.cjs, which speaks enough of native solc's command line for
py-solc-x's `compile_standard`: no native solc can be downloaded on our machines.

Source unit names are relative (`contracts/Ledger.sol`, `@openzeppelin/...`), so
the bytecode, including the metadata hash appended to it, is the same wherever
the repository is checked out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_SUBDIR = Path("src/mine2cell/chain/artifacts")

OPTIMIZER_RUNS = 10000
VIA_IR = True
EVM_VERSION = "cancun"
BYTECODE_HASH = "ipfs"

EIP170_RUNTIME_LIMIT = 24_576  # bytes of deployed code
EIP3860_INITCODE_LIMIT = 49_152  # bytes of creation code

CONTRACT_OUTPUTS = [
    "abi",
    "evm.bytecode.object",
    "evm.deployedBytecode.object",
    "evm.deployedBytecode.immutableReferences",
    "metadata",
    "storageLayout",
]


class BuildError(Exception):
    """The contracts could not be compiled into artifacts; the message says why."""


def compiler_settings() -> dict[str, Any]:
    """The Standard JSON `settings` object used for every build (stored in each artifact)."""
    return {
        "evmVersion": EVM_VERSION,
        "metadata": {"bytecodeHash": BYTECODE_HASH},
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "outputSelection": {
            # The AST is only read to tell libraries and abstract contracts apart.
            "*": {"": ["ast"], "*": CONTRACT_OUTPUTS},
        },
        "viaIR": VIA_IR,
    }


def solc_binary(root: Path) -> Path:
    return root / "scripts" / "solc.cjs"


def collect_sources(root: Path) -> dict[str, str]:
    """Every .sol file under contracts/, keyed by its relative source unit name."""
    sources: dict[str, str] = {}
    for path in sorted((root / "contracts").rglob("*.sol")):
        # Bytes, not read_text(): newline translation would change the keccak256
        # recorded in the metadata.
        sources[path.relative_to(root).as_posix()] = path.read_bytes().decode("utf-8")
    return sources


def _format_diagnostics(diagnostics: Sequence[dict[str, Any]]) -> str:
    return "\n".join(
        str(d.get("formattedMessage") or d.get("message") or d).rstrip() for d in diagnostics
    )


def _contract_kinds(ast: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Contract name -> (contractKind, abstract) for the contracts a source unit defines."""
    return {
        node["name"]: (node["contractKind"], bool(node.get("abstract", False)))
        for node in ast.get("nodes", [])
        if node.get("nodeType") == "ContractDefinition"
    }


def _immutable_declarations(sources: dict[str, Any]) -> dict[int, str]:
    """AST id -> name of every immutable state variable in the compiled sources."""
    found: dict[int, str] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("nodeType") == "VariableDeclaration" and node.get("mutability") == (
                "immutable"
            ):
                found[int(node["id"])] = str(node["name"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for entry in sources.values():
        visit(entry.get("ast", {}))
    return found


def compile_contracts(root: Path = REPO_ROOT) -> dict[str, dict[str, Any]]:
    """Compile contracts/ under ``root``; return contract name -> artifact, in name order.

    Compiler warnings are printed to stderr; errors raise BuildError.
    """
    sources = collect_sources(root)
    if not sources:
        return {}
    settings = compiler_settings()
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": content} for unit, content in sources.items()},
        "settings": settings,
    }
    try:
        output = solcx.compile_standard(
            standard_input, base_path=root, solc_binary=solc_binary(root)
        )
    except SolcError as exc:
        if exc.error_dict:
            errors = [e for e in exc.error_dict if e.get("severity") == "error"]
            raise BuildError("compilation failed:\n" + _format_diagnostics(errors)) from exc
        raise BuildError(f"the compiler failed:\n{exc}") from exc
    except (OSError, subprocess.CalledProcessError) as exc:
        # py-solc-x first runs `solc.cjs --version`; this is how a missing node or
        # node_modules/solc shows up.
        raise BuildError(
            f"cannot run {solc_binary(root)}: {exc}\n"
            "Is node installed, and has `npm ci` (make install) been run?"
        ) from exc

    warnings = [e for e in output.get("errors", []) if e.get("severity") != "error"]
    if warnings:
        print(_format_diagnostics(warnings), file=sys.stderr)

    immutables = _immutable_declarations(output["sources"])
    artifacts: dict[str, dict[str, Any]] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        if not unit.startswith("contracts/"):
            continue
        kinds = _contract_kinds(output["sources"][unit]["ast"])
        for name, compiled in sorted(contracts.items()):
            kind, abstract = kinds[name]
            bytecode: str = compiled["evm"]["bytecode"]["object"]
            deployed: str = compiled["evm"]["deployedBytecode"]["object"]
            if kind != "contract" or abstract or not deployed:
                continue
            if "__$" in bytecode or "__$" in deployed:
                raise BuildError(
                    f"{unit}:{name} needs linking to external libraries, which the "
                    "artifacts do not support; make the library functions internal"
                )
            if name in artifacts:
                raise BuildError(
                    f"two deployable contracts are named {name}: "
                    f"{artifacts[name]['sourceName']} and {unit}"
                )
            metadata: str = compiled["metadata"]
            parsed_metadata = json.loads(metadata)
            # The long version (0.8.37+commit.f401782d), as source verifiers expect it;
            # `solc.cjs --version` adds the build platform (.Emscripten.clang).
            version: str = parsed_metadata["compiler"]["version"]
            metadata_sources: dict[str, dict[str, Any]] = parsed_metadata["sources"]
            artifacts[name] = {
                "contractName": name,
                "sourceName": unit,
                "abi": compiled["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + deployed,
                # Where the runtime code holds immutables (set by the constructor): an auditor
                # compares deployed code with these ranges masked.
                "immutableReferences": compiled["evm"]["deployedBytecode"].get(
                    "immutableReferences", {}
                ),
                # Their names, so that a report can say which value is the governor and which
                # the chain id of the EIP-712 domain.
                "immutableNames": {
                    ref: immutables[int(ref)]
                    for ref in compiled["evm"]["deployedBytecode"].get("immutableReferences", {})
                },
                "compiler": {"name": "solc-js", "version": version},
                "settings": settings,
                "sources": {
                    source: {"keccak256": entry["keccak256"]}
                    for source, entry in sorted(metadata_sources.items())
                },
                "metadata": metadata,
                "storageLayout": compiled["storageLayout"],
            }
    return dict(sorted(artifacts.items()))


def render(artifact: dict[str, Any]) -> str:
    """The exact text of an artifact file: sorted keys, indent 2, trailing newline."""
    return json.dumps(artifact, sort_keys=True, indent=2) + "\n"


def code_size(hex_code: str) -> int:
    return (len(hex_code) - 2) // 2


def summary_line(artifact: dict[str, Any]) -> str:
    runtime = code_size(artifact["deployedBytecode"])
    initcode = code_size(artifact["bytecode"])
    over = "  OVER THE LIMIT" if runtime > EIP170_RUNTIME_LIMIT else ""
    return (
        f"{artifact['contractName']}: runtime {runtime:,} bytes "
        f"(EIP-170 limit {EIP170_RUNTIME_LIMIT:,}, {runtime / EIP170_RUNTIME_LIMIT:.0%}), "
        f"initcode {initcode:,} bytes{over}"
    )


def oversized(artifacts: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, artifact in artifacts.items():
        runtime = code_size(artifact["deployedBytecode"])
        initcode = code_size(artifact["bytecode"])
        if runtime > EIP170_RUNTIME_LIMIT:
            problems.append(
                f"{name}: runtime code is {runtime:,} bytes, over the EIP-170 limit of "
                f"{EIP170_RUNTIME_LIMIT:,}; it cannot be deployed"
            )
        if initcode > EIP3860_INITCODE_LIMIT:
            problems.append(
                f"{name}: creation code is {initcode:,} bytes, over the EIP-3860 limit of "
                f"{EIP3860_INITCODE_LIMIT:,}; it cannot be deployed"
            )
    return problems


def stale_artifacts(artifacts: dict[str, dict[str, Any]], directory: Path) -> list[str]:
    """One message per artifact file in ``directory`` that differs from ``artifacts``."""
    problems: list[str] = []
    for name, artifact in artifacts.items():
        path = directory / f"{name}.json"
        if not path.is_file():
            problems.append(f"{name}: missing artifact {path.name}")
            continue
        text = path.read_text(encoding="utf-8")
        if text == render(artifact):
            continue
        try:
            committed = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{name}: {path.name} is not valid JSON ({exc})")
            continue
        if not isinstance(committed, dict):
            problems.append(f"{name}: {path.name} is not a JSON object")
            continue
        fields = sorted(
            key
            for key in committed.keys() | artifact.keys()
            if committed.get(key) != artifact.get(key)
        )
        if fields:
            problems.append(f"{name}: stale artifact {path.name}, differs in {', '.join(fields)}")
        else:
            problems.append(
                f"{name}: {path.name} has the right content but not the canonical layout"
            )
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            if path.stem not in artifacts:
                problems.append(
                    f"{path.stem}: stale artifact {path.name}, "
                    "no deployable contract of that name in contracts/"
                )
    return problems


def write_artifacts(artifacts: dict[str, dict[str, Any]], directory: Path) -> None:
    """Write every artifact and delete the files of contracts that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.json"):
        if path.stem not in artifacts:
            path.unlink()
    for name, artifact in artifacts.items():
        path = directory / f"{name}.json"
        text = render(artifact)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile in memory and exit 1 if the committed artifacts are stale",
    )
    args = parser.parse_args(argv)
    directory = root / ARTIFACTS_SUBDIR

    started = time.perf_counter()
    try:
        artifacts = compile_contracts(root)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    if not artifacts:
        print("no deployable contracts found under contracts/")
    else:
        print(f"compiled {len(artifacts)} deployable contract(s) in {elapsed:.1f} s")
    for artifact in artifacts.values():
        print(summary_line(artifact))

    if args.check:
        problems = stale_artifacts(artifacts, directory)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(
                "the committed artifacts do not match contracts/: "
                "run `make contracts` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"artifacts in {ARTIFACTS_SUBDIR} are up to date")
    else:
        write_artifacts(artifacts, directory)
        print(f"wrote {len(artifacts)} artifact(s) to {ARTIFACTS_SUBDIR}")

    too_big = oversized(artifacts)
    if too_big:
        print("\n".join(too_big), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
