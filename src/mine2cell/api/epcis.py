"""GS1 EPCIS 2.0 over HTTP: exports of a lot, a passport's upstream chain or a participant's
events in a time range (read tier, ``application/ld+json``), and capture of a participant's EPCIS
document (hosted tier: the service signs every event with the token's hosted key)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mine2cell.api.access import ReadToken, require_hosted
from mine2cell.api.problems import PROBLEMS, WRITE_PROBLEMS, FieldError, NotFound, problem
from mine2cell.api.routes import IdText, passport_of, service_of, writing_service
from mine2cell.ids import parse_account, parse_id, show_id
from mine2cell.interop import capture as capturing
from mine2cell.interop.epcis import MEDIA_TYPE, LedgerRef, document
from mine2cell.interop.records import (
    Records,
    lot_records,
    parse_instant,
    participant_scope,
    passport_records,
)
from mine2cell.service import Service

router = APIRouter(prefix="/v1", tags=["epcis"])

EPCIS_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An EPCIS 2.0 document (JSON-LD) that validates against the EPCIS 2.0 "
        "JSON schema; each event carries its on-chain evidence under m2c:evidence.",
        "content": {MEDIA_TYPE: {"schema": {"type": "object"}}},
    },
    **PROBLEMS,
}


def _export(service: Service, records: Records) -> Response:
    ledger = LedgerRef(service.ledger.domain.chain_id, service.ledger.address)
    body = document(records, ledger, created=int(time.time()))
    return Response(json.dumps(body, indent=1), media_type=MEDIA_TYPE)


@router.get(
    "/lots/{lot}/epcis",
    summary="The lot's history as an EPCIS 2.0 document.",
    response_class=Response,
    responses=EPCIS_DOCUMENT,
)
def lot_epcis(request: Request, lot: IdText, _: ReadToken) -> Response:
    service = service_of(request)
    lot_id = parse_id(lot, "lot")
    records = lot_records(service.store(), lot_id)
    if records is None:
        raise NotFound(
            f"lot {show_id(lot_id)} is not in the index of this ledger (never commissioned or "
            "produced, or not indexed yet)",
            "lot",
        )
    return _export(service, records)


@router.get(
    "/passports/{passport}/epcis",
    summary="The passport's whole upstream chain (every event of every upstream lot and step, "
    "corrections included) as an EPCIS 2.0 document.",
    response_class=Response,
    responses=EPCIS_DOCUMENT,
)
def passport_epcis(request: Request, passport: IdText, _: ReadToken) -> Response:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    records = passport_records(service.store(), passport_id)
    if records is None:
        raise NotFound(f"passport {show_id(passport_id)} is not indexed yet", "passport")
    return _export(service, records)


@router.get(
    "/participants/{account}/epcis",
    summary="The events a participant signed or was a party to, in a time range, as an EPCIS 2.0 "
    "document.",
    response_class=Response,
    responses=EPCIS_DOCUMENT,
)
def participant_epcis(
    request: Request,
    account: Annotated[str, Path(description="The participant's address (0x and 40 hex digits).")],
    _: ReadToken,
    since: Annotated[
        str | None,
        Query(
            alias="from",
            description="Events at or after this time (block time): YYYY-MM-DD (00:00 UTC) or an "
            "ISO 8601 date-time with offset.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(alias="to", description="Events before this time, as `from`."),
    ] = None,
) -> Response:
    address = parse_account(account)
    start = parse_instant(since, "from") if since is not None else 0
    end = parse_instant(until, "to") if until is not None else None
    service = service_of(request)
    store = service.store()
    if address not in store.participants([address]):
        raise NotFound(f"{address} was never accredited on this ledger", "account")
    records = participant_scope(
        store,
        service.w3,
        service.ledger.address,
        address,
        from_block=service.deployment_block(),
        since=start,
        until=end,
    )
    return _export(service, records)


# -- capture ---------------------------------------------------------------------------------------


class CapturedEvent(BaseModel):
    """What became of one event of the captured document."""

    index: int = Field(description="The event's position in the document's eventList.")
    eventID: str | None = Field(description="The event's EPCIS eventID, when it has one.")
    result: Literal["accepted", "duplicate", "rejected"] = Field(
        description="accepted: signed and queued for the ledger; duplicate: this participant "
        "captured this event before, nothing was signed; rejected: see field and reason."
    )
    operation: str | None = Field(description="The ledger operation the event maps to.")
    ledgerEventId: str | None = Field(default=None, description="The operation's event id.")
    statusUrl: str | None = Field(default=None, description="Where to follow the operation.")
    status: str | None = Field(default=None, description="pending, submitted, confirmed...")
    field: str | None = Field(default=None, description="JSON path of what was refused.")
    reason: str | None = None


class CaptureReport(BaseModel):
    """Per event of the document, in its order: accepted, duplicate or rejected."""

    signer: str
    accepted: int
    duplicates: int
    rejected: int
    events: list[CapturedEvent]


_CAPTURE_BODY = {
    "required": True,
    "description": "An EPCIS 2.0 EPCISDocument (JSON-LD): see mine2cell.interop.capture for how "
    "each event maps to a ledger operation.",
    "content": {
        media: {"schema": {"type": "object"}} for media in (MEDIA_TYPE, "application/json")
    },
}


@router.post(
    "/epcis/capture",
    summary="Capture an EPCIS 2.0 document: each event becomes an operation signed with the "
    "hosted key (hosted token only), or is refused with the reason.",
    response_model=CaptureReport,
    responses=WRITE_PROBLEMS,
    openapi_extra={"requestBody": _CAPTURE_BODY},
)
async def epcis_capture(
    request: Request,
    token: ReadToken,
    key: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="The hosted key that signs (default: the token's).",
        ),
    ] = None,
) -> CaptureReport | JSONResponse:
    name = key or token.key_name or ""
    require_hosted(token, name)
    service = writing_service(request)
    document = capturing.load(await request.body())

    def run() -> list[capturing.EventOutcome]:
        return capturing.capture(document, service.ledger, service.outbox, service.signer(name))

    try:
        outcomes = await run_in_threadpool(run)
    except capturing.SchemaInvalid as exc:
        errors = [FieldError(field=path, message=message) for path, message in exc.errors]
        return problem(
            request, 422, "epcis-schema-invalid", "Not a valid EPCIS 2.0 document", str(exc), errors
        )
    tally = capturing.counts(outcomes)
    return CaptureReport(
        signer=service.signer(name).address,
        accepted=tally["accepted"],
        duplicates=tally["duplicate"],
        rejected=tally["rejected"],
        events=[CapturedEvent(**outcome.as_json()) for outcome in outcomes],
    )
