"""The audit report as one self-contained HTML page, for an auditor to read, print and archive.

The page is a view of the JSON report (schema ``mine2cell.audit/1``), not a replacement for it:
it shows rounded figures (the exact fractions stay in the JSON) and counts the verified events
instead of listing them. Its footer carries the keccak256 of the JSON it renders, so the printed
page, the archived JSON and an on-chain attestation can be tied together. Nothing on the page is
fetched: no scripts, fonts, images or stylesheets from anywhere, so it reads the same in years.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import keccak
from jinja2 import Environment, PackageLoader, StrictUndefined

from mine2cell.audit.verify import AUDIT_SCHEMA, report_bytes
from mine2cell.errors import InvalidInput

TEMPLATE = "report.html.j2"


def grouped(value: str | int) -> str:
    """A count, or a decimal string, with its whole part in groups of three ("1083333.333" ->
    "1,083,333.333").

    Works on the text, not a float, so the digits the report wrote are the digits shown."""
    text = str(value)
    sign = "-" if text.startswith("-") else ""
    whole, dot, fraction = text.removeprefix("-").partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction}"


def utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("mine2cell.audit", "templates"),
        # Every value on the page comes from a report that may hold anyone's text (lot numbers,
        # messages quoting them): escaped everywhere, not per extension.
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["grouped"] = grouped
    env.filters["utc"] = utc
    env.filters["pretty"] = pretty
    return env


def write_reports(
    document: dict[str, Any], json_path: Path, html_path: Path
) -> tuple[bytes, bytes]:
    """Write the JSON report and its page; return the JSON's bytes and their keccak256 (what an
    attestation records, and what the page's footer shows)."""
    body = report_bytes(document)
    digest = keccak(body)
    json_path.write_bytes(body)
    html_path.write_text(render_html(document, report_hash="0x" + digest.hex()))
    return body, digest


def render_html(report: dict[str, Any], *, report_hash: str | None = None) -> str:
    """The page for ``report``; ``report_hash`` is the keccak256 of the JSON file it renders."""
    if report.get("schema") != AUDIT_SCHEMA:
        raise InvalidInput(
            "report", f"not a {AUDIT_SCHEMA} report (schema: {report.get('schema')!r})"
        )
    template = _environment().get_template(TEMPLATE)
    return template.render(
        report=report,
        report_hash=report_hash,
        failed=[check for check in report["checks"] if not check["passed"]],
    )
