"""Lot and passport ids as people write them, and as the ledger stores them (32 bytes).

- ``0x`` followed by 64 hex digits: the id itself.
- Any other text of at most 32 bytes (a lot number such as ``KOL-2026-0042``): its UTF-8 bytes,
  zero-padded on the right, so the id reads as the lot number on chain.
- Longer text (a URI, a GS1 Digital Link): its keccak-256 hash.
"""

from __future__ import annotations

import re

from eth_typing import ChecksumAddress
from eth_utils import is_address, keccak, to_checksum_address

from mine2cell.errors import InvalidInput

_HEX_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


def parse_id(text: str, field: str = "lot") -> bytes:
    text = text.strip()
    if not text:
        raise InvalidInput(field, "is empty; give a lot number, a URI or 0x and 64 hex digits")
    if _HEX_ID.match(text):
        return bytes.fromhex(text[2:])
    if text.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in text[2:]):
        raise InvalidInput(
            field, f"{text!r} looks like a hex id but has {len(text) - 2} digits; an id has 64"
        )
    raw = text.encode()
    if len(raw) <= 32:
        if b"\0" in raw:
            raise InvalidInput(field, "may not contain NUL characters")
        return raw.ljust(32, b"\0")
    return keccak(raw)


def parse_account(text: str, field: str = "account") -> ChecksumAddress:
    """An account as people write it (0x and 40 hex digits, any case), checksummed."""
    if not is_address(text):
        raise InvalidInput(field, f"{text!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(text)


def show_id(value: bytes) -> str:
    """The text an id was made from when it is a padded lot number, else its 0x hex."""
    stripped = value.rstrip(b"\0")
    try:
        text = stripped.decode()
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable() and b"\0" not in stripped and not text.startswith("0x"):
        return text
    return "0x" + value.hex()
