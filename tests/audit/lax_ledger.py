"""A ledger that lets bad history through, for the audit's defect tests.

Built from contracts/Ledger.sol with four rules taken out, so that a test can record what the
real ledger refuses and check that an auditor catches it from the chain alone: an operation by a
participant without the role (revoked, say), a consumption by someone who is not the custodian
(the named recipient of a shipment it never received), a consumption beyond what a lot holds,
and a transformation that creates mass of an input material. Its ABI is the ledger's, its code is
not (which the code check must say).

    .venv/bin/python -m tests.audit.lax_ledger     rebuild tests/audit/data/LaxLedger.json

The artifact records the keccak256 of the patched source; a test fails when contracts/ changes
and the artifact was not rebuilt.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from eth_utils import keccak

from mine2cell.chain.artifacts import Artifact, parse_artifact
from scripts.build_contracts import compile_contracts

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = Path(__file__).parent / "data" / "LaxLedger.json"

# (what the real ledger says, what the lax one says instead)
PATCHES = (
    (
        "        if (p.roles & required == 0) "
        "revert LedgerMissingRole(actor, required, p.roles);\n",
        "",
    ),
    (
        "        if (l.custodian != index) revert LedgerNotCustodian(id, account, "
        "_accounts[l.custodian]);\n"
        "        if (l.recipient != 0) revert LedgerLotInTransit(id, _accounts[l.recipient]);\n",
        "",
    ),
    (
        "            if (input.quantity > remaining) {\n"
        "                revert LedgerInsufficientQuantity(input.lot, remaining, input.quantity);\n"
        "            }\n",
        "            if (input.quantity > remaining) remaining = input.quantity;\n",
    ),
    ("        _checkMassBalance(op.inputs, inputMaterials, op.outputs);\n", ""),
)


def patched_source() -> str:
    source = (ROOT / "contracts" / "Ledger.sol").read_text(encoding="utf-8")
    for real, lax in PATCHES:
        if source.count(real) != 1:
            raise SystemExit(f"contracts/Ledger.sol no longer says, once: {real!r}")
        source = source.replace(real, lax)
    return source


def source_hash() -> str:
    return "0x" + keccak(text=patched_source()).hex()


def load() -> Artifact:
    return parse_artifact(json.loads(ARTIFACT.read_text(encoding="utf-8")))


def recorded_source_hash() -> str:
    return str(json.loads(ARTIFACT.read_text(encoding="utf-8"))["patchedSourceKeccak"])


def build() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "contracts", root / "contracts")
        (root / "contracts" / "Ledger.sol").write_text(patched_source(), encoding="utf-8")
        (root / "scripts").symlink_to(ROOT / "scripts")
        (root / "node_modules").symlink_to(ROOT / "node_modules")
        artifact: dict[str, Any] = compile_contracts(root)["Ledger"]
    artifact["patchedSourceKeccak"] = source_hash()
    return artifact


if __name__ == "__main__":
    ARTIFACT.write_text(json.dumps(build(), sort_keys=True, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {ARTIFACT.relative_to(ROOT)}")
