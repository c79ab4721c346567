"""Passport reports as documents served from the index.

A passport's chain is fixed once it is bound, so its report changes only when the index stores an
event that changes it (``Store.save_report`` says which). The report is computed by the engine on
the first request, kept in the index as JSON, and served from there until then: a request for a
passport with a thousand lots upstream reads one row instead of walking the graph again.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from mine2cell import __version__
from mine2cell.errors import StorageError
from mine2cell.index.store import Store
from mine2cell.provenance.engine import passport_provenance
from mine2cell.provenance.report import PROVENANCE_SCHEMA


def variant(high_risk_countries: frozenset[str]) -> str:
    """What a stored report depends on besides the chain: the code that computed it and the
    high-risk country list."""
    return f"{PROVENANCE_SCHEMA} {__version__} high-risk:" + ",".join(sorted(high_risk_countries))


def passport_document(
    store: Store,
    passport: bytes,
    *,
    high_risk_countries: frozenset[str],
    part: Literal["report", "summary"] = "report",
) -> bytes | None:
    """The passport's provenance report (``PassportProvenance.to_json()``), or with
    ``part="summary"`` its public summary (``public_summary().to_json()``), as compact JSON, from
    the index when it is there, else computed and kept (both parts at once); None when the
    passport is not bound. ``as_of`` in the report is when it was computed."""
    kind = variant(high_risk_countries)
    document = store.report(passport, _PARTS[part] + kind)
    if document is not None:
        return document
    epoch = store.report_epoch()  # before the graph: an invalidation after it voids the save
    graph = store.upstream(passport)
    if graph is None:
        return None
    report = passport_provenance(
        graph, passport, high_risk_countries=high_risk_countries, now=int(time.time())
    )
    documents = {
        "report": _compact(report.to_json()),
        "summary": _compact(report.public_summary().to_json()),
    }
    try:
        for name, body in documents.items():
            store.save_report(passport, _PARTS[name] + kind, body, epoch)
    except StorageError:
        pass  # kept only to answer faster: on a full disk it is computed again next time
    return documents[part]


_PARTS = {"report": "", "summary": "summary "}


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
