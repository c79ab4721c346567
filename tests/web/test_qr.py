"""The QR code of the passport page, alone for the battery's label: read back with zxing-cpp, it
is the page's absolute address, built from the request's base URL."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mine2cell.ids import parse_id
from mine2cell.web.qr import QUIET_ZONE
from tests.web.qrcodes import decode_png, decode_svg

pytestmark = pytest.mark.anvil

URL = "http://testserver/passports/PASS-1"


def test_the_png_code_reads_as_the_page_address(client: TestClient) -> None:
    response = client.get("/passports/PASS-1/qr.png")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert decode_png(response.content) == [URL]


def test_the_png_code_has_a_quiet_zone_and_the_scale_asked_for(client: TestClient) -> None:
    body = client.get("/passports/PASS-1/qr.png", params={"scale": 4}).content

    with Image.open(io.BytesIO(body)) as image:
        width, height = image.size
        corner = image.convert("L").crop((0, 0, QUIET_ZONE * 4, QUIET_ZONE * 4))
        assert width == height and width % 4 == 0
        assert corner.getextrema() == (255, 255)  # the quiet zone is white
        modules = width // 4 - 2 * QUIET_ZONE
        assert (modules - 17) % 4 == 0  # a QR symbol of version (modules - 17) / 4
    assert decode_png(body) == [URL]


def test_the_svg_code_reads_as_the_page_address(client: TestClient) -> None:
    response = client.get("/passports/PASS-1/qr.svg")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert decode_svg(response.content) == [URL]


def test_the_code_of_a_hex_id_names_the_passport_by_its_number(client: TestClient) -> None:
    hex_id = "0x" + parse_id("PASS-1", "passport").hex()

    assert decode_png(client.get(f"/passports/{hex_id}/qr.png").content) == [URL]


def test_the_code_follows_the_address_the_page_was_asked_at(client: TestClient) -> None:
    body = client.get(
        "https://passports.example:8443/passports/PASS-1/qr.png",
    ).content

    assert decode_png(body) == ["https://passports.example:8443/passports/PASS-1"]


def test_the_page_shows_the_same_code(client: TestClient) -> None:
    page = client.get("/passports/PASS-1").text
    inline = page[page.index('<svg viewBox="0 0') :]
    inline = inline[: inline.index("</svg>") + len("</svg>")]
    # Inline SVG in HTML has no namespace; as a file it needs one.
    document = inline.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)

    assert decode_svg(document.encode()) == [URL]


def test_an_unknown_passport_has_no_code(client: TestClient) -> None:
    response = client.get("/passports/PASS-404/qr.png")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
