"""Masses are integer grams everywhere; these helpers only format them for people."""

from __future__ import annotations

from decimal import Decimal


def format_mass(grams: int) -> str:
    """Exact and human-sized: 17865000 -> ``17.865 t``, 1500 -> ``1.5 kg``, 12 -> ``12 g``."""
    for unit, size in (("t", 1_000_000), ("kg", 1_000)):
        if abs(grams) >= size:
            value = Decimal(grams) / Decimal(size)
            text = format(value.normalize(), "f")
            whole, _, fraction = text.partition(".")
            return f"{int(whole):,}{'.' + fraction if fraction else ''} {unit}"
    return f"{grams} g"
