"""The README's main job, run as a user would: the installed console script, nothing started
by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil


def _mine2cell(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "mine2cell", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_demo_records_a_supply_chain_and_binds_three_passports(tmp_path: Path) -> None:
    result = _mine2cell("demo", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("bound by cell") == 6  # the binding list, then each provenance
    assert "audit passport 1, attest" in result.stdout
    assert (tmp_path / "node" / "state.json").is_file()


def test_demo_audits_the_first_passport_before_attesting_it(tmp_path: Path) -> None:
    result = _mine2cell("demo", data_dir=tmp_path)

    assert result.returncode == 0, result.stderr
    (report,) = (tmp_path / "audits").glob("*.json")
    document = json.loads(report.read_text())
    assert document["verdict"] == "pass", [c for c in document["checks"] if not c["passed"]]
    assert report.with_suffix(".html").is_file()
    assert f"--report {report}" in result.stdout


def test_demo_ends_with_the_provenance_of_each_passport(tmp_path: Path) -> None:
    result = _mine2cell("demo", data_dir=tmp_path)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert [line.strip("─ ") for line in out.splitlines() if "provenance of" in line] == [
        "provenance of passport 1 of 3",
        "provenance of passport 2 of 3",
        "provenance of passport 3 of 3",
    ]
    # 45 kg of cathode material per battery: 1/400 of the 18 t cathode lot, whose 20 t of cobalt
    # sulfate are 20/35 of the refinery's output from 12 t (CD) + 8 t (AU) + 3 t of black mass,
    # and whose 6 t of lithium carbonate are 6/10 of the Chilean lot.
    assert (
        out.count("│ cobalt  │     yes │ 32.857 kg │ 68.66 % │       0.00 % │       13.04 % │") == 3
    )
    assert out.count("│ CL      │     15 kg │ 31.34 % │") == 3
    assert out.count("│ total              │ 857.429 kg │ 100.00 % │") == 3
    assert out.count("high-risk-origin") == 3


def test_demo_runs_again_on_the_persisted_node(tmp_path: Path) -> None:
    first = _mine2cell("demo", data_dir=tmp_path)
    second = _mine2cell("demo", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr

    def last_block(out: str) -> int:
        rows = [line for line in out.splitlines() if "audit passport 1, attest" in line]
        return int(rows[0].split("│")[3])

    # The second run continues the chain the first one left in the data directory.
    assert last_block(second.stdout) > last_block(first.stdout)


def test_demo_on_an_unreachable_node_fails_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mine2cell", "demo", "--rpc-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
