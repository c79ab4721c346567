"""One Settings object, built at the entry point (CLI or app factory) and passed down."""

from __future__ import annotations

import os
from pathlib import Path

import limits
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mine2cell"


# A starting list of conflict-affected and high-risk areas for battery minerals, to be replaced by
# each operator's own due-diligence assessment (EU 2023/1542 Art. 48-52 and the OECD guidance leave
# the list to the economic operator).
DEFAULT_HIGH_RISK_COUNTRIES = "AF,BF,CD,CF,IQ,LY,ML,MM,NE,SD,SO,SS,SY,VE,YE"


class Settings(BaseSettings):
    """Read from MINE2CELL_* environment variables; CLI options override them."""

    model_config = SettingsConfigDict(env_prefix="MINE2CELL_", extra="forbid")

    data_dir: Path = Field(default_factory=_default_data_dir)
    rpc_url: str | None = Field(
        default=None, description="JSON-RPC URL of a node; none means the embedded dev node"
    )
    ledger_address: str | None = Field(
        default=None, description="The ledger contract; none means the one remembered for the chain"
    )
    governor_key: str = Field(default="governor", description="Key file of the governor")
    relayer_key: str = Field(default="relayer", description="Key file that relays batches")
    anvil_path: Path | None = None
    confirmations: int = Field(
        default=0, ge=0, description="Blocks the index stays behind the head (0 on a dev node)"
    )
    rpc_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a JSON-RPC request to the node may take; a node slower than that "
        "counts as not answering (the relay and the index retry by themselves)",
    )
    relay_reconcile_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often (seconds) the relay checks that its recently mined batches are "
        "still on the chain (a reorganisation, a node that lost blocks)",
    )
    high_risk_countries: str = Field(
        default=DEFAULT_HIGH_RISK_COUNTRIES,
        description="ISO 3166-1 alpha-2 codes, comma-separated, whose origins are flagged",
    )
    cors_origins: str = Field(
        default="",
        description="Origins (comma-separated) whose pages may call the API from a browser; "
        "none by default",
    )
    max_request_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body the HTTP service reads (bytes); larger ones get a 413",
    )
    write_rate_limit: str = Field(
        default="100/second;3000/minute",
        description="Writes (POSTs) one client address may send, per moving window, in the "
        "`limits` notation (N/second;M/minute); over it a 429 with Retry-After",
    )
    passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of the key files (prefer a prompt or a file)"
    )

    @field_validator("write_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit: write it as 100/second;3000/minute"
            ) from None
        return value

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def node_state_file(self) -> Path:
        return self.data_dir / "node" / "state.json"

    @property
    def access_db(self) -> Path:
        """The HTTP service's access tokens (hashed)."""
        return self.data_dir / "access.db"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def high_risk_country_set(self) -> frozenset[str]:
        return frozenset(
            c.strip().upper() for c in self.high_risk_countries.split(",") if c.strip()
        )

    def ledger_dir(self, chain_id: int, address: str) -> Path:
        """Where one ledger's local databases live (outbox, index)."""
        return self.data_dir / "ledgers" / f"{chain_id}-{address.lower()}"
