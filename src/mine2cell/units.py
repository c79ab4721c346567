"""Masses are integer grams everywhere; these helpers read and write them for people."""

from __future__ import annotations

import re

from mine2cell.errors import InvalidInput


def format_mass(grams: int) -> str:
    """Exact and human-sized: 17865000 -> ``17.865 t``, 1500 -> ``1.5 kg``, 12 -> ``12 g``.
    Integer arithmetic throughout, so any uint96 quantity is shown to the gram."""
    sign = "-" if grams < 0 else ""
    for unit, digits in (("t", 6), ("kg", 3)):
        size = 10**digits
        if abs(grams) >= size:
            whole, rest = divmod(abs(grams), size)
            fraction = str(rest).rjust(digits, "0").rstrip("0")
            return f"{sign}{whole:,}{'.' + fraction if fraction else ''} {unit}"
    return f"{grams} g"


_UNIT_DIGITS = {"t": 6, "kg": 3, "g": 0}  # grams per unit, as a power of ten
_MASS = re.compile(
    r"^\s*(?P<whole>[0-9][0-9_,]*)(?:\.(?P<fraction>[0-9]+))?\s*(?P<unit>[a-zA-Z]+)\s*$"
)


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
    if unit not in _UNIT_DIGITS:
        raise InvalidInput(field, f"unknown unit {match['unit']!r} in {text!r}; use t, kg or g")
    digits = _UNIT_DIGITS[unit]
    fraction = str(match["fraction"] or "")
    if fraction[digits:].strip("0"):
        raise InvalidInput(field, f"{text!r} is not a whole number of grams")
    whole = int(str(match["whole"]).replace(",", "").replace("_", ""))
    grams: int = whole * 10**digits + int(fraction[:digits].ljust(digits, "0") or "0")
    if grams == 0 and not allow_zero:
        raise InvalidInput(field, f"{text!r} is zero; a quantity must be at least 1 g")
    return grams
