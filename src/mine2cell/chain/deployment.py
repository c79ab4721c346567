"""Which ledger a data directory works with on each chain: deployed once, remembered in
``DATA_DIR/ledgers/CHAIN_ID.json``."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from mine2cell.errors import ConfigurationError


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    address: ChecksumAddress
    block: int
    governor: ChecksumAddress
    relayer: ChecksumAddress | None
    deployed_at: float

    @staticmethod
    def path(data_dir: Path, chain_id: int) -> Path:
        return data_dir / "ledgers" / f"{chain_id}.json"

    @classmethod
    def load(cls, data_dir: Path, chain_id: int) -> Deployment | None:
        path = cls.path(data_dir, chain_id)
        try:
            data = json.loads(path.read_text())
            return cls(
                chain_id=int(data["chain_id"]),
                address=to_checksum_address(data["address"]),
                block=int(data["block"]),
                governor=to_checksum_address(data["governor"]),
                relayer=to_checksum_address(data["relayer"]) if data.get("relayer") else None,
                deployed_at=float(data["deployed_at"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigurationError(
                f"the deployment record {path} is unreadable ({exc}); fix or remove it"
            ) from exc

    def save(self, data_dir: Path) -> Path:
        """Write atomically (a crash leaves the old record or the new one, never half)."""
        path = self.path(data_dir, self.chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def now(
        cls,
        chain_id: int,
        address: str,
        block: int,
        governor: str,
        relayer: str | None,
    ) -> Deployment:
        return cls(
            chain_id,
            to_checksum_address(address),
            block,
            to_checksum_address(governor),
            to_checksum_address(relayer) if relayer else None,
            time.time(),
        )
