"""Lots (read tier): current state on the ledger, full history from the index, and the trace
upstream (origins, footprint, flags) and downstream (every lot and passport its material
reached, for recalls)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mine2cell.api import schemas
from mine2cell.api.access import ReadToken
from mine2cell.api.problems import PROBLEMS, NotFound
from mine2cell.api.routes import IdText, service_of
from mine2cell.ids import parse_id, show_id
from mine2cell.index.store import LotEvent
from mine2cell.materials import describe
from mine2cell.provenance.engine import CORRECTION_REASONS, downstream, lot_provenance
from mine2cell.provenance.report import evidence_json, hex_id, labelled

router = APIRouter(prefix="/v1", tags=["lots"])


def _lot(request: Request, text: str) -> bytes:
    lot = parse_id(text, "lot")
    if request.app.state.runtime.service.store().lot(lot) is None:
        raise NotFound(
            f"lot {show_id(lot)} is not in the index of this ledger (never commissioned or "
            "produced, or not indexed yet)",
            "lot",
        )
    return lot


@router.get(
    "/lots/{lot}",
    summary="A lot's current state on the ledger.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.LotState)},
)
def lot_state(request: Request, lot: IdText, _: ReadToken) -> dict[str, Any]:
    service = service_of(request)
    lot_id = parse_id(lot, "lot")
    view = service.ledger.lot(lot_id)
    if view is None:
        raise NotFound(f"lot {show_id(lot_id)} was never commissioned or produced", "lot")
    return {
        "lot": labelled(lot_id),
        "material": {"code": view.material, "name": describe(view.material)},
        "remaining_grams": view.remaining,
        "custodian": view.custodian,
        "in_transit_to": view.recipient,
        "closed": view.remaining == 0,
        "links": {
            "history": f"/v1/lots/{hex_id(lot_id)}/history",
            "upstream": f"/v1/lots/{hex_id(lot_id)}/upstream",
            "downstream": f"/v1/lots/{hex_id(lot_id)}/downstream",
        },
    }


def _event_json(item: LotEvent) -> dict[str, Any]:
    found: dict[str, Any] = {"kind": item.kind, "evidence": evidence_json(item.event)}
    if item.quantity is not None:
        found["quantity_grams"] = item.quantity
    if item.remaining is not None:
        found["remaining_grams"] = item.remaining
    if item.counterparty is not None:
        found["counterparty"] = item.counterparty
    if item.step is not None:
        found["step"] = {
            "event_id": hex_id(item.step),
            "kind": item.step_kind,
            "passport": None if item.passport is None else labelled(item.passport),
        }
    found["corrections"] = [
        {
            "reason": CORRECTION_REASONS.get(c.reason, f"reason {c.reason}"),
            "corrective_event_ids": [hex_id(e) for e in c.corrective],
            "evidence": evidence_json(c.event),
        }
        for c in item.corrections
    ]
    return found


@router.get(
    "/lots/{lot}/history",
    summary="Every event that touched the lot, in chain order, with its on-chain evidence.",
    response_model=None,
    responses={**PROBLEMS, **schemas.ok(schemas.LotHistory)},
)
def lot_history(request: Request, lot: IdText, _: ReadToken) -> dict[str, Any]:
    lot_id = _lot(request, lot)
    events = service_of(request).store().history(lot_id)
    return {"lot": labelled(lot_id), "events": [_event_json(e) for e in events]}


@router.get(
    "/lots/{lot}/upstream",
    summary="Where the lot's material came from: origins by mine and country, recycled content, "
    "footprint, due-diligence flags and the upstream graph (schema mine2cell.provenance/1).",
    responses=PROBLEMS,
)
def lot_upstream(request: Request, lot: IdText, _: ReadToken) -> dict[str, Any]:
    lot_id = _lot(request, lot)
    service = service_of(request)
    report = lot_provenance(
        service.store().ancestry([lot_id]),
        lot_id,
        high_risk_countries=service.settings.high_risk_country_set,
    )
    found: dict[str, Any] = report.to_json()
    return found


@router.get(
    "/lots/{lot}/downstream",
    summary="Where the lot's material went: every lot and passport that contains it, with grams "
    "(for recalls).",
    responses=PROBLEMS,
)
def lot_downstream(request: Request, lot: IdText, _: ReadToken) -> dict[str, Any]:
    lot_id = _lot(request, lot)
    found: dict[str, Any] = downstream(
        service_of(request).store().downstream([lot_id]), [lot_id]
    ).to_json()
    return found
