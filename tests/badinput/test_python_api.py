"""Bad input through the Python API: the signing client (``Service.client``), the intake of
documents signed elsewhere, ``codec.parse_fields``, the Service itself and the ledger client,
over the embedded anvil node.

Every refusal is a Mine2CellError naming the field at fault (InvalidInput) or carrying the
ledger's decoded reason (LedgerRejected, or an operation reported rejected with it), never a
web3 or Python error, and leaves the node's head, the ledger's logs, the outbox and the index
(synced again before it is compared) as they were; an operation the ledger rejects leaves one
rejected operation more in the outbox and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from mine2cell.chain.ledger import LedgerClient, Transactor
from mine2cell.codes import Role
from mine2cell.errors import ConfigurationError, InvalidInput, LedgerRejected, Mine2CellError
from mine2cell.ids import parse_id
from mine2cell.relay import intake
from mine2cell.relay.outbox import State
from mine2cell.relay.relay import MAX_BATCH_OPERATIONS, BatchPolicy, RelayError
from mine2cell.service import Service
from mine2cell.signing.codec import from_document, operation_type, parse_fields
from mine2cell.signing.eip712 import (
    Domain,
    Input,
    LotId,
    Output,
    text32,
)
from tests.badinput.support import (
    CO_HYDROXIDE,
    CO_SULFATE,
    HELD,
    NAMES,
    RULE_CASES,
    UINT96_MAX,
    Chain,
    RuleCase,
    Snapshot,
    copy_of,
    high_s,
    lot,
    new_commission,
    record_bad_input_chain,
    restore_relayer,
    revoke_relayer,
    take_snapshot,
)
from tests.e2e.cli_support import PASSPHRASE

pytestmark = pytest.mark.anvil

NOWHERE = Web3.to_checksum_address("0x" + "de" * 20)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return record_bad_input_chain(tmp_path_factory.mktemp("badinput-python") / "template")


@pytest.fixture(scope="module")
def data_dir(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of(chain, tmp_path_factory.mktemp("badinput-python-service"))


@pytest.fixture(scope="module")
def service(chain: Chain, data_dir: Path) -> Iterator[Service]:
    with Service(chain.settings(data_dir), passphrase=lambda: PASSPHRASE) as opened:
        yield opened


def snapshot(service: Service, chain: Chain, data_dir: Path) -> Snapshot:
    service.indexer().sync()  # whatever reached the chain reaches the index
    return take_snapshot(service.w3, chain, data_dir)


@pytest.fixture
def before(service: Service, chain: Chain, data_dir: Path) -> Snapshot:
    return snapshot(service, chain, data_dir)


def refused(call: Callable[[], object]) -> InvalidInput:
    with pytest.raises(Mine2CellError) as caught:
        call()
    assert isinstance(caught.value, InvalidInput), repr(caught.value)
    return caught.value


_fresh = iter(range(10**6))


def new_lot() -> LotId:
    return lot(f"PY-{next(_fresh)}")


# -- the signing client: checked against the ledger's state before anything is signed ------------

Call = Callable[[Service], object]


def commission(quantity: Any = 1_000, **kw: Any) -> Call:
    """The Kolwezi mine commissions a new lot (or ``lot``) with these values."""

    def call(s: Service) -> object:
        fields = {"material": CO_HYDROXIDE, "quantity": quantity, **kw}
        return s.client("kolwezi").commission(fields.pop("lot", new_lot()), **fields)

    return call


def by_rule(rule: RuleCase) -> Call:
    """The rule's operation asked of its signer's client (``perform``, as hosted keys do)."""

    def call(s: Service) -> object:
        fields = rule.fields({name: s.account(name) for name in NAMES})
        return s.client(rule.who).perform(rule.op_type.PRIMARY, fields)

    return call


# (id, call, field at fault, what the error says)
CLIENT_REFUSALS: list[tuple[str, Call, str, str]] = [
    ("zero-quantity", commission(0), "quantity", "must be positive, got 0"),
    ("negative-quantity", commission(-3), "quantity", "must be positive, got -3"),
    ("quantity-over-uint96", commission(UINT96_MAX + 1), "quantity",
     f"exceeds the maximum {UINT96_MAX}"),
    ("fractional-quantity", commission(1.5), "quantity", "must be an integer, got float"),
    ("quantity-as-text", commission("5 kg"), "quantity", "must be an integer, got str"),
    ("boolean-quantity", commission(True), "quantity", "must be an integer, got bool"),
    ("unknown-feedstock", commission(feedstock=7), "feedstock",
     "must be 0 (primary), 1 (pre-consumer) or 2 (post-consumer), got 7"),
    ("lot-id-of-31-bytes", commission(lot=b"\1" * 31), "lot",
     "must be a 32-byte id, got 31 bytes"),
    ("lot-id-as-text", commission(lot="KOL-9"), "lot", "must be a 32-byte id, got a str"),
    ("existing-lot", commission(lot=lot("KOL-1")), "lot",
     "lot KOL-1 already exists; lot ids are never reused"),
    ("ship-unknown-lot", lambda s: s.client("kolwezi").ship(lot("NOPE-1"), s.account("kokkola")),
     "lot", "lot NOPE-1 does not exist on this ledger"),
    ("ship-lot-id-of-33-bytes",
     lambda s: s.client("kolwezi").ship(b"\1" * 33, s.account("kokkola")),
     "lot", "must be a 32-byte id, got 33 bytes"),
    ("ship-to-a-malformed-address", lambda s: s.client("kolwezi").ship(lot(HELD), "0x1234"),
     "recipient", "'0x1234' is not an address"),
    ("ship-to-an-unaccredited-account",
     lambda s: s.client("kolwezi").ship(lot(HELD), s.account("outsider")),
     "recipient", "may not hold material (it has no accreditation)"),
    ("ship-to-itself", lambda s: s.client("kolwezi").ship(lot(HELD), s.account("kolwezi")),
     "recipient", "a lot cannot be shipped to its own custodian"),
    ("receive-unknown-lot", lambda s: s.client("kokkola").receive(lot("NOPE-1")),
     "lot", "lot NOPE-1 does not exist on this ledger"),
    ("transform-without-inputs",
     lambda s: s.client("kokkola").transform([], [Output(new_lot(), CO_SULFATE, 1)]),
     "inputs", "at least one input lot is needed"),
    ("transform-zero-input",
     lambda s: s.client("skelleftea").transform([Input(lot("SUL-1"), 0)], []),
     "quantity", "must be positive, got 0"),
    ("bind-passport-id-of-5-bytes",
     lambda s: s.client("skelleftea").bind_passport(b"\1" * 5, [Input(lot("SUL-1"), 1)]),
     "passport", "must be a 32-byte id, got 5 bytes"),
    ("attest-an-unbound-passport",
     lambda s: s.client("auditor").attest(parse_id("NOPE-P"), verdict=1, report_hash=bytes(32)),
     "passport", "passport NOPE-P was never bound"),
    ("accredit-by-a-non-governor",
     lambda s: s.client("kolwezi").accredit(
         s.account("outsider"), roles=Role.MINE, facility=text32("X"), country="CD"),
     "signer", "is not the governor"),
    ("accredit-a-lower-case-country",
     lambda s: s.client("governor").accredit(
         s.account("outsider"), roles=Role.MINE, facility=text32("X"), country="cd"),
     "country", "must be an ISO 3166-1 alpha-2 code like 'CD', got 'cd'"),
    ("unknown-key-name", lambda s: s.account("nobody"), "participant",
     "'nobody' is neither an address nor the name of a key file"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "field", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in CLIENT_REFUSALS]
    + [pytest.param(by_rule(rule), rule.field, rule.says, id=rule.id) for rule in RULE_CASES],
)
def test_the_signing_client_refuses_bad_input_naming_the_field_and_changes_nothing(
    service: Service,
    chain: Chain,
    data_dir: Path,
    before: Snapshot,
    call: Call,
    field: str,
    says: str,
) -> None:
    error = refused(lambda: call(service))

    assert (error.field, says in error.problem) == (field, True), error
    assert snapshot(service, chain, data_dir) == before


# -- the ledger's rules, signed anyway -----------------------------------------------------------


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.id) for r in RULE_CASES])
def test_an_operation_breaking_a_ledger_rule_is_rejected_with_the_decoded_reason(
    service: Service, chain: Chain, data_dir: Path, before: Snapshot, rule: RuleCase
) -> None:
    document = rule.document(chain)
    signed, _ = from_document(document, service.ledger.domain)
    relayer = service.signer("relayer")
    direct = LedgerClient(service.w3, chain.ledger, Transactor(service.w3, relayer))

    with pytest.raises(LedgerRejected) as submitted:
        direct.submit(signed)  # in a transaction of its own: refused before it is sent
    accepted = intake.accept_document(service.outbox, service.ledger, document)
    status = service.settle([accepted.event_id])[accepted.event_id]

    assert submitted.value.error == rule.error and rule.reason in str(submitted.value)
    assert (status.state, status.error) == (State.REJECTED, rule.error), status
    assert status.reason is not None and rule.reason in status.reason, status
    assert status.tx_hash is None and status.block_number is None, status
    assert snapshot(service, chain, data_dir) == before.but_outbox(rejected=1)


# -- operations signed elsewhere: the intake's checks -------------------------------------------

Document = Callable[[Chain], object]


def _without_event_id(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "eventId"}


def _changed(document: dict[str, Any], **message: Any) -> dict[str, Any]:
    return {**document, "message": {**document["message"], **message}}


# (id, document, field at fault, what the error says)
INTAKE_REFUSALS: list[tuple[str, Document, str, str]] = [
    ("expired-deadline", lambda c: new_commission(c, deadline=int(time.time()) - 1),
     "deadline", "passed"),
    ("deadline-too-close", lambda c: new_commission(c, deadline=int(time.time()) + 5),
     "deadline", "is too close"),
    ("signature-for-another-chain",
     lambda c: _without_event_id(new_commission(c, domain=Domain(1, c.ledger))),
     "signature", "for another chain or ledger"),
    ("signature-for-another-ledger",
     lambda c: _without_event_id(new_commission(c, domain=Domain(c.chain_id, NOWHERE))),
     "signature", "for another chain or ledger"),
    ("event-id-of-another-ledger",
     lambda c: new_commission(c, domain=Domain(c.chain_id, NOWHERE)),
     "eventId", "prepared for another chain or ledger address"),
    ("high-s-signature", lambda c: high_s(new_commission(c)),
     "signature", "upper half of the curve order (EIP-2)"),
    ("message-changed-after-signing",
     lambda c: _without_event_id(_changed(new_commission(c), quantity=1)),
     "signature", "recovers to"),
    ("replayed-nonce", lambda c: new_commission(c, nonce=0),
     "message.nonce", "sign again with another nonce"),
    ("document-not-an-object", lambda c: [new_commission(c)], "document", "must be a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "field", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in INTAKE_REFUSALS],
)
def test_the_intake_refuses_a_bad_signed_document_naming_the_field_and_changes_nothing(
    service: Service,
    chain: Chain,
    data_dir: Path,
    before: Snapshot,
    document: Document,
    field: str,
    says: str,
) -> None:
    bad = document(chain)

    error = refused(lambda: intake.accept_document(service.outbox, service.ledger, bad))

    assert (error.field, says in error.problem) == (field, True), error
    assert snapshot(service, chain, data_dir) == before


def test_a_document_accepted_again_is_the_operation_already_recorded(
    service: Service, chain: Chain, data_dir: Path, before: Snapshot
) -> None:
    [shipment] = [s for s in service.outbox.recent(100, State.CONFIRMED) if s.kind == "Ship"][:1]

    again = intake.accept_document(
        service.outbox, service.ledger, service.outbox.document(shipment.event_id)
    )

    assert (again.stored, again.status.state) == (False, State.CONFIRMED), again
    assert again.status.block_number == shipment.block_number
    assert snapshot(service, chain, data_dir) == before


# -- codec.parse_fields: an unsigned message's fields -----------------------------------------

A_LOT = "0x" + "ab" * 32
ADDRESS = "0x" + "12" * 20

# (id, type, message, field at fault, what the error says)
PARSE_REFUSALS = [
    ("message-not-an-object", "Ship", ["lot", A_LOT], "message", "must be an object"),
    ("unknown-field", "Commission", {"lot": A_LOT, "quantiti": 5}, "message.quantiti",
     "is not a field of Commission (its fields: lot, material, quantity"),
    ("field-of-another-type", "Receive", {"lot": A_LOT, "recipient": ADDRESS},
     "message.recipient", "is not a field of Receive"),
    ("quantity-with-a-unit", "Commission", {"quantity": "12 tonnes"}, "message.quantity",
     "must be an integer (a number or a decimal string), got '12 tonnes'"),
    ("negative-quantity-as-text", "Commission", {"quantity": "-3"}, "message.quantity",
     "must be an integer"),
    ("boolean-quantity", "Commission", {"quantity": False}, "message.quantity", "a boolean"),
    ("lot-of-2-bytes", "Ship", {"lot": "0x1234"}, "message.lot", "must be 32 bytes, got 2"),
    ("lot-not-hex", "Ship", {"lot": "0x" + "gg" * 32}, "message.lot", "is not valid hex"),
    ("lot-as-a-number", "Ship", {"lot": 5}, "message.lot", "must be 0x-prefixed hex, got 5"),
    ("recipient-too-short", "Ship", {"recipient": "0x1234"}, "message.recipient",
     "must be an address (0x and 40 hex digits), got '0x1234'"),
    ("recipient-as-a-number", "Ship", {"recipient": 5}, "message.recipient",
     "must be an address string, got int"),
    ("inputs-not-a-list", "Transform", {"inputs": {"lot": A_LOT}}, "message.inputs",
     "must be a list of objects"),
    ("input-without-quantity", "Transform", {"inputs": [{"lot": A_LOT}]},
     "message.inputs[0].quantity", "is missing"),
    ("input-with-an-extra-key", "Transform", {"inputs": [{"lot": A_LOT, "quantity": 1, "g": 1}]},
     "message.inputs[0].g", "is not a field of this item"),
    ("input-quantity-over-uint96", "Transform",
     {"inputs": [{"lot": A_LOT, "quantity": str(2**96)}]},
     "message.inputs[0].quantity", f"exceeds the maximum {UINT96_MAX}"),
    ("output-document-hash-short", "Transform",
     {"outputs": [{"lot": A_LOT, "material": 1, "quantity": 1, "documentHash": "0x00"}]},
     "message.outputs[0].documentHash", "must be 32 bytes, got 1"),
    ("corrective-not-a-list", "Correct", {"corrective": A_LOT}, "message.corrective",
     "must be a list of 0x-hex bytes32"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "message", "field", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in PARSE_REFUSALS],
)
def test_parse_fields_refuses_a_bad_message_naming_the_field(
    kind: str, message: object, field: str, says: str
) -> None:
    error = refused(lambda: parse_fields(operation_type(kind), message))

    assert (error.field, says in error.problem) == (field, True), error


def test_operation_type_refuses_an_unknown_type_listing_the_known_ones() -> None:
    error = refused(lambda: operation_type("Steal"))

    assert error.field == "type" and "'Steal' is not an operation type" in error.problem
    assert "Commission" in error.problem and "BindPassport" in error.problem


# -- the service and the ledger client -------------------------------------------------------


def test_a_service_on_a_malformed_ledger_address_is_refused(service: Service, chain: Chain) -> None:
    settings = chain.settings(rpc_url=service.rpc_url).model_copy(
        update={"ledger_address": "0x1234"}
    )

    error = refused(lambda: Service(settings, passphrase=lambda: PASSPHRASE).__enter__())

    assert error.field == "ledger" and "'0x1234' is not an address" in error.problem


def test_a_service_on_an_address_without_a_ledger_is_refused(
    service: Service, chain: Chain
) -> None:
    settings = chain.settings(rpc_url=service.rpc_url).model_copy(
        update={"ledger_address": NOWHERE}
    )

    with pytest.raises(ConfigurationError, match=f"there is no contract at {NOWHERE}"):
        Service(settings, passphrase=lambda: PASSPHRASE).__enter__()


def test_a_client_for_an_unknown_key_is_refused(service: Service) -> None:
    with pytest.raises(Mine2CellError, match="nobody"):
        service.client("nobody")


def test_a_batch_larger_than_the_ledger_takes_is_rejected_whole_and_sends_nothing(
    service: Service, chain: Chain, data_dir: Path, before: Snapshot
) -> None:
    relayer = service.signer("relayer")
    ledger = LedgerClient(service.w3, chain.ledger, Transactor(service.w3, relayer))
    signed, _ = from_document(new_commission(chain), ledger.domain)
    batch = [ledger.calldata(signed)] * (MAX_BATCH_OPERATIONS + 1)

    with pytest.raises(LedgerRejected) as relayed:
        ledger.relay(batch)
    with pytest.raises(LedgerRejected) as simulated:
        ledger.simulate(batch)
    with pytest.raises(ConfigurationError, match="max_operations must be between 1 and 256"):
        BatchPolicy(max_operations=MAX_BATCH_OPERATIONS + 1)

    for error in (relayed.value, simulated.value):
        assert error.error == "LedgerBatchTooLarge", error
        assert error.args_by_name == {"size": 257, "max": 256}, error
        assert "a batch holds 257 operations; the ledger accepts at most 256" in str(error)
    assert snapshot(service, chain, data_dir) == before


# -- a relayer the governor revoked ----------------------------------------------------------


def test_an_operation_waiting_on_a_revoked_relayer_is_reported_kept_and_relayed_once_restored(
    chain: Chain, tmp_path: Path
) -> None:
    with Service(chain.settings(copy_of(chain, tmp_path)), passphrase=lambda: PASSPHRASE) as s:
        relayer = revoke_relayer(chain, s.w3)
        accepted = s.client("kolwezi").commission(new_lot(), material=CO_HYDROXIDE, quantity=5)

        with pytest.raises(RelayError) as caught:
            s.settle([accepted.event_id], timeout=10)
        waiting = s.outbox.status(accepted.event_id)
        restore_relayer(chain, s.w3)
        settled = s.settle([accepted.event_id])[accepted.event_id]

    message = str(caught.value)
    assert f"the relayer {relayer} cannot submit batches" in message, message
    assert "The governor must accredit it with the relayer role" in message, message
    assert f"operation 0x{accepted.event_id.hex()} stays queued in the outbox" in message, message
    assert waiting is not None and waiting.state is State.PENDING, waiting
    assert settled.state is State.CONFIRMED, settled


def test_attest_refuses_an_unknown_verdict_before_signing(
    service: Service, chain: Chain, data_dir: Path, before: Snapshot
) -> None:
    error = refused(
        lambda: service.client("auditor").attest(
            parse_id("PASS-1"), verdict=3, report_hash=bytes(32)
        )
    )

    assert error.field == "verdict" and "must be 1 (pass) or 2 (fail)" in error.problem
    assert snapshot(service, chain, data_dir) == before
