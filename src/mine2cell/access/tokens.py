"""Access tokens of the HTTP service, stored hashed.

Two tiers, after the battery-passport practice of open public data and restricted detail:

- ``read``: facility-level and volume detail (full provenance, lots, participants, audits,
  metrics). The public summary and the passport page's public tier need no token.
- ``hosted``: everything ``read`` may see, and the service signs operations with one named key
  file it holds (hosted-key mode), only for requests bearing this token.

A token is ``m2c_<id>_<secret>``: the id (8 hex digits) finds the row and is safe to show; the
secret (43 URL-safe characters, 256 bits) is shown once, when the token is created, and only its
SHA-256 is stored. A slow password hash is not needed: the secret is random, not chosen by a
person, so it cannot be guessed from its hash. Secrets are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mine2cell import storage
from mine2cell.errors import InvalidInput

Tier = Literal["read", "hosted"]
TIERS: tuple[Tier, ...] = ("read", "hosted")
PREFIX = "m2c_"
_TOKEN = re.compile(r"^m2c_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Token:
    id: str
    tier: Tier
    key_name: str | None
    label: str
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "tier": self.tier,
            "key": self.key_name,
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


# Compared against when the id is unknown, so that a miss costs what a hit costs.
_DECOY = _digest("m2c-decoy")


class TokenStore(storage.Database):
    """The tokens of one data directory (``access.db``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "mine2cell.access")
        path.chmod(0o600)

    def create(self, tier: Tier, label: str, *, key_name: str | None = None) -> tuple[Token, str]:
        """A new token and its full text, which is shown once and never stored."""
        if tier not in TIERS:
            raise InvalidInput("tier", f"{tier!r} is not a tier; one of {', '.join(TIERS)}")
        if (tier == "hosted") != (key_name is not None):
            raise InvalidInput(
                "key", "a hosted token names the key file it signs with; a read token names none"
            )
        label = label.strip()
        if not label or len(label) > 200:
            raise InvalidInput("label", "say whom the token is for (1 to 200 characters)")
        secret = secrets.token_urlsafe(32)
        with self._write() as conn:
            while True:
                token_id = secrets.token_hex(4)
                if (
                    conn.execute("SELECT 1 FROM tokens WHERE id = ?", (token_id,)).fetchone()
                    is None
                ):
                    break
            now = int(time.time())
            conn.execute(
                "INSERT INTO tokens (id, tier, key_name, label, secret_sha256, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, tier, key_name, label, _digest(secret), now),
            )
        token = Token(token_id, tier, key_name, label, now, None)
        return token, f"{PREFIX}{token_id}_{secret}"

    def verify(self, text: str) -> Token | None:
        """The active token ``text`` is, or None (malformed, unknown, wrong secret or revoked)."""
        match = _TOKEN.match(text)
        if match is None:
            return None
        token_id, secret = match.groups()
        with self._lock:
            row = self._conn.execute(
                "SELECT id, tier, key_name, label, created_at, revoked_at, secret_sha256 "
                "FROM tokens WHERE id = ?",
                (token_id,),
            ).fetchone()
        stored = bytes(row[6]) if row is not None else _DECOY
        if not hmac.compare_digest(_digest(secret), stored) or row is None:
            return None
        token = Token(*row[:6])
        return token if token.active else None

    def all(self) -> list[Token]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, tier, key_name, label, created_at, revoked_at FROM tokens "
                "ORDER BY created_at, id"
            ).fetchall()
        return [Token(*row) for row in rows]

    def revoke(self, token_id: str) -> Token:
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (int(time.time()), token_id),
            ).rowcount
        tokens = {t.id: t for t in self.all()}
        if token_id not in tokens:
            raise InvalidInput("token", f"no token {token_id!r}; `mine2cell token list` shows them")
        if not updated:
            raise InvalidInput("token", f"token {token_id} was already revoked")
        return tokens[token_id]
