"""Random operation sequences against the deployed ledger and an independent model of its rules.

A hypothesis state machine signs random operations (valid ones and every kind of wrong one),
predicts with a pure-Python model of the rules written here (not derived from the contract)
whether each is recorded or the exact error it is refused with, relays them to a real node
(anvil), and checks that the chain did what the model said. After every step it compares every
lot, participant, passport and nonce it knows of with the chain, and checks the ledger's
invariants from the chain's own logs:

- no quantity is consumed twice: per lot, the quantity consumed (LotConsumed logs) plus the
  remaining quantity equals the quantity commissioned or produced;
- custody never moves without the recipient's signature: a custodian changes only through a
  LotReceived of an operation signed by the named recipient;
- transformations conserve the mass of every material they consume and produce;
- replayed, expired, foreign-chain/foreign-ledger and tampered signatures are refused.

Runs: ``MINE2CELL_FUZZ_EXAMPLES`` (and optionally ``MINE2CELL_FUZZ_STEPS``) raise the number of
random sequences for a long run, e.g. ``MINE2CELL_FUZZ_EXAMPLES=5000 pytest
tests/chain/test_stateful.py``. A failure prints the shortest program of steps that breaks, a
``@reproduce_failure`` blob, and is replayed first on the next run from the local example
database; ``--hypothesis-seed=N`` makes a run repeatable.
"""

from __future__ import annotations

import copy
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, TxReceipt

from mine2cell.chain.ledger import ZERO_ADDRESS, LedgerClient
from mine2cell.chain.node import DevNode
from mine2cell.errors import LedgerRejected, Mine2CellError
from mine2cell.signing.eip712 import (
    SECP256K1_N,
    UINT96_MAX,
    Accredit,
    BindPassport,
    Commission,
    Domain,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    PassportId,
    Recall,
    Receive,
    Reject,
    Revoke,
    Ship,
    Signature,
    SignedOperation,
    Transform,
    sign,
)
from tests.conftest import (
    CELL_MAKER,
    MINE,
    PROCESSOR,
    RECYCLER,
    RELAYER,
    ROLES,
    Cast,
    build_cast,
    facility,
    rpc,
)

T = TypeVar("T")

# -- settings ----------------------------------------------------------------------------------

# Measured on the development machine: about 40 ms per step (a relayed transaction and one
# batched read of all the state the model knows), so 75 sequences of up to 25 steps take
# about 70 s. A long run: MINE2CELL_FUZZ_EXAMPLES=2000 (~40 steps each) takes about an hour.
CI_EXAMPLES = 75
CI_STEPS = 25
FUZZ_EXAMPLES_ENV = "MINE2CELL_FUZZ_EXAMPLES"
FUZZ_STEPS_ENV = "MINE2CELL_FUZZ_STEPS"

_COMMON: dict[str, Any] = {
    "deadline": None,
    "print_blob": True,
    # Each step waits for a transaction: hypothesis would otherwise call the test too slow.
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile(
    "mine2cell-stateful-ci", max_examples=CI_EXAMPLES, stateful_step_count=CI_STEPS, **_COMMON
)


def stateful_settings() -> settings:
    """The CI profile, or a long run when MINE2CELL_FUZZ_EXAMPLES is set."""
    examples = os.environ.get(FUZZ_EXAMPLES_ENV)
    if not examples:
        return settings.get_profile("mine2cell-stateful-ci")
    steps = int(os.environ.get(FUZZ_STEPS_ENV) or 40)
    settings.register_profile(
        "mine2cell-stateful-fuzz",
        max_examples=int(examples),
        stateful_step_count=steps,
        **_COMMON,
    )
    return settings.get_profile("mine2cell-stateful-fuzz")


CUSTODY_ROLES = MINE | RECYCLER | PROCESSOR | CELL_MAKER
ALL_ROLES = 63
NAMES = (
    "governor",
    "relayer",
    "mine_cd",
    "mine_au",
    "recycler",
    "refiner",
    "cathode",
    "cell",
    "auditor",
    "outsider",
)
# Addresses that may be named as a participant or recipient but never sign.
NOBODY = "nobody"
MATERIALS = (100, 101, 200, 300, 600, 701)
UNKNOWN_LOT = LotId(keccak(text="a lot nobody ever commissioned"))
ZERO_ID = bytes(32)

# -- the model -------------------------------------------------------------------------------


class Refused(Exception):
    """The model's prediction that the ledger refuses an operation with error ``name``; ``args``
    are the error's arguments the model can predict."""

    def __init__(self, name: str, **args: Any) -> None:
        super().__init__(name)
        self.name = name
        self.args_by_name = args


Expected = tuple[str, dict[str, Any]] | None


@dataclass
class LotModel:
    custodian: str
    recipient: str | None
    remaining: int
    material: int
    created: int
    consumed: int = 0


@dataclass
class Model:
    """What the ledger's rules say the state is. Addresses are checksummed strings."""

    governor: str
    roles: dict[str, int]
    indexed: set[str]  # ever accredited: holds a participant index
    lots: dict[bytes, LotModel] = field(default_factory=dict)
    passports: dict[bytes, str] = field(default_factory=dict)
    used: set[tuple[str, int]] = field(default_factory=set)

    def execute(self, op: Operation, signature_fault: Refused | None, floor: int) -> Expected:
        """Predict the outcome of ``op`` at a block no older than ``floor``; apply it if it is
        recorded. A refused operation changes nothing (the ledger rolls it back)."""
        trial = copy.deepcopy(self)
        try:
            trial._verify(op, signature_fault, floor)
            trial._apply(op)
        except Refused as refused:
            return refused.name, refused.args_by_name
        self.__dict__.update(trial.__dict__)
        return None

    # Checks in the ledger's order: deadline, signature, nonce, then the operation's own rules.
    def _verify(self, op: Operation, signature_fault: Refused | None, floor: int) -> None:
        assert op.deadline < floor or op.deadline > time.time() + 600, "ambiguous deadline"
        if op.deadline < floor:
            raise Refused("LedgerExpiredDeadline", deadline=op.deadline)
        if signature_fault is not None:
            raise signature_fault
        if (op.actor, op.nonce) in self.used:
            raise Refused("LedgerNonceUsed", actor=op.actor, nonce=op.nonce)
        self.used.add((op.actor, op.nonce))

    def _role(self, account: str, required: int) -> None:
        held = self.roles.get(account, 0)
        if held & required == 0:
            raise Refused("LedgerMissingRole", account=account, required=required, held=held)

    def _lot(self, lot: bytes) -> LotModel:
        if lot not in self.lots:
            raise Refused("LedgerUnknownLot", lot=lot)
        return self.lots[lot]

    def _held(self, lot: bytes, account: str) -> LotModel:
        state = self._lot(lot)
        if state.custodian != account:
            raise Refused("LedgerNotCustodian", lot=lot, account=account, custodian=state.custodian)
        if state.recipient is not None:
            raise Refused("LedgerLotInTransit", lot=lot, recipient=state.recipient)
        if state.remaining == 0:
            raise Refused("LedgerLotClosed", lot=lot)
        return state

    def _create(self, lot: bytes, custodian: str, material: int, quantity: int) -> None:
        if lot == ZERO_ID:
            raise Refused("LedgerInvalidLotId")
        if quantity == 0:
            raise Refused("LedgerZeroQuantity", lot=lot)
        if lot in self.lots:
            raise Refused("LedgerLotExists", lot=lot)
        self.lots[lot] = LotModel(custodian, None, quantity, material, quantity)

    def _consume(self, inputs: Sequence[Input], actor: str) -> list[int]:
        materials = []
        for item in inputs:
            state = self._held(item.lot, actor)
            if item.quantity > state.remaining:
                raise Refused(
                    "LedgerInsufficientQuantity",
                    lot=item.lot,
                    remaining=state.remaining,
                    needed=item.quantity,
                )
            state.remaining -= item.quantity
            state.consumed += item.quantity
            materials.append(state.material)
        return materials

    def _shipment_to(self, lot: bytes, account: str) -> LotModel:
        state = self._lot(lot)
        if state.recipient is None:
            raise Refused("LedgerLotNotInTransit", lot=lot)
        if state.recipient != account:
            raise Refused("LedgerNotRecipient", lot=lot, account=account, recipient=state.recipient)
        return state

    def _apply(self, op: Operation) -> None:
        actor = op.actor
        if isinstance(op, Accredit | Revoke):
            if actor != self.governor:
                raise Refused("LedgerNotGovernor", account=actor)
            if isinstance(op, Revoke):
                if self.roles.get(op.participant, 0) == 0:
                    raise Refused("LedgerUnknownParticipant", account=op.participant)
                self.roles[op.participant] = 0
                return
            if op.participant == ZERO_ADDRESS:
                raise Refused("LedgerUnknownParticipant", account=op.participant)
            if op.roles == 0 or op.roles & ~ALL_ROLES:
                raise Refused("LedgerInvalidRoles", roles=op.roles)
            if len(op.country) != 2 or not all(0x41 <= c <= 0x5A for c in op.country):
                raise Refused("LedgerInvalidCountry", country=op.country)
            self.roles[op.participant] = op.roles
            self.indexed.add(op.participant)
        elif isinstance(op, Commission):
            self._role(actor, MINE | RECYCLER)
            roles = self.roles[actor]
            primary = op.feedstock == 0
            if (
                op.feedstock > 2
                or (primary and not roles & MINE)
                or (not primary and not roles & RECYCLER)
            ):
                raise Refused("LedgerInvalidFeedstock", actor=actor, feedstock=op.feedstock)
            self._create(op.lot, actor, op.material, op.quantity)
        elif isinstance(op, Ship):
            self._role(actor, CUSTODY_ROLES)
            state = self._held(op.lot, actor)
            to_roles = self.roles.get(op.recipient, 0)
            if to_roles & CUSTODY_ROLES == 0:
                raise Refused(
                    "LedgerMissingRole",
                    account=op.recipient,
                    required=CUSTODY_ROLES,
                    held=to_roles,
                )
            if op.recipient == actor:
                raise Refused("LedgerSelfShipment", lot=op.lot)
            state.recipient = op.recipient
        elif isinstance(op, Receive | Reject):
            self._role(actor, CUSTODY_ROLES)
            state = self._shipment_to(op.lot, actor)
            if state.custodian != op.counterparty:
                raise Refused(
                    "LedgerWrongCounterparty",
                    lot=op.lot,
                    named=op.counterparty,
                    actual=state.custodian,
                )
            if isinstance(op, Receive):
                state.custodian = actor
            state.recipient = None
        elif isinstance(op, Recall):
            self._role(actor, CUSTODY_ROLES)
            state = self._lot(op.lot)
            if state.custodian != actor:
                raise Refused(
                    "LedgerNotCustodian", lot=op.lot, account=actor, custodian=state.custodian
                )
            if state.recipient is None:
                raise Refused("LedgerLotNotInTransit", lot=op.lot)
            if state.recipient != op.counterparty:
                raise Refused(
                    "LedgerWrongCounterparty",
                    lot=op.lot,
                    named=op.counterparty,
                    actual=state.recipient,
                )
            state.recipient = None
        elif isinstance(op, Transform):
            self._role(actor, PROCESSOR | CELL_MAKER)
            if not op.inputs or not op.outputs:
                raise Refused("LedgerEmptyOperation")
            materials = self._consume(op.inputs, actor)
            for out in op.outputs:
                self._create(out.lot, actor, out.material, out.quantity)
            consumed: dict[int, int] = defaultdict(int)
            for item, material in zip(op.inputs, materials, strict=True):
                consumed[material] += item.quantity
            produced: dict[int, int] = defaultdict(int)
            for out in op.outputs:
                produced[out.material] += out.quantity
            for material in dict.fromkeys(out.material for out in op.outputs):
                if material in consumed and produced[material] > consumed[material]:
                    raise Refused(
                        "LedgerMassNotConserved",
                        material=material,
                        consumed=consumed[material],
                        produced=produced[material],
                    )
        elif isinstance(op, BindPassport):
            self._role(actor, CELL_MAKER)
            if op.passport == ZERO_ID:
                raise Refused("LedgerInvalidPassportId")
            if op.passport in self.passports:
                raise Refused("LedgerPassportAlreadyBound", passport=op.passport)
            if not op.inputs:
                raise Refused("LedgerEmptyOperation")
            self.passports[op.passport] = actor
            self._consume(op.inputs, actor)
        else:
            raise AssertionError(f"the model does not know {op.PRIMARY}")


# -- the world the machine runs in ---------------------------------------------------------------


@dataclass
class World:
    """A ledger with the conftest cast on anvil, and the snapshot every example starts from."""

    w3: Web3
    cast: Cast
    snapshot: str
    floor: int  # the snapshot block's timestamp: no later block is older
    signers: dict[str, LocalSigner]
    # What the random sequences reached (operation, intent, outcome), printed after the run.
    reached: Counter[str] = field(default_factory=Counter)
    examples: int = 0
    steps: int = 0

    @property
    def ledger(self) -> LedgerClient:
        return self.cast.ledger

    def reset(self) -> None:
        assert rpc(self.w3, "evm_revert", [self.snapshot]) is True
        # anvil drops a snapshot once reverted to: take it again for the next example.
        self.snapshot = rpc(self.w3, "evm_snapshot", [])
        self.ledger._next_nonce.clear()
        assert self.ledger.transactor is not None
        self.ledger.transactor.resync_nonce()


@pytest.fixture(scope="module")
def world(anvil_node: DevNode) -> Iterator[World]:
    # web3 asks for the chain id before every call and transaction: let it remember it.
    provider = HTTPProvider(
        anvil_node.url,
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
    )
    w3 = Web3(provider)
    # The node is shared with other chain tests (and this module uses the same governor and
    # relayer keys): leave it exactly as it was found.
    before = rpc(w3, "evm_snapshot", [])
    try:
        cast = build_cast(w3)
        snapshot = rpc(w3, "evm_snapshot", [])
        floor = int(w3.eth.get_block("latest")["timestamp"])
        signers = {name: getattr(cast, name) for name in NAMES}
        yield World(w3, cast, snapshot, floor, signers)
    finally:
        rpc(w3, "evm_revert", [before])


class Views:
    """Reads many ledger views in one JSON-RPC batch. The invariants read every known lot after
    every step, and web3's contract-call machinery costs ~5 ms of Python per call."""

    SIGNATURES: ClassVar[dict[str, tuple[list[str], list[str]]]] = {
        "lot": (["bytes32"], ["address", "address", "uint256", "uint32"]),
        "participant": (["address"], ["uint32", "uint8", "bytes2", "bytes32"]),
        "passportBinder": (["bytes32"], ["address"]),
        "nonceUsed": (["address", "uint256"], ["bool"]),
        "nonceBitmap": (["address", "uint256"], ["uint256"]),
    }

    def __init__(self, w3: Web3, address: str) -> None:
        assert isinstance(w3.provider, HTTPProvider)
        self.provider = w3.provider
        self.address = address

    def read(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[tuple[Any, ...]]:
        if not calls:
            return []
        requests = []
        for name, args in calls:
            inputs, _ = self.SIGNATURES[name]
            data = keccak(text=f"{name}({','.join(inputs)})")[:4] + abi_encode(inputs, args)
            call = {"to": self.address, "data": "0x" + data.hex()}
            requests.append((RPCEndpoint("eth_call"), [call, "latest"]))
        replies = self.provider.make_batch_request(requests)
        assert isinstance(replies, list), replies
        results = []
        for (name, _), reply in zip(calls, replies, strict=True):
            assert "result" in reply, reply
            _, outputs = self.SIGNATURES[name]
            results.append(abi_decode(outputs, HexBytes(reply["result"])))
        return results


# -- the state machine -----------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """An operation to sign: its type, its signer's name, its own fields, and a nonce chosen by
    the test (None: the signer's next unused one)."""

    op_type: type[Operation]
    who: str
    fields: dict[str, Any]
    nonce: int | None = None


@dataclass(repr=False)
class Planned:
    signed: SignedOperation
    fault: Refused | None  # a signature the ledger must refuse, and why
    kind: str  # what the rule meant to try: "valid", "replay", "expired", "foreign", ...
    expected: Expected = None
    recorded_before: bool = False

    def __repr__(self) -> str:
        op = self.signed.operation
        return f"<{self.kind} {op.PRIMARY} of {op.actor} nonce {op.nonce}>"


@dataclass(frozen=True)
class ChainLot:
    custodian: str
    recipient: str
    remaining: int
    material: int


@dataclass
class ChainState:
    lots: dict[bytes, ChainLot]
    roles: dict[str, int]
    indexed: set[str]
    binders: dict[bytes, str]
    nonces: dict[tuple[str, int], bool]


@dataclass
class Transformation:
    consumed: list[tuple[bytes, int]] = field(default_factory=list)
    produced: list[tuple[int, int]] = field(default_factory=list)


def prefer(preferred: Sequence[T], others: Sequence[T], odds: int = 4) -> st.SearchStrategy[T]:
    """Mostly (``odds`` to 1) one of ``preferred``, sometimes any of ``others``."""
    if not preferred:
        return st.sampled_from(others)
    # Repeated entries weigh (one_of would not: it drops duplicate branches).
    weight = -(-odds * len(others) // len(preferred))
    return st.sampled_from(list(preferred) * weight + list(others))


def observed(outcome: Mine2CellError | None) -> Expected:
    if outcome is None:
        return None
    if isinstance(outcome, LedgerRejected):
        return outcome.error, outcome.args_by_name
    return type(outcome).__name__, {"message": str(outcome)}


def _normal(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value


def agrees(expected: Expected, actual: Expected) -> bool:
    """The outcome is the predicted one: success, or the same error with the predicted args."""
    if expected is None or actual is None:
        return expected is actual
    name, args = expected
    return name == actual[0] and all(
        key in actual[1] and _normal(actual[1][key]) == _normal(value)
        for key, value in args.items()
    )


quantities = st.one_of(
    st.just(1), st.just(UINT96_MAX), st.integers(1, 10**9), st.integers(1, UINT96_MAX)
)
custom_nonces = st.one_of(st.sampled_from([0, 1, 255, 256, 2**256 - 1]), st.integers(0, 2**256 - 1))


class LedgerMachine(RuleBasedStateMachine):
    world: ClassVar[World]

    def __init__(self) -> None:
        super().__init__()
        self.world.reset()
        w = self.world
        w.examples += 1
        self.w3 = w.w3
        self.ledger = w.ledger
        self.domain = self.ledger.domain
        self.floor = w.floor
        self.address = {name: s.address for name, s in w.signers.items()}
        self.address[NOBODY] = ZERO_ADDRESS
        roles: dict[str, int] = {self.address["relayer"]: RELAYER}
        for name, (mask, _, _) in ROLES.items():
            roles[self.address[name]] = mask
        self.model = Model(self.address["governor"], roles, set(roles))
        self.views = Views(self.w3, self.ledger.address)
        # The setup (deploying, accrediting the cast) used some nonces of the governor.
        signers = sorted(set(self.address.values()))
        words = self.views.read([("nonceBitmap", (a, w)) for a in signers for w in (0, 1)])
        for i, address in enumerate(signers):
            (low,), (high,) = words[2 * i], words[2 * i + 1]
            assert high == 0
            self.model.used |= {(address, n) for n in range(256) if low >> n & 1}
        self.counter = 0
        self.nonce_cursor: dict[str, int] = {}
        self.pending: list[Planned] = []
        self.history: list[Planned] = []
        self.tried_lots: set[bytes] = {UNKNOWN_LOT}
        self.tried_passports: set[bytes] = set()
        self.chain_created: dict[bytes, int] = {}
        self.chain_consumed: dict[bytes, int] = defaultdict(int)
        # Per step: what was submitted, what came of it, what the logs said.
        self.step = 0
        self.step_planned: list[Planned] = []
        self.step_ops: dict[bytes, Operation] = {}
        self.step_outcomes: list[Expected] = []
        # Custody events of the step in log order: (event, lot, from, to, event id).
        self.step_custody: list[tuple[str, bytes, str, str, bytes]] = []
        self.step_transforms: dict[bytes, Transformation] = {}
        self.lots_before: dict[bytes, ChainLot] = {}
        self._chain: tuple[int, ChainState] | None = None
        contract = self.ledger.contract
        self._events = {
            bytes(HexBytes(event.topic)): event
            for event in (
                contract.events.LotCommissioned(),
                contract.events.LotProduced(),
                contract.events.LotConsumed(),
                contract.events.LotShipped(),
                contract.events.LotReceived(),
                contract.events.ShipmentRejected(),
                contract.events.ShipmentRecalled(),
                contract.events.LotsTransformed(),
            )
        }

    # -- drawing operations ---------------------------------------------------------------------

    def holders(self, mask: int) -> list[str]:
        return [n for n in NAMES if self.model.roles.get(self.address[n], 0) & mask]

    def fresh(self, prefix: str) -> bytes:
        self.counter += 1
        return keccak(text=f"{prefix} {self.counter}")

    def new_lot_id(self, data: st.DataObject, avoid: Sequence[bytes] = ()) -> LotId:
        """Mostly a fresh id; sometimes one that exists (maybe an input) or zero."""
        existing = [*self.model.lots, *avoid]
        kinds = ["fresh"] * 12 + (["existing"] if existing else []) + ["zero"]
        kind = data.draw(st.sampled_from(kinds), label="lot id")
        if kind == "existing":
            lot = data.draw(st.sampled_from(existing), label="existing lot")
        elif kind == "zero":
            lot = ZERO_ID
        else:
            lot = self.fresh("lot")
        self.tried_lots.add(lot)
        return LotId(lot)

    def some_lot(self, data: st.DataObject, preferred: Sequence[bytes], odds: int = 4) -> LotId:
        others = [*self.model.lots, UNKNOWN_LOT]
        return LotId(data.draw(prefer(preferred, others, odds), label="lot"))

    def lots_where(self, test: Any) -> list[bytes]:
        return [lot for lot, state in self.model.lots.items() if test(state)]

    def name_of(self, address: str | None) -> str | None:
        for name, known in self.address.items():
            if known == address:
                return name
        return None

    def draw_commission(self, data: st.DataObject) -> Spec:
        who = data.draw(prefer(self.holders(MINE | RECYCLER), NAMES), label="commissioner")
        roles = self.model.roles.get(self.address[who], 0)
        fitting = [f for f, bit in ((0, MINE), (1, RECYCLER), (2, RECYCLER)) if roles & bit]
        feedstock = data.draw(prefer(fitting, [0, 1, 2, 3, 255]), label="feedstock")
        fields = {
            "lot": self.new_lot_id(data),
            "material": data.draw(
                st.one_of(st.sampled_from(MATERIALS), st.integers(0, 2**32 - 1)),
                label="material",
            ),
            "quantity": data.draw(quantities, label="quantity"),
            "feedstock": feedstock,
            "footprint": data.draw(st.integers(0, 2**64 - 1), label="footprint"),
            "document_hash": keccak(text="assay"),
        }
        return Spec(Commission, who, fields)

    def draw_ship(self, data: st.DataObject) -> Spec:
        lot = self.some_lot(data, self.lots_where(lambda s: s.recipient is None))
        custodian = self.name_of(self.model.lots[lot].custodian) if lot in self.model.lots else None
        who = data.draw(prefer([custodian] if custodian else [], NAMES), label="shipper")
        recipients = [n for n in self.holders(CUSTODY_ROLES) if n != who]
        recipient = data.draw(prefer(recipients, [*NAMES, NOBODY]), label="recipient")
        return Spec(Ship, who, {"lot": lot, "recipient": self.address[recipient]})

    def draw_handoff(self, data: st.DataObject, op_type: type[Operation]) -> Spec:
        lot = self.some_lot(data, self.lots_where(lambda s: s.recipient is not None))
        state = self.model.lots.get(lot)
        sender = self.name_of(state.custodian) if state else None
        recipient = self.name_of(state.recipient) if state else None
        signer, counterparty = (sender, recipient) if op_type is Recall else (recipient, sender)
        # Sometimes someone else: mostly another holder of material, who passes the role check.
        others = [*self.holders(CUSTODY_ROLES), *NAMES]
        who = data.draw(prefer([signer] if signer else [], others), label="signer")
        other = data.draw(
            prefer([counterparty] if counterparty else [], [*NAMES, NOBODY]), label="counterparty"
        )
        return Spec(op_type, who, {"lot": lot, "counterparty": self.address[other]})

    def usable(self, who: str) -> list[bytes]:
        """The lots ``who`` holds and could consume or ship."""
        address = self.address[who]
        return self.lots_where(
            lambda s: s.custodian == address and s.recipient is None and s.remaining
        )

    def draw_actor(self, data: st.DataObject, roles: int, label: str) -> str:
        """Mostly a holder of ``roles`` that holds lots, else of ``roles``, sometimes anyone."""
        holders = self.holders(roles)
        stocked = [n for n in holders if self.usable(n)]
        return data.draw(prefer(stocked or holders, NAMES), label=label)

    def draw_inputs(self, data: st.DataObject, who: str, most: int) -> list[Input]:
        held = self.usable(who)
        # Mostly as many inputs as the actor has lots to draw them from.
        fitting = range(1, min(most, len(held)) + 1) or [1]
        count = data.draw(prefer(fitting, range(most + 1), odds=9), label="inputs")
        chosen: list[Input] = []
        for _ in range(count):
            # Mostly a lot not yet among the inputs (the same lot twice is tried sometimes).
            unused = [lot for lot in held if all(lot != item.lot for item in chosen)]
            lot = self.some_lot(data, unused, odds=9)
            remaining = self.model.lots[lot].remaining if lot in self.model.lots else 0
            how = data.draw(
                prefer(["some", "all"], ["one gram more", "any"]) if remaining else st.just("any"),
                label="consume",
            )
            if how == "some":
                quantity = data.draw(st.integers(1, max(1, remaining // count)), label="grams")
            elif how == "all":
                quantity = remaining
            elif how == "one gram more":
                quantity = min(remaining + 1, UINT96_MAX)
            else:
                quantity = data.draw(quantities, label="grams")
            chosen.append(Input(lot, quantity))
        return chosen

    def draw_transform(self, data: st.DataObject) -> Spec:
        who = self.draw_actor(data, PROCESSOR | CELL_MAKER, "processor")
        inputs = self.draw_inputs(data, who, 3)
        consumed: dict[int, int] = defaultdict(int)
        for item in inputs:
            if item.lot in self.model.lots:
                consumed[self.model.lots[item.lot].material] += item.quantity
        outputs = []
        # Rarely many outputs: a costly operation, which the batch's gas estimate must cover.
        count = data.draw(prefer([1, 2, 3], [0, 12], odds=9), label="outputs")
        for _ in range(count):
            material = data.draw(
                prefer(sorted(consumed), [*MATERIALS, 0, 2**32 - 1]), label="material"
            )
            # Of a material consumed: mostly a share of its mass, sometimes all of it, or one
            # gram more than was consumed (mass from nowhere), or anything.
            mass = min(consumed.get(material, 0), UINT96_MAX)
            how = data.draw(
                prefer(["share", "all"], ["one gram more", "any"]) if mass else st.just("any"),
                label="produce",
            )
            if how == "share":
                quantity = data.draw(st.integers(1, max(1, mass // count)), label="grams")
            elif how == "all":
                quantity = mass
            elif how == "one gram more":
                quantity = min(consumed[material] + 1, UINT96_MAX)
            else:
                quantity = data.draw(quantities, label="grams")
            lot = self.new_lot_id(data, avoid=[i.lot for i in inputs])
            outputs.append(Output(lot, material, quantity, keccak(text="output")))
        return Spec(Transform, who, {"inputs": inputs, "outputs": outputs, "footprint": 7})

    def draw_bind(self, data: st.DataObject) -> Spec:
        who = self.draw_actor(data, CELL_MAKER, "cell maker")
        kinds = ["fresh"] * 4 + (["bound"] if self.model.passports else []) + ["zero"]
        kind = data.draw(st.sampled_from(kinds), label="passport")
        if kind == "bound":
            passport = data.draw(st.sampled_from(list(self.model.passports)))
        else:
            passport = ZERO_ID if kind == "zero" else self.fresh("passport")
        self.tried_passports.add(passport)
        fields = {
            "passport": PassportId(passport),
            "inputs": self.draw_inputs(data, who, 3),
            "footprint": 3,
            "document_hash": keccak(text="passport"),
        }
        return Spec(BindPassport, who, fields)

    def draw_accredit(self, data: st.DataObject) -> Spec:
        who = data.draw(prefer(["governor"], NAMES), label="signer")
        # Mostly re-accredit a revoked member of the cast with its own roles.
        revoked = [n for n in ROLES if self.model.roles[self.address[n]] == 0]
        others = [n for n in NAMES if n != "relayer"] + [NOBODY]
        participant = data.draw(prefer(revoked, others), label="participant")
        own = [ROLES[participant][0]] if participant in ROLES else []
        other_roles = [MINE | RECYCLER, PROCESSOR | CELL_MAKER, CELL_MAKER, 0, 64, 255]
        roles = data.draw(st.one_of(prefer(own, other_roles), st.integers(0, 255)), label="roles")
        country = data.draw(
            prefer(["CD", "AU", "FI"], [b"cd", b"C1", b"\x00\x00"]), label="country"
        )
        fields = {
            "participant": self.address[participant],
            "roles": roles,
            "facility": facility(participant),
            "country": country if isinstance(country, str) else "XX",
        }
        if isinstance(country, bytes):
            fields["raw_country"] = country  # set past the Python-side validation, see sign()
        return Spec(Accredit, who, fields)

    def draw_revoke(self, data: st.DataObject) -> Spec:
        who = data.draw(prefer(["governor"], NAMES), label="signer")
        # Mostly an accredited participant (never the relayer: it submits every batch).
        members = [n for n in NAMES if n != "relayer"]
        accredited = [n for n in members if self.model.roles.get(self.address[n], 0)]
        participant = data.draw(prefer(accredited, [*members, NOBODY]), label="participant")
        return Spec(Revoke, who, {"participant": self.address[participant]})

    def draw_any(self, data: st.DataObject) -> Spec:
        """Any operation, weighted towards what moves the supply chain on from its state."""
        lots = self.model.lots.values()
        holders = {s.custodian for s in lots if s.recipient is None and s.remaining}
        makers = {self.address[n] for n in self.holders(PROCESSOR | CELL_MAKER)}
        cells = {self.address[n] for n in self.holders(CELL_MAKER)}
        kinds = ["commission"] * 3 + ["accredit", "revoke", "reject", "recall"]
        kinds += ["ship"] * (3 if holders else 1)
        kinds += ["receive"] * (4 if any(s.recipient for s in lots) else 1)
        kinds += ["transform"] * (4 if holders & makers else 1)
        kinds += ["bind"] * (3 if holders & cells else 1)
        kind = data.draw(st.sampled_from(kinds), label="operation")
        if kind in ("receive", "reject", "recall"):
            op_type = {"receive": Receive, "reject": Reject, "recall": Recall}[kind]
            return self.draw_handoff(data, op_type)
        draw = {
            "commission": self.draw_commission,
            "ship": self.draw_ship,
            "transform": self.draw_transform,
            "bind": self.draw_bind,
            "accredit": self.draw_accredit,
            "revoke": self.draw_revoke,
        }[kind]
        return draw(data)

    # -- signing, predicting, relaying -------------------------------------------------------

    def next_nonce(self, actor: str) -> int:
        """The lowest nonce of ``actor`` neither used nor handed out before (as the client does,
        without asking the node each time)."""
        nonce = self.nonce_cursor.get(actor, 0)
        while (actor, nonce) in self.model.used:
            nonce += 1
        self.nonce_cursor[actor] = nonce + 1
        return nonce

    def build(self, spec: Spec, *, deadline: int | None = None) -> Operation:
        fields = dict(spec.fields)
        raw_country = fields.pop("raw_country", None)
        actor = self.address[spec.who]
        nonce = spec.nonce if spec.nonce is not None else self.next_nonce(actor)
        if deadline is None:
            deadline = int(time.time()) + 3600
        op = spec.op_type(actor=actor, nonce=nonce, deadline=deadline, **fields)
        if raw_country is not None:
            # A malformed country the Python side would refuse, to reach the ledger's own check.
            object.__setattr__(op, "country", raw_country)
        return op

    def sign(self, op: Operation, domain: Domain | None = None) -> SignedOperation:
        signer = self.world.signers[self.name_of(op.actor) or ""]
        return sign(op, signer, domain or self.domain)

    def plan(self, signed: SignedOperation, kind: str, fault: Refused | None = None) -> Planned:
        """Predict the operation's outcome (updating the model) and queue it for relaying."""
        recorded_before = (signed.operation.actor, signed.operation.nonce) in self.model.used
        expected = self.model.execute(signed.operation, fault, self.floor)
        planned = Planned(signed, fault, kind, expected, recorded_before)
        self.pending.append(planned)
        return planned

    def draw_nonce(self, data: st.DataObject, spec: Spec) -> Spec:
        if data.draw(st.sampled_from(["next"] * 9 + ["custom"]), label="nonce") == "next":
            return spec
        nonce = data.draw(custom_nonces, label="custom nonce")
        return Spec(spec.op_type, spec.who, spec.fields, nonce)

    def plan_valid(self, data: st.DataObject, spec: Spec) -> None:
        self.plan(self.sign(self.build(self.draw_nonce(data, spec))), "valid")

    def plan_expired(self, data: st.DataObject) -> None:
        spec = self.draw_any(data)
        # Every block after the snapshot is at least as late as it: these are all past.
        deadline = data.draw(
            st.one_of(st.just(self.floor - 1), st.just(0), st.integers(0, self.floor - 1)),
            label="deadline",
        )
        self.plan(self.sign(self.build(spec, deadline=deadline)), "expired")

    def plan_foreign(self, data: st.DataObject) -> None:
        spec = self.draw_any(data)
        here = self.domain
        if data.draw(st.booleans(), label="foreign chain (else foreign ledger)"):
            chain_id = data.draw(
                st.one_of(st.sampled_from([1, 11155111]), st.integers(0, 2**256 - 1)).filter(
                    lambda c: c != here.chain_id
                ),
                label="chain id",
            )
            foreign = Domain(chain_id, here.verifying_contract)
        else:
            address = data.draw(
                st.binary(min_size=20, max_size=20)
                .map(to_checksum_address)
                .filter(lambda a: a != here.verifying_contract),
                label="ledger address",
            )
            foreign = Domain(here.chain_id, address)
        op = self.build(spec)
        fault = Refused("LedgerSignerMismatch", actor=op.actor)
        self.plan(self.sign(op, foreign), "foreign", fault)

    def plan_tampered(self, data: st.DataObject) -> None:
        op = self.build(self.draw_any(data))
        good = self.sign(op)
        how = data.draw(st.sampled_from(["high-s", "bad-v", "other-key"]), label="tampering")
        sig = good.signature
        if how == "high-s":
            high = (SECP256K1_N - int.from_bytes(sig.s, "big")).to_bytes(32, "big")
            forged = Signature(55 - sig.v, sig.r, high)
            fault = Refused("LedgerHighSSignature", s=high)
        elif how == "bad-v":
            forged = Signature(data.draw(st.sampled_from([0, 1, 26, 29, 255])), sig.r, sig.s)
            fault = Refused("LedgerInvalidSignature")
        else:
            name = data.draw(st.sampled_from([n for n in NAMES if n != self.name_of(op.actor)]))
            forger = self.world.signers[name]
            forged = forger.sign_digest(good.event_id)
            fault = Refused("LedgerSignerMismatch", recovered=forger.address, actor=op.actor)
        self.plan(SignedOperation(op, forged, good.event_id), how, fault)

    def plan_replay(self, data: st.DataObject) -> None:
        # No precondition on the rules (the history is never empty after the initial stocking):
        # preconditions would renumber the rules as the state changes and hamper shrinking.
        earlier = data.draw(st.sampled_from(self.history), label="earlier operation")
        self.plan(earlier.signed, "replay", earlier.fault)

    def relay_pending(self) -> None:
        planned, self.pending = self.pending, []
        self.lots_before = self.chain_state().lots
        self.step_custody.clear()
        self.step_transforms.clear()
        calls = [p.signed for p in planned]
        # A simulation tells the relayer which operations of a batch to drop, and why: it must
        # agree with what the batch then does. (Checked on batches only, to save time.)
        simulated = self.ledger.simulate(calls) if len(calls) > 1 else None
        # With the node's gas estimate: an operation that runs out of gas must fail the whole
        # batch (LedgerBatchOutOfGas, raised here), never pass for a rejection.
        result = self.ledger.relay(calls)
        self.step += 1
        self.world.steps += 1
        outcomes = [observed(o) for o in result.outcomes]
        for i, (p, actual) in enumerate(zip(planned, outcomes, strict=True)):
            op = p.signed.operation
            where = f"operation {i} ({p.kind} {op.PRIMARY} by {self.name_of(op.actor)}): {op}"
            assert agrees(p.expected, actual), (
                f"{where}\n  model predicted {p.expected}\n  chain answered  {actual}"
            )
            if simulated is not None:
                assert agrees(p.expected, observed(simulated[i])), (
                    f"{where}\n  simulation answered {simulated[i]!r}, the relay {actual}"
                )
            self.world.reached[
                f"{op.PRIMARY} ({p.kind}): {actual[0] if actual else 'recorded'}"
            ] += 1
        self.step_planned, self.step_outcomes = planned, outcomes
        self.step_ops = {
            p.signed.operation.digest(self.domain): p.signed.operation for p in planned
        }
        self.history.extend(planned)
        receipt = self.w3.eth.get_transaction_receipt(HexBytes(result.tx_hash))
        self.read_logs(receipt, planned)

    def read_logs(self, receipt: TxReceipt, planned: list[Planned]) -> None:
        headers: set[bytes] = set()
        consumed: list[tuple[bytes, bytes, int, int]] = []
        produced: list[tuple[bytes, int, int]] = []
        for log in receipt["logs"]:
            event = self._events.get(bytes(log["topics"][0])) if log["topics"] else None
            if event is None or log["address"] != self.ledger.address:
                continue
            args = event.process_log(log)["args"]
            name = event.event_name
            if name in ("LotCommissioned", "LotProduced"):
                lot = bytes(args["lot"])
                assert lot not in self.chain_created, f"lot {lot.hex()} created twice"
                self.chain_created[lot] = int(args["quantity"])
                event_id = bytes(args["eventId"])
                self.step_custody.append((name, lot, ZERO_ADDRESS, args["actor"], event_id))
                if name == "LotProduced":
                    produced.append((bytes(args["eventId"]), args["material"], args["quantity"]))
            elif name == "LotConsumed":
                lot = bytes(args["lot"])
                self.chain_consumed[lot] += int(args["quantity"])
                left = self.chain_created[lot] - self.chain_consumed[lot]
                assert int(args["remaining"]) == left, f"LotConsumed of {lot.hex()} miscounts"
                consumed.append((bytes(args["eventId"]), lot, args["quantity"], args["remaining"]))
            elif name in ("LotShipped", "LotReceived", "ShipmentRejected", "ShipmentRecalled"):
                event_id = bytes(args["eventId"])
                lot = bytes(args["lot"])
                self.step_custody.append((name, lot, args["from"], args["to"], event_id))
            else:
                headers.add(bytes(args["eventId"]))
        for event_id in headers:
            self.step_transforms[event_id] = Transformation(
                [(lot, q) for e, lot, q, _ in consumed if e == event_id],
                [(m, q) for e, m, q in produced if e == event_id],
            )

    def chain_state(self) -> ChainState:
        """Everything the model knows of, read from the chain in one batch; cached per step."""
        if self._chain is not None and self._chain[0] == self.step:
            return self._chain[1]
        lots = sorted(set(self.model.lots) | self.tried_lots)
        accounts = sorted(set(self.address.values()))
        passports = sorted(self.tried_passports)
        nonces = [(p.signed.operation.actor, p.signed.operation.nonce) for p in self.step_planned]
        replies = iter(
            self.views.read(
                [("lot", (lot,)) for lot in lots]
                + [("participant", (account,)) for account in accounts]
                + [("passportBinder", (passport,)) for passport in passports]
                + [("nonceUsed", key) for key in nonces]
            )
        )
        state = ChainState({}, {}, set(), {}, {})
        for lot in lots:
            custodian, recipient, remaining, material = next(replies)
            state.lots[lot] = ChainLot(
                to_checksum_address(custodian), to_checksum_address(recipient), remaining, material
            )
        for account in accounts:
            index, roles, _, _ = next(replies)
            state.roles[account] = roles
            if index:
                state.indexed.add(account)
        for passport in passports:
            (binder,) = next(replies)
            state.binders[passport] = to_checksum_address(binder)
        for key in nonces:
            (state.nonces[key],) = next(replies)
        self._chain = (self.step, state)
        return state

    def plan_delivery(self, data: st.DataObject) -> None:
        """A mine or recycler commissions a lot, ships it to a processor or cell maker, and the
        recipient receives it: the usual way material reaches the ones who transform it."""
        who = data.draw(
            st.sampled_from(self.holders(MINE | RECYCLER) or ["mine_cd"]), label="producer"
        )
        roles = self.model.roles.get(self.address[who], 0)
        lot = LotId(self.fresh("lot"))
        self.tried_lots.add(lot)
        fields = {
            "lot": lot,
            "material": data.draw(st.sampled_from(MATERIALS), label="material"),
            "quantity": data.draw(quantities, label="quantity"),
            "feedstock": 0 if roles & MINE else 2,
            "footprint": 11,
            "document_hash": keccak(text="assay"),
        }
        self.plan(self.sign(self.build(Spec(Commission, who, fields))), "valid")
        makers = [n for n in self.holders(PROCESSOR | CELL_MAKER) if n != who]
        if not makers:
            return
        # Mostly to one who holds nothing yet, so that every processor and cell maker has stock.
        empty = [n for n in makers if not self.usable(n)]
        to = data.draw(prefer(empty, makers), label="delivered to")
        ship = Spec(Ship, who, {"lot": lot, "recipient": self.address[to]})
        self.plan(self.sign(self.build(ship)), "valid")
        receive = Spec(Receive, to, {"lot": lot, "counterparty": self.address[who]})
        self.plan(self.sign(self.build(receive)), "valid")

    # -- rules -------------------------------------------------------------------------------

    @initialize(data=st.data(), lots=st.integers(1, 4))
    def stock_the_supply_chain(self, data: st.DataObject, lots: int) -> None:
        for _ in range(lots):
            self.plan_delivery(data)
        self.relay_pending()

    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        self.plan_delivery(data)
        self.relay_pending()

    @rule(data=st.data())
    def commission(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_commission(data))
        self.relay_pending()

    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_ship(data))
        self.relay_pending()

    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_handoff(data, Receive))
        self.relay_pending()

    @rule(data=st.data())
    def reject(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_handoff(data, Reject))
        self.relay_pending()

    @rule(data=st.data())
    def recall(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_handoff(data, Recall))
        self.relay_pending()

    @rule(data=st.data())
    def transform(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_transform(data))
        self.relay_pending()

    @rule(data=st.data())
    def bind_passport(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_bind(data))
        self.relay_pending()

    @rule(data=st.data())
    def accredit(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_accredit(data))
        self.relay_pending()

    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        self.plan_valid(data, self.draw_revoke(data))
        self.relay_pending()

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        self.plan_replay(data)
        self.relay_pending()

    @rule(data=st.data())
    def expired(self, data: st.DataObject) -> None:
        self.plan_expired(data)
        self.relay_pending()

    @rule(data=st.data())
    def foreign_domain(self, data: st.DataObject) -> None:
        self.plan_foreign(data)
        self.relay_pending()

    @rule(data=st.data())
    def tampered_signature(self, data: st.DataObject) -> None:
        self.plan_tampered(data)
        self.relay_pending()

    @rule(data=st.data(), size=st.integers(2, 8))
    def batch(self, data: st.DataObject, size: int) -> None:
        """Several operations in one transaction, each seeing the state the earlier ones left."""
        for _ in range(size):
            how = data.draw(
                st.sampled_from(
                    ["valid"] * 6 + ["expired", "foreign", "tampered", "replay", "duplicate"]
                ),
                label="batch item",
            )
            if how == "valid":
                self.plan_valid(data, self.draw_any(data))
            elif how == "expired":
                self.plan_expired(data)
            elif how == "foreign":
                self.plan_foreign(data)
            elif how == "tampered":
                self.plan_tampered(data)
            elif how == "replay" and self.history:
                self.plan_replay(data)
            elif how == "duplicate" and self.pending:
                # The same signed operation twice in one batch.
                twin = data.draw(st.sampled_from(self.pending), label="duplicated item")
                self.plan(twin.signed, "replay", twin.fault)
        if self.pending:
            self.relay_pending()

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def every_lot_on_chain_equals_the_model(self) -> None:
        chain = self.chain_state()
        for lot, lot_on_chain in chain.lots.items():
            model = self.model.lots.get(lot)
            if model is None:
                assert lot_on_chain.custodian == ZERO_ADDRESS, f"lot {lot.hex()} should not exist"
                continue
            expected = ChainLot(
                model.custodian, model.recipient or ZERO_ADDRESS, model.remaining, model.material
            )
            assert lot_on_chain == expected, f"lot {lot.hex()}"

    @invariant()
    def participants_and_passports_equal_the_model(self) -> None:
        chain = self.chain_state()
        for account, roles in chain.roles.items():
            assert roles == self.model.roles.get(account, 0), account
            assert (account in chain.indexed) == (account in self.model.indexed), account
        for passport, binder in chain.binders.items():
            assert binder == self.model.passports.get(passport, ZERO_ADDRESS), passport.hex()

    @invariant()
    def no_quantity_is_consumed_twice(self) -> None:
        chain = self.chain_state()
        assert set(self.chain_created) == set(self.model.lots)
        for lot, created in self.chain_created.items():
            consumed = self.chain_consumed.get(lot, 0)
            assert consumed + chain.lots[lot].remaining == created, f"lot {lot.hex()}"
            model = self.model.lots[lot]
            assert (model.created, model.consumed) == (created, consumed), f"lot {lot.hex()}"

    @invariant()
    def custody_moves_only_on_receipt_by_the_named_recipient(self) -> None:
        """Replays the step's custody events from the logs over the custody before the step: the
        result must be the custody on chain now, and custody moves only by a LotReceived of a
        Receive signed by the recipient the lot was shipped to, from its custodian."""
        custody = {lot: (was.custodian, was.recipient) for lot, was in self.lots_before.items()}
        for name, lot, sender, receiver, event_id in self.step_custody:
            custodian, recipient = custody.get(lot, (ZERO_ADDRESS, ZERO_ADDRESS))
            op = self.step_ops.get(event_id)
            assert op is not None, f"{name} of {lot.hex()} has no operation of this step"
            if name in ("LotCommissioned", "LotProduced"):
                assert custodian == ZERO_ADDRESS, f"{lot.hex()} created twice"
                assert isinstance(op, Commission | Transform) and op.actor == receiver
                custody[lot] = (receiver, ZERO_ADDRESS)
            elif name == "LotShipped":
                assert isinstance(op, Ship) and op.actor == sender == custodian
                assert recipient == ZERO_ADDRESS, f"{lot.hex()} shipped while in transit"
                custody[lot] = (custodian, receiver)
            elif name == "LotReceived":
                assert (sender, receiver) == (custodian, recipient), "received by someone not named"
                assert isinstance(op, Receive) and op.actor == receiver, "received unsigned"
                custody[lot] = (receiver, ZERO_ADDRESS)
            else:
                assert (sender, receiver) == (custodian, recipient), f"{name} of someone else"
                signer = receiver if name == "ShipmentRejected" else sender
                assert isinstance(op, Reject | Recall) and op.actor == signer
                custody[lot] = (custodian, ZERO_ADDRESS)
        for lot, now in self.chain_state().lots.items():
            expected = custody.get(lot, (ZERO_ADDRESS, ZERO_ADDRESS))
            assert (now.custodian, now.recipient) == expected, f"custody of {lot.hex()} moved"

    @invariant()
    def transformations_conserve_the_mass_of_each_material(self) -> None:
        chain = self.chain_state()
        for event_id, step in self.step_transforms.items():
            consumed: dict[int, int] = defaultdict(int)
            for lot, quantity in step.consumed:
                consumed[chain.lots[lot].material] += quantity
            produced: dict[int, int] = defaultdict(int)
            for material, quantity in step.produced:
                produced[material] += quantity
            for material, mass in produced.items():
                if material in consumed:
                    assert mass <= consumed[material], f"{event_id.hex()} made {material}"
        for p, outcome in zip(self.step_planned, self.step_outcomes, strict=True):
            op = p.signed.operation
            if isinstance(op, Transform) and outcome is None:
                assert p.signed.event_id in self.step_transforms

    @invariant()
    def replayed_expired_foreign_and_forged_signatures_are_refused(self) -> None:
        refusals = {
            "expired": {"LedgerExpiredDeadline"},
            "foreign": {"LedgerExpiredDeadline", "LedgerSignerMismatch"},
            "high-s": {"LedgerHighSSignature"},
            "bad-v": {"LedgerInvalidSignature"},
            "other-key": {"LedgerSignerMismatch"},
        }
        for p, outcome in zip(self.step_planned, self.step_outcomes, strict=True):
            if p.kind == "replay" and p.recorded_before:
                # Refused for its nonce, or earlier for its deadline or signature.
                allowed = {"LedgerNonceUsed", *refusals["expired"], *refusals["foreign"]}
                allowed |= refusals["high-s"] | refusals["bad-v"]
            else:
                allowed = refusals.get(p.kind, set())
            if allowed:
                assert outcome is not None and outcome[0] in allowed, (p.kind, outcome)

    @invariant()
    def used_nonces_equal_the_model(self) -> None:
        for (actor, nonce), used in self.chain_state().nonces.items():
            assert used == ((actor, nonce) in self.model.used), (actor, nonce)


@pytest.mark.anvil
@pytest.mark.slow
def test_random_operation_sequences_match_the_model(world: World) -> None:
    LedgerMachine.world = world
    started = time.monotonic()
    run_state_machine_as_test(LedgerMachine, settings=stateful_settings())
    print(
        f"{world.examples} sequences, {world.steps} steps, {sum(world.reached.values())} "
        f"operations in {time.monotonic() - started:.1f} s; outcomes reached:"
    )
    for outcome, count in sorted(world.reached.items()):
        print(f"  {count:6d}  {outcome}")
