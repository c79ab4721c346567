"""Masses as people write them (``12.5t``, ``1,200 kg``) and as the ledger stores them (integer
grams): parsing is exact or refuses, and what format_mass writes parse_mass reads back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mine2cell.errors import InvalidInput
from mine2cell.units import format_mass, parse_mass

# -- parse_mass accepts ----------------------------------------------------------------------------


def test_parse_mass_reads_fractional_tonnes_as_grams() -> None:
    assert parse_mass("12.5t") == 12_500_000


def test_parse_mass_reads_kilograms_as_grams() -> None:
    assert parse_mass("800kg") == 800_000


def test_parse_mass_reads_grams() -> None:
    assert parse_mass("250g") == 250


def test_parse_mass_accepts_thousands_separators_and_a_space_before_the_unit() -> None:
    assert parse_mass("1,200 kg") == 1_200_000


def test_parse_mass_reads_a_millionth_of_a_tonne_as_one_gram() -> None:
    assert parse_mass("0.000001t") == 1


def test_parse_mass_ignores_the_case_of_the_unit() -> None:
    assert parse_mass("3 KG") == 3_000


def test_parse_mass_accepts_zero_when_allowed() -> None:
    assert parse_mass("0g", "footprint", allow_zero=True) == 0


# -- parse_mass refuses ----------------------------------------------------------------------------


def test_parse_mass_fails_if_the_unit_is_missing() -> None:
    with pytest.raises(InvalidInput, match="write a number and a unit") as caught:
        parse_mass("12.5")

    assert caught.value.field == "quantity"


def test_parse_mass_fails_if_the_unit_is_unknown() -> None:
    with pytest.raises(InvalidInput, match="unknown unit 'tt'") as caught:
        parse_mass("5tt")

    assert caught.value.field == "quantity"


def test_parse_mass_fails_if_the_mass_is_not_a_whole_number_of_grams() -> None:
    with pytest.raises(InvalidInput, match="not a whole number of grams") as caught:
        parse_mass("0.5g")

    assert caught.value.field == "quantity"


def test_parse_mass_fails_if_the_mass_is_zero() -> None:
    with pytest.raises(InvalidInput, match="is zero") as caught:
        parse_mass("0kg")

    assert caught.value.field == "quantity"


@pytest.mark.parametrize("text", ["-5kg", "- 5 kg", "five kg", "", "kg", "1.2.3kg", "1e3kg"])
def test_parse_mass_fails_if_the_text_is_not_a_positive_number_and_a_unit(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a mass") as caught:
        parse_mass(text)

    assert caught.value.field == "quantity"


def test_parse_mass_names_the_field_it_was_given() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_mass("9.6", "footprint")

    assert caught.value.field == "footprint"
    assert str(caught.value).startswith("footprint: ")


# -- format_mass -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grams", "text"),
    [
        (12, "12 g"),
        (1_500, "1.5 kg"),
        (17_865_000, "17.865 t"),
        (1_234_567_000_001, "1,234,567.000001 t"),
    ],
)
def test_format_mass_writes_the_largest_unit_exactly(grams: int, text: str) -> None:
    assert format_mass(grams) == text


@pytest.mark.parametrize("grams", [1, 999, 1_000, 1_001, 999_999, 1_000_000, 12_500_000])
def test_format_mass_output_parses_back_to_the_same_grams(grams: int) -> None:
    assert parse_mass(format_mass(grams)) == grams


@given(st.integers(min_value=1, max_value=10**15))
def test_format_mass_round_trips_through_parse_mass_for_any_mass(grams: int) -> None:
    assert parse_mass(format_mass(grams)) == grams
