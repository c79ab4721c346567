"""Lot and passport ids: 0x-hex taken as is, short lot numbers padded so they read back, long
texts (URIs) hashed; ambiguous or empty input refused."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from mine2cell.errors import InvalidInput
from mine2cell.ids import parse_id, show_id

HEX_ID = "0x" + "ab" * 31 + "0f"


def test_parse_id_takes_0x_and_64_hex_digits_as_the_id_itself() -> None:
    assert parse_id(HEX_ID) == bytes.fromhex("ab" * 31 + "0f")


def test_parse_id_accepts_upper_case_hex_digits() -> None:
    assert parse_id(HEX_ID.upper().replace("0X", "0x")) == bytes.fromhex("ab" * 31 + "0f")


def test_parse_id_pads_a_short_lot_number_with_zeros_on_the_right() -> None:
    assert parse_id("KOL-2026-0042") == b"KOL-2026-0042".ljust(32, b"\0")


def test_parse_id_ignores_surrounding_whitespace() -> None:
    assert parse_id("  KOL-2026-0042\n") == parse_id("KOL-2026-0042")


def test_parse_id_takes_a_32_byte_lot_number_as_is() -> None:
    assert parse_id("L" * 32) == b"L" * 32


def test_parse_id_hashes_text_longer_than_32_bytes() -> None:
    uri = "https://id.example.com/01/09506000134352/10/KOL-2026-0042"

    assert parse_id(uri) == keccak(text=uri)


def test_show_id_gives_back_a_padded_lot_number() -> None:
    assert show_id(parse_id("KOL-2026-0042")) == "KOL-2026-0042"


def test_show_id_gives_back_a_non_ascii_lot_number() -> None:
    assert show_id(parse_id("Kokkola-Å-7")) == "Kokkola-Å-7"


def test_show_id_writes_a_hashed_id_as_0x_hex() -> None:
    uri = "https://id.example.com/01/09506000134352/10/KOL-2026-0042"

    assert show_id(parse_id(uri)) == "0x" + keccak(text=uri).hex()


def test_show_id_writes_a_lot_number_that_looks_like_hex_as_0x_hex() -> None:
    # "0xford" is a lot number, not hex; shown as text it would read as a hex id.
    lot = parse_id("0xford")

    assert show_id(lot) == "0x" + lot.hex()


def test_parse_id_fails_if_0x_hex_has_the_wrong_length() -> None:
    with pytest.raises(InvalidInput, match="has 62 digits; an id has 64") as caught:
        parse_id("0x" + "ab" * 31)

    assert caught.value.field == "lot"


def test_parse_id_fails_if_0x_hex_is_too_long() -> None:
    with pytest.raises(InvalidInput, match="has 66 digits") as caught:
        parse_id("0x" + "ab" * 33, "passport")

    assert caught.value.field == "passport"


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_id_fails_if_empty(text: str) -> None:
    with pytest.raises(InvalidInput, match="is empty") as caught:
        parse_id(text)

    assert caught.value.field == "lot"


def test_parse_id_fails_if_a_lot_number_contains_a_nul_character() -> None:
    with pytest.raises(InvalidInput, match="NUL") as caught:
        parse_id("KOL\0-1")

    assert caught.value.field == "lot"


@given(st.text(min_size=1, max_size=40).filter(lambda t: "\0" not in t and t.strip()))
def test_show_id_output_parses_back_to_the_same_id(text: str) -> None:
    try:
        lot = parse_id(text)
    except InvalidInput:
        return  # hex-looking text of the wrong length
    assert parse_id(show_id(lot)) == lot
