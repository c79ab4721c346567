"""The small integer codes the ledger records: participant roles and feedstock kinds.

They must match the constants in contracts/Ledger.sol.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Role(IntFlag):
    MINE = 1
    RECYCLER = 2
    PROCESSOR = 4
    CELL_MAKER = 8
    AUDITOR = 16
    RELAYER = 32


ALL_ROLES = (
    Role.MINE | Role.RECYCLER | Role.PROCESSOR | Role.CELL_MAKER | Role.AUDITOR | Role.RELAYER
)
# Roles that hold material and may therefore receive a shipment.
CUSTODY_ROLES = Role.MINE | Role.RECYCLER | Role.PROCESSOR | Role.CELL_MAKER


class Feedstock(IntEnum):
    PRIMARY = 0
    PRE_CONSUMER = 1
    POST_CONSUMER = 2


def role_names(mask: int) -> str:
    names = [role.name for role in Role if mask & role and role.name]
    return ", ".join(names) if names else "no role"
