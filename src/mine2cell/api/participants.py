"""Participants (read tier): who is accredited, with which roles, facility and country, and
which certifications they hold and until when, each with its on-chain evidence."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from mine2cell.api import schemas
from mine2cell.api.access import ReadToken
from mine2cell.api.problems import PROBLEMS, NotFound
from mine2cell.api.routes import service_of
from mine2cell.codes import Role
from mine2cell.errors import InvalidInput
from mine2cell.ids import parse_account
from mine2cell.provenance.model import ParticipantHistory
from mine2cell.provenance.report import evidence_json, labelled

router = APIRouter(prefix="/v1", tags=["participants"])

ROLE_NAMES = {role.name.lower().replace("_", "-"): role for role in Role if role.name}


def _roles(mask: int) -> list[str]:
    return [name for name, role in ROLE_NAMES.items() if mask & role]


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(min(timestamp, 253402300799), UTC).isoformat()


def participant_json(history: ParticipantHistory, now: int) -> dict[str, Any]:
    """A participant as the ledger's events left it, certifications judged at ``now``."""
    latest = history.role_changes[-1] if history.role_changes else None
    roles = latest.roles if latest is not None else 0
    current: dict[bytes, int] = {}  # the latest record of each scheme is the one in force
    for index, cert in enumerate(history.certifications):
        current[cert.scheme] = index
    return {
        "account": history.account,
        "accredited": roles != 0,
        "roles": _roles(roles),
        "facility": labelled(history.facility),
        "country": history.country,
        "certifications": [
            {
                "scheme": labelled(cert.scheme),
                "valid_until": cert.valid_until,
                "valid_until_utc": _iso(cert.valid_until),
                "in_force": current[cert.scheme] == index,
                "valid_now": current[cert.scheme] == index and cert.valid_until >= now,
                "document_hash": "0x" + cert.document_hash.hex(),
                "evidence": evidence_json(cert.event),
            }
            for index, cert in enumerate(history.certifications)
        ],
        "history": [
            {
                "change": "accredit" if change.roles else "revoke",
                "roles": _roles(change.roles),
                "evidence": evidence_json(change.event),
            }
            for change in history.role_changes
        ],
    }


@router.get(
    "/participants",
    summary="Every participant ever accredited or certified, with roles, facility, country and "
    "certifications.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.Participants)},
)
def participants(
    request: Request,
    _: ReadToken,
    role: Annotated[
        str | None,
        Query(description=f"Only holders of this role now: {', '.join(ROLE_NAMES)}."),
    ] = None,
    country: Annotated[
        str | None, Query(pattern="^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2 code.")
    ] = None,
) -> dict[str, Any]:
    if role is not None and role not in ROLE_NAMES:
        raise InvalidInput("role", f"{role!r} is not a role; one of {', '.join(ROLE_NAMES)}")
    now = int(time.time())
    found = [
        participant_json(history, now)
        for history in service_of(request).store().participants().values()
    ]
    if role is not None:
        found = [p for p in found if role in p["roles"]]
    if country is not None:
        found = [p for p in found if p["country"] == country.upper()]
    return {"participants": found}


@router.get(
    "/participants/{account}",
    summary="One participant: roles, facility, country, certifications and their validity, and "
    "the history of its accreditation.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.Participant)},
)
def participant(
    request: Request,
    account: Annotated[str, Path(description="The participant's address (0x and 40 hex digits).")],
    _: ReadToken,
) -> dict[str, Any]:
    address = parse_account(account)
    found = service_of(request).store().participants([address])
    if address not in found:
        raise NotFound(f"{address} was never accredited on this ledger", "account")
    return participant_json(found[address], int(time.time()))
