"""Running the installed console script as a user would, for the end-to-end tests: a clean
environment, no terminal, the passphrase in the environment, and the result with the checks the
tests share."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mine2cell.signing.keystore import Keystore

MINE2CELL = Path(sys.executable).parent / "mine2cell"
PASSPHRASE = "e2e passphrase, not a secret"
# eth-account's default scrypt cost takes ~0.5 s per decryption; the files stay standard.
FAST_SCRYPT_N = 2**10
COMMAND_TIMEOUT = 120


def _cli_env() -> dict[str, str]:
    """The environment of a script on CI: the caller's, minus any mine2cell settings or forced
    terminal behaviour, plus the passphrase. Tables are compared cell by cell, so the width and
    the encoding rich renders them with are pinned to what a pipe gets by default."""
    dropped = {"FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "LINES"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MINE2CELL_") and key not in dropped
    }
    env.update(MINE2CELL_PASSPHRASE=PASSPHRASE, COLUMNS="80", PYTHONIOENCODING="utf-8")
    return env


CLI_ENV = _cli_env()


def make_keys(data_dir: Path, names: Iterable[str]) -> None:
    """Key files the commands decrypt quickly (a low scrypt cost, otherwise standard)."""
    keystore = Keystore(data_dir / "keys", scrypt_n=FAST_SCRYPT_N)
    for name in names:
        keystore.new(name, PASSPHRASE)


@dataclass(frozen=True)
class Result:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (
            f"`mine2cell {self.command}` exited with {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def ok(self) -> Result:
        assert self.returncode == 0, self.explain()
        assert "Traceback" not in self.stderr, self.explain()
        return self

    def confirmed(self, kind: str) -> Result:
        """A waiting operation command: one line, confirmed, naming the operation's type."""
        self.ok()
        assert re.match(rf"confirmed\s+{kind}\s+event 0x[0-9a-f]{{64}}\s+block \d+", self.stdout), (
            self.explain()
        )
        return self

    def json(self) -> Any:
        self.ok()
        try:
            return json.loads(self.stdout)
        except ValueError:
            pytest.fail(f"stdout is not JSON\n{self.explain()}")

    def lines(self) -> list[str]:
        self.ok()
        return [line.rstrip() for line in self.stdout.splitlines()]

    def error_line(self) -> str:
        """A refused command: exit code 1 and a single line on stderr, starting with 'error:'."""
        assert self.returncode == 1, self.explain()
        assert "Traceback" not in self.stderr, self.explain()
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr\n{self.explain()}"
        assert lines[0].startswith("error: "), self.explain()
        return lines[0]

    def refusal(self) -> str:
        """A refused command: exit code 1, no traceback, nothing on stdout, and one line on
        stderr starting with 'error:'."""
        assert self.returncode == 1, self.explain()
        assert "Traceback" not in self.stderr, self.explain()
        assert self.stdout == "", self.explain()
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line on stderr\n{self.explain()}"
        assert lines[0].startswith("error: "), self.explain()
        return lines[0]


@dataclass(frozen=True)
class Cli:
    """The console script on one data directory."""

    data_dir: Path

    def __call__(self, *args: str) -> Result:
        completed = subprocess.run(
            [str(MINE2CELL), *args, "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=CLI_ENV,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Result(" ".join(args), completed.returncode, completed.stdout, completed.stderr)
