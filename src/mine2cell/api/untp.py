"""UN Transparency Protocol exports (read tier): the Digital Traceability Events of a lot or of a
passport's upstream chain, and the traceability and material-provenance part of a passport's
Digital Product Passport, each an unsecured W3C Verifiable Credential that validates against the
UNTP JSON Schemas (mappings in ``mine2cell.interop.untp``). The DPP links its DTE by address and
SHA-256, which hold because both routes serve ``document_bytes``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from mine2cell.api.access import ReadToken
from mine2cell.api.problems import PROBLEMS, NotFound, NotIndexed
from mine2cell.api.routes import IdText, passport_of, service_of
from mine2cell.ids import parse_id, show_id
from mine2cell.interop.untp import LedgerRef, document_bytes, lot_dte, passport_dpp, passport_dte
from mine2cell.provenance.report import hex_id
from mine2cell.service import Service

router = APIRouter(prefix="/v1", tags=["untp"])

_CREDENTIAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "@context", "id", "issuer", "credentialSubject"],
    "properties": {
        "type": {"type": "array", "items": {"type": "string"}},
        "@context": {"type": "array", "items": {"type": "string"}},
        "id": {"type": "string"},
        "issuer": {"type": "object"},
        "validFrom": {"type": "string"},
    },
}


def _credential(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": what,
            "content": {"application/json": {"schema": _CREDENTIAL_SCHEMA}},
        },
        **PROBLEMS,
    }


def _ledger(service: Service) -> LedgerRef:
    return LedgerRef(service.ledger.domain.chain_id, service.ledger.address)


def _json(document: dict[str, Any]) -> Response:
    return Response(document_bytes(document), media_type="application/json")


@router.get(
    "/lots/{lot}/untp",
    summary="The lot's history as UNTP Digital Traceability Events (a Verifiable Credential), "
    "each event with its on-chain evidence.",
    response_class=Response,
    responses=_credential("A UNTP DigitalTraceabilityEvent credential (unsecured)."),
)
def lot_untp(request: Request, lot: IdText, _: ReadToken) -> Response:
    service = service_of(request)
    lot_id = parse_id(lot, "lot")
    document = lot_dte(service.store(), lot_id, ledger=_ledger(service))
    if document is None:
        raise NotFound(
            f"lot {show_id(lot_id)} is not in the index of this ledger (never commissioned or "
            "produced, or not indexed yet)",
            "lot",
        )
    return _json(document)


@router.get(
    "/passports/{passport}/untp",
    name="passport_untp",
    summary="The passport's upstream chain as UNTP Digital Traceability Events (a Verifiable "
    "Credential): commissioning, custody, transformations, the binding, corrections.",
    response_class=Response,
    responses=_credential("A UNTP DigitalTraceabilityEvent credential (unsecured)."),
)
def passport_untp(request: Request, passport: IdText, _: ReadToken) -> Response:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    document = passport_dte(service.store(), passport_id, ledger=_ledger(service))
    if document is None:
        raise NotIndexed(passport_id)
    return _json(document)


@router.get(
    "/passports/{passport}/untp/dpp",
    summary="The traceability and material-provenance part of the passport's UNTP Digital "
    "Product Passport: materials by element and origin country with mass and recycled fractions, "
    "the raw-material carbon footprint, and a hashed link to its traceability events.",
    response_class=Response,
    responses=_credential("A UNTP DigitalProductPassport credential (unsecured)."),
)
def passport_untp_dpp(request: Request, passport: IdText, _: ReadToken) -> Response:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    document = passport_dpp(
        service.store(),
        passport_id,
        ledger=_ledger(service),
        high_risk_countries=service.settings.high_risk_country_set,
        dte_url=str(request.url_for("passport_untp", passport=hex_id(passport_id))),
    )
    if document is None:
        raise NotIndexed(passport_id)
    return _json(document)
