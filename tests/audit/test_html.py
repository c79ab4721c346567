"""The audit report's HTML page: the verdict first, every check with its rule and evidence, the
recomputed provenance, and nothing loaded from anywhere.

The reports are built here, in the shape of real ``mine2cell.audit/1`` reports, so the tests need
no node.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from mine2cell.audit.html import render_html
from mine2cell.errors import InvalidInput

TX = "0xb35a500170e3271a4ebd380f850643ae5d4791fbc336ba4c9120d4392dce43b8"
BLOCK = "0x09c0d6bdd0aea3e10670dc34dbb0ae70177c82195b66a58e370794e32f72180b"
EVENT_ID = "0x672a3a9f927c223db3eb537492069dc8f60e9e82f9938a327b77e4bff4ab3d5e"
LISTED_TX = "0x9af74f0b6feb08f9c1219342d3cf72aa2bbd7821d2db3785855925a1ec7a4b62"
PROVENANCE_HASH = "0xcb0d7055ac856f1f8773d8dce60e1dc8971723a05372c29c7e82ed1e61362886"
REPORT_HASH = "0xbe18afec8b3ffd873c71cbfa412ac6f66701073b9cde8fc157f357018c04d0e7"
PASSPORT = "0xefdf061767fb69f6353d59b91d8b991d97e1c1b21638e9f9be9d28be5f2b5422"
LEDGER = "0x2B8474ABD06739c0A934CF9B3fdEc4Bc4A0A54BD"
ACTOR = "0x7F637B3776DedC6454fcf200Bad75b5Fd23fec59"
CORRECTION = (
    "LotCommissioned of lot 0xa42d at block 14 was declared erroneous (did not occur) by "
    "0x7580A5FCe6D4D0fF13Ae2c34C5435cE5784EADA8 at block 18; corrective events: none"
)


def share(num: int, den: int, percent: str) -> dict[str, str]:
    return {"num": hex(num), "den": hex(den), "percent": percent}


def grams(num: int, text: str) -> dict[str, str]:
    return {"num": hex(num), "den": "0x1", "grams": text}


def co2e(num: int, text: str, kg: str) -> dict[str, str]:
    return {"num": hex(num), "den": "0x1", "grams": text, "kg": kg}


def chain_event(tx_hash: str, block: int) -> dict[str, Any]:
    """Evidence as the provenance report writes it (with time and actor, without event name)."""
    return {
        "event_id": EVENT_ID,
        "tx_hash": tx_hash,
        "block_number": block,
        "block_hash": BLOCK,
        "log_index": 0,
        "timestamp": 1795317924,
        "actor": ACTOR,
    }


def provenance() -> dict[str, Any]:
    none = share(0, 1, "0.0000")
    mine = {"id": "0x4b4f4c57455a49" + "00" * 25, "label": "KOLWEZI-NORTH"}
    facility = {
        "facility": mine,
        "country": "CD",
        "actor": ACTOR,
        "grams": grams(250000, "250000.000"),
        "share": share(1, 1, "100.0000"),
    }
    return {
        "report_hash": PROVENANCE_HASH,
        "passport": {"id": PASSPORT, "label": PASSPORT},
        "binding": chain_event(TX, 16),
        "grams_bound": 1000000,
        "origin_grams": grams(1083333, "1083333.000"),
        "elements": [
            {
                "element": "cobalt",
                "annex_x": True,
                "grams": grams(250000, "250000.000"),
                "share": share(3, 13, "23.0769"),
                "recycled": {"pre_consumer": none, "post_consumer": none, "total": none},
                "facilities": [facility],
                "countries": [{k: facility[k] for k in ("country", "grams", "share")}],
            }
        ],
        "facilities": [facility],
        "countries": [
            {
                "country": "AU",
                "grams": grams(833333, "833333.000"),
                "share": share(10, 13, "76.9231"),
            },
            {
                "country": "CD",
                "grams": grams(250000, "250000.000"),
                "share": share(3, 13, "23.0769"),
            },
        ],
        "recycled": {"pre_consumer": none, "post_consumer": none, "total": none},
        "flags": [
            {
                "code": "high-risk-origin",
                "message": "lot 0xa42d was mined at KOLWEZI-NORTH in CD, a high-risk country",
                "event": chain_event(TX, 14),
                "lot": {"id": "0xa42d" + "00" * 30, "label": "0xa42d" + "00" * 30},
                "account": ACTOR,
            }
        ],
        "attestations": [
            {"verdict": "pass", "report_hash": "0x" + "ee" * 32, "event": chain_event(TX, 17)}
        ],
        "footprint": {
            "total": co2e(1195000, "1195000.000", "1195.000"),
            "stages": [{"stage": "extraction", "co2e": co2e(1195000, "1195000.000", "1195.000")}],
        },
        "lots": 3,
        "steps": 2,
    }


def audit_report(*, passed: bool = False) -> dict[str, Any]:
    """A ``mine2cell.audit/1`` report: failed on the chain and corrections checks, or passed."""

    def check(check_id: str, title: str, findings: list[dict[str, Any]]) -> dict[str, Any]:
        findings = [] if passed else findings
        return {
            "id": check_id,
            "title": title,
            "rule": f"The rule of the {title.lower()} check.",
            "passed": not findings,
            "checked": 14,
            "findings": findings,
            "notes": [f"a note on {check_id}"],
        }

    evidence = {
        "event": "EventCorrected",
        "event_id": EVENT_ID,
        "tx_hash": TX,
        "block_number": 18,
        "block_hash": BLOCK,
        "log_index": 0,
    }
    return {
        "schema": "mine2cell.audit/1",
        "verdict": "pass" if passed else "fail",
        "passport": {"id": PASSPORT, "label": PASSPORT},
        "generated_at": "2026-11-22T03:25:24+00:00",
        "tool": {"name": "mine2cell", "version": "0.1.0"},
        "parameters": {
            "rpc_url": "http://127.0.0.1:8545",
            "chain_id": 31337,
            "ledger": LEDGER,
            "head_block": 18,
            "from_block": 0,
            "confirmations": 0,
            "expected_chain_id": None if passed else 1,
            "high_risk_countries": ["CD"],
            "compared_with": None,
        },
        "code": {
            "address": LEDGER,
            "chain_id": 31337,
            "matches": True,
            "problem": None,
            "code_hash": "0x3be070cadedd5765195186492ca020ff92305c0d14797086e03e0471d4829e0f",
            "size": 16430,
            "expected_size": 16430,
            "first_difference": None,
            "immutables": [
                {"name": "_governor", "start": 9321, "length": 32, "value": "0x" + "ab" * 32}
            ],
            "artifact": {
                "contract": "Ledger",
                "compiler": "0.8.37+commit.f401782d",
                "settings": {"evmVersion": "cancun", "viaIR": True},
                "sources": {"contracts/Ledger.sol": "0x" + "cd" * 32},
            },
        },
        "checks": [
            check("code", "Ledger code", []),
            check(
                "chain",
                "Node's chain",
                [{"message": "the node is on chain 31337", "evidence": None}],
            ),
            check(
                "corrections",
                "Corrections honoured",
                [{"message": CORRECTION, "evidence": evidence}],
            ),
        ],
        "provenance": provenance(),
        "figures": {
            "events": 1,
            "lots": 3,
            "steps": 2,
            "transactions": 1,
            "blocks": 1,
            "requests": 13,
            "fetch_seconds": 0.032,
            "check_seconds": 0.004,
            "recompute_seconds": 0.001,
            "total_seconds": 0.037,
            "events_per_second": 6001,
        },
        "events": [
            {**evidence, "event": "ParticipantAccredited", "tx_hash": LISTED_TX, "actor": ACTOR}
        ],
    }


class Page(HTMLParser):
    """The body's text in document order, and every tag's attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in_head = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_head = self._in_head or tag == "head"

    def handle_endtag(self, tag: str) -> None:
        self._in_head = self._in_head and tag != "head"

    def handle_data(self, data: str) -> None:
        if not self._in_head and data.strip():
            self.text.append(" ".join(data.split()))

    @property
    def body_text(self) -> str:
        return " ".join(self.text)


def test_a_failed_audit_shows_fail_first_with_the_failed_checks() -> None:
    text = Page(render_html(audit_report())).body_text

    assert text.split()[0] == "FAIL"
    # "Ledger code" is the first check and passed, so it is not among the failed ones above it.
    assert text.index("FAIL") < text.index("Corrections honoured") < text.index("Ledger code")
    assert text.index("Node's chain") < text.index("Ledger code")


def test_a_passed_audit_shows_pass_first() -> None:
    text = Page(render_html(audit_report(passed=True))).body_text

    assert text.split()[0] == "PASS"
    assert "FAIL" not in text


def test_every_check_shows_its_title_rule_count_and_notes() -> None:
    report = audit_report()
    text = Page(render_html(report)).body_text

    for check in report["checks"]:
        assert check["title"] in text
        assert check["rule"] in text
        assert check["notes"][0] in text
    assert "Items checked: 14" in text


def test_a_finding_shows_its_message_and_full_evidence() -> None:
    text = Page(render_html(audit_report())).body_text

    assert CORRECTION in text
    assert "EventCorrected" in text
    for value in (TX, BLOCK, EVENT_ID):
        assert value in text


def test_text_from_the_report_is_escaped() -> None:
    report = audit_report()
    report["checks"][1]["findings"][0]["message"] = "chain <script>alert(1)</script> & co"

    html = render_html(report)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html


def test_the_page_loads_nothing_from_anywhere() -> None:
    html = render_html(audit_report())
    page = Page(html)

    assert "src=" not in html and "<link" not in html and "@import" not in html
    assert "url(" not in html
    assert all(tag != "script" for tag, _ in page.tags)
    # The only links are to the page's own sections.
    hrefs = [attrs.get("href") or "" for _, attrs in page.tags if "href" in attrs]
    assert hrefs and all(href.startswith("#") for href in hrefs)


def test_the_recomputed_provenance_is_summarised() -> None:
    text = Page(render_html(audit_report())).body_text

    for expected in (
        "AU",
        "76.9231",
        "KOLWEZI-NORTH",
        "cobalt",
        "yes: due diligence",
        "1,083,333.000",
        "1,195.000",
        "a high-risk country",
        PROVENANCE_HASH,
    ):
        assert expected in text


def test_a_report_without_provenance_says_the_figures_could_not_be_recomputed() -> None:
    report = audit_report()
    report["provenance"] = None

    text = Page(render_html(report)).body_text

    assert "could not be recomputed" in text
    assert PROVENANCE_HASH not in text


def test_the_code_check_and_the_parameters_are_shown() -> None:
    report = audit_report()
    text = Page(render_html(report)).body_text

    for expected in (
        report["code"]["code_hash"],
        "_governor",
        "0x" + "ab" * 32,
        "contracts/Ledger.sol",
        "0x" + "cd" * 32,
        "0.8.37+commit.f401782d",
        "http://127.0.0.1:8545",
        "6,001",
    ):
        assert expected in text


def test_the_events_are_counted_not_listed() -> None:
    html = render_html(audit_report())

    assert LISTED_TX not in html
    assert "Events verified for this passport: 1." in Page(html).body_text


def test_the_report_hash_is_in_the_footer() -> None:
    text = Page(render_html(audit_report(), report_hash=REPORT_HASH)).body_text

    assert text.rindex(REPORT_HASH) > text.index("mine2cell 0.1.0")
    assert "keccak256 of the JSON report" not in Page(render_html(audit_report())).body_text


@pytest.mark.parametrize("passed", [True, False])
def test_the_page_parses_as_html(passed: bool) -> None:
    page = Page(render_html(audit_report(passed=passed)))

    assert page.tags[0][0] == "html"


def test_a_report_of_another_schema_is_refused() -> None:
    report = audit_report()
    report["schema"] = "mine2cell.provenance/1"

    with pytest.raises(InvalidInput, match=r"mine2cell\.audit/1"):
        render_html(report)
