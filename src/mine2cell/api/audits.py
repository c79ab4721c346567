"""Audit on request (read tier): the independent verification of ``mine2cell audit verify``, run
by the service against its own node and compared with the index's provenance report. An auditor
who must not trust the service runs the CLI against a node of its own instead; this route gives
everyone else the same report (schema ``mine2cell.audit/1``) without installing anything."""

from __future__ import annotations

import json
from typing import Annotated

from eth_utils import keccak
from fastapi import APIRouter, Query, Request, Response

from mine2cell.api.access import ReadToken
from mine2cell.api.problems import PROBLEMS
from mine2cell.api.routes import IdText, kept_report, passport_of, service_of
from mine2cell.audit.verify import report_bytes, verify

router = APIRouter(prefix="/v1", tags=["passports"])


@router.get(
    "/passports/{passport}/audit",
    summary="Verify the passport's chain against the node (code, inclusion, signatures, roles, "
    "custody, quantities, mass balance, origins, corrections) and compare the figures with the "
    "service's report. The report's keccak256 is in the Report-Keccak256 header, ready to attest.",
    responses={
        **PROBLEMS,
        200: {"description": "The audit report (schema mine2cell.audit/1), pass or fail."},
    },
)
def audit(
    request: Request,
    passport: IdText,
    _: ReadToken,
    confirmations: Annotated[
        int | None,
        Query(ge=0, le=10_000, description="Blocks each event must be buried under."),
    ] = None,
) -> Response:
    service = service_of(request)
    passport_id = passport_of(service, passport)
    kept = json.loads(kept_report(service, passport_id))
    result = verify(
        service.w3,
        service.ledger.address,
        passport_id,
        rpc_url=service.rpc_url,
        high_risk_countries=service.settings.high_risk_country_set,
        confirmations=service.settings.confirmations if confirmations is None else confirmations,
        from_block=service.deployment_block(),
        compare=kept,
        compare_source=f"{request.url.path.rsplit('/', 1)[0]}/provenance",
    )
    body = report_bytes(result.to_json())
    return Response(
        body,
        media_type="application/json",
        headers={"Report-Keccak256": "0x" + keccak(body).hex()},
    )
