"""The passport page in a real browser: headless Chromium (Debian's, installed by `make install`)
loads it from the app served by uvicorn on a loopback port, renders the charts, the graph and the
QR code, and the QR code read back from its screenshot is the page's address.

Skipped only where Chromium is missing and CI is not set; on CI a missing browser fails."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from mine2cell.api.app import create_app
from mine2cell.config import Settings
from tests.e2e.cli_support import PASSPHRASE
from tests.web.qrcodes import decode_png

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TIMEOUT = 60.0  # seconds for one browser run
START_TIMEOUT = 30.0
ON_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not ON_CI,
        reason=f"{CHROMIUM} is missing: `make install` installs Debian's chromium",
    ),
]


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a socket bound here (no port race)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing on CI: `make install` installs Debian's chromium")
    app = create_app(settings, passphrase=lambda: PASSPHRASE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the app did not start serving")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT)
        sock.close()


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless run: no network but the page's, no first-run work, a profile of its own."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def screenshot(profile: Path, url: str, path: Path, size: str) -> bytes:
    chromium(profile, f"--screenshot={path}", f"--window-size={size}", url)
    print(f"screenshot of {url.partition('?')[0]}: {path}")
    return path.read_bytes()


def test_the_browser_renders_the_charts_the_graph_and_the_qr_code(
    base_url: str, tmp_path: Path
) -> None:
    dom = chromium(tmp_path / "profile", "--dump-dom", f"{base_url}/passports/PASS-1").stdout

    assert 'id="provenance-graph"' in dom
    assert dom.count('class="chart"') >= 2
    assert '<svg viewBox="0 0' in dom and 'class="qr"' in dom
    assert "Audit passed" in dom and "Public view" in dom


def test_a_token_link_opens_the_detail_view_in_the_browser(
    base_url: str, read_token: str, tmp_path: Path
) -> None:
    url = f"{base_url}/passports/PASS-1"

    link = f"{url}?token={read_token}"

    dom = chromium(tmp_path / "profile", "--dump-dom", link).stdout
    # A session cookie ends with the browser: the screenshot's run follows the link again.
    screenshot(tmp_path / "profile", link, tmp_path / "detail.png", "1280,2200")

    assert "Detail view" in dom and "CD-KOLWEZI-1" in dom
    assert f'href="{base_url}/v1/lots/0x' in dom


def test_the_qr_code_in_a_screenshot_of_the_page_is_the_page_address(
    base_url: str, tmp_path: Path
) -> None:
    url = f"{base_url}/passports/PASS-1"

    png = screenshot(tmp_path / "profile", url, tmp_path / "passport.png", "1280,1000")

    assert png.startswith(b"\x89PNG")
    assert decode_png(png) == [url]


def test_the_browser_draws_the_label_code_as_the_page_address(
    base_url: str, tmp_path: Path
) -> None:
    url = f"{base_url}/passports/PASS-1"

    png = screenshot(tmp_path / "profile", f"{url}/qr.svg", tmp_path / "label.png", "600,600")

    assert decode_png(png) == [url]
