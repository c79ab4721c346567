"""Reading QR codes back in the tests, with zxing-cpp: from a PNG (the label image, a browser's
screenshot) and from the SVG the service writes."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import zxingcpp
from PIL import Image

SVG = "{http://www.w3.org/2000/svg}"
# segno draws the dark modules as one stroked path: "M4 4.5h7m2 0h1m-29 1h1..." (row y + 0.5,
# runs of dark modules as horizontal lines one module thick).
_COMMAND = re.compile(r"([MmHhVv])\s*(-?[0-9.]+)(?:\s+(-?[0-9.]+))?")
MODULE_PIXELS = 6


def decode_image(image: Image.Image) -> list[str]:
    """The text of every QR code in ``image``."""
    qr_codes = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    found = zxingcpp.read_barcodes(image.convert("L"), formats=qr_codes)
    return [barcode.text for barcode in found]


def decode_png(data: bytes) -> list[str]:
    with Image.open(io.BytesIO(data)) as image:
        return decode_image(image)


def rasterize_segno_svg(data: bytes) -> Image.Image:
    """Draw the stroked path of a segno SVG (parsed as XML, so a malformed file fails here) module
    by module on a white image: only what the file says is dark is dark."""
    root = ET.fromstring(data)
    paths = [p for p in root.iter(f"{SVG}path") if p.get("stroke")]
    assert len(paths) == 1, "expected one stroked path of dark modules"
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for command, first, second in _COMMAND.findall(paths[0].get("d", "")):
        if command in "Mm":
            dx, dy = float(first), float(second)
            x, y = (dx, dy) if command == "M" else (x + dx, y + dy)
        elif command in "Hh":
            end = float(first) if command == "H" else x + float(first)
            dark.update((column, int(y)) for column in range(int(x), int(end)))
            x = end
        else:
            raise AssertionError(f"segno drew a vertical line ({command}); not expected here")
    size = max(max(c, r) for c, r in dark) + 5  # the quiet zone of 4 modules on the far side
    image = Image.new("L", (size * MODULE_PIXELS, size * MODULE_PIXELS), 255)
    for column, row in dark:
        left, top = column * MODULE_PIXELS, row * MODULE_PIXELS
        image.paste(0, (left, top, left + MODULE_PIXELS, top + MODULE_PIXELS))
    return image


def decode_svg(data: bytes) -> list[str]:
    return decode_image(rasterize_segno_svg(data))
