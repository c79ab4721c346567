"""Bad input on the command line: the installed console script in a subprocess, as a participant
runs it, against one anvil node (``--rpc-url``) holding the recorded chain.

Every refused command exits 1 with exactly one line on stderr, ``error: FIELD: what is wrong``
(or the ledger's decoded reason), prints nothing else, and leaves the node's head, the ledger's
logs, the outbox and the index as they were. A document signed elsewhere that the ledger rejects
is reported the same way on stderr (its status goes to stdout) and leaves one rejected operation
more in the outbox.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from mine2cell.chain.node import DevNode
from mine2cell.signing.eip712 import Domain
from tests.badinput.support import (
    HELD,
    RULE_CASES,
    Chain,
    Snapshot,
    copy_of,
    high_s,
    new_commission,
    record_bad_input_chain,
    revoke_relayer,
    take_snapshot,
)
from tests.e2e.cli_support import Cli, Result

pytestmark = pytest.mark.anvil

NOWHERE = Web3.to_checksum_address("0x" + "de" * 20)
RULES = {rule.id: rule for rule in RULE_CASES}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return record_bad_input_chain(tmp_path_factory.mktemp("badinput-cli") / "template")


@pytest.fixture(scope="module")
def data_dir(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("badinput-cli-run") / "data"
    shutil.copytree(chain.data_dir, data_dir)
    return data_dir


@pytest.fixture(scope="module")
def node(data_dir: Path) -> Iterator[DevNode]:
    """The recorded chain's node, which every command of the module reaches by its URL."""
    with DevNode(state_file=data_dir / "node" / "state.json") as running:
        yield running


@pytest.fixture(scope="module")
def w3(node: DevNode) -> Web3:
    return Web3(Web3.HTTPProvider(node.url))


@pytest.fixture(scope="module")
def run(data_dir: Path, node: DevNode) -> Callable[..., Result]:
    cli = Cli(data_dir)
    return lambda *args: cli(*args, "--rpc-url", node.url)


@pytest.fixture
def before(w3: Web3, chain: Chain, data_dir: Path) -> Snapshot:
    return take_snapshot(w3, chain, data_dir)


def commission(quantity: str) -> list[str]:
    return ["lot", "commission", "NEW-1", "--as", "kolwezi", "--material", "co-hydroxide",
            "--quantity", quantity]  # fmt: skip


# (id, arguments, the one line on stderr starts with, and goes on to say)
REFUSALS = [
    ("unit-in-words", commission("12 tonnes"), "error: quantity:", "unknown unit 'tonnes'"),
    ("plural-unit", commission("5 kgs"), "error: quantity:", "unknown unit 'kgs' in '5 kgs'"),
    ("fractional-grams", commission("1.5 g"), "error: quantity:",
     "'1.5 g' is not a whole number of grams"),
    ("negative-mass", commission("-3 kg"), "error: quantity:",
     "'-3 kg' is not a mass; write a number and a unit: 12.5t, 800kg or 250g"),
    ("mass-over-uint96", commission("80000000000000000000001 t"), "error: quantity:",
     "exceeds the maximum"),
    ("lot-id-of-4-hex-digits", ["lot", "ship", "0x1234", "--to", "kokkola", "--as", "kolwezi"],
     "error: lot:", "'0x1234' looks like a hex id but has 4 digits; an id has 64"),
    ("ship-unknown-lot", ["lot", "ship", "NOPE-1", "--to", "kokkola", "--as", "kolwezi"],
     "error: lot:", "lot NOPE-1 does not exist on this ledger"),
    ("show-unknown-lot", ["lot", "show", "NOPE-1"],
     "error: lot:", "lot NOPE-1 does not exist on this ledger"),
    ("ship-by-non-custodian", ["lot", "ship", HELD, "--to", "skelleftea", "--as", "kokkola"],
     "error: lot:", RULES["ship-by-non-custodian"].says),
    ("double-receive", ["lot", "receive", "KOL-1", "--as", "kokkola"],
     "error: lot:", RULES["double-receive"].says),
    ("same-material-mass-creation",
     ["lot", "transform", "--as", "skelleftea", "--in", "SUL-1=1t",
      "--out", "SUL-MORE=co-sulfate:1000001g"],
     "error: outputs:", RULES["same-material-mass-creation"].says),
    ("double-passport-binding", ["passport", "bind", "PASS-1", "--as", "skelleftea",
                                 "--in", "SUL-1=1kg"],
     "error: passport:", RULES["double-passport-binding"].says),
    ("revoked-signer", [*commission("1t")[:4], "revoked", *commission("1t")[5:]],
     "error: signer:", "is not an accredited participant"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "starts", "says"), [pytest.param(*case[1:], id=case[0]) for case in REFUSALS]
)
def test_a_bad_command_is_refused_in_one_line_and_changes_nothing(
    run: Callable[..., Result],
    w3: Web3,
    chain: Chain,
    data_dir: Path,
    before: Snapshot,
    args: list[str],
    starts: str,
    says: str,
) -> None:
    line = run(*args).refusal()

    assert line.startswith(starts) and says in line, line
    assert take_snapshot(w3, chain, data_dir) == before


# -- documents signed elsewhere: mine2cell submit FILE -------------------------------------------

Document = Callable[[Chain], dict[str, Any]]


def _without_event_id(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "eventId"}


# (id, document, the one line on stderr starts with, and goes on to say)
SUBMIT_REFUSALS: list[tuple[str, Document, str, str]] = [
    ("expired-deadline", lambda c: new_commission(c, deadline=int(time.time()) - 60),
     "error: deadline:", "passed"),
    ("signature-for-another-ledger",
     lambda c: _without_event_id(new_commission(c, domain=Domain(c.chain_id, NOWHERE))),
     "error: signature:", "for another chain or ledger"),
    ("high-s-signature", lambda c: high_s(new_commission(c)),
     "error: signature:", "upper half of the curve order"),
    ("replayed-nonce", lambda c: new_commission(c, nonce=0),
     "error: message.nonce:", "sign again with another nonce"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "starts", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in SUBMIT_REFUSALS],
)
def test_a_bad_signed_document_is_refused_in_one_line_and_changes_nothing(
    run: Callable[..., Result],
    w3: Web3,
    chain: Chain,
    data_dir: Path,
    before: Snapshot,
    tmp_path: Path,
    document: Document,
    starts: str,
    says: str,
) -> None:
    (tmp_path / "signed.json").write_text(json.dumps(document(chain)))

    line = run("submit", str(tmp_path / "signed.json")).refusal()

    assert line.startswith(starts) and says in line, line
    assert take_snapshot(w3, chain, data_dir) == before


def test_a_submitted_document_the_ledger_rejects_is_reported_on_stderr_and_never_recorded(
    run: Callable[..., Result],
    w3: Web3,
    chain: Chain,
    data_dir: Path,
    before: Snapshot,
    tmp_path: Path,
) -> None:
    rule = RULES["unaccredited-signer"]
    document = rule.document(chain)
    (tmp_path / "signed.json").write_text(json.dumps(document))

    result = run("submit", str(tmp_path / "signed.json"), "--json")

    line = result.error_line()
    assert line.startswith(f"error: Commission {document['eventId']} was rejected by the ledger:")
    assert rule.reason in line, line
    status = json.loads(result.stdout)
    assert (status["status"], status["error"]) == ("rejected", rule.error), status
    assert take_snapshot(w3, chain, data_dir) == before.but_outbox(rejected=1)


def test_an_operation_waiting_on_a_revoked_relayer_is_reported_in_one_line_and_kept(
    chain: Chain, tmp_path: Path
) -> None:
    data_dir = copy_of(chain, tmp_path)
    with DevNode(state_file=data_dir / "node" / "state.json") as own:
        w3 = Web3(Web3.HTTPProvider(own.url))
        relayer = revoke_relayer(chain, w3)
        before = take_snapshot(w3, chain, data_dir)

        line = Cli(data_dir)(*commission("1t"), "--rpc-url", own.url).refusal()

        assert take_snapshot(w3, chain, data_dir) == before.but_outbox(pending=1)
    assert line.startswith(f"error: the relayer {relayer} cannot submit batches:"), line
    assert "The governor must accredit it with the relayer role" in line, line
    assert re.search(r"operation 0x[0-9a-f]{64} stays queued in the outbox", line), line
