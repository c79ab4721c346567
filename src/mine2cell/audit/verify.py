"""An independent audit of one passport: the node's record, every check, the figures recomputed
from the chain alone, and (when given) the service's report compared with them.

Nothing here reads the mine2cell index or trusts the service: the inputs are a node, a ledger
address, the artifact built from this repository's contracts, and the passport id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from mine2cell import __version__
from mine2cell.audit.checks import CheckResult, Context, Evidence, Finding, run_checks
from mine2cell.audit.code import CodeCheck, check_code
from mine2cell.audit.compare import differences
from mine2cell.audit.fetch import ChainReader
from mine2cell.audit.graph import PassportChain
from mine2cell.errors import InvalidInput, Mine2CellError
from mine2cell.ids import show_id
from mine2cell.provenance.engine import passport_provenance
from mine2cell.provenance.report import PROVENANCE_SCHEMA, labelled
from mine2cell.signing.eip712 import Domain

AUDIT_SCHEMA = "mine2cell.audit/1"
# Fields of the recomputed provenance report kept in the audit report (the DAG and the
# per-event footprint are in the provenance report itself, whose hash is kept).
_SUMMARY_FIELDS = (
    "passport",
    "binding",
    "grams_bound",
    "origin_grams",
    "elements",
    "facilities",
    "countries",
    "recycled",
    "flags",
    "attestations",
)


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``mine2cell.audit/1`` reports, shipped with the package
    for auditors' own tools."""
    text = resources.files("mine2cell.audit").joinpath("schema/audit-report-1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def public_url(url: str) -> str:
    """An RPC URL as a report may show it: scheme, host and port only (node providers put API
    keys in the user part, the path or the query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, "", "", ""))


def report_bytes(report: dict[str, Any]) -> bytes:
    """The JSON report as it is written and hashed: sorted keys, indented, one final newline. Its
    keccak256 is what an attestation records."""
    return (json.dumps(report, sort_keys=True, indent=2) + "\n").encode()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Verification:
    passport: bytes
    parameters: dict[str, Any]
    code: CodeCheck
    checks: list[CheckResult]
    provenance: dict[str, Any] | None  # the recomputed mine2cell.provenance/1 report
    events: list[dict[str, Any]]
    figures: dict[str, Any]
    generated_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def check(self, check_id: str) -> CheckResult:
        return next(c for c in self.checks if c.id == check_id)

    @property
    def failed(self) -> list[str]:
        return [c.id for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        """The audit report (schema ``mine2cell.audit/1``)::

        {"schema", "verdict": "pass" | "fail", "passport": {"id", "label"},
         "generated_at": ISO 8601 UTC, "tool": {"name", "version"},
         "parameters": {"rpc_url", "chain_id", "ledger", "head_block", "from_block",
                        "confirmations", "expected_chain_id", "high_risk_countries",
                        "compared_with"},
         "code": {...},                     # the code check in full (CodeCheck.to_json)
         "checks": [{"id", "title", "rule", "passed", "checked",
                     "findings": [{"message", "evidence": Evidence | null}], "notes"}],
         "provenance": {"report_hash", fields of mine2cell.provenance/1 but the DAG and the
                        per-event footprint, "footprint": {"total", "stages"}} | null,
         "figures": {"events", "lots", "steps", "transactions", "blocks", "requests",
                     "fetch_seconds", "check_seconds", "recompute_seconds", "total_seconds",
                     "events_per_second"},
         "events": [Evidence + {"actor"}]}  # every event verified, in chain order
        """
        provenance: dict[str, Any] | None = None
        if self.provenance is not None:
            provenance = {
                "report_hash": "0x" + keccak(canonical_json(self.provenance)).hex(),
                **{key: self.provenance[key] for key in _SUMMARY_FIELDS},
                "footprint": {
                    "total": self.provenance["footprint"]["total"],
                    "stages": self.provenance["footprint"]["stages"],
                },
                "lots": len(self.provenance["dag"]["lots"]),
                "steps": len(self.provenance["dag"]["steps"]),
            }
        return {
            "schema": AUDIT_SCHEMA,
            "verdict": "pass" if self.passed else "fail",
            "passport": labelled(self.passport),
            "generated_at": datetime.fromtimestamp(self.generated_at, UTC).isoformat(),
            "tool": {"name": "mine2cell", "version": __version__},
            "parameters": self.parameters,
            "code": self.code.to_json(),
            "checks": [check.to_json() for check in self.checks],
            "provenance": provenance,
            "figures": self.figures,
            "events": self.events,
        }


class PassportNotOnLedger(Mine2CellError):
    def __init__(self, passport: bytes, ledger: str, chain_id: int) -> None:
        super().__init__(
            f"passport {show_id(passport)} is not bound on the ledger at {ledger} on chain "
            f"{chain_id}: check the passport id, the ledger address and the RPC URL"
        )


def comparison_check(service: Any, chain: dict[str, Any] | None, source: str) -> CheckResult:
    result = CheckResult(
        "comparison",
        "Service report",
        f"The provenance report given ({source}) equals, field by field, the one recomputed from "
        "the chain alone (apart from when it was made).",
    )
    if not isinstance(service, dict) or service.get("schema") != PROVENANCE_SCHEMA:
        got = service.get("schema") if isinstance(service, dict) else type(service).__name__
        result.checked = 1
        result.fail(f"{source} is not a {PROVENANCE_SCHEMA} report (schema: {got})")
        return result
    if chain is None:
        result.checked = 1
        result.fail("the chain's record is incomplete: there are no figures to compare with")
        return result
    result.checked = sum(1 for _ in _leaves(chain))
    for difference in differences(service, chain):
        result.findings.append(Finding(difference.describe()))
    return result


def _leaves(value: Any) -> Any:
    if isinstance(value, dict):
        if "num" in value and "den" in value:
            yield value
            return
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _governor(w3: Web3, ledger: str, code: CodeCheck) -> str | None:
    """The governor the code was deployed with; from its ``governor()`` view when the code is not
    the artifact's (and so its immutables cannot be located), None if it has no such view."""
    word = code.immutable("_governor")
    if word is None:
        try:
            word = bytes(w3.eth.call({"to": ledger, "data": keccak(text="governor()")[:4]}))
        except Exception:  # any contract, or none: then no operation has a governor to check
            return None
    return to_checksum_address(word[12:32]) if len(word) >= 32 else None


def verify(
    w3: Web3,
    ledger: str,
    passport: bytes,
    *,
    rpc_url: str,
    high_risk_countries: frozenset[str],
    confirmations: int = 0,
    expected_chain_id: int | None = None,
    from_block: int = 0,
    compare: Any = None,
    compare_source: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Verification:
    """Audit ``passport`` on the ledger at ``ledger``, reading only from ``w3``'s node."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    ledger = to_checksum_address(ledger)
    say("comparing the ledger's code with the artifact")
    code = check_code(w3, ledger)
    governor = _governor(w3, ledger, code)
    record = ChainReader(w3, ledger, from_block=from_block, progress=say).read(passport)
    chain = PassportChain(record)
    if chain.binding is None:
        raise PassportNotOnLedger(passport, ledger, record.chain_id)
    fetched = time.perf_counter()

    say(f"checking {len(record.logs):,} events")
    ctx = Context(
        ledger=ledger,
        domain=Domain(record.chain_id, ledger),
        governor=governor,
        confirmations=confirmations,
        expected_chain_id=expected_chain_id,
    )
    checks = run_checks(chain, code, ctx)
    checked = time.perf_counter()

    say("recomputing the provenance from the chain")
    provenance: dict[str, Any] | None = None
    try:
        report = passport_provenance(
            chain.graph(), passport, high_risk_countries=high_risk_countries
        )
        provenance = report.to_json()
    except Mine2CellError as exc:
        completeness = next(c for c in checks if c.id == "completeness")
        completeness.fail(f"the provenance cannot be computed from the record: {exc}")
    recomputed = time.perf_counter()
    if compare is not None:
        checks.append(comparison_check(compare, provenance, compare_source or "the report given"))

    total = time.perf_counter() - started
    events = [{**Evidence.of(log).to_json(), "actor": chain.ref(log).actor} for log in record.logs]
    return Verification(
        passport=passport,
        parameters={
            "rpc_url": public_url(rpc_url),
            "chain_id": record.chain_id,
            "ledger": ledger,
            "head_block": record.head,
            "from_block": from_block,
            "confirmations": confirmations,
            "expected_chain_id": expected_chain_id,
            "high_risk_countries": sorted(high_risk_countries),
            "compared_with": compare_source,
        },
        code=code,
        checks=checks,
        provenance=provenance,
        events=events,
        figures={
            "events": len(record.logs),
            "lots": len(chain.lots),
            "steps": len(chain.steps),
            "transactions": len(record.transactions),
            "blocks": len(record.blocks),
            "requests": record.requests,
            "fetch_seconds": round(fetched - started, 3),
            "check_seconds": round(checked - fetched, 3),
            "recompute_seconds": round(recomputed - checked, 3),
            "total_seconds": round(total, 3),
            "events_per_second": round(len(record.logs) / max(checked - fetched, 1e-9)),
        },
    )


def load_report(source: str, text: bytes) -> Any:
    """A provenance report given to compare with, parsed."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput("compare", f"{source} is not JSON: {exc}") from exc
