"""What the EPCIS suites share: validation against the official EPCIS 2.0 JSON schema (GS1's, read
from ../shared/data/epcis beside the checkout, as CI has it), with the ``uri`` and ``date-time``
formats checked by this file's own strict patterns, not the module's; the ledger's logs read
straight from the node; and the comparison of two documents' events apart from evidence."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

from mine2cell.chain.rpc import JsonRpc
from mine2cell.index.events import LedgerLog, decode_log
from mine2cell.service import Service

SHARED = Path(__file__).parents[2].parent / "shared" / "data" / "epcis"
OFFICIAL_SCHEMA = SHARED / "EPCIS-JSON-Schema.json"
VENDORED_SCHEMA = (
    Path(__file__).parents[2]
    / "src"
    / "mine2cell"
    / "interop"
    / "schema"
    / "EPCIS-JSON-Schema.json"
)

# RFC 3986 absolute URI: a scheme, then unreserved, reserved or percent-encoded characters only.
_URI = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})+$"
)
_DATE_TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_FORMATS = FormatChecker(formats=())
_FORMATS.checks("uri")(lambda value: not isinstance(value, str) or bool(_URI.match(value)))
_FORMATS.checks("date-time")(
    lambda value: not isinstance(value, str) or bool(_DATE_TIME.match(value))
)


def official_schema() -> dict[str, Any]:
    path = OFFICIAL_SCHEMA if OFFICIAL_SCHEMA.is_file() else VENDORED_SCHEMA
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


_VALIDATOR = Draft7Validator(official_schema(), format_checker=_FORMATS)


def schema_errors(document: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in _VALIDATOR.iter_errors(document)]


def assert_valid(document: Any) -> None:
    errors = schema_errors(document)
    assert errors == [], errors
    assert document["type"] == "EPCISDocument"


def events(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["epcisBody"]["eventList"]
    return found


def ledger_logs(service: Service) -> list[LedgerLog]:
    """Every log of the ledger, from the node (not the index)."""
    raw = JsonRpc(service.w3).call(
        "eth_getLogs",
        [{"address": service.ledger.address, "fromBlock": "0x0", "toBlock": "latest"}],
    )
    return [log for log in (decode_log(item) for item in raw) if log is not None]


def _plain(event: dict[str, Any]) -> dict[str, Any]:
    """An event without what the chain it is on decides: ids, times, evidence."""
    skip = ("eventID", "eventTime", "recordTime", "m2c:evidence", "errorDeclaration")
    return {k: v for k, v in event.items() if k not in skip}


def comparable(document: dict[str, Any]) -> list[str]:
    """The document's events apart from on-chain evidence (event ids, block times, m2c:evidence),
    each event id a declaration names replaced by the event it names, sorted."""
    listed = events(document)
    by_id = {
        e["eventID"]: json.dumps(_plain(e), sort_keys=True)
        for e in listed
        if "errorDeclaration" not in e
    }
    found = []
    for event in listed:
        plain = _plain(event)
        declared = event.get("errorDeclaration")
        if declared is not None:
            plain["errorDeclaration"] = {
                "reason": declared["reason"],
                "m2c:declaredBy": declared["m2c:declaredBy"],
                "correctiveEventIDs": [by_id[e] for e in declared.get("correctiveEventIDs", [])],
            }
        found.append(json.dumps(plain, sort_keys=True))
    return sorted(found)
