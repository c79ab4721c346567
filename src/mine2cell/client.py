"""The signing client: one method per ledger operation, for a participant whose key is at hand.

Each method first checks the operation against the ledger's current state (the lot exists, the
signer holds it, it is not in transit, there is enough of it, the recipient may hold material,
the passport is free...) and raises InvalidInput naming the field at fault, before anything is
signed. Otherwise it builds the EIP-712 operation with the signer's next free nonce, signs it,
stores it in the relay's outbox and returns the acknowledgement (event id and status).

The checks read confirmed state: an operation that depends on one still waiting in the outbox
(receiving a lot whose shipment is not yet mined) should wait for that one to be confirmed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from eth_typing import ChecksumAddress

from mine2cell.chain.ledger import LedgerClient, LotView, ParticipantView
from mine2cell.codes import ALL_ROLES, CUSTODY_ROLES, Feedstock, Role, role_names
from mine2cell.errors import InvalidInput
from mine2cell.ids import parse_account, show_id
from mine2cell.relay import intake
from mine2cell.relay.outbox import Accepted, Outbox
from mine2cell.signing.codec import from_document
from mine2cell.signing.eip712 import (
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Correct,
    Input,
    LocalSigner,
    Operation,
    Output,
    Recall,
    Receive,
    Reject,
    Revoke,
    Ship,
    Transform,
)
from mine2cell.units import format_mass

DEFAULT_VALIDITY_SECONDS = 24 * 3600
DID_NOT_OCCUR, INCORRECT_DATA = 1, 2
PASS, FAIL = 1, 2


def _id(value: object, field: str) -> bytes:
    """A lot or passport id as the ledger stores it (32 bytes), checked before the ledger is
    asked about it: web3 would refuse anything else with an ABI error that names no field."""
    if not isinstance(value, bytes) or len(value) != 32:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else f"a {type(value).__name__}"
        raise InvalidInput(
            field,
            f"must be a 32-byte id, got {got}; mine2cell.ids.parse_id makes one from a lot "
            "number, a URI or 0x and 64 hex digits",
        )
    return value


class SigningClient:
    def __init__(
        self,
        ledger: LedgerClient,
        outbox: Outbox,
        signer: LocalSigner,
        *,
        validity_seconds: int = DEFAULT_VALIDITY_SECONDS,
    ) -> None:
        self.ledger = ledger
        self.outbox = outbox
        self.signer = signer
        self.validity_seconds = validity_seconds

    @property
    def address(self) -> ChecksumAddress:
        return self.signer.address

    # -- state checks ----------------------------------------------------------------------------

    def _me(self, required: int, what: str) -> ParticipantView:
        me = self.ledger.participant(self.address)
        if me is None or not me.accredited:
            raise InvalidInput(
                "signer",
                f"{self.address} is not an accredited participant of ledger "
                f"{self.ledger.address}; the governor must accredit it first",
            )
        if me.roles & required == 0:
            raise InvalidInput(
                "signer",
                f"{self.address} holds {role_names(me.roles)}; {what} needs "
                f"{role_names(required).replace(', ', ' or ')}",
            )
        return me

    def _governor(self) -> None:
        governor = self.ledger.governor()
        if self.address != governor:
            raise InvalidInput(
                "signer", f"{self.address} is not the governor ({governor}); only it may sign this"
            )

    def _lot(self, lot: bytes, field: str = "lot") -> LotView:
        view = self.ledger.lot(_id(lot, field))
        if view is None:
            raise InvalidInput(field, f"lot {show_id(lot)} does not exist on this ledger")
        return view

    def _held(self, lot: bytes, field: str = "lot") -> LotView:
        view = self._lot(lot, field)
        if view.custodian != self.address:
            raise InvalidInput(
                field, f"lot {show_id(lot)} is held by {view.custodian}, not by {self.address}"
            )
        if view.remaining == 0:
            raise InvalidInput(field, f"lot {show_id(lot)} was consumed to zero: it is closed")
        if view.recipient is not None:
            raise InvalidInput(
                field,
                f"lot {show_id(lot)} is in transit to {view.recipient}; it cannot be shipped or "
                "consumed until it is received, rejected or recalled",
            )
        return view

    def _shipment_to_me(self, lot: bytes) -> LotView:
        view = self._lot(lot)
        if view.recipient is None:
            raise InvalidInput("lot", f"lot {show_id(lot)} is not in transit")
        if view.recipient != self.address:
            raise InvalidInput(
                "lot",
                f"lot {show_id(lot)} is shipped to {view.recipient}, not to {self.address}",
            )
        return view

    def _consumable(self, inputs: Sequence[Input]) -> dict[bytes, LotView]:
        if not inputs:
            raise InvalidInput("inputs", "at least one input lot is needed")
        wanted: dict[bytes, int] = defaultdict(int)
        for item in inputs:
            wanted[item.lot] += item.quantity
        views = {}
        for lot, quantity in wanted.items():
            view = self._held(lot, "inputs")
            if view.remaining < quantity:
                raise InvalidInput(
                    "inputs",
                    f"lot {show_id(lot)} holds {format_mass(view.remaining)}, fewer than the "
                    f"{format_mass(quantity)} asked",
                )
            views[lot] = view
        return views

    # -- signing and accepting -----------------------------------------------------------------

    def _nonce(self) -> int:
        reserved = self.outbox.reserved_nonces(self.address)
        nonce = self.ledger.next_nonce(self.address)
        while nonce in reserved:
            nonce = self.ledger.next_nonce(self.address)
        return nonce

    def _submit(self, op_type: type[Operation], proof: bytes = b"", **fields: Any) -> Accepted:
        signed = self.ledger.sign(
            op_type,
            self.signer,
            deadline=int(time.time()) + self.validity_seconds,
            nonce=self._nonce(),
            **fields,
        )
        (result,) = intake.accept(self.outbox, self.ledger, [(signed, proof)])
        if not isinstance(result, Accepted):
            raise result
        return result

    # -- operations ----------------------------------------------------------------------------

    def perform(self, kind: str, fields: Mapping[str, Any]) -> Accepted:
        """The operation ``kind`` (an EIP-712 primary type) with ``fields`` by their Python names
        (``codec.parse_fields``), through the same checks as the named methods. Fields the
        signer can work out (a hand-off's counterparty) or that have defaults may be left out."""
        f = dict(fields)

        def need(name: str) -> Any:
            if name not in f:
                raise InvalidInput(f"message.{name}", f"is missing from the {kind} message")
            return f[name]

        match kind:
            case "Commission":
                feedstock = f.get("feedstock", Feedstock.PRIMARY)
                if feedstock not in Feedstock.__members__.values():
                    raise InvalidInput("message.feedstock", "must be 0, 1 or 2")
                return self.commission(
                    need("lot"),
                    material=need("material"),
                    quantity=need("quantity"),
                    feedstock=Feedstock(feedstock),
                    footprint=f.get("footprint", 0),
                    document_hash=f.get("document_hash", bytes(32)),
                )
            case "Ship":
                return self.ship(need("lot"), need("recipient"))
            case "Receive" | "Reject" | "Recall":
                handoff = {"Receive": self.receive, "Reject": self.reject, "Recall": self.recall}
                return handoff[kind](need("lot"))
            case "Transform":
                return self.transform(
                    need("inputs"), need("outputs"), footprint=f.get("footprint", 0)
                )
            case "BindPassport":
                return self.bind_passport(
                    need("passport"),
                    need("inputs"),
                    footprint=f.get("footprint", 0),
                    document_hash=f.get("document_hash", bytes(32)),
                )
            case "Correct":
                return self.correct(
                    need("target"), reason=need("reason"), corrective=f.get("corrective", ())
                )
            case "Attest":
                return self.attest(
                    need("passport"), verdict=need("verdict"), report_hash=need("report_hash")
                )
            case "Accredit":
                return self.accredit(
                    need("participant"),
                    roles=need("roles"),
                    facility=need("facility"),
                    country=need("country"),
                )
            case "Revoke":
                return self.revoke(need("participant"))
            case "Certify":
                return self.certify(
                    need("participant"),
                    scheme=need("scheme"),
                    valid_until=need("valid_until"),
                    document_hash=f.get("document_hash", bytes(32)),
                )
        raise InvalidInput("type", f"{kind!r} is not an operation type")

    def commission(
        self,
        lot: bytes,
        *,
        material: int,
        quantity: int,
        feedstock: Feedstock = Feedstock.PRIMARY,
        footprint: int = 0,
        document_hash: bytes = bytes(32),
    ) -> Accepted:
        """A mine (primary) or a recycler (pre-/post-consumer) records a new lot."""
        if feedstock not in Feedstock.__members__.values():
            raise InvalidInput(
                "feedstock",
                f"must be 0 (primary), 1 (pre-consumer) or 2 (post-consumer), got {feedstock!r}",
            )
        feedstock = Feedstock(feedstock)  # a plain int is welcome too
        required = Role.MINE if feedstock == Feedstock.PRIMARY else Role.RECYCLER
        self._me(required, f"commissioning {feedstock.name.lower().replace('_', '-')} material")
        if self.ledger.lot(_id(lot, "lot")) is not None:
            raise InvalidInput(
                "lot", f"lot {show_id(lot)} already exists; lot ids are never reused"
            )
        return self._submit(
            Commission,
            lot=lot,
            material=material,
            quantity=quantity,
            feedstock=feedstock,
            footprint=footprint,
            document_hash=document_hash,
        )

    def ship(self, lot: bytes, recipient: str) -> Accepted:
        self._me(CUSTODY_ROLES, "shipping")
        self._held(lot)
        to = parse_account(recipient, "recipient")
        if to == self.address:
            raise InvalidInput("recipient", "a lot cannot be shipped to its own custodian")
        other = self.ledger.participant(to)
        if other is None or other.roles & CUSTODY_ROLES == 0:
            held = role_names(other.roles) if other else "no accreditation"
            raise InvalidInput(
                "recipient",
                f"{to} may not hold material (it has {held}); a recipient must be an accredited "
                "mine, recycler, processor or cell maker",
            )
        return self._submit(Ship, lot=lot, recipient=to)

    def receive(self, lot: bytes) -> Accepted:
        self._me(CUSTODY_ROLES, "receiving")
        view = self._shipment_to_me(lot)
        return self._submit(Receive, lot=lot, counterparty=view.custodian)

    def reject(self, lot: bytes) -> Accepted:
        self._me(CUSTODY_ROLES, "rejecting a shipment")
        view = self._shipment_to_me(lot)
        return self._submit(Reject, lot=lot, counterparty=view.custodian)

    def recall(self, lot: bytes) -> Accepted:
        self._me(CUSTODY_ROLES, "recalling a shipment")
        view = self._lot(lot)
        if view.custodian != self.address:
            raise InvalidInput("lot", f"lot {show_id(lot)} is held by {view.custodian}, not by you")
        if view.recipient is None:
            raise InvalidInput("lot", f"lot {show_id(lot)} is not in transit")
        return self._submit(Recall, lot=lot, counterparty=view.recipient)

    def transform(
        self, inputs: Sequence[Input], outputs: Sequence[Output], *, footprint: int = 0
    ) -> Accepted:
        """Refining, splitting, blending: consume inputs, produce new lots."""
        self._me(Role.PROCESSOR | Role.CELL_MAKER, "a transformation")
        views = self._consumable(inputs)
        if not outputs:
            raise InvalidInput("outputs", "at least one output lot is needed")
        seen: set[bytes] = set()
        for out in outputs:
            if out.lot in seen or self.ledger.lot(out.lot) is not None:
                raise InvalidInput("outputs", f"lot {show_id(out.lot)} already exists")
            seen.add(out.lot)
        consumed: dict[int, int] = defaultdict(int)
        for item in inputs:
            consumed[views[item.lot].material] += item.quantity
        produced: dict[int, int] = defaultdict(int)
        for out in outputs:
            produced[out.material] += out.quantity
        for code, grams in produced.items():
            if code in consumed and grams > consumed[code]:
                raise InvalidInput(
                    "outputs",
                    f"{format_mass(grams)} of material {code} produced from "
                    f"{format_mass(consumed[code])} of it consumed: mass cannot be created",
                )
        return self._submit(
            Transform, inputs=tuple(inputs), outputs=tuple(outputs), footprint=footprint
        )

    def bind_passport(
        self,
        passport: bytes,
        inputs: Sequence[Input],
        *,
        footprint: int = 0,
        document_hash: bytes = bytes(32),
    ) -> Accepted:
        """A cell maker binds a battery's passport id to the material it consumed."""
        self._me(Role.CELL_MAKER, "binding a passport")
        binder = self.ledger.passport_binder(_id(passport, "passport"))
        if binder is not None:
            raise InvalidInput("passport", f"passport {show_id(passport)} is already bound")
        self._consumable(inputs)
        return self._submit(
            BindPassport,
            passport=passport,
            inputs=tuple(inputs),
            footprint=footprint,
            document_hash=document_hash,
        )

    def correct(self, target: bytes, *, reason: int, corrective: Sequence[bytes] = ()) -> Accepted:
        """Declare an event erroneous (EPCIS errorDeclaration). An auditor may correct any event;
        anyone else only their own, proved by the original operation kept in this outbox."""
        if reason not in (DID_NOT_OCCUR, INCORRECT_DATA):
            raise InvalidInput("reason", "must be 1 (did not occur) or 2 (incorrect data)")
        me = self.ledger.participant(self.address)
        if (me is None or not me.accredited) and self.address != self.ledger.governor():
            raise InvalidInput("signer", f"{self.address} is not an accredited participant")
        proof = b""
        if me is None or not me.roles & Role.AUDITOR:
            status = self.outbox.status(target)
            if status is None:
                raise InvalidInput(
                    "target",
                    f"event 0x{target.hex()} is not in this service's outbox, so its authorship "
                    "cannot be proved; only an auditor may correct it",
                )
            original, _ = from_document(self.outbox.document(target), self.ledger.domain)
            if original.operation.actor != self.address:
                raise InvalidInput(
                    "target",
                    f"event 0x{target.hex()} was signed by {original.operation.actor}; only its "
                    "author or an auditor may correct it",
                )
            proof = original.operation.encode_data()
        return self._submit(
            Correct, proof, target=target, reason=reason, corrective=tuple(corrective)
        )

    def attest(self, passport: bytes, *, verdict: int, report_hash: bytes) -> Accepted:
        self._me(Role.AUDITOR, "an attestation")
        if verdict not in (PASS, FAIL):
            raise InvalidInput("verdict", "must be 1 (pass) or 2 (fail)")
        if self.ledger.passport_binder(_id(passport, "passport")) is None:
            raise InvalidInput("passport", f"passport {show_id(passport)} was never bound")
        return self._submit(Attest, passport=passport, verdict=verdict, report_hash=report_hash)

    def accredit(self, participant: str, *, roles: int, facility: bytes, country: str) -> Accepted:
        self._governor()
        if roles == 0 or roles & ~int(ALL_ROLES):
            raise InvalidInput("roles", f"{roles} is not a valid non-empty set of roles")
        return self._submit(
            Accredit,
            participant=parse_account(participant, "participant"),
            roles=roles,
            facility=facility,
            country=country,
        )

    def revoke(self, participant: str) -> Accepted:
        self._governor()
        account = parse_account(participant, "participant")
        view = self.ledger.participant(account)
        if view is None or not view.accredited:
            raise InvalidInput("participant", f"{account} is not accredited; nothing to revoke")
        return self._submit(Revoke, participant=account)

    def certify(
        self, participant: str, *, scheme: bytes, valid_until: int, document_hash: bytes
    ) -> Accepted:
        self._governor()
        account = parse_account(participant, "participant")
        if self.ledger.participant(account) is None:
            raise InvalidInput("participant", f"{account} was never accredited")
        return self._submit(
            Certify,
            participant=account,
            scheme=scheme,
            valid_until=valid_until,
            document_hash=document_hash,
        )
