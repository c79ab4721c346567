"""EIP-712 hashing and signing of ledger operations.

The hand-written hashing in ``mine2cell.signing.eip712`` is checked against eth-account's generic
typed-data encoder and against the type strings compiled into contracts/Ledger.sol; the signer is
checked to produce only low-s signatures that recover to its address.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_keys import keys
from eth_keys.datatypes import PrivateKey
from eth_keys.datatypes import Signature as KeySignature
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mine2cell.errors import InvalidInput
from mine2cell.signing.eip712 import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    OPERATION_TYPES,
    SECP256K1_N,
    UINT96_MAX,
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Correct,
    Domain,
    Input,
    LocalSigner,
    LotId,
    Operation,
    Output,
    Recall,
    Receive,
    Reject,
    Revoke,
    Ship,
    Signature,
    SignedOperation,
    Transform,
    recover,
    sign,
)
from tests.conftest import Cast

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
HALF_N = SECP256K1_N // 2
ZERO = to_checksum_address("0x" + "00" * 20)

# -- strategies ------------------------------------------------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
bytes32 = st.binary(min_size=32, max_size=32)
quantities = st.one_of(st.just(1), st.just(UINT96_MAX), st.integers(1, UINT96_MAX))
private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
domains = st.builds(
    Domain,
    chain_id=st.one_of(st.just(1), st.just(31337), st.integers(0, 2**256 - 1)),
    verifying_contract=addresses,
)


def uints(bits: int) -> st.SearchStrategy[int]:
    top = 2**bits - 1
    return st.one_of(st.just(0), st.just(top), st.integers(0, top))


inputs = st.builds(Input, lot=bytes32, quantity=quantities)
outputs = st.builds(
    Output, lot=bytes32, material=uints(32), quantity=quantities, document_hash=bytes32
)
countries = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2).flatmap(
    lambda code: st.sampled_from([code, code.encode("ascii")])
)

ARRAY_ITEMS: dict[str, st.SearchStrategy[Any]] = {
    "Input[]": inputs,
    "Output[]": outputs,
    "bytes32[]": bytes32,
}


def has_arrays(op_type: type[Operation]) -> bool:
    return any(sol_type.endswith("[]") for _, _, sol_type in op_type.FIELDS)


def field_strategy(py_name: str, sol_type: str, arrays: str) -> st.SearchStrategy[Any]:
    if sol_type in ARRAY_ITEMS:
        if arrays == "empty":
            return st.just(())
        return st.lists(ARRAY_ITEMS[sol_type], min_size=1, max_size=4).map(tuple)
    if sol_type == "address":
        return addresses
    if sol_type == "bytes32":
        return bytes32
    if sol_type == "bytes2":
        return countries
    if sol_type == "uint96":
        return quantities  # every uint96 of an operation is a quantity, which must be positive
    match = re.fullmatch(r"uint(\d+)", sol_type)
    assert match is not None, f"no strategy for {py_name}: {sol_type}"
    return uints(int(match.group(1)))


def operations(op_type: type[Operation], arrays: str = "non-empty") -> st.SearchStrategy[Any]:
    own = {
        py_name: field_strategy(py_name, sol_type, arrays)
        for py_name, _, sol_type in op_type.FIELDS
    }
    return st.builds(op_type, actor=addresses, nonce=uints(256), deadline=uints(256), **own)


DIGEST_CASES = [
    pytest.param(op_type, arrays, id=f"{op_type.PRIMARY}-{arrays}")
    for op_type in OPERATION_TYPES
    for arrays in (("empty", "non-empty") if has_arrays(op_type) else ("no-arrays",))
]


def eth_account_digest(op: Operation, domain: Domain) -> bytes:
    message = encode_typed_data(full_message=op.typed_data(domain))
    return keccak(b"\x19" + message.version + message.header + message.body)


# -- digest against eth-account --------------------------------------------------------------


def test_every_operation_type_has_a_digest_case() -> None:
    covered = {case.values[0] for case in DIGEST_CASES}
    assert covered == set(OPERATION_TYPES)
    assert {case.values[1] for case in DIGEST_CASES} >= {"empty", "non-empty"}


@pytest.mark.parametrize(("op_type", "arrays"), DIGEST_CASES)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), domain=domains)
def test_digest_equals_eth_account_typed_data_hash(
    op_type: type[Operation], arrays: str, data: st.DataObject, domain: Domain
) -> None:
    op = data.draw(operations(op_type, arrays), label="op")

    assert op.digest(domain) == eth_account_digest(op, domain)


def test_digest_changes_with_the_domain() -> None:
    op = Revoke(actor=to_checksum_address("0x" + "11" * 20), nonce=0, deadline=0, participant=ZERO)
    here = Domain(31337, to_checksum_address("0x" + "22" * 20))
    other_chain = Domain(1, here.verifying_contract)
    other_ledger = Domain(31337, to_checksum_address("0x" + "23" * 20))

    assert len({op.digest(here), op.digest(other_chain), op.digest(other_ledger)}) == 3


# -- type strings against the contract source ------------------------------------------------

_TYPEHASH = re.compile(r"(\w+)_TYPEHASH\s*=\s*keccak256\(\s*((?:\"[^\"]*\"\s*)+)\)")
_LITERAL = re.compile(r"\"([^\"]*)\"")


def solidity_type_strings() -> dict[str, str]:
    """Each typehash's string in Ledger.sol (adjacent literals joined), by primary type."""
    source = (CONTRACTS / "Ledger.sol").read_text()
    found: dict[str, str] = {}
    for match in _TYPEHASH.finditer(source):
        type_string = "".join(_LITERAL.findall(match.group(2)))
        primary = type_string.split("(", 1)[0]
        assert primary not in found, f"two typehashes for {primary}"
        found[primary] = type_string
    return found


def test_the_contract_declares_a_typehash_for_each_operation_and_nothing_else() -> None:
    declared = set(solidity_type_strings())

    assert declared == {t.PRIMARY for t in OPERATION_TYPES} | {"Input", "Output"}


@pytest.mark.parametrize("op_type", OPERATION_TYPES, ids=lambda t: t.PRIMARY)
def test_type_string_equals_the_contract_typehash_string(op_type: type[Operation]) -> None:
    assert op_type.type_string() == solidity_type_strings()[op_type.PRIMARY]


def test_input_and_output_type_strings_equal_the_contract() -> None:
    declared = solidity_type_strings()

    assert declared["Input"] == Input.TYPE
    assert declared["Output"] == Output.TYPE


def test_domain_name_and_version_equal_the_contract() -> None:
    source = (CONTRACTS / "Ledger.sol").read_text()
    match = re.search(r"EIP712\(\s*\"([^\"]*)\"\s*,\s*\"([^\"]*)\"\s*\)", source)

    assert match is not None
    assert match.groups() == (DOMAIN_NAME, DOMAIN_VERSION)


def interface_structs() -> dict[str, list[str]]:
    """The fields of each struct of ILedger.sol as 'type name' strings."""
    source = (CONTRACTS / "ILedger.sol").read_text()
    structs: dict[str, list[str]] = {}
    for name, body in re.findall(r"struct\s+(\w+)\s*\{([^}]*)\}", source):
        structs[name] = [" ".join(line.strip(" ;").split()) for line in body.split(";")]
        structs[name] = [f for f in structs[name] if f]
    return structs


@pytest.mark.parametrize("op_type", OPERATION_TYPES, ids=lambda t: t.PRIMARY)
def test_type_string_lists_the_fields_of_the_struct_the_contract_takes(
    op_type: type[Operation],
) -> None:
    # Receive, Reject and Recall are signed under their own names but submitted as a Handoff.
    struct = "Handoff" if op_type in (Receive, Reject, Recall) else op_type.PRIMARY
    head = solidity_type_strings()[op_type.PRIMARY].split(")", 1)[0]
    signed_fields = head.split("(", 1)[1].split(",")

    assert signed_fields == interface_structs()[struct]


# -- signing ---------------------------------------------------------------------------------


def revoke_by(signer: LocalSigner, nonce: int = 0) -> Revoke:
    return Revoke(actor=signer.address, nonce=nonce, deadline=2**40, participant=ZERO)


def high_s_twin(sig: Signature) -> Signature:
    """The other valid signature of the same digest and key: s -> n - s, recovery id flipped."""
    s = int.from_bytes(sig.s, "big")
    return Signature(55 - sig.v, sig.r, (SECP256K1_N - s).to_bytes(32, "big"))


@given(key=private_keys, digest=bytes32)
def test_sign_digest_yields_low_s_and_recovers_to_the_signer(key: bytes, digest: bytes) -> None:
    signer = LocalSigner(key)

    sig = signer.sign_digest(digest)

    assert 1 <= int.from_bytes(sig.s, "big") <= HALF_N
    assert 1 <= int.from_bytes(sig.r, "big") < SECP256K1_N
    assert sig.v in (27, 28)
    recovered = keys.Signature(
        vrs=(sig.v - 27, int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
    ).recover_public_key_from_msg_hash(digest)
    assert recovered.to_checksum_address() == signer.address


class _HighSKey:
    """A key whose backend returns the high-s form of every signature, to exercise the
    normalisation in ``LocalSigner.sign_digest`` (libsecp256k1 itself only returns low s)."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self.public_key = key.public_key

    def sign_msg_hash(self, digest: bytes) -> KeySignature:
        sig = self.key.sign_msg_hash(digest)
        if sig.s > HALF_N:
            return sig
        return keys.Signature(vrs=(sig.v ^ 1, sig.r, SECP256K1_N - sig.s))


@given(key=private_keys, digest=bytes32)
def test_sign_digest_normalises_a_high_s_signature(key: bytes, digest: bytes) -> None:
    signer = LocalSigner(key)
    expected = signer.sign_digest(digest)
    object.__setattr__(signer, "_key", _HighSKey(keys.PrivateKey(key)))

    sig = signer.sign_digest(digest)

    assert sig == expected
    assert int.from_bytes(sig.s, "big") <= HALF_N


@given(key=private_keys, nonce=uints(256), domain=domains)
def test_recover_returns_the_signer_of_an_operation(key: bytes, nonce: int, domain: Domain) -> None:
    signer = LocalSigner(key)

    signed = sign(revoke_by(signer, nonce), signer, domain)

    assert signed.event_id == signed.operation.digest(domain)
    assert recover(signed, domain) == signer.address


@given(key=private_keys, domain=domains, other=domains)
def test_recover_under_another_domain_names_someone_else(
    key: bytes, domain: Domain, other: Domain
) -> None:
    signer = LocalSigner(key)
    signed = sign(revoke_by(signer), signer, domain)

    if other != domain:
        assert recover(signed, other) != signer.address


@given(key=private_keys, domain=domains)
def test_recover_rejects_the_high_s_twin_of_a_valid_signature(key: bytes, domain: Domain) -> None:
    signer = LocalSigner(key)
    signed = sign(revoke_by(signer), signer, domain)
    twin = SignedOperation(signed.operation, high_s_twin(signed.signature), signed.event_id)

    # The twin is a valid ECDSA signature by the same key ...
    raw = twin.signature
    public = keys.Signature(
        vrs=(raw.v - 27, int.from_bytes(raw.r, "big"), int.from_bytes(raw.s, "big"))
    ).recover_public_key_from_msg_hash(signed.event_id)
    assert public.to_checksum_address() == signer.address
    # ... that the ledger would refuse (EIP-2), and so does recover.
    with pytest.raises(InvalidInput, match="upper half") as excinfo:
        recover(twin, domain)
    assert excinfo.value.field == "signature"


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(Signature(29, b"\x01" * 32, b"\x01" * 32), id="v-29"),
        pytest.param(Signature(0, b"\x01" * 32, b"\x01" * 32), id="v-0"),
        pytest.param(Signature(27, bytes(32), b"\x01" * 32), id="r-zero"),
        pytest.param(Signature(27, SECP256K1_N.to_bytes(32, "big"), b"\x01" * 32), id="r-n"),
    ],
)
def test_recover_rejects_a_malformed_signature(signature: Signature) -> None:
    signer = LocalSigner(b"\x07" * 32)
    op = revoke_by(signer)
    domain = Domain(1, ZERO)

    with pytest.raises(InvalidInput) as excinfo:
        recover(SignedOperation(op, signature, op.digest(domain)), domain)
    assert excinfo.value.field == "signature"


def test_sign_refuses_an_operation_of_another_actor() -> None:
    signer, other = LocalSigner(b"\x07" * 32), LocalSigner(b"\x08" * 32)

    with pytest.raises(InvalidInput) as excinfo:
        sign(revoke_by(other), signer, Domain(1, ZERO))
    assert excinfo.value.field == "actor"


@given(key=private_keys)
def test_repr_and_str_of_a_signer_never_show_the_private_key(key: bytes) -> None:
    signer = LocalSigner(key)
    shown = [repr(signer), str(signer), f"{signer}", f"{signer!r}", repr([signer])]

    for text in shown:
        assert signer.address in text
        for secret in (key.hex(), repr(key), repr(keys.PrivateKey(key))):
            assert secret.lower() not in text.lower()


# -- input validation ------------------------------------------------------------------------

A = to_checksum_address("0x" + "aa" * 20)
B32 = LotId(b"\x01" * 32)
B32_2 = LotId(b"\x02" * 32)

VALID: dict[type[Any], dict[str, Any]] = {
    Accredit: {"participant": A, "roles": 1, "facility": B32, "country": "CD"},
    Revoke: {"participant": A},
    Certify: {"participant": A, "scheme": B32, "valid_until": 1, "document_hash": B32},
    Commission: {
        "lot": B32,
        "material": 100,
        "quantity": 1,
        "feedstock": 0,
        "footprint": 0,
        "document_hash": B32,
    },
    Ship: {"lot": B32, "recipient": A},
    Receive: {"lot": B32, "counterparty": A},
    Reject: {"lot": B32, "counterparty": A},
    Recall: {"lot": B32, "counterparty": A},
    Transform: {"inputs": (Input(B32, 1),), "outputs": (Output(B32, 1, 1),), "footprint": 0},
    BindPassport: {"passport": B32, "inputs": (Input(B32, 1),), "footprint": 0},
    Correct: {"target": B32, "reason": 1, "corrective": (B32,)},
    Attest: {"passport": B32, "verdict": 1, "report_hash": B32},
    Input: {"lot": B32, "quantity": 1},
    Output: {"lot": B32, "material": 1, "quantity": 1, "document_hash": B32},
}
COMMON = {"actor": A, "nonce": 0, "deadline": 0}


def build(kind: type[Any], **overrides: Any) -> Any:
    base = {} if kind in (Input, Output) else dict(COMMON)
    return kind(**{**base, **VALID[kind], **overrides})


def test_the_valid_baselines_build() -> None:
    for kind in VALID:
        build(kind)
    assert set(OPERATION_TYPES) <= set(VALID)


BYTES32_FIELDS = [
    (Accredit, "facility"),
    (Certify, "scheme"),
    (Certify, "document_hash"),
    (Commission, "lot"),
    (Commission, "document_hash"),
    (Ship, "lot"),
    (Receive, "lot"),
    (Reject, "lot"),
    (Recall, "lot"),
    (BindPassport, "passport"),
    (BindPassport, "document_hash"),
    (Correct, "target"),
    (Attest, "passport"),
    (Attest, "report_hash"),
    (Input, "lot"),
    (Output, "lot"),
    (Output, "document_hash"),
]


@pytest.mark.parametrize(("kind", "name"), BYTES32_FIELDS, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", [b"", b"\x01" * 31, b"\x01" * 33, "0x" + "01" * 32, 1], ids=repr)
def test_a_bytes32_field_of_the_wrong_length_or_type_is_invalid(
    kind: type[Any], name: str, value: Any
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(kind, **{name: value})
    assert excinfo.value.field == name


def test_a_corrective_event_id_of_the_wrong_length_is_invalid() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(Correct, corrective=(B32, b"\x01" * 31))
    assert excinfo.value.field == "corrective"


QUANTITY_FIELDS = [(Commission, "quantity"), (Input, "quantity"), (Output, "quantity")]


@pytest.mark.parametrize(("kind", "name"), QUANTITY_FIELDS, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", [0, -1, -(2**96), 2**96, 2**256], ids=str)
def test_a_quantity_that_is_not_positive_or_overflows_uint96_is_invalid(
    kind: type[Any], name: str, value: int
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(kind, **{name: value})
    assert excinfo.value.field == name


@pytest.mark.parametrize(("kind", "name"), QUANTITY_FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_the_quantity_bounds_are_valid(kind: type[Any], name: str) -> None:
    assert getattr(build(kind, **{name: 1}), name) == 1
    assert getattr(build(kind, **{name: UINT96_MAX}), name) == UINT96_MAX


UINT_FIELDS = [
    (Commission, "nonce", 2**256),
    (Commission, "deadline", 2**256),
    (Commission, "material", 2**32),
    (Commission, "feedstock", 2**8),
    (Commission, "footprint", 2**64),
    (Output, "material", 2**32),
    (Accredit, "roles", 2**8),
    (Certify, "valid_until", 2**64),
    (Transform, "footprint", 2**64),
    (BindPassport, "footprint", 2**64),
    (Correct, "reason", 2**8),
    (Attest, "verdict", 2**8),
]


@pytest.mark.parametrize(
    ("kind", "name", "overflow"), UINT_FIELDS, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_an_integer_field_out_of_its_solidity_range_is_invalid(
    kind: type[Any], name: str, overflow: int
) -> None:
    assert getattr(build(kind, **{name: overflow - 1}), name) == overflow - 1
    for value in (overflow, -1):
        with pytest.raises(InvalidInput) as excinfo:
            build(kind, **{name: value})
        assert excinfo.value.field == name


BOOL_OR_FLOAT_FIELDS = [(kind, name) for kind, name, _ in UINT_FIELDS] + QUANTITY_FIELDS


@pytest.mark.parametrize(
    ("kind", "name"), BOOL_OR_FLOAT_FIELDS, ids=lambda v: getattr(v, "__name__", v)
)
@pytest.mark.parametrize("value", [True, False, 1.0, "1"], ids=repr)
def test_a_bool_float_or_string_is_not_an_integer(kind: type[Any], name: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(kind, **{name: value})
    assert excinfo.value.field == name


@pytest.mark.parametrize("country", ["cd", "CDX", "C", "", "C1", "ÇD"])
def test_a_country_that_is_not_two_upper_case_letters_is_invalid(country: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(Accredit, country=country)
    assert excinfo.value.field == "country"


@pytest.mark.parametrize("country", [b"CDX", b"C", b"cd", b"C1", 5, None], ids=repr)
def test_a_country_given_as_bytes_or_another_type_is_validated_too(country: Any) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(Accredit, country=country)
    assert excinfo.value.field == "country"


def test_a_country_given_as_bytes_is_kept_as_bytes() -> None:
    assert build(Accredit, country=b"CD").country == build(Accredit, country="CD").country == b"CD"


ADDRESS_FIELDS = [
    (Revoke, "actor"),
    (Revoke, "participant"),
    (Accredit, "participant"),
    (Certify, "participant"),
    (Ship, "recipient"),
    (Receive, "counterparty"),
    (Reject, "counterparty"),
    (Recall, "counterparty"),
]


@pytest.mark.parametrize(("kind", "name"), ADDRESS_FIELDS, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize(
    "value", ["0x1234", b"\x11" * 19, b"\x11" * 21, "0x" + "zz" * 20, "11" * 19, 12], ids=repr
)
def test_a_malformed_address_is_invalid_input(kind: type[Any], name: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build(kind, **{name: value})
    assert excinfo.value.field == name


# -- the contract agrees -----------------------------------------------------------------------


SAMPLES: list[Operation] = [
    build(Accredit),
    build(Revoke),
    build(Certify),
    build(Commission, quantity=UINT96_MAX),
    build(Ship),
    build(Receive),
    build(Reject),
    build(Recall),
    build(Transform, inputs=(Input(B32, 5), Input(B32_2, UINT96_MAX))),
    build(Transform, inputs=(), outputs=()),
    build(BindPassport),
    build(BindPassport, inputs=()),
    build(Correct),
    build(Correct, corrective=()),
    build(Attest),
]


def test_contract_event_id_equals_the_digest_of_every_operation_type(cast: Cast) -> None:
    ledger = cast.ledger
    assert {type(op) for op in SAMPLES} == set(OPERATION_TYPES)

    for op in SAMPLES:
        on_chain = bytes(ledger.contract.functions.eventId(op.struct_hash()).call())
        assert on_chain == op.digest(ledger.domain), op.PRIMARY
