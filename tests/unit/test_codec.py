"""Signed operations as JSON documents: every operation type survives the trip through JSON text,
and a malformed document is refused with an error naming the field at fault."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address

from mine2cell.errors import InvalidInput
from mine2cell.signing.codec import from_document, parse_hex, to_document
from mine2cell.signing.eip712 import (
    OPERATION_TYPES,
    Accredit,
    Attest,
    BindPassport,
    Certify,
    Commission,
    Correct,
    Domain,
    EventId,
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
    SignedOperation,
    Transform,
    sign,
)

KEY = LocalSigner(keccak(text="mine2cell codec test key"))
OTHER = to_checksum_address("0x" + "22" * 20)
DOMAIN = Domain(31337, to_checksum_address("0x" + "11" * 20))
OTHER_CHAIN = Domain(1, DOMAIN.verifying_contract)
NONCE = 2**70 + 5  # beyond 2**53: written as a decimal string
DEADLINE = 1_795_000_000
LOT_A = LotId(keccak(text="lot a"))
LOT_B = LotId(keccak(text="lot b"))
PASSPORT = PassportId(keccak(text="passport 1"))
DOCUMENT_HASH = keccak(text="assay")


def _common() -> dict[str, Any]:
    return {"actor": KEY.address, "nonce": NONCE, "deadline": DEADLINE}


SAMPLES: dict[type[Operation], Operation] = {
    Accredit: Accredit(
        **_common(),
        participant=OTHER,
        roles=1 | 4,
        facility=b"SITE".ljust(32, b"\0"),
        country=b"CD",
    ),
    Revoke: Revoke(**_common(), participant=OTHER),
    Certify: Certify(
        **_common(),
        participant=OTHER,
        scheme=b"RMAP".ljust(32, b"\0"),
        valid_until=2_000_000_000,
        document_hash=DOCUMENT_HASH,
    ),
    Commission: Commission(
        **_common(),
        lot=LOT_A,
        material=101,
        quantity=2**60,
        feedstock=2,
        footprint=9_600_000,
        document_hash=DOCUMENT_HASH,
    ),
    Ship: Ship(**_common(), lot=LOT_A, recipient=OTHER),
    Receive: Receive(**_common(), lot=LOT_A, counterparty=OTHER),
    Reject: Reject(**_common(), lot=LOT_A, counterparty=OTHER),
    Recall: Recall(**_common(), lot=LOT_A, counterparty=OTHER),
    Transform: Transform(
        **_common(),
        inputs=(Input(LOT_A, 600), Input(LOT_B, 400)),
        outputs=(Output(LotId(keccak(text="lot c")), 102, 900, DOCUMENT_HASH),),
        footprint=123,
    ),
    BindPassport: BindPassport(
        **_common(),
        passport=PASSPORT,
        inputs=(Input(LOT_A, 50),),
        footprint=7,
        document_hash=DOCUMENT_HASH,
    ),
    Correct: Correct(
        **_common(),
        target=EventId(keccak(text="some event")),
        reason=2,
        corrective=(keccak(text="fix 1"), keccak(text="fix 2")),
    ),
    Attest: Attest(**_common(), passport=PASSPORT, verdict=1, report_hash=DOCUMENT_HASH),
}


def _signed(op: Operation) -> SignedOperation:
    return sign(op, KEY, DOMAIN)


def _through_json(document: dict[str, Any]) -> object:
    return json.loads(json.dumps(document))


def _ship_document() -> dict[str, Any]:
    return copy.deepcopy(to_document(_signed(SAMPLES[Ship])))


def _refusal(document: object, domain: Domain = DOMAIN) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        from_document(document, domain)
    return caught.value


def test_samples_cover_every_operation_type() -> None:
    assert set(SAMPLES) == set(OPERATION_TYPES)


# -- round trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("op_type", OPERATION_TYPES, ids=lambda t: t.PRIMARY)
def test_document_round_trips_through_json_text_for_every_operation_type(
    op_type: type[Operation],
) -> None:
    signed = _signed(SAMPLES[op_type])

    parsed, proof = from_document(_through_json(to_document(signed)), DOMAIN)

    assert parsed == signed
    assert proof == b""


def test_document_of_a_correction_round_trips_its_proof() -> None:
    signed = _signed(SAMPLES[Correct])
    proof = SAMPLES[Ship].encode_data()

    parsed, parsed_proof = from_document(_through_json(to_document(signed, proof)), DOMAIN)

    assert parsed == signed
    assert parsed_proof == proof


def test_document_writes_numbers_beyond_2_53_as_decimal_strings() -> None:
    document = to_document(_signed(SAMPLES[Commission]))

    assert document["message"]["nonce"] == str(NONCE)
    assert document["message"]["quantity"] == str(2**60)
    assert document["message"]["deadline"] == DEADLINE


def test_from_document_accepts_a_signature_with_v_as_0_or_1() -> None:
    signed = _signed(SAMPLES[Ship])
    document = to_document(signed)
    raw = bytes.fromhex(document["signature"][2:])
    document["signature"] = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()

    parsed, _ = from_document(document, DOMAIN)

    assert parsed.signature == signed.signature


def test_from_document_accepts_a_lower_case_address() -> None:
    document = _ship_document()
    document["message"]["recipient"] = OTHER.lower()

    parsed, _ = from_document(document, DOMAIN)

    assert parsed == _signed(SAMPLES[Ship])


# -- refusals --------------------------------------------------------------------------------------


def test_from_document_fails_if_the_document_is_not_an_object() -> None:
    assert _refusal([1, 2]).field == "document"


def test_from_document_fails_if_the_type_is_unknown() -> None:
    document = _ship_document()
    document["type"] = "Teleport"

    err = _refusal(document)

    assert err.field == "type"
    assert "'Teleport' is not an operation type" in err.problem


def test_from_document_fails_if_a_message_field_is_missing() -> None:
    document = _ship_document()
    del document["message"]["recipient"]

    err = _refusal(document)

    assert err.field == "message.recipient"
    assert "missing" in err.problem


def test_from_document_fails_if_the_message_has_an_extra_field() -> None:
    document = _ship_document()
    document["message"]["quantity"] = 5

    err = _refusal(document)

    assert err.field == "message.quantity"
    assert "is not a field of Ship" in err.problem


def test_from_document_fails_if_bytes_are_not_hex() -> None:
    document = _ship_document()
    document["message"]["lot"] = "0x" + "zz" * 32

    err = _refusal(document)

    assert err.field == "message.lot"
    assert "not valid hex" in err.problem


def test_from_document_fails_if_bytes_lack_the_0x_prefix() -> None:
    document = _ship_document()
    document["message"]["lot"] = LOT_A.hex()

    err = _refusal(document)

    assert err.field == "message.lot"
    assert "0x-prefixed" in err.problem


def test_from_document_fails_if_a_bytes32_has_the_wrong_length() -> None:
    document = _ship_document()
    document["message"]["lot"] = "0x" + "ab" * 31

    err = _refusal(document)

    assert err.field == "message.lot"
    assert "must be 32 bytes, got 31" in err.problem


def test_from_document_fails_if_a_bytes32_in_a_list_has_the_wrong_length() -> None:
    document = copy.deepcopy(to_document(_signed(SAMPLES[Correct])))
    document["message"]["corrective"][1] = "0x1234"

    err = _refusal(document)

    assert err.field == "message.corrective[1]"


def test_from_document_fails_if_a_quantity_is_not_an_integer() -> None:
    document = copy.deepcopy(to_document(_signed(SAMPLES[Commission])))
    document["message"]["quantity"] = "12.5"

    err = _refusal(document)

    assert err.field == "message.quantity"
    assert "must be an integer" in err.problem


def test_from_document_fails_if_an_input_quantity_is_not_an_integer() -> None:
    document = copy.deepcopy(to_document(_signed(SAMPLES[Transform])))
    document["message"]["inputs"][1]["quantity"] = 1.5

    err = _refusal(document)

    assert err.field == "message.inputs[1].quantity"


def test_from_document_fails_if_a_quantity_is_a_boolean() -> None:
    document = copy.deepcopy(to_document(_signed(SAMPLES[Commission])))
    document["message"]["quantity"] = True

    err = _refusal(document)

    assert err.field == "message.quantity"
    assert "boolean" in err.problem


def test_from_document_fails_if_a_quantity_is_zero() -> None:
    document = copy.deepcopy(to_document(_signed(SAMPLES[Commission])))
    document["message"]["quantity"] = 0

    err = _refusal(document)

    assert err.field == "message.quantity"
    assert "positive" in err.problem


def test_from_document_fails_if_the_actor_is_not_an_address() -> None:
    document = _ship_document()
    document["message"]["actor"] = "0x1234"

    assert _refusal(document).field == "message.actor"


def test_from_document_fails_if_the_signature_is_not_65_bytes() -> None:
    document = _ship_document()
    document["signature"] = document["signature"][:-2]

    err = _refusal(document)

    assert err.field == "signature"
    assert "65 bytes" in err.problem


def test_from_document_fails_if_the_event_id_belongs_to_another_chain() -> None:
    document = to_document(sign(SAMPLES[Ship], KEY, OTHER_CHAIN))

    err = _refusal(document, DOMAIN)

    assert err.field == "eventId"
    assert "another chain or ledger" in err.problem


def test_from_document_fails_if_a_proof_comes_with_an_operation_other_than_correct() -> None:
    document = _ship_document()
    document["proof"] = "0x" + SAMPLES[Ship].encode_data().hex()

    err = _refusal(document)

    assert err.field == "proof"
    assert "only a Correct operation" in err.problem


def test_from_document_fails_if_a_proof_is_not_hex() -> None:
    document = copy.deepcopy(to_document(_signed(SAMPLES[Correct]), b"\x01"))
    document["proof"] = "0xnothex"

    assert _refusal(document).field == "proof"


# -- parse_hex -------------------------------------------------------------------------------------


def test_parse_hex_reads_any_length_when_none_is_given() -> None:
    assert parse_hex("data", "0x0102ff") == b"\x01\x02\xff"


def test_parse_hex_fails_if_the_value_is_not_a_string() -> None:
    with pytest.raises(InvalidInput, match="0x-prefixed") as caught:
        parse_hex("document", 12, 32)

    assert caught.value.field == "document"
