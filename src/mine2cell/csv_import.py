"""Logging many lot events at once from a CSV file (``mine2cell import FILE.csv``).

Columns (a header row names them; order is free, names are case-insensitive):

    action       commission | ship | receive | reject | recall          (required)
    lot          lot number, URI, or 0x + 64 hex digits                 (required)
    material     material key or code, e.g. co-hydroxide or 101         (commission)
    quantity     mass with a unit: 12.5t, 800kg, 250g                   (commission)
    feedstock    primary | pre-consumer | post-consumer (default primary)   (commission)
    footprint    CO2e mass with a unit, e.g. 9.6t (default 0)            (commission)
    recipient    address or key name of the recipient                   (ship)
    document     0x + 64 hex digits: hash of the assay / bill of lading (commission, optional)

Every row is signed by the same participant (``--as``). A row whose lot was touched by an earlier
row of the file waits until that row is settled on chain, so a file may commission a lot and ship
it. A row with an error is reported with its line number and skipped; the others go through.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mine2cell.client import SigningClient
from mine2cell.codes import Feedstock
from mine2cell.errors import InvalidInput, Mine2CellError
from mine2cell.ids import parse_id
from mine2cell.materials import material
from mine2cell.relay.outbox import Accepted, OperationStatus
from mine2cell.signing.codec import parse_hex
from mine2cell.units import parse_mass

ACTIONS = ("commission", "ship", "receive", "reject", "recall")
COLUMNS = (
    "action",
    "lot",
    "material",
    "quantity",
    "feedstock",
    "footprint",
    "recipient",
    "document",
)
FEEDSTOCKS = {
    "primary": Feedstock.PRIMARY,
    "pre-consumer": Feedstock.PRE_CONSUMER,
    "post-consumer": Feedstock.POST_CONSUMER,
}


@dataclass(frozen=True)
class Row:
    line: int
    action: str
    lot: bytes
    values: dict[str, str]


@dataclass
class RowResult:
    line: int
    action: str
    lot: str
    error: str | None = None
    event_id: bytes | None = None
    status: OperationStatus | None = None


@dataclass
class ImportReport:
    results: list[RowResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RowResult]:
        return [
            r
            for r in self.results
            if r.error is not None or (r.status is not None and r.status.state == "rejected")
        ]


def parse_feedstock(text: str) -> Feedstock:
    key = text.strip().lower() or "primary"
    if key not in FEEDSTOCKS:
        raise InvalidInput("feedstock", f"{text!r} is not one of {', '.join(FEEDSTOCKS)}")
    return FEEDSTOCKS[key]


def parse_material(text: str) -> int:
    text = text.strip()
    return material(int(text) if text.isdigit() else text).code


def read_rows(path: Path) -> tuple[list[Row], list[RowResult]]:
    """Parse the file: rows to submit, and per-line errors of rows that cannot be."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput("file", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise InvalidInput("file", f"{path} is empty; it needs a header row")
        header = [name.strip().lower() for name in reader.fieldnames]
        unknown = [name for name in header if name not in COLUMNS]
        if unknown:
            raise InvalidInput(
                "file", f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}"
            )
        for required in ("action", "lot"):
            if required not in header:
                raise InvalidInput("file", f"the header has no {required!r} column")
        reader.fieldnames = header
        rows: list[Row] = []
        errors: list[RowResult] = []
        for record in reader:
            line = reader.line_num
            values = {k: (v or "").strip() for k, v in record.items() if k is not None}
            action = values.get("action", "").lower()
            lot_text = values.get("lot", "")
            try:
                if None in record:
                    extra = len(record[None])
                    raise InvalidInput(
                        "row", f"has {len(header) + extra} cells; the header names {len(header)}"
                    )
                if action not in ACTIONS:
                    raise InvalidInput("action", f"{action!r} is not one of {', '.join(ACTIONS)}")
                rows.append(Row(line, action, parse_id(lot_text), values))
            except Mine2CellError as exc:
                errors.append(RowResult(line, action, lot_text, error=str(exc)))
    return rows, errors


def waves(rows: Sequence[Row]) -> list[list[Row]]:
    """Group rows so that each row comes in a later wave than every earlier row on its lot."""
    depth: dict[bytes, int] = {}
    grouped: list[list[Row]] = []
    for row in rows:
        level = depth.get(row.lot, -1) + 1
        depth[row.lot] = level
        while len(grouped) <= level:
            grouped.append([])
        grouped[level].append(row)
    return grouped


def submit_row(client: SigningClient, row: Row, account: Callable[[str], str]) -> Accepted:
    values = row.values
    if row.action == "commission":
        if not values.get("material"):
            raise InvalidInput("material", "is required to commission a lot")
        if not values.get("quantity"):
            raise InvalidInput("quantity", "is required to commission a lot")
        document = values.get("document") or ""
        return client.commission(
            row.lot,
            material=parse_material(values["material"]),
            quantity=parse_mass(values["quantity"]),
            feedstock=parse_feedstock(values.get("feedstock", "")),
            footprint=parse_mass(values.get("footprint") or "0g", "footprint", allow_zero=True),
            document_hash=parse_hex("document", document, 32) if document else bytes(32),
        )
    if row.action == "ship":
        if not values.get("recipient"):
            raise InvalidInput("recipient", "is required to ship a lot")
        return client.ship(row.lot, account(values["recipient"]))
    if row.action == "receive":
        return client.receive(row.lot)
    if row.action == "reject":
        return client.reject(row.lot)
    return client.recall(row.lot)


def run_import(
    client: SigningClient,
    rows: Iterable[Row],
    *,
    account: Callable[[str], str],
    settle: Callable[[list[bytes]], dict[bytes, OperationStatus]],
    progress: Callable[[int], None] = lambda n: None,
) -> list[RowResult]:
    """Submit the rows wave by wave, settling each wave before the next."""
    results: list[RowResult] = []
    for wave in waves(list(rows)):
        accepted: list[RowResult] = []
        for row in wave:
            result = RowResult(row.line, row.action, row.values.get("lot", ""))
            try:
                ack = submit_row(client, row, account)
                result.event_id = ack.event_id
                accepted.append(result)
            except Mine2CellError as exc:
                result.error = str(exc)
            results.append(result)
            progress(1)
        statuses = settle([r.event_id for r in accepted if r.event_id is not None])
        for result in accepted:
            assert result.event_id is not None
            result.status = statuses.get(result.event_id)
    return sorted(results, key=lambda r: r.line)
