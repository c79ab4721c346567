"""Masses are integer grams everywhere; these helpers read and write them for people."""

from __future__ import annotations

import re
from decimal import Decimal

from mine2cell.errors import InvalidInput


def format_mass(grams: int) -> str:
    """Exact and human-sized: 17865000 -> ``17.865 t``, 1500 -> ``1.5 kg``, 12 -> ``12 g``."""
    for unit, size in (("t", 1_000_000), ("kg", 1_000)):
        if abs(grams) >= size:
            value = Decimal(grams) / Decimal(size)
            text = format(value.normalize(), "f")
            whole, _, fraction = text.partition(".")
            return f"{int(whole):,}{'.' + fraction if fraction else ''} {unit}"
    return f"{grams} g"


_UNITS = {"t": 1_000_000, "kg": 1_000, "g": 1}
_MASS = re.compile(r"^\s*(?P<number>[0-9][0-9_,]*(?:\.[0-9]+)?)\s*(?P<unit>[a-zA-Z]+)\s*$")


def parse_mass(text: str, field: str = "quantity", *, allow_zero: bool = False) -> int:
    """A mass written by a person (``12.5t``, ``800 kg``, ``250g``, ``1,200kg``) in integer grams.

    The unit is required, and the value must come to a whole number of grams: nothing is
    rounded on its way to the chain.
    """
    match = _MASS.match(text)
    if match is None:
        raise InvalidInput(
            field, f"{text!r} is not a mass; write a number and a unit: 12.5t, 800kg or 250g"
        )
    unit = match["unit"].lower()
    if unit not in _UNITS:
        raise InvalidInput(field, f"unknown unit {match['unit']!r} in {text!r}; use t, kg or g")
    grams = Decimal(match["number"].replace(",", "").replace("_", "")) * _UNITS[unit]
    if grams != grams.to_integral_value():
        raise InvalidInput(field, f"{text!r} is not a whole number of grams")
    if grams == 0 and not allow_zero:
        raise InvalidInput(field, f"{text!r} is zero; a quantity must be at least 1 g")
    return int(grams)
