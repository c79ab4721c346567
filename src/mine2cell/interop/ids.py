"""Lots and passports as URIs, for EPCIS and UNTP documents, and back.

The ledger names a lot by 32 bytes: the UTF-8 of a lot number of at most 32 bytes, padded with
zeros, or the keccak-256 of a longer text (see ``mine2cell.ids``). Exported, an id becomes:

1. ``https://id.gs1.org/01/{GTIN}/10/{LOT}``, a GS1 Digital Link, when its lot number is a GS1
   element string ``(01){14-digit GTIN}(10){lot}``: the GTIN and the batch/lot number are known.
2. The lot number itself when it already is an absolute URI (``urn:epc:class:lgtin:...``,
   ``https://...``): the name the participant gave it.
3. ``urn:mine2cell:lot:{lot number}`` (percent-encoded) for any other lot number, and
   ``urn:mine2cell:passport:{...}`` for a passport.
4. ``urn:mine2cell:lot:0x{64 hex digits}`` when the id is a hash, whose text is not on chain.

Read back (``lot_id``), each form gives the id it came from; any other URI is taken as a lot
number and gives ``parse_id(uri)``, so a capture document from another system names the same
lot each time it is imported. A URI longer than 32 bytes is stored as its hash, and exported as
form 4: its text is not on chain.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote, unquote

from mine2cell.errors import InvalidInput
from mine2cell.ids import parse_id, show_id

Kind = Literal["lot", "passport"]

GS1_RESOLVER = "https://id.gs1.org"
_ELEMENT_STRING = re.compile(r"^\(01\)(\d{14})\(10\)([!-~]{1,20})$")
_DIGITAL_LINK = re.compile(r"^https://id\.gs1\.org/01/(\d{14})/10/([^/?#]{1,60})$")
_OURS = re.compile(r"^urn:mine2cell:(lot|passport):(.+)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


def uri(value: bytes, kind: Kind = "lot") -> str:
    """The URI of a lot or passport id (forms 1 to 4 above)."""
    text = show_id(value)
    if text.startswith("0x") and len(text) == 66:
        return f"urn:mine2cell:{kind}:{text}"
    element = _ELEMENT_STRING.match(text)
    if element is not None and kind == "lot":
        gtin, lot = element.groups()
        return f"{GS1_RESOLVER}/01/{gtin}/10/{quote(lot, safe='')}"
    if _SCHEME.match(text) and not _OURS.match(text):
        return text
    return f"urn:mine2cell:{kind}:{quote(text, safe='')}"


def lot_id(text: str, field: str = "epc", kind: Kind = "lot") -> bytes:
    """The id a URI names (the inverse of ``uri``); raises InvalidInput naming ``field``."""
    text = text.strip()
    if not text:
        raise InvalidInput(field, f"is empty; give the {kind}'s URI")
    link = _DIGITAL_LINK.match(text)
    if link is not None:
        gtin, lot = link.groups()
        return parse_id(f"(01){gtin}(10){unquote(lot)}", field)
    ours = _OURS.match(text)
    if ours is not None:
        if ours.group(1) != kind:
            raise InvalidInput(field, f"{text!r} names a {ours.group(1)}, not a {kind}")
        return parse_id(unquote(ours.group(2)), field)
    return parse_id(text, field)
