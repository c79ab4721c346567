"""Material codes recorded on the ledger (a uint32 per lot) and what they mean.

The ledger only compares codes (a transformation may not create mass of a material it consumes);
names and the EU Battery Regulation Annex X element a material carries live here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mine2cell.errors import InvalidInput

# Elements under the supply-chain due-diligence duty (EU 2023/1542, Annex X).
ANNEX_X = frozenset({"cobalt", "lithium", "nickel", "natural graphite"})


@dataclass(frozen=True)
class Material:
    code: int
    key: str
    name: str
    element: str | None  # the Annex X (or other) element the material is traced for

    @property
    def annex_x(self) -> bool:
        return self.element in ANNEX_X


CATALOGUE: tuple[Material, ...] = (
    Material(100, "co-ore", "Cobalt ore", "cobalt"),
    Material(101, "co-hydroxide", "Cobalt hydroxide", "cobalt"),
    Material(102, "co-sulfate", "Cobalt sulfate", "cobalt"),
    Material(200, "li-spodumene", "Spodumene concentrate", "lithium"),
    Material(201, "li-carbonate", "Lithium carbonate", "lithium"),
    Material(202, "li-hydroxide", "Lithium hydroxide", "lithium"),
    Material(300, "ni-ore", "Nickel ore", "nickel"),
    Material(301, "ni-mhp", "Mixed hydroxide precipitate", "nickel"),
    Material(302, "ni-sulfate", "Nickel sulfate", "nickel"),
    Material(400, "graphite-natural", "Natural graphite concentrate", "natural graphite"),
    Material(401, "graphite-spherical", "Spherical natural graphite", "natural graphite"),
    Material(500, "mn-sulfate", "Manganese sulfate", "manganese"),
    Material(600, "black-mass", "Black mass (battery recycling)", None),
    Material(700, "pcam-nmc", "NMC precursor (pCAM)", None),
    Material(701, "cam-nmc", "NMC cathode active material (CAM)", None),
    Material(800, "cell", "Battery cell", None),
)

_BY_CODE = {m.code: m for m in CATALOGUE}
_BY_KEY = {m.key: m for m in CATALOGUE}


def material(value: int | str) -> Material:
    """Look a material up by code or by key (``co-hydroxide``)."""
    found = _BY_CODE.get(value) if isinstance(value, int) else _BY_KEY.get(value)
    if found is None:
        known = ", ".join(m.key for m in CATALOGUE)
        raise InvalidInput("material", f"unknown material {value!r}; known: {known}")
    return found


def describe(code: int) -> str:
    found = _BY_CODE.get(code)
    return found.name if found else f"material #{code}"
