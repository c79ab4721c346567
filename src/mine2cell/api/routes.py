"""The /v1 routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from fastapi.responses import JSONResponse

from mine2cell.api import schemas
from mine2cell.api.access import ReadToken
from mine2cell.api.problems import PROBLEMS, WRITE_PROBLEMS, Degraded, NotFound, NotIndexed
from mine2cell.chain.node import transport_failure
from mine2cell.errors import ConfigurationError, NodeError
from mine2cell.ids import parse_id, show_id
from mine2cell.provenance.documents import passport_document
from mine2cell.provenance.report import attestation_json, labelled
from mine2cell.relay import intake
from mine2cell.relay.outbox import Accepted, State
from mine2cell.service import Service

router = APIRouter(prefix="/v1")

IdText = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        description="A lot number or passport text (at most 32 bytes), a URI, or 0x and 64 hex "
        "digits.",
    ),
]


def service_of(request: Request) -> Service:
    service: Service = request.app.state.runtime.service
    return service


def writing_service(request: Request) -> Service:
    """The service, for a route that queues operations: refused when it serves reads only."""
    if not request.app.state.runtime.writable:
        raise ConfigurationError(
            "this service serves reads only (no relayer key in its data directory); send "
            "operations to a service that relays"
        )
    relay = request.app.state.runtime.relay
    if relay is not None and relay.blocked is not None:
        raise ConfigurationError(
            f"{relay.blocked}; this operation was not queued: send it again once the relay can "
            "submit (the operations already queued wait for it, see GET /v1/operations/{id})"
        )
    return service_of(request)


def passport_of(service: Service, text: str) -> bytes:
    """The passport named by ``text``, bound and indexed; else 404 saying which it is not."""
    passport = parse_id(text, "passport")
    if service.store().bound(passport):
        return passport
    if service.ledger.passport_binder(passport) is None:
        raise NotFound(f"passport {show_id(passport)} is not bound on this ledger", "passport")
    raise NotIndexed(passport)


def kept_report(service: Service, passport: bytes) -> bytes:
    """The passport's provenance report as the index keeps it (computed on first request)."""
    document = passport_document(
        service.store(), passport, high_risk_countries=service.settings.high_risk_country_set
    )
    if document is None:
        raise NotIndexed(passport)
    return document


@router.get(
    "/health",
    summary="Liveness: the process answers.",
    response_model=None,
    responses=schemas.ok(schemas.Health),
)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: the node answers and the index keeps up.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.Ready)},
)
def ready(request: Request) -> dict[str, Any]:
    service = service_of(request)
    try:
        head = service.w3.eth.block_number
    except Exception as exc:  # any transport failure means the node is not reachable
        raise NodeError(
            f"the node does not answer: {transport_failure(exc) or type(exc).__name__}; check "
            "that it runs and that the service's RPC URL (--rpc-url, MINE2CELL_RPC_URL) points "
            "at it"
        ) from None
    checkpoint = service.store().checkpoint()
    indexed = checkpoint.block_number if checkpoint is not None else -1
    indexer = request.app.state.runtime.indexer
    if indexer is not None and indexer.failure is not None:
        raise Degraded(
            f"the index stopped at block {indexed} of {head} and cannot follow the chain: "
            f"{transport_failure(indexer.failure) or indexer.failure} (it retries by itself)"
        )
    return {
        "status": "ready",
        "chain_id": service.ledger.domain.chain_id,
        "ledger": service.ledger.address,
        "head_block": head,
        "indexed_block": indexed,
        "index_lag": max(0, head - indexed),
        "relaying": request.app.state.runtime.relaying,
    }


# -- operations ------------------------------------------------------------------------------------


@router.post(
    "/operations",
    status_code=202,
    summary="Submit an operation signed by its participant (an EIP-712 document).",
    response_model=None,
    responses={**WRITE_PROBLEMS, 202: {"model": schemas.Accepted, "description": "Accepted"}},
)
def submit(
    request: Request,
    document: Annotated[
        dict[str, Any],
        Body(
            description='{"type": "Ship", "message": {...}, "signature": "0x..."} as '
            "eth_signTypedData_v4 signs it (see mine2cell.signing.codec)",
        ),
    ],
) -> JSONResponse:
    service = writing_service(request)
    return accepted_response(intake.accept_document(service.outbox, service.ledger, document))


def accepted_response(accepted: Accepted) -> JSONResponse:
    """202 with the operation's status and where to follow it."""
    event_id = "0x" + accepted.event_id.hex()
    return JSONResponse(
        {**accepted.status.as_json(), "statusUrl": f"/v1/operations/{event_id}"},
        status_code=202,
        headers={"Location": f"/v1/operations/{event_id}"},
    )


@router.get(
    "/operations/{event_id}",
    summary="Where an operation is: pending, submitted, confirmed or rejected.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.OperationStatus)},
)
def operation(
    request: Request,
    event_id: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="The event id.")],
) -> dict[str, Any]:
    service = service_of(request)
    status = service.outbox.status(bytes.fromhex(event_id[2:]))
    if status is None:
        raise NotFound(f"no operation {event_id} was submitted here", "event_id")
    try:
        head: int | None = service.w3.eth.block_number
    except Exception:  # the node is down: the status is the outbox's, only its depth is unknown
        head = None  # answered without "confirmations" rather than a 500
    found: dict[str, Any] = status.as_json(head)
    relay = request.app.state.runtime.relay
    if status.state is State.PENDING and relay is not None and relay.blocked is not None:
        found["relayError"] = str(relay.blocked)  # why it waits, instead of silence
    return found


# -- passports ----------------------------------------------------------------------------------


@router.get(
    "/passports/{passport}/provenance",
    summary="The full provenance report (schema mine2cell.provenance/1).",
    responses=PROBLEMS,
)
def provenance(request: Request, passport: IdText, _: ReadToken) -> Response:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    document = kept_report(service, passport_id)
    return Response(document, media_type="application/json")


@router.get(
    "/passports/{passport}/summary",
    summary="The public summary (schema mine2cell.provenance-summary/1): shares by element and "
    "country, recycled content, footprint, flag counts.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.Summary)},
)
def summary(request: Request, passport: IdText) -> Response:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    document = passport_document(
        service.store(),
        passport_id,
        high_risk_countries=service.settings.high_risk_country_set,
        part="summary",
    )
    if document is None:
        raise NotIndexed(passport_id)
    return Response(document, media_type="application/json")


@router.get(
    "/passports/{passport}/attestations",
    summary="Auditors' attestations of the passport.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.Attestations)},
)
def passport_attestations(request: Request, passport: IdText) -> dict[str, Any]:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    return {
        "passport": labelled(passport_id),
        "attestations": [attestation_json(a) for a in service.store().attestations(passport_id)],
    }
