"""Key material never leaves the key files: a whole scenario run as an operator runs it (key
files made and imported, participants accredited, a lot commissioned, shipped, received and bound
to a passport, a wrong passphrase and a malformed key tried, reports and exports printed, then
`mine2cell serve` signing for a hosted key and answering reads and refusals), with everything it
printed, logged and answered, every file it wrote outside the key files, and the command line and
environment of every process it started, searched for each private key (hex in either case, and
the raw 32 bytes) and for the passphrase. The key files are 0600 in a 0700 directory.

The passphrase is given the way the README recommends, as a file: never in an argument, and not in
the environment either, so that it cannot show in a process listing."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from mine2cell.chain.node import free_port
from mine2cell.ids import parse_id
from mine2cell.signing.keystore import Keystore
from tests.e2e.cli_support import CLI_ENV, MINE2CELL, PASSPHRASE, make_keys

pytestmark = pytest.mark.anvil

ENV = {key: value for key, value in CLI_ENV.items() if key != "MINE2CELL_PASSPHRASE"}
READY_TIMEOUT = 30.0


@dataclass
class Transcript:
    """Everything the scenario showed to anyone: outputs, logs, HTTP answers."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))


@dataclass
class Operator:
    data_dir: Path
    passphrase_file: Path
    transcript: Transcript

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(MINE2CELL), *args, "--data-dir", str(self.data_dir)]
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=ENV, timeout=120
        )
        shown = f"$ mine2cell {' '.join(args)}"
        self.transcript.add(shown, completed.stdout + completed.stderr)
        detail = f"{shown} -> {completed.returncode}\n{completed.stdout}{completed.stderr}"
        assert (completed.returncode == 0) == ok, detail
        assert "Traceback" not in completed.stderr, detail
        return completed

    def signed(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(*args, "--passphrase-file", str(self.passphrase_file), ok=ok)


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    secret_file = tmp_path / "passphrase"
    secret_file.write_text(PASSPHRASE + "\n")
    secret_file.chmod(0o600)
    return Operator(tmp_path / "data", secret_file, Transcript())


def key_forms(key: bytes) -> list[bytes]:
    return [key.hex().encode(), key.hex().upper().encode(), key]


def processes_under(pid: int) -> Iterator[int]:
    """The process and all its descendants (serve, and the anvil node it started)."""
    yield pid
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for text in child.read_text().split():
            yield from processes_under(int(text))


def test_no_key_or_passphrase_is_ever_printed_logged_answered_stored_or_listed(
    operator: Operator, tmp_path: Path
) -> None:
    op, data = operator, operator.data_dir
    make_keys(data, ("governor", "relayer", "mine"))
    op.signed("keys", "new", "cells")
    imported = Account.create()
    key_file = tmp_path / "auditor.key"
    key_file.write_text(imported.key.hex() + "\n")
    op.signed("keys", "import", "auditor", "--key-file", str(key_file))
    malformed = tmp_path / "typo.key"
    malformed.write_text(imported.key.hex()[:-1] + "\n")  # one hex digit short
    op.signed("keys", "import", "typo", "--key-file", str(malformed), ok=False)
    op.run("keys", "list")
    op.run("keys", "address", "cells")

    op.signed("participant", "accredit", "mine", "--roles", "mine", "--facility", "CD-1",
              "--country", "CD")  # fmt: skip
    op.signed("participant", "accredit", "cells", "--roles", "cell_maker", "--facility",
              "SE-1", "--country", "SE")  # fmt: skip
    op.signed("participant", "accredit", "auditor", "--roles", "auditor", "--facility",
              "BE-1", "--country", "BE")  # fmt: skip
    op.signed("participant", "certify", "mine", "--scheme", "RMAP", "--valid-until", "2030-12-31")
    op.signed("lot", "commission", "ORE-1", "--as", "mine", "--material", "co-hydroxide",
              "--quantity", "1t", "--footprint", "800kg")  # fmt: skip
    op.signed("lot", "ship", "ORE-1", "--to", "cells", "--as", "mine")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    op.run("lot", "receive", "ORE-1", "--as", "cells", "--passphrase-file", str(wrong), ok=False)
    op.signed("lot", "receive", "ORE-1", "--as", "cells")
    op.signed("passport", "bind", "P-1", "--as", "cells", "--in", "ORE-1=10kg")
    op.run("passport", "show", "P-1")
    op.signed("audit", "verify", "P-1", "--attest", "--as", "auditor")
    op.run("export", "epcis", "--passport", "P-1")
    op.run("status")
    created = op.run("token", "create", "--hosted", "cells", "hosted cells", "--json")
    hosted_token = created.stdout.split('"token": "')[1].split('"')[0]

    # The service, signing for the hosted key, and what it answers.
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [
                str(MINE2CELL),
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--passphrase-file",
                str(op.passphrase_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=ENV,
        )
    listings: list[tuple[str, bytes]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                assert serve.poll() is None, log_path.read_text()
                try:
                    if http.get("/v1/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            for pid in processes_under(serve.pid):
                for part in ("cmdline", "environ"):
                    listings.append(
                        (f"/proc/{pid}/{part}", Path(f"/proc/{pid}/{part}").read_bytes())
                    )
            bearer = {"Authorization": f"Bearer {hosted_token}"}
            ore, mine = (
                "0x" + parse_id("ORE-1").hex(),
                Keystore(data / "keys").entry("mine").address,
            )
            answers = [
                http.post(
                    "/v1/hosted/cells/operations",
                    json={"type": "Ship", "message": {"lot": ore, "recipient": mine}},
                    headers=bearer,
                ),
                http.post(  # a key the token is not for
                    "/v1/hosted/mine/operations",
                    json={"type": "Ship", "message": {"lot": ore, "recipient": mine}},
                    headers=bearer,
                ),
                http.post(
                    "/v1/hosted/cells/operations",
                    json={"type": "Ship", "message": {"lot": "0x" + "ab" * 32, "recipient": mine}},
                    headers=bearer,
                ),
                http.post("/v1/operations", json={"type": "Ship", "signature": "0x" + "11" * 65}),
                http.get("/v1/participants", headers=bearer),
                http.get("/v1/passports/P-1/provenance", headers=bearer),
                http.get("/v1/passports/P-1/audit", headers=bearer),
                http.get("/metrics", headers=bearer),
                http.get("/openapi.json"),
            ]
            assert [a.status_code for a in answers[:4]] == [202, 403, 422, 422], [
                a.text for a in answers[:4]
            ]
            for answer in answers:
                op.transcript.add(f"HTTP {answer.request.url.path}", str(answer.headers))
                op.transcript.add(f"HTTP {answer.request.url.path}", answer.text)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
    op.transcript.add("serve log", log_path.read_text())
    assert "Traceback" not in log_path.read_text()

    # The key files: 0600 in a 0700 directory, encrypted.
    keystore = Keystore(data / "keys")
    names = [entry.name for entry in keystore.entries()]
    assert sorted(names) == ["auditor", "cells", "governor", "mine", "relayer"]
    assert (data / "keys").stat().st_mode & 0o777 == 0o700
    keys = {name: keystore.signer(name, PASSPHRASE).key_bytes for name in names}
    assert keys["auditor"] == bytes(imported.key)
    for name in names:
        path = keystore.entry(name).path
        assert path.stat().st_mode & 0o777 == 0o600, path
        listings.append((f"key file {path.name} (encrypted)", path.read_bytes()))
    assert (data / "access.db").stat().st_mode & 0o777 == 0o600

    # Every file the scenario wrote outside the key files: databases, node state, reports.
    stored = [
        (str(path), path.read_bytes())
        for path in sorted(data.rglob("*"))
        if path.is_file() and data / "keys" not in path.parents
    ]
    assert any(path.endswith("outbox.sqlite") for path, _ in stored)
    assert any(path.endswith("state.json") for path, _ in stored)

    secrets = {f"private key of {name}": key_forms(key) for name, key in keys.items()}
    secrets["passphrase"] = [PASSPHRASE.encode()]
    places = [(where, text.encode()) for where, text in op.transcript.texts] + listings + stored
    assert len(op.transcript.texts) > 30
    leaks = [
        f"{secret} in {where}"
        for where, content in places
        for secret, forms in secrets.items()
        if any(form in content for form in forms)
    ]
    assert leaks == []
