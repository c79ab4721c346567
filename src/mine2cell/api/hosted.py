"""Hosted-key mode: the service signs an operation with a key file it holds, for a participant
that has no wallet of its own, only on a request bearing that participant's hosted token. The
operation then goes through the same checks and the same relay as every signed one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse

from mine2cell.api import schemas
from mine2cell.api.access import ReadToken, require_hosted
from mine2cell.api.problems import WRITE_PROBLEMS
from mine2cell.api.routes import accepted_response, writing_service
from mine2cell.signing.codec import operation_type, parse_fields

router = APIRouter(prefix="/v1", tags=["operations"])


@router.post(
    "/hosted/{key}/operations",
    status_code=202,
    summary="Have the service sign an operation with the hosted key `key` (hosted token only).",
    response_model=None,
    responses={**WRITE_PROBLEMS, 202: {"model": schemas.Accepted, "description": "Accepted"}},
)
def hosted_operation(
    request: Request,
    key: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="The key's name.")],
    token: ReadToken,
    document: Annotated[
        dict[str, Any],
        Body(
            description='{"type": "Ship", "message": {"lot": "0x...", "recipient": "0x..."}}: '
            "the operation's own fields as in a signed document, without actor, nonce, "
            "deadline or signature; a hand-off's counterparty and optional fields (footprint, "
            "documentHash, corrective) may be left out.",
            examples=[{"type": "Receive", "message": {"lot": "0x" + "ab" * 32}}],
        ),
    ],
) -> JSONResponse:
    require_hosted(token, key)
    op_type = operation_type(document.get("type"))
    fields = parse_fields(op_type, document.get("message"))
    accepted = writing_service(request).client(key).perform(op_type.PRIMARY, fields)
    return accepted_response(accepted)
