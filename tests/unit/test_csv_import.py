"""Reading lot events from a CSV file: the header is checked, a bad row is reported with its line
number while the good rows are kept, and rows on the same lot are put in successive waves."""

from __future__ import annotations

from pathlib import Path

import pytest

from mine2cell.codes import Feedstock
from mine2cell.csv_import import Row, parse_feedstock, parse_material, read_rows, waves
from mine2cell.errors import InvalidInput
from mine2cell.ids import parse_id


def write_csv(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(line: int, action: str, lot: str) -> Row:
    return Row(line, action, parse_id(lot), {"action": action, "lot": lot})


# -- read_rows -------------------------------------------------------------------------------------


def test_read_rows_reads_each_row_with_its_line_number_and_lot_id(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "action,lot,material,quantity",
        "commission,KOL-1,co-hydroxide,12.5t",
        "ship,KOL-1,,",
    )

    rows, errors = read_rows(path)

    assert errors == []
    assert [(r.line, r.action, r.lot) for r in rows] == [
        (2, "commission", parse_id("KOL-1")),
        (3, "ship", parse_id("KOL-1")),
    ]
    assert rows[0].values == {
        "action": "commission",
        "lot": "KOL-1",
        "material": "co-hydroxide",
        "quantity": "12.5t",
    }


def test_read_rows_reads_the_header_case_insensitively(tmp_path: Path) -> None:
    path = write_csv(tmp_path, " Action ,LOT,Quantity", "COMMISSION,KOL-1,1t")

    rows, errors = read_rows(path)

    assert errors == []
    assert rows[0].action == "commission"
    assert rows[0].values == {"action": "COMMISSION", "lot": "KOL-1", "quantity": "1t"}


def test_read_rows_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfaction,lot\nreceive,KOL-1\n")

    rows, errors = read_rows(path)

    assert errors == []
    assert [r.action for r in rows] == ["receive"]


def test_read_rows_fails_if_a_column_is_unknown(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "action,lot,weight", "commission,KOL-1,1t")

    with pytest.raises(InvalidInput, match="unknown column 'weight'") as caught:
        read_rows(path)

    assert caught.value.field == "file"


@pytest.mark.parametrize(("header", "missing"), [("lot,quantity", "action"), ("action", "lot")])
def test_read_rows_fails_if_a_required_column_is_missing(
    tmp_path: Path, header: str, missing: str
) -> None:
    path = write_csv(tmp_path, header, "x")

    with pytest.raises(InvalidInput, match=f"no '{missing}' column") as caught:
        read_rows(path)

    assert caught.value.field == "file"


def test_read_rows_fails_if_the_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(InvalidInput, match="needs a header row") as caught:
        read_rows(path)

    assert caught.value.field == "file"


def test_read_rows_fails_if_the_file_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read") as caught:
        read_rows(tmp_path / "absent.csv")

    assert caught.value.field == "file"


def test_read_rows_reports_a_bad_action_with_its_line_number_and_keeps_the_good_rows(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path,
        "action,lot",
        "commission,KOL-1",
        "teleport,KOL-2",
        "ship,KOL-1",
    )

    rows, errors = read_rows(path)

    assert [(r.line, r.action) for r in rows] == [(2, "commission"), (4, "ship")]
    assert [(e.line, e.action, e.lot) for e in errors] == [(3, "teleport", "KOL-2")]
    assert errors[0].error is not None
    assert "'teleport' is not one of commission, ship" in errors[0].error


def test_read_rows_reports_a_bad_lot_with_its_line_number(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "action,lot", "ship,0x1234", "ship,KOL-1")

    rows, errors = read_rows(path)

    assert [r.line for r in rows] == [3]
    assert [e.line for e in errors] == [2]
    assert errors[0].error is not None
    assert errors[0].error.startswith("lot: ")


def test_read_rows_counts_blank_lines_in_line_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "action,lot", "", "receive,KOL-1")

    rows, _ = read_rows(path)

    assert [r.line for r in rows] == [3]


# -- waves -----------------------------------------------------------------------------------------


def test_waves_puts_a_ship_after_the_commission_of_the_same_lot() -> None:
    commission, ship = row(2, "commission", "KOL-1"), row(3, "ship", "KOL-1")

    assert waves([commission, ship]) == [[commission], [ship]]


def test_waves_puts_rows_on_independent_lots_in_the_same_wave() -> None:
    first, second, third = (row(n, "commission", f"KOL-{n}") for n in (2, 3, 4))

    assert waves([first, second, third]) == [[first, second, third]]


def test_waves_gives_each_lot_its_own_chain_of_waves() -> None:
    a1, b1 = row(2, "commission", "A"), row(3, "commission", "B")
    a2, a3 = row(4, "ship", "A"), row(5, "recall", "A")
    b2 = row(6, "ship", "B")

    assert waves([a1, b1, a2, a3, b2]) == [[a1, b1], [a2, b2], [a3]]


def test_waves_of_no_rows_is_empty() -> None:
    assert waves([]) == []


# -- column values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "feedstock"),
    [
        ("", Feedstock.PRIMARY),
        ("Primary", Feedstock.PRIMARY),
        ("pre-consumer", Feedstock.PRE_CONSUMER),
        (" POST-CONSUMER ", Feedstock.POST_CONSUMER),
    ],
)
def test_parse_feedstock_reads_a_feedstock_name(text: str, feedstock: Feedstock) -> None:
    assert parse_feedstock(text) is feedstock


def test_parse_feedstock_fails_if_the_name_is_unknown() -> None:
    with pytest.raises(InvalidInput, match="'recycled' is not one of primary") as caught:
        parse_feedstock("recycled")

    assert caught.value.field == "feedstock"


@pytest.mark.parametrize("text", ["co-hydroxide", "101", " 101 "])
def test_parse_material_reads_a_key_or_a_code(text: str) -> None:
    assert parse_material(text) == 101


def test_parse_material_fails_if_the_material_is_unknown() -> None:
    with pytest.raises(InvalidInput, match="unknown material 'unobtainium'") as caught:
        parse_material("unobtainium")

    assert caught.value.field == "material"
