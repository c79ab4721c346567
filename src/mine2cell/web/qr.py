"""The QR code of a passport page's address, for the page itself and for the battery's label.

Error correction level M (15 % of the symbol may be damaged or covered), raised by segno when the
chosen size has room to spare, and the quiet zone of 4 modules that ISO/IEC 18004 requires around
the symbol.
"""

from __future__ import annotations

import io

import segno

QUIET_ZONE = 4  # modules
PNG_SCALE = 10  # pixels per module: a 33-module code is 410 px, about 35 mm at 300 dpi


def _code(url: str) -> segno.QRCode:
    return segno.make_qr(url, error="m")


def svg_inline(url: str, *, title: str) -> str:
    """An ``<svg>`` element to put in a page, sized by CSS (it has a viewBox and no size)."""
    return _code(url).svg_inline(
        scale=1,
        border=QUIET_ZONE,
        omitsize=True,
        svgclass="qr",
        lineclass=None,
        title=title,
        dark="#000",
        light="#fff",
    )


def svg_document(url: str, *, title: str, scale: int = PNG_SCALE) -> bytes:
    """A standalone SVG file of the code."""
    out = io.BytesIO()
    _code(url).save(
        out, kind="svg", scale=scale, border=QUIET_ZONE, title=title, dark="#000", light="#fff"
    )
    return out.getvalue()


def png(url: str, *, scale: int = PNG_SCALE) -> bytes:
    out = io.BytesIO()
    _code(url).save(out, kind="png", scale=scale, border=QUIET_ZONE, dark="#000", light="#fff")
    return out.getvalue()
