"""Encrypted key files (Ethereum keystore v3, via eth-account) in the data directory.

Each participant key is one file ``<name>.json``, created with mode 0600 in a 0700 directory.
Private keys are only ever decrypted into a LocalSigner, whose ``repr`` shows the address only;
nothing here prints, logs or returns key material.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from mine2cell.errors import InvalidInput, Mine2CellError
from mine2cell.signing.eip712 import SECP256K1_N, LocalSigner

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class KeystoreError(Mine2CellError):
    """A key file is missing, exists already, or cannot be decrypted."""


@dataclass(frozen=True)
class KeyEntry:
    name: str
    address: ChecksumAddress
    path: Path


def parse_private_key(text: str) -> bytes:
    """A private key given as 64 hex digits (optionally 0x-prefixed), checked to be in range."""
    text = text.strip()
    if not _HEX_KEY.fullmatch(text):
        # The message must not echo the input: it may be a mistyped key.
        raise InvalidInput("private key", "must be 64 hexadecimal digits, optionally after 0x")
    key = bytes.fromhex(text.removeprefix("0x"))
    if not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        raise InvalidInput("private key", "is outside the range of secp256k1 keys")
    return key


class Keystore:
    """The key files of one data directory."""

    def __init__(self, directory: Path, *, scrypt_n: int | None = None) -> None:
        self.directory = directory
        # The scrypt cost: eth-account's default unless lowered for tests.
        self._scrypt_n = scrypt_n

    def has(self, name: str) -> bool:
        """Whether a key file ``name`` is here (a malformed name is not)."""
        try:
            return self._path(name).is_file()
        except InvalidInput:
            return False

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                "name",
                f"{name!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric",
            )
        return self.directory / f"{name}.json"

    def _write(self, name: str, key: bytes, passphrase: str) -> KeyEntry:
        if not passphrase:
            raise InvalidInput("passphrase", "must not be empty")
        path = self._path(name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        encrypted = Account.encrypt(key, passphrase, kdf="scrypt", iterations=self._scrypt_n)
        data = (json.dumps(encrypted, indent=2, sort_keys=True) + "\n").encode()
        try:
            # O_EXCL: never overwrite a key; 0600 from the start, not chmod'ed afterwards.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeystoreError(f"a key named {name!r} exists already ({path})") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return KeyEntry(name, to_checksum_address(encrypted["address"]), path)

    def new(self, name: str, passphrase: str) -> KeyEntry:
        """Create a fresh random key."""
        return self._write(name, secrets.token_bytes(32), passphrase)

    def import_key(self, name: str, private_key: bytes, passphrase: str) -> KeyEntry:
        return self._write(name, private_key, passphrase)

    def _read(self, name: str) -> dict[str, Any]:
        path = self._path(name)
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeystoreError(
                f"no key named {name!r} in {self.directory}; `mine2cell keys list` shows the keys"
            ) from None
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"key file {path} is unreadable: {exc}") from None
        return loaded

    def entry(self, name: str) -> KeyEntry:
        data = self._read(name)
        return KeyEntry(name, to_checksum_address(data["address"]), self._path(name))

    def entries(self) -> list[KeyEntry]:
        if not self.directory.is_dir():
            return []
        return [self.entry(path.stem) for path in sorted(self.directory.glob("*.json"))]

    def signer(self, name: str, passphrase: str) -> LocalSigner:
        """Decrypt a key into a signer."""
        data = self._read(name)
        try:
            key = Account.decrypt(data, passphrase)
        except ValueError:
            raise KeystoreError(f"wrong passphrase for key {name!r}") from None
        return LocalSigner(bytes(key))
