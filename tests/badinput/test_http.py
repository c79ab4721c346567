"""Bad input over HTTP: the app that `mine2cell serve` runs (create_app, through FastAPI's
TestClient) over the embedded anvil node, with its relay and index follower in their threads.

Every hostile or malformed request gets an RFC 9457 problem naming the field at fault and saying
what is wrong, and leaves the node's head, the ledger's logs, the outbox and the index exactly as
they were. A well-formed operation that breaks a ledger rule is acknowledged (202), then shown
rejected with the ledger's decoded reason and never recorded: the outbox holds one rejected
operation more, and nothing else changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from web3 import Web3

from mine2cell.access.tokens import TokenStore
from mine2cell.api.app import create_app
from mine2cell.relay.outbox import State
from mine2cell.signing.eip712 import Domain, Input, Transform
from tests.api.support import problem
from tests.badinput.support import (
    NAMES,
    RULE_CASES,
    UINT96_MAX,
    Chain,
    RuleCase,
    Snapshot,
    copy_of,
    hex_id,
    high_s,
    lot,
    new_commission,
    record_bad_input_chain,
    restore_relayer,
    revoke_relayer,
    signed,
    take_snapshot,
)
from tests.e2e.cli_support import PASSPHRASE

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return record_bad_input_chain(tmp_path_factory.mktemp("badinput-http") / "template")


def open_app(chain: Chain, data_dir: Path) -> TestClient:
    settings = chain.settings(data_dir).model_copy(update={"ledger_address": chain.ledger})
    return TestClient(create_app(settings, passphrase=lambda: PASSPHRASE, follow_interval=0.1))


@pytest.fixture(scope="module")
def data_dir(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of(chain, tmp_path_factory.mktemp("badinput-http-app"))


@pytest.fixture(scope="module")
def client(chain: Chain, data_dir: Path) -> Iterator[TestClient]:
    with open_app(chain, data_dir) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tokens(data_dir: Path) -> dict[str, dict[str, str]]:
    """Headers per key name: a hosted token for that key; under "read", a read token."""
    with closing(TokenStore(data_dir / "access.db")) as store:
        headers = {
            name: store.create("hosted", f"bad input {name}", key_name=name)[1] for name in NAMES
        }
        headers["read"] = store.create("read", "bad input reader")[1]
    return {name: {"Authorization": f"Bearer {text}"} for name, text in headers.items()}


def w3_of(client: TestClient) -> Web3:
    w3: Web3 = client.app.state.runtime.service.w3  # type: ignore[attr-defined]
    return w3


@pytest.fixture
def before(client: TestClient, chain: Chain, data_dir: Path) -> Snapshot:
    return take_snapshot(w3_of(client), chain, data_dir)


def after(client: TestClient, chain: Chain, data_dir: Path) -> Snapshot:
    return take_snapshot(w3_of(client), chain, data_dir)


def settled(client: TestClient, status_url: str) -> dict[str, Any]:
    for _ in range(400):
        status: dict[str, Any] = client.get(status_url).json()
        if status["status"] in ("confirmed", "rejected"):
            return status
        time.sleep(0.025)
    raise AssertionError(f"{status_url} did not settle: {status}")


def without_event_id(document: dict[str, Any]) -> dict[str, Any]:
    """A document as a wallet gives it: no eventId, so only the signature can tell the domain."""
    return {k: v for k, v in document.items() if k != "eventId"}


def changed(document: dict[str, Any], **message: Any) -> dict[str, Any]:
    """The document with message fields replaced (``None`` removes one); signature kept."""
    new = {**document["message"], **message}
    return {**document, "message": {k: v for k, v in new.items() if v is not None}}


# -- signed documents refused at the door: POST /v1/operations -----------------------------------


@dataclass(frozen=True)
class Post:
    """A POST body: JSON built from the chain, or raw bytes."""

    body: Callable[[Chain], Any]
    raw: bool = False

    def send(self, client: TestClient, chain: Chain, path: str, **kw: Any) -> Response:
        body = self.body(chain)
        if self.raw:
            headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
            response: Response = client.post(path, content=body, headers=headers, **kw)
        else:
            response = client.post(path, json=body, **kw)
        return response


def _transform(chain: Chain, quantity: int | str) -> dict[str, Any]:
    document = signed(
        chain,
        "skelleftea",
        Transform,
        inputs=(Input(lot("SUL-1"), 1_000),),
        outputs=(),
    )
    message = document["message"]
    message["inputs"] = [{"lot": hex_id("SUL-1"), "quantity": quantity}]
    return document


OVERSIZED = b'{"type": "Commission", "padding": "' + b"x" * (2 * 1024 * 1024) + b'"}'
NOT_LEDGER = Web3.to_checksum_address("0x" + "de" * 20)

# (id, body, status, field at fault, what the problem says)
SIGNED_REFUSALS = [
    ("malformed-json", Post(lambda c: b'{"type": "Commission", "message": {', raw=True),
     422, "body", "is not valid JSON: Expecting property name enclosed in double quotes"),
    ("body-not-an-object", Post(lambda c: [new_commission(c)]), 422, "body",
     "must be a JSON object, got list"),
    ("oversized-body", Post(lambda c: OVERSIZED, raw=True), 413, "body",
     "bytes per request"),
    ("type-not-a-string", Post(lambda c: {**new_commission(c), "type": 5}),
     422, "type", "5 is not an operation type"),
    ("unknown-type", Post(lambda c: {**new_commission(c), "type": "Steal"}),
     422, "type", "'Steal' is not an operation type; one of Accredit"),
    ("message-not-an-object", Post(lambda c: {**new_commission(c), "message": "lot 5"}),
     422, "message", "must be an object"),
    ("missing-field", Post(lambda c: changed(new_commission(c), quantity=None)),
     422, "message.quantity", "is missing from the Commission message"),
    ("unknown-field", Post(lambda c: changed(new_commission(c), quantiti=5)),
     422, "message.quantiti", "is not a field of Commission"),
    ("negative-quantity", Post(lambda c: changed(new_commission(c), quantity=-3)),
     422, "message.quantity", "must be positive, got -3"),
    ("zero-quantity", Post(lambda c: changed(new_commission(c), quantity=0)),
     422, "message.quantity", "must be positive, got 0"),
    ("quantity-over-uint96", Post(lambda c: changed(new_commission(c), quantity=str(2**96))),
     422, "message.quantity", f"exceeds the maximum {UINT96_MAX}"),
    ("fractional-quantity", Post(lambda c: changed(new_commission(c), quantity=1.5)),
     422, "message.quantity", "must be an integer"),
    ("quantity-with-a-unit", Post(lambda c: changed(new_commission(c), quantity="12 t")),
     422, "message.quantity", "must be an integer (a number or a decimal string), got '12 t'"),
    ("boolean-quantity", Post(lambda c: changed(new_commission(c), quantity=True)),
     422, "message.quantity", "got a boolean"),
    ("input-quantity-over-uint96", Post(lambda c: _transform(c, UINT96_MAX + 1)),
     422, "message.inputs[0].quantity", "exceeds the maximum"),
    ("negative-input-quantity", Post(lambda c: _transform(c, -1)),
     422, "message.inputs[0].quantity", "must be positive, got -1"),
    ("nonce-over-uint256", Post(lambda c: changed(new_commission(c), nonce=str(2**256))),
     422, "message.nonce", "exceeds the maximum"),
    ("lot-id-too-short", Post(lambda c: changed(new_commission(c), lot="0x1234")),
     422, "message.lot", "must be 32 bytes, got 2"),
    ("lot-id-bad-hex", Post(lambda c: changed(new_commission(c), lot="0x" + "zz" * 32)),
     422, "message.lot", "is not valid hex"),
    ("lot-id-without-0x", Post(lambda c: changed(new_commission(c), lot="KOL-1")),
     422, "message.lot", "must be 0x-prefixed hex, got 'KOL-1'"),
    ("actor-not-an-address", Post(lambda c: changed(new_commission(c), actor="0x1234")),
     422, "message.actor", "must be an address"),
    ("signature-too-short", Post(lambda c: {**new_commission(c), "signature": "0x" + "11" * 64}),
     422, "signature", "must be 65 bytes, got 64"),
    ("expired-deadline", Post(lambda c: new_commission(c, deadline=int(time.time()) - 60)),
     422, "deadline", "passed"),
    ("signature-for-another-chain",
     Post(lambda c: without_event_id(new_commission(c, domain=Domain(1, c.ledger)))),
     422, "signature", "signed with another key, or for another chain or ledger"),
    ("prepared-for-another-chain", Post(lambda c: new_commission(c, domain=Domain(1, c.ledger))),
     422, "eventId", "another chain or ledger address"),
    ("signature-for-another-ledger",
     Post(lambda c: without_event_id(new_commission(c, domain=Domain(c.chain_id, NOT_LEDGER)))),
     422, "signature", "signed with another key, or for another chain or ledger"),
    ("high-s-signature", Post(lambda c: high_s(new_commission(c))),
     422, "signature", "upper half of the curve order"),
    ("message-changed-after-signing",
     Post(lambda c: without_event_id(changed(new_commission(c), quantity=999))),
     422, "signature", "recovers to"),
    ("message-changed-but-event-id-kept",
     Post(lambda c: changed(new_commission(c), quantity=999)),
     422, "eventId", "changed after it was signed"),
    ("replayed-nonce", Post(lambda c: new_commission(c, nonce=0)),
     422, "message.nonce", "nonce 0 of"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("post", "status", "field", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in SIGNED_REFUSALS],
)
def test_a_bad_signed_document_is_refused_naming_the_field_and_changes_nothing(
    client: TestClient,
    chain: Chain,
    data_dir: Path,
    before: Snapshot,
    post: Post,
    status: int,
    field: str,
    says: str,
) -> None:
    body = problem(post.send(client, chain, "/v1/operations"), status)

    assert [e["field"] for e in body["errors"]] == [field], body
    assert says in body["errors"][0]["message"], body
    assert after(client, chain, data_dir) == before


# -- unsigned operations for a hosted key: POST /v1/hosted/{key}/operations ---------------------


def hosted_body(document: dict[str, Any]) -> dict[str, Any]:
    """What a hosted-key client sends: the operation's own fields, no actor, nonce, deadline or
    signature."""
    common = ("actor", "nonce", "deadline")
    message = {k: v for k, v in document["message"].items() if k not in common}
    return {"type": document["type"], "message": message}


def _hosted_commission(chain: Chain, **message: Any) -> dict[str, Any]:
    return hosted_body(changed(new_commission(chain), **message))


# (id, key, body, field at fault, what the problem says): the same checks as the signing client.
HOSTED_REFUSALS = [
    ("negative-quantity", "kolwezi", lambda c: _hosted_commission(c, quantity=-3),
     "quantity", "must be positive, got -3"),
    ("zero-quantity", "kolwezi", lambda c: _hosted_commission(c, quantity=0),
     "quantity", "must be positive, got 0"),
    ("quantity-over-uint96", "kolwezi", lambda c: _hosted_commission(c, quantity=UINT96_MAX + 1),
     "quantity", f"exceeds the maximum {UINT96_MAX}"),
    ("quantity-with-a-unit", "kolwezi", lambda c: _hosted_commission(c, quantity="5 kgs"),
     "message.quantity", "must be an integer"),
    ("lot-id-too-long", "kolwezi", lambda c: _hosted_commission(c, lot="0x" + "ab" * 33),
     "message.lot", "must be 32 bytes, got 33"),
    ("ship-of-an-unknown-lot", "kolwezi",
     lambda c: {"type": "Ship", "message": {"lot": hex_id("NOPE-9"),
                                            "recipient": c.address("kokkola")}},
     "lot", "lot NOPE-9 does not exist on this ledger"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "body", "field", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in HOSTED_REFUSALS]
    + [
        pytest.param(
            rule.who, lambda c, rule=rule: hosted_body(rule.document(c)), rule.field, rule.says,
            id=rule.id,
        )
        for rule in RULE_CASES
    ],
)  # fmt: skip
def test_a_bad_hosted_operation_is_refused_before_signing_and_changes_nothing(
    client: TestClient,
    chain: Chain,
    data_dir: Path,
    tokens: dict[str, dict[str, str]],
    before: Snapshot,
    key: str,
    body: Callable[[Chain], dict[str, Any]],
    field: str,
    says: str,
) -> None:
    response = client.post(f"/v1/hosted/{key}/operations", json=body(chain), headers=tokens[key])

    refused = problem(response, 422)
    assert [e["field"] for e in refused["errors"]] == [field], refused
    assert says in refused["errors"][0]["message"], refused
    assert after(client, chain, data_dir) == before


# -- the ledger's rules, signed anyway: acknowledged, then rejected with the decoded reason ------


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.id) for r in RULE_CASES])
def test_a_signed_operation_breaking_a_ledger_rule_is_rejected_with_the_reason_and_never_recorded(
    client: TestClient, chain: Chain, data_dir: Path, before: Snapshot, rule: RuleCase
) -> None:
    response = client.post("/v1/operations", json=rule.document(chain))

    assert response.status_code == 202, response.text
    status = settled(client, response.headers["location"])
    assert (status["status"], status["error"]) == ("rejected", rule.error), status
    assert rule.reason in status["reason"], status
    assert "txHash" not in status and "blockNumber" not in status, status
    assert after(client, chain, data_dir) == before.but_outbox(rejected=1)


def test_a_document_sent_again_is_the_operation_already_recorded_and_changes_nothing(
    client: TestClient, chain: Chain, data_dir: Path, before: Snapshot
) -> None:
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    [recorded] = [s for s in service.outbox.recent(100, State.CONFIRMED) if s.kind == "Ship"][:1]
    document = service.outbox.document(recorded.event_id)

    response = client.post("/v1/operations", json=document)

    assert response.status_code == 202, response.text
    again = response.json()
    assert (again["eventId"], again["status"]) == (document["eventId"], "confirmed"), again
    assert again["blockNumber"] == recorded.block_number, again
    assert after(client, chain, data_dir) == before


# -- reads: unknown and malformed ids ------------------------------------------------------------

# (id, path, status, field at fault, what the problem says)
READ_REFUSALS = [
    ("unknown-lot", "/v1/lots/NOPE-1", 404, "lot", "lot NOPE-1 was never commissioned"),
    ("unknown-lot-history", "/v1/lots/NOPE-1/history", 404, "lot", "lot NOPE-1 is not in the"),
    ("unknown-lot-upstream", "/v1/lots/NOPE-1/upstream", 404, "lot", "lot NOPE-1 is not in the"),
    ("unknown-lot-downstream", "/v1/lots/NOPE-1/downstream", 404, "lot", "lot NOPE-1 "),
    ("unknown-lot-as-hex", f"/v1/lots/{'0x' + 'ab' * 32}", 404, "lot", "lot 0x" + "ab" * 32),
    ("unknown-passport-summary", "/v1/passports/NOPE-P/summary", 404, "passport",
     "passport NOPE-P is not bound on this ledger"),
    ("unknown-passport-provenance", "/v1/passports/NOPE-P/provenance", 404, "passport",
     "passport NOPE-P is not bound"),
    ("unknown-passport-attestations", "/v1/passports/NOPE-P/attestations", 404, "passport",
     "passport NOPE-P is not bound"),
    ("unknown-operation", f"/v1/operations/{'0x' + 'cd' * 32}", 404, "event_id",
     f"no operation {'0x' + 'cd' * 32} was submitted here"),
    ("lot-id-of-63-hex-digits", f"/v1/lots/{'0x' + 'a' * 63}", 422, "lot", "has 63 digits"),
    ("passport-id-of-4-hex-digits", "/v1/passports/0x1234/summary", 422, "passport",
     "'0x1234' looks like a hex id but has 4 digits; an id has 64"),
    ("event-id-not-hex", f"/v1/operations/{'0x' + 'zz' * 32}", 422, "event_id", "pattern"),
    ("event-id-too-short", "/v1/operations/0x1234", 422, "event_id", "pattern"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "status", "field", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in READ_REFUSALS],
)
def test_a_read_of_an_unknown_or_malformed_id_is_a_problem_naming_it(
    client: TestClient,
    chain: Chain,
    data_dir: Path,
    tokens: dict[str, dict[str, str]],
    before: Snapshot,
    path: str,
    status: int,
    field: str,
    says: str,
) -> None:
    body = problem(client.get(path, headers=tokens["read"]), status)

    assert [e["field"] for e in body["errors"]] == [field], body
    assert says in body["errors"][0]["message"], body
    assert after(client, chain, data_dir) == before


# -- a relayer the governor revoked ----------------------------------------------------------------


def test_operations_waiting_on_a_revoked_relayer_are_reported_refused_and_relayed_once_restored(
    chain: Chain, tmp_path: Path
) -> None:
    data_dir = copy_of(chain, tmp_path)
    with open_app(chain, data_dir) as client:
        service = client.app.state.runtime.service  # type: ignore[attr-defined]
        relayer = revoke_relayer(chain, service.w3)
        start = service.outbox.counts()

        first = client.post("/v1/operations", json=new_commission(chain))
        assert first.status_code == 202, first.text
        # The relay finds out when it simulates its next batch: from then on the operation's
        # status says why it waits, and the service queues nothing more.
        for _ in range(400):
            waiting = client.get(first.headers["location"]).json()
            if "relayError" in waiting:
                break
            time.sleep(0.025)
        refused = problem(client.post("/v1/operations", json=new_commission(chain)), 503)
        queued = service.outbox.counts()

        restore_relayer(chain, service.w3)
        restored = settled(client, first.headers["location"])
        cleared = client.get(first.headers["location"]).json()

    assert waiting["status"] == "pending", waiting
    assert f"the relayer {relayer} cannot submit batches" in waiting["relayError"], waiting
    assert "only an accredited relayer or the governor may" in waiting["relayError"], waiting
    assert f"the relayer {relayer} cannot submit batches" in refused["detail"], refused
    assert "not queued" in refused["detail"], refused
    assert queued == {**start, State.PENDING: start[State.PENDING] + 1}, (start, queued)
    assert restored["status"] == "confirmed", restored
    assert "relayError" not in cleared, cleared
