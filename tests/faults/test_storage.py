"""Storage faults (issue 8): a disk that fills, a data directory mounted read-only, a corrupted
index or outbox. Each gives a clear error naming the file and the fix, loses nothing that was
acknowledged, and recovers: the service once space is freed, without a restart; the index with
`mine2cell sync --rebuild`, from the chain, to the very report it gave before.

The faults are real, made in a mount namespace of the process under test (`unshare --mount`, as
root): a tmpfs of a few MiB filled to its last byte gives ENOSPC, a read-only bind mount gives
EROFS (chmod does not stop root). The test reaches the namespace's files through
/proc/PID/root. The supply chain is the recorded one (tests/recorded.py: ore mined in CD,
refined, bound to PASS-1); each test serves it from a copy, on an anvil node of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_utils import keccak
from web3 import Web3
from web3.types import RPCEndpoint

from mine2cell.access.tokens import TokenStore
from mine2cell.chain.node import DEV_CHAIN_ID, DevNode
from mine2cell.codes import Feedstock
from mine2cell.config import Settings
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.provenance.documents import passport_document
from mine2cell.service import Service
from mine2cell.signing.eip712 import Commission, Domain, LotId
from mine2cell.signing.keystore import Keystore
from tests.e2e.cli_support import CLI_ENV, COMMAND_TIMEOUT, MINE2CELL, PASSPHRASE, Result
from tests.e2e.serve_support import Clients, Participant, serving, start_serve, wait_ready
from tests.recorded import Template, record_chain

# Room for the outbox and the index of the recorded chain and their write-ahead logs; a filler
# file then takes the rest.
TMPFS_SIZE = "16m"
# The ledger's first operations used the mine's low nonces; these are the tests' own.
NONCES_FROM = 10**9
WAIT = 20.0
START_TIMEOUT = 60.0
PASSPORT = parse_id("PASS-1", "passport")
CO_HYDROXIDE = material("co-hydroxide").code
NO_SPACE = "no space left on device"
REBUILD = "`mine2cell sync --rebuild`"
# A command that must write: the mine commissions a lot (it would sign, queue and relay it).
COMMISSION = (
    *("lot", "commission", "STO-9", "--as", "kolwezi"),
    *("--material", "co-hydroxide", "--quantity", "1t"),
)


# -- the mount namespaces ----------------------------------------------------------------------


def on_tmpfs(mount_point: Path, contents: Path, *, filled: bool = False) -> list[str]:
    """A command prefix that runs the rest of the command in a mount namespace of its own, where
    ``mount_point`` is a fresh tmpfs holding a copy of ``contents`` (none if it is the mount point
    itself), and, when ``filled``, a filler file that takes its last free byte."""
    script = f'mount -t tmpfs -o size={TMPFS_SIZE} tmpfs "$1"'
    if contents != mount_point:
        script += ' && cp -a "$2"/. "$1"/'
    if filled:
        script += ' && { cat /dev/zero > "$1"/filler 2>/dev/null; true; }'
    script += ' && shift 2 && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, "sh", str(mount_point), str(contents)]


def read_only(directory: Path) -> list[str]:
    """A command prefix that runs the rest of the command where ``directory`` is mounted
    read-only (the rest of the machine is as it was)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, "sh", str(directory)]


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fail on CI, skip elsewhere, when this machine cannot make the faults (no unshare, or mount
    namespaces refused to this user)."""
    probe = tmp_path_factory.mktemp("mount-probe")
    try:
        made = subprocess.run(
            [*read_only(probe), *on_tmpfs(probe, probe, filled=True), "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        reason = None if made.returncode == 0 else made.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        reason = str(exc)
    if reason is not None:
        message = f"cannot make storage faults here (unshare --mount, mount): {reason}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# -- the recorded chain, one copy per test -------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return record_chain(tmp_path_factory.mktemp("storage-template") / "data")


@dataclass(frozen=True)
class Copy:
    """A copy of the recorded data directory, its chain served by an anvil node of its own."""

    data: Path
    node: DevNode
    ledger: str

    @property
    def ledger_dir(self) -> Path:
        """Where the ledger's outbox and index are."""
        return self.data / "ledgers" / f"{DEV_CHAIN_ID}-{self.ledger.lower()}"

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.node.url))

    def rpc(self, method: str, params: list[Any]) -> Any:
        reply = self.w3().provider.make_request(RPCEndpoint(method), params)
        assert "error" not in reply, reply
        return reply["result"]

    def run(self, *args: str, wrap: Sequence[str] = ()) -> Result:
        """`mine2cell ARGS` on this copy, inside ``wrap`` (a mount namespace) if given."""
        where = ("--data-dir", str(self.data), "--rpc-url", self.node.url)
        completed = subprocess.run(
            [*wrap, str(MINE2CELL), *args, *where],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=CLI_ENV,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Result(" ".join(args), completed.returncode, completed.stdout, completed.stderr)

    def settings(self) -> Settings:
        return Settings(data_dir=self.data, rpc_url=self.node.url, ledger_address=self.ledger)


@pytest.fixture
def copy(template: Template, tmp_path: Path) -> Iterator[Copy]:
    data = tmp_path / "data"
    shutil.copytree(template.data_dir, data, ignore=shutil.ignore_patterns("node"))
    state = tmp_path / "state.json"
    shutil.copyfile(template.data_dir / "node" / "state.json", state)
    with DevNode(state_file=state) as node:
        yield Copy(data, node, template.ledger)


def index_and_report(copy: Copy) -> dict[str, Any]:
    """Index the copy's chain and return PASS-1's provenance report, as the service keeps it."""
    settings = copy.settings()
    with Service(settings, passphrase=lambda: PASSPHRASE) as service:
        service.indexer().sync()
        document = passport_document(
            service.store(), PASSPORT, high_risk_countries=settings.high_risk_country_set
        )
    assert document is not None
    report: dict[str, Any] = json.loads(document)
    return report


def without_time(report: dict[str, Any]) -> dict[str, Any]:
    """A report without ``as_of`` (when it was computed)."""
    return {key: value for key, value in report.items() if key != "as_of"}


def digest(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` by relative path, with its content's hash."""
    return {
        str(path.relative_to(directory)): keccak(path.read_bytes()).hex()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def refused_start(copy: Copy, log: Path, wrap: Sequence[str] = ()) -> str:
    """Start `mine2cell serve`, which must stop by itself, non-zero, without a traceback and with
    one error line; return that line."""
    server = start_serve(copy.data, copy.node.url, log, wrap=wrap)
    try:
        code = server.process.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        pytest.fail(f"`mine2cell serve` did not refuse to start\n{server.explain()}")
    output = server.stderr()
    assert code != 0, server.explain()
    assert "Traceback" not in output, server.explain()
    assert "Application startup failed" in output, server.explain()
    errors = [line for line in output.splitlines() if "error: " in line]
    assert len(errors) == 1, server.explain()
    return errors[0].split("error: ", 1)[1]


# -- the outbox on a disk that fills -------------------------------------------------------------

# Run in the mount namespace: acknowledge operations one by one, fill the disk, try more (one by
# one, then ten in one call), free the disk, acknowledge more on the same connection; then read
# the file again through a new connection and report what it holds.
_OUTBOX_ON_A_FULL_DISK = """
import json, os, sqlite3, sys
from pathlib import Path
from mine2cell.errors import StorageError
from mine2cell.relay.outbox import NewOperation, Outbox

folder = Path(sys.argv[1])
path = folder / "outbox.sqlite"
outbox = Outbox(path)
acknowledged, refused, reasons, messages = [], [], set(), set()

def operation(n):
    return NewOperation(
        event_id=n.to_bytes(32, "big"), kind="Ship", actor="0x" + "ab" * 20, nonce=n,
        deadline=2**40, document={"n": n, "padding": "x" * 600}, calldata=bytes(300),
        gas_bound=50_000,
    )

def accept(numbers):
    try:
        results = outbox.accept([operation(n) for n in numbers])
    except StorageError as exc:
        refused.extend(numbers)
        reasons.add(exc.reason)
        messages.add(str(exc))
        return
    assert all(result.stored for result in results), results
    acknowledged.extend(numbers)

for n in range(20):
    accept([n])
filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(filler, bytes(1 << 20))
except OSError as exc:
    full = os.strerror(exc.errno)
os.close(filler)
for n in range(20, 40):
    accept([n])
accept(range(40, 50))
os.unlink(folder / "filler")
for n in range(50, 70):
    accept([n])
outbox.close()

again = Outbox(path)
stored = sorted(int.from_bytes(s.event_id, "big") for s in again.recent(1000))
again.close()
check = sqlite3.connect(path)
integrity = check.execute("PRAGMA integrity_check").fetchone()[0]
mode = check.execute("PRAGMA journal_mode").fetchone()[0]
print(json.dumps({
    "full": full, "acknowledged": acknowledged, "refused": refused, "stored": stored,
    "reasons": sorted(reasons), "messages": sorted(messages), "integrity": integrity,
    "journal": mode,
}))
"""


def test_a_full_disk_refuses_outbox_writes_whole_and_keeps_every_acknowledged_row(
    namespaces: None, tmp_path: Path
) -> None:
    folder = tmp_path / "ledger"
    folder.mkdir()
    ran = subprocess.run(
        [*on_tmpfs(folder, folder), sys.executable, "-c", _OUTBOX_ON_A_FULL_DISK, str(folder)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    outcome = json.loads(ran.stdout)

    assert outcome["full"] == "No space left on device"
    # SQLite writes a transaction whole or not at all: every write on the full disk was refused
    # (the batch of ten as one), every acknowledged one is in the file, no refused one is.
    assert outcome["refused"] == list(range(20, 50))
    assert outcome["acknowledged"] == [*range(20), *range(50, 70)]
    assert outcome["stored"] == outcome["acknowledged"]
    assert outcome["integrity"] == "ok" and outcome["journal"] == "wal"
    # Each refusal says what and where, and the fix.
    assert outcome["reasons"] == ["no-space"]
    (message,) = outcome["messages"]
    assert message.startswith(f"{folder / 'outbox.sqlite'}: {NO_SPACE}"), message
    assert f"free space on the file system holding {folder}, then retry" in message


# -- the service on a disk that fills ------------------------------------------------------------


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system is full."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(handle, bytes(1 << 20))
    except OSError as exc:
        assert exc.strerror == "No space left on device", exc
    finally:
        os.close(handle)


def poll(what: str, check: Any, timeout: float = WAIT) -> Any:
    """``check()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def status_of(http: httpx.Client, document: dict[str, Any]) -> str | None:
    response = http.get(f"/v1/operations/{document['eventId']}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    state: str = response.json()["status"]
    return state


@pytest.mark.anvil
def test_a_full_disk_refuses_operations_with_507_then_resumes_without_losing_one(
    namespaces: None, copy: Copy, tmp_path: Path
) -> None:
    # The ledgers directory (outbox, index) is a 16 MiB tmpfs in the server's namespace.
    before = tmp_path / "ledgers-before"
    shutil.copytree(copy.data / "ledgers", before)
    with closing(TokenStore(copy.data / "access.db")) as tokens:
        _, token = tokens.create("read", "storage faults")
    wrap = on_tmpfs(copy.data / "ledgers", before)
    with (
        serving(copy.data, copy.node.url, tmp_path / "serve.log", wrap=wrap) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        ready = wait_ready(http, server)
        ledgers = Path(f"/proc/{server.process.pid}/root") / copy.data.relative_to("/") / "ledgers"
        assert (ledgers / copy.ledger_dir.name / "index.sqlite").exists()
        clients = Clients(http, Domain(ready["chain_id"], ready["ledger"]))
        keys = Keystore(copy.data / "keys")
        mine = Participant(keys.signer("kolwezi", PASSPHRASE), iter(range(NONCES_FROM, 2**40)))

        def commission(lot: str) -> dict[str, Any]:
            return clients.document(
                mine,
                Commission,
                lot=LotId(parse_id(lot)),
                material=CO_HYDROXIDE,
                quantity=1_000_000,
                feedstock=Feedstock.PRIMARY,
                footprint=0,
                document_hash=bytes(32),
            )

        # Acknowledged, then sent, while the disk has room; mined only once the disk is full.
        copy.rpc("evm_setAutomine", [False])
        acknowledged = commission("STO-ACK")
        acknowledged_url = clients.post(acknowledged)
        sent = poll("sent", lambda: http.get(acknowledged_url).json().get("txHash"))
        poll("at the node", lambda: copy.rpc("eth_getTransactionByHash", [sent]))

        fill(ledgers / "filler")
        refused = commission("STO-LATE")
        answer = http.post("/v1/operations", json=refused)
        assert answer.status_code == 507, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["type"].endswith("/insufficient-storage") and problem["status"] == 507
        outbox = copy.ledger_dir / "outbox.sqlite"
        assert problem["detail"].startswith(f"{outbox}: {NO_SPACE}"), problem
        assert f"free space on the file system holding {copy.ledger_dir}" in problem["detail"]
        assert problem["errors"] == [{"field": "data_dir", "message": problem["detail"]}]
        assert "Traceback" not in answer.text
        assert status_of(http, refused) is None  # not stored, as the 507 said

        # The acknowledged operation is mined: neither its confirmation nor its events can be
        # written yet, and the service says so.
        copy.rpc("evm_mine", [])
        unready = poll("degraded", lambda: (r := http.get("/v1/ready")).status_code == 503 and r)
        degraded = unready.json()
        assert degraded["type"].endswith("/degraded"), degraded
        assert f"{copy.ledger_dir / 'index.sqlite'}: {NO_SPACE}" in degraded["detail"], degraded
        assert status_of(http, acknowledged) == "submitted"
        # Reads go on: a report computed now is served, though it cannot be kept.
        summary = http.get("/v1/passports/PASS-1/summary")
        assert summary.status_code == 200, summary.text
        assert summary.json()["passport"]["label"] == "PASS-1"

        # Space freed: the same server confirms, accepts and indexes again.
        (ledgers / "filler").unlink()
        copy.rpc("evm_setAutomine", [True])
        (confirmed,) = clients.settle(acknowledged_url)
        assert confirmed["status"] == "confirmed", confirmed
        clients.run(refused)
        head = copy.w3().eth.block_number
        caught_up = poll(
            "index caught up",
            lambda: (
                (r := http.get("/v1/ready")).status_code == 200
                and r.json()["indexed_block"] == head
                and r.json()
            ),
        )
        assert caught_up["index_lag"] == 0
        reader = {"Authorization": f"Bearer {token}"}
        for lot, document in (("STO-ACK", acknowledged), ("STO-LATE", refused)):
            history = http.get(f"/v1/lots/{lot}/history", headers=reader)
            assert history.status_code == 200, history.text
            kinds = [(e["kind"], e["evidence"]["event_id"]) for e in history.json()["events"]]
            assert kinds == [("commission", document["eventId"])]

    # The operator's log said what failed, each thread once per failure, and no traceback.
    log = server.stderr()
    assert "Traceback" not in log, log
    # Lines are "LEVEL:    thread: what failed" (the service's loggers on uvicorn's handler).
    failed = [tuple(line.split(maxsplit=2)[:2]) for line in log.splitlines() if NO_SPACE in line]
    assert failed.count(("ERROR:", "index:")) == 1 and ("WARNING:", "relay:") in failed, log


# -- commands on a full disk, and on a read-only data directory ----------------------------------


@pytest.mark.anvil
def test_a_command_on_a_full_disk_fails_with_one_line_and_sends_nothing(
    namespaces: None, copy: Copy, tmp_path: Path
) -> None:
    before = tmp_path / "ledgers-before"
    shutil.copytree(copy.data / "ledgers", before)
    head = copy.w3().eth.block_number

    line = copy.run(
        *COMMISSION, wrap=on_tmpfs(copy.data / "ledgers", before, filled=True)
    ).refusal()

    outbox = copy.ledger_dir / "outbox.sqlite"
    assert line.startswith(f"error: {outbox}: {NO_SPACE}"), line
    assert line.endswith(f"free space on the file system holding {copy.ledger_dir}, then retry")
    assert copy.w3().eth.block_number == head  # nothing was signed or sent


@pytest.mark.anvil
def test_a_read_only_data_directory_stops_serve_and_writing_commands_at_start(
    namespaces: None, copy: Copy, tmp_path: Path
) -> None:
    index_and_report(copy)  # an outbox and an index, as a data directory in use has
    files = digest(copy.data)
    head = copy.w3().eth.block_number
    frozen = read_only(copy.data)
    said = (
        f"{copy.ledger_dir / 'outbox.sqlite'}: the directory {copy.ledger_dir} is on a read-only "
        "file system: mine2cell writes its outbox and index there; mount it read-write (or give a "
        "writable --data-dir / MINE2CELL_DATA_DIR), then retry"
    )

    assert refused_start(copy, tmp_path / "serve.log", wrap=frozen) == said
    assert copy.run("sync", wrap=frozen).refusal() == f"error: {said}"

    assert digest(copy.data) == files
    assert copy.w3().eth.block_number == head


# -- a corrupted index, rebuilt from the chain ---------------------------------------------------


def garble(path: Path) -> None:
    """Random bytes over the first 4 KiB (the header and the schema's page)."""
    with path.open("r+b") as handle:
        handle.write(os.urandom(4096))


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.anvil
def test_a_garbled_index_is_named_with_its_fix_everywhere_and_rebuilt_from_the_chain(
    namespaces: None, copy: Copy, tmp_path: Path
) -> None:
    report = index_and_report(copy)
    index = copy.ledger_dir / "index.sqlite"
    garble(index)
    said = f"{index}: the file is corrupted: it is not a SQLite database (its header is missing"

    for args in (("passport", "show", "PASS-1", "--json"), ("sync",)):
        line = copy.run(*args).refusal()
        assert line.startswith(f"error: {said}"), line
        assert line.endswith(f"rebuild it from the chain with {REBUILD}"), line
    assert refused_start(copy, tmp_path / "serve.log").startswith(said)
    # A lot's state is read from the ledger, not from the index.
    lot = copy.run("lot", "show", "KOL-1", "--json").json()
    assert lot["name"] == "KOL-1" and lot["remainingGrams"] == 0

    rebuilt = copy.run("sync", "--rebuild", "--json").json()
    assert rebuilt["rows"]["commissions"] == 1 and rebuilt["rows"]["steps"] == 2
    shown = copy.run("passport", "show", "PASS-1", "--json").json()
    assert without_time(shown) == without_time(report)


@pytest.mark.anvil
def test_a_truncated_index_is_named_with_its_fix_and_rebuilt_from_the_chain(
    namespaces: None, copy: Copy
) -> None:
    report = index_and_report(copy)
    index = copy.ledger_dir / "index.sqlite"
    size = index.stat().st_size
    truncate(index)

    line = copy.run("passport", "show", "PASS-1", "--json").refusal()
    assert line == (
        f"error: {index}: the file is corrupted: it holds {size // 2:,} bytes of the {size:,} "
        f"its header records: truncated; the index holds nothing the chain does not: rebuild it "
        f"from the chain with {REBUILD}"
    )

    copy.run("sync", "--rebuild").ok()
    shown = copy.run("passport", "show", "PASS-1", "--json").json()
    assert without_time(shown) == without_time(report)


# -- a corrupted outbox is never replaced --------------------------------------------------------


@pytest.mark.anvil
@pytest.mark.parametrize(
    ("damage", "found"),
    [
        (garble, "it is not a SQLite database (its header is missing or overwritten)"),
        (truncate, "bytes of the"),
        (lambda path: os.truncate(path, 0), "it is empty (0 bytes): it was truncated"),
    ],
    ids=["garbled", "truncated", "emptied"],
)
def test_a_corrupted_outbox_is_refused_never_replaced(
    namespaces: None, copy: Copy, tmp_path: Path, damage: Any, found: str
) -> None:
    outbox = copy.ledger_dir / "outbox.sqlite"
    damage(outbox)
    files = digest(copy.ledger_dir)
    head = copy.w3().eth.block_number

    line = copy.run(*COMMISSION).refusal()

    assert line.startswith(f"error: {outbox}: the file is corrupted: "), line
    assert found in line
    assert line.endswith(
        "it holds the operations this service acknowledged, so mine2cell will not start on it nor "
        "replace it: stop every mine2cell process on this data directory, keep a copy of the "
        "file, and restore it from a backup (`sqlite3 FILE .recover` saves what is readable)"
    )
    if damage is garble:
        assert refused_start(copy, tmp_path / "serve.log").startswith(f"{outbox}: ")
    assert digest(copy.ledger_dir) == files  # the damaged file is left as it was, nothing added
    assert copy.w3().eth.block_number == head
