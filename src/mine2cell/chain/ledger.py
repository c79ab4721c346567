"""The ledger contract seen from Python: deploy, submit signed operations, read state."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from eth_utils.abi import collapse_if_tuple, function_abi_to_4byte_selector
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxParams, TxReceipt

from mine2cell.chain.artifacts import Artifact, load_artifact
from mine2cell.chain.revert import decode_exception, decode_revert
from mine2cell.errors import Mine2CellError, NodeError, TransactionFailed
from mine2cell.signing.eip712 import Domain, LocalSigner, Operation, SignedOperation, sign

ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)
DEFAULT_VALIDITY_SECONDS = 3600
# Headroom over the node's gas estimate: the estimate is exact for the state it ran on, and a
# batch may land on a slightly different one.
GAS_MARGIN_PERCENT = 20

# Upper bounds of the gas one operation uses inside a batch, for its execution when every slot it
# touches is cold, with room to spare (measured figures in bench/gas.md; tests/chain/
# test_gas_bounds.py checks each bound against a cold run). Gas that is not used is not paid for:
# the bounds only decide how many operations fit in one batch.
_EXECUTION_GAS: dict[str, int] = {
    "accredit": 130_000,
    "revoke": 50_000,
    "certify": 110_000,
    "commission": 110_000,
    "ship": 60_000,
    "receiveLot": 60_000,
    "reject": 60_000,
    "recall": 60_000,
    "transform": 50_000,
    "bindPassport": 80_000,
    "correct": 50_000,
    "attest": 60_000,
}
_GAS_PER_INPUT = 35_000
_GAS_PER_OUTPUT = 60_000
_GAS_PER_CORRECTIVE = 2_000
# Per operation in a batch: the delegatecall, copying its call data, and an OperationFailed log
# with the reason should it fail.
_BATCH_GAS_PER_OPERATION = 8_000
# Per batch: the transaction itself and the relay's entry checks.
BATCH_BASE_GAS = 21_000 + 15_000
# Call data costs at most 16 gas a byte (EIP-2028); counting every byte as non-zero bounds it.
_GAS_PER_CALLDATA_BYTE = 16


def operation_gas_bound(op: Operation, calldata_size: int) -> int:
    """Gas that operation ``op`` (ABI-encoded in ``calldata_size`` bytes) adds to a batch, at
    most."""
    gas = _EXECUTION_GAS[op.FUNCTION] + _BATCH_GAS_PER_OPERATION
    gas += _GAS_PER_CALLDATA_BYTE * (calldata_size + 64)  # + offset and length words in bytes[]
    gas += _GAS_PER_INPUT * len(getattr(op, "inputs", ()))
    gas += _GAS_PER_OUTPUT * len(getattr(op, "outputs", ()))
    gas += _GAS_PER_CORRECTIVE * len(getattr(op, "corrective", ()))
    return gas


class Transactor:
    """Signs and sends transactions from one local account, with explicit gas, a locally tracked
    nonce and EIP-1559 fees, and waits for the receipt."""

    def __init__(self, w3: Web3, signer: LocalSigner) -> None:
        self.w3 = w3
        self.signer = signer
        self._account = Account.from_key(signer.key_bytes)
        self._nonce: int | None = None
        self._chain_id = w3.eth.chain_id

    @property
    def address(self) -> ChecksumAddress:
        return self.signer.address

    def resync_nonce(self) -> None:
        self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")

    def fees(self) -> tuple[int, int]:
        """EIP-1559 (max fee, priority fee) for a transaction sent now: room for the base fee to
        double before it is mined."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
        tip = self.w3.eth.max_priority_fee
        return 2 * base + tip, tip

    def estimate(self, to: ChecksumAddress | None, data: bytes) -> int:
        params: TxParams = {"from": self.address, "data": HexBytes(data)}
        if to is not None:
            params["to"] = to
        try:
            return self.w3.eth.estimate_gas(params)
        except Exception as exc:
            decoded = decode_exception(exc)
            if decoded is not None:
                raise decoded from exc
            raise

    def sign_transaction(
        self,
        to: ChecksumAddress | None,
        data: bytes,
        *,
        gas: int,
        nonce: int,
        max_fee: int,
        priority_fee: int,
    ) -> tuple[bytes, bytes]:
        """Sign an EIP-1559 transaction; return (hash, raw bytes). Nothing is sent."""
        tx: dict[str, Any] = {
            "chainId": self._chain_id,
            "nonce": nonce,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority_fee,
            "data": data,
            "value": 0,
            "type": 2,
        }
        if to is not None:
            tx["to"] = to
        signed = self._account.sign_transaction(tx)
        return bytes(signed.hash), bytes(signed.raw_transaction)

    def send(self, to: ChecksumAddress | None, data: bytes, gas: int | None = None) -> TxReceipt:
        if gas is None:
            gas = self.estimate(to, data) * (100 + GAS_MARGIN_PERCENT) // 100
        if self._nonce is None:
            self.resync_nonce()
        assert self._nonce is not None
        max_fee, tip = self.fees()
        _, raw = self.sign_transaction(
            to, data, gas=gas, nonce=self._nonce, max_fee=max_fee, priority_fee=tip
        )
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            self._nonce = None  # resynchronise from the node on the next send
            decoded = decode_exception(exc)
            if decoded is not None:
                raise decoded from exc
            raise NodeError(f"the node refused the transaction: {exc}") from exc
        self._nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
        if receipt["status"] != 1:
            raise self._failure(to, data, gas, receipt)
        return receipt

    def _failure(
        self, to: ChecksumAddress | None, data: bytes, gas: int, receipt: TxReceipt
    ) -> Mine2CellError:
        # Replay the call at the failed block to learn the reason.
        call: TxParams = {"from": self.address, "data": HexBytes(data), "gas": gas}
        if to is not None:
            call["to"] = to
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except Exception as exc:
            decoded = decode_exception(exc)
            if decoded is not None:
                return decoded
        return TransactionFailed(
            f"transaction 0x{bytes(receipt['transactionHash']).hex()} failed "
            f"(gas used {receipt['gasUsed']} of {gas})"
        )


@functools.cache
def _function_signatures() -> dict[str, tuple[bytes, list[str]]]:
    """Per ledger function: its selector and its argument types as eth-abi writes them."""
    signatures: dict[str, tuple[bytes, list[str]]] = {}
    for item in load_artifact("Ledger").abi:
        if item.get("type") == "function":
            types = [collapse_if_tuple(dict(arg)) for arg in item.get("inputs", [])]
            signatures[item["name"]] = (function_abi_to_4byte_selector(item), types)  # type: ignore[arg-type]
    return signatures


@dataclass(frozen=True)
class LotView:
    custodian: ChecksumAddress
    recipient: ChecksumAddress | None
    remaining: int
    material: int

    @property
    def in_transit(self) -> bool:
        return self.recipient is not None


@dataclass(frozen=True)
class ParticipantView:
    index: int
    roles: int
    country: str
    facility: bytes

    @property
    def accredited(self) -> bool:
        return self.roles != 0


@dataclass(frozen=True)
class Recorded:
    """Where an operation's event is on chain."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes


def _topic(value: bytes | str) -> str:
    raw = bytes(HexBytes(value)) if isinstance(value, str) else value
    return "0x" + raw.rjust(32, b"\0").hex()


# Per operation type: the event it emits and its indexed topics (None: any), by which its event id
# is found in the logs. Hand-offs carry the event id in the data rather than in a topic.
_RECORD_TOPICS: dict[str, tuple[str, Callable[[Any, bytes], list[bytes | str | None]]]] = {
    "Accredit": ("ParticipantAccredited", lambda op, eid: [op.participant, eid]),
    "Revoke": ("ParticipantRevoked", lambda op, eid: [op.participant, eid]),
    "Certify": ("CertificationRecorded", lambda op, eid: [op.participant, op.scheme, eid]),
    "Commission": ("LotCommissioned", lambda op, eid: [op.lot, op.actor, eid]),
    "Ship": ("LotShipped", lambda op, eid: [op.lot, op.actor, op.recipient]),
    "Receive": ("LotReceived", lambda op, eid: [op.lot, op.counterparty, op.actor]),
    "Reject": ("ShipmentRejected", lambda op, eid: [op.lot, op.counterparty, op.actor]),
    "Recall": ("ShipmentRecalled", lambda op, eid: [op.lot, op.actor, op.counterparty]),
    "Transform": ("LotsTransformed", lambda op, eid: [eid, op.actor]),
    "BindPassport": ("PassportBound", lambda op, eid: [op.passport, eid, op.actor]),
    "Correct": ("EventCorrected", lambda op, eid: [op.target, eid, op.actor]),
    "Attest": ("PassportAttested", lambda op, eid: [op.passport, eid, op.actor]),
}
_EVENT_ID_IN_DATA = {"Ship", "Receive", "Reject", "Recall"}


@dataclass(frozen=True)
class BatchResult:
    """What became of a batch: the transaction, and per operation ``None`` (recorded) or the
    decoded reason it was rolled back."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    outcomes: list[Mine2CellError | None]

    @property
    def failed(self) -> dict[int, Mine2CellError]:
        return {i: err for i, err in enumerate(self.outcomes) if err is not None}


class LedgerClient:
    """One deployed ledger on one chain."""

    def __init__(self, w3: Web3, address: str, transactor: Transactor | None = None) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(
            address=self.address, abi=load_artifact("Ledger").abi
        )
        self.transactor = transactor
        self.domain = Domain(w3.eth.chain_id, self.address)
        # Per signer: the nonce word being allocated from, and its bits as known here (used on
        # chain when read, plus the nonces handed out since).
        self._next_nonce: dict[str, tuple[int, int]] = {}

    @classmethod
    def deploy(
        cls, w3: Web3, transactor: Transactor, governor: str, artifact: Artifact | None = None
    ) -> LedgerClient:
        """Deploy the ledger (``artifact``: another build of it, with the same interface)."""
        artifact = artifact or load_artifact("Ledger")
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(to_checksum_address(governor)).data_in_transaction
        receipt = transactor.send(None, HexBytes(data))
        address = receipt["contractAddress"]
        if address is None:
            raise NodeError("the deployment receipt names no contract address")
        return cls(w3, address, transactor)

    # -- writing -------------------------------------------------------------------------------

    def sign(
        self,
        op_type: type[Operation],
        signer: LocalSigner,
        *,
        deadline: int | None = None,
        nonce: int | None = None,
        **fields: Any,
    ) -> SignedOperation:
        """Build an operation of ``signer`` (with its next nonce unless one is given) and sign it
        for this ledger."""
        if deadline is None:
            deadline = int(time.time()) + DEFAULT_VALIDITY_SECONDS
        if nonce is None:
            nonce = self.next_nonce(signer.address)
        op = op_type(actor=signer.address, nonce=nonce, deadline=deadline, **fields)
        return sign(op, signer, self.domain)

    def calldata(self, signed: SignedOperation, proof: bytes = b"") -> bytes:
        op = signed.operation
        args: list[Any] = [op.as_tuple(), signed.signature.as_tuple()]
        if op.FUNCTION == "correct":
            args.append(proof)
        return self._encode_call(op.FUNCTION, args)

    def _encode_call(self, function: str, args: list[Any]) -> bytes:
        # eth-abi directly: web3's encode_abi re-resolves the function in the ABI and validates
        # every argument on each call, about 5 ms an operation (measured), which the relay's
        # intake cannot afford.
        selector, types = _function_signatures()[function]
        return selector + abi_encode(types, args)

    def _require_transactor(self) -> Transactor:
        if self.transactor is None:
            raise NodeError("this ledger client was opened read-only: it has no relayer key")
        return self.transactor

    def submit(self, signed: SignedOperation, proof: bytes = b"") -> TxReceipt:
        """Record one operation in its own transaction; raises the decoded error if rejected."""
        return self._require_transactor().send(self.address, self.calldata(signed, proof))

    def relay_calldata(self, calls: Sequence[bytes]) -> bytes:
        return self._encode_call("relay", [list(calls)])

    def simulate(self, batch: Sequence[SignedOperation | bytes]) -> list[Mine2CellError | None]:
        """Run a batch with eth_call: per operation None (would be recorded) or why it would not."""
        transactor = self._require_transactor()
        data = self.relay_calldata([self._as_call(item) for item in batch])
        try:
            raw = self.w3.eth.call({"from": transactor.address, "to": self.address, "data": data})
        except Exception as exc:
            decoded = decode_exception(exc)
            if decoded is not None:
                raise decoded from exc
            raise
        (failures,) = abi_decode(["bytes[]"], bytes(raw))
        return [decode_revert(f) if f else None for f in failures]

    def relay(
        self, batch: Sequence[SignedOperation | bytes], gas: int | None = None
    ) -> BatchResult:
        """Send a batch in one transaction. Operations that fail are rolled back one by one (see
        ``ILedger.relay``); their reasons come back decoded from the receipt's logs."""
        transactor = self._require_transactor()
        data = self.relay_calldata([self._as_call(item) for item in batch])
        receipt = transactor.send(self.address, data, gas)
        return BatchResult(
            bytes(receipt["transactionHash"]),
            receipt["blockNumber"],
            receipt["gasUsed"],
            self.outcomes(receipt, len(batch)),
        )

    def outcomes(self, receipt: TxReceipt, size: int) -> list[Mine2CellError | None]:
        """Per operation of a mined batch of ``size``: None (recorded) or the decoded reason the
        ledger logged for rolling it back."""
        outcomes: list[Mine2CellError | None] = [None] * size
        failed_event = self.contract.events.OperationFailed()
        topic = bytes(HexBytes(failed_event.topic))
        for log in receipt["logs"]:
            if log["address"] == self.address and log["topics"] and log["topics"][0] == topic:
                event = failed_event.process_log(log)
                outcomes[event["args"]["index"]] = decode_revert(bytes(event["args"]["reason"]))
        return outcomes

    def _as_call(self, item: SignedOperation | bytes) -> bytes:
        return item if isinstance(item, bytes) else self.calldata(item)

    # -- reading -------------------------------------------------------------------------------

    def lot(self, lot_id: bytes) -> LotView | None:
        custodian, recipient, remaining, material = self.contract.functions.lot(lot_id).call()
        if custodian == ZERO_ADDRESS:
            return None
        return LotView(
            to_checksum_address(custodian),
            None if recipient == ZERO_ADDRESS else to_checksum_address(recipient),
            int(remaining),
            int(material),
        )

    def participant(self, account: str) -> ParticipantView | None:
        index, roles, country, facility = self.contract.functions.participant(
            to_checksum_address(account)
        ).call()
        if index == 0:
            return None
        return ParticipantView(
            int(index), int(roles), bytes(country).decode("ascii"), bytes(facility)
        )

    def passport_binder(self, passport: bytes) -> ChecksumAddress | None:
        binder = self.contract.functions.passportBinder(passport).call()
        return None if binder == ZERO_ADDRESS else to_checksum_address(binder)

    def nonce_used(self, actor: str, nonce: int) -> bool:
        return bool(self.contract.functions.nonceUsed(to_checksum_address(actor), nonce).call())

    def governor(self) -> ChecksumAddress:
        return to_checksum_address(self.contract.functions.governor().call())

    def next_nonce(self, actor: str) -> int:
        """Allocate the lowest nonce of ``actor`` that is neither used on chain nor already handed
        out by this client.

        Consecutive nonces share a storage word on chain (256 per word), which keeps them cheap.
        Each word is read from the chain once, when allocation reaches it: nonces another client
        uses afterwards are not seen (the ledger then rejects the operation with
        LedgerNonceUsed, and its nonce is never recorded twice).
        """
        actor = to_checksum_address(actor)
        cached = self._next_nonce.get(actor)
        word, bits = cached if cached is not None else (0, self._nonce_word(actor, 0))
        while bits == 2**256 - 1:
            word += 1
            bits = self._nonce_word(actor, word)
        free = ~bits & (2**256 - 1)
        bit = (free & -free).bit_length() - 1
        self._next_nonce[actor] = (word, bits | (1 << bit))
        return word * 256 + bit

    def find_recorded(self, signed: SignedOperation, from_block: int = 0) -> Recorded | None:
        """Where the ledger recorded this exact operation (by its event id), or None.

        Used when an operation's nonce turns out to be used: either this operation was recorded
        (by this relay before a crash, or by another one) or a different operation of the same
        signer took the nonce.
        """
        op = signed.operation
        name, topics_of = _RECORD_TOPICS[op.PRIMARY]
        event = getattr(self.contract.events, name)()
        topics: list[str | None] = [str(HexBytes(event.topic).to_0x_hex())]
        topics += [None if t is None else _topic(t) for t in topics_of(op, signed.event_id)]
        logs = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": from_block,
                "toBlock": "latest",
                "topics": topics,
            }
        )
        for log in logs:
            if op.PRIMARY in _EVENT_ID_IN_DATA and bytes(log["data"]) != signed.event_id:
                continue
            return Recorded(
                bytes(log["transactionHash"]), int(log["blockNumber"]), bytes(log["blockHash"])
            )
        return None

    def _nonce_word(self, actor: str, word: int) -> int:
        return int(self.contract.functions.nonceBitmap(actor, word).call())
