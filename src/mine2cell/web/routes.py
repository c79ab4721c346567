"""The passport page and its QR code: ``/passports/{passport}``, ``.../qr.svg``, ``.../qr.png``.

Errors are pages too, for people: a malformed id is a 422 page, a passport that is not bound a 404
page, a node that does not answer a 503 page, each a sentence saying what happened.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from mine2cell.access.tokens import TokenStore
from mine2cell.api.access import COOKIE, read_access
from mine2cell.api.problems import PROBLEMS, NotFound, NotIndexed
from mine2cell.api.routes import kept_report, passport_of, service_of
from mine2cell.errors import ConfigurationError, InvalidInput, NodeError
from mine2cell.ids import parse_id, show_id
from mine2cell.service import Service
from mine2cell.web import qr
from mine2cell.web.facts import Participant, Report, read_report
from mine2cell.web.page import detail_view, public_view, render_error, render_page

router = APIRouter(tags=["passport page"])
log = logging.getLogger("mine2cell.web")

MAX_ID_LENGTH = 200

# The error pages, for the OpenAPI description; the QR codes' scale is checked by FastAPI, whose
# refusal is a problem like the API's.
_HTML: dict[str, Any] = {"text/html": {}}
PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such passport is bound (a page).", "content": _HTML},
    422: {"description": "Not a passport id (a page).", "content": _HTML},
    503: {"description": "The ledger cannot be read, or not yet (a page).", "content": _HTML},
}
QR_ERRORS = {
    **PAGE_ERRORS,
    422: {**PROBLEMS[422], "content": {**PROBLEMS[422]["content"], **_HTML}},
}


class _PageError(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def _error_page(error: _PageError) -> HTMLResponse:
    return HTMLResponse(
        render_error(error.status, error.title, error.message),
        status_code=error.status,
        headers={"Cache-Control": "no-store"},
    )


def _bound_passport(service: Service, text: str) -> bytes:
    """The passport's id, when it is well formed, bound and indexed; else a page saying which it
    is not."""
    if len(text) > MAX_ID_LENGTH:
        raise _PageError(
            422,
            "Not a passport id",
            f"A passport id is at most {MAX_ID_LENGTH} characters: a passport number, a URI, "
            "or 0x and 64 hex digits.",
        )
    try:
        return passport_of(service, text)
    except InvalidInput as exc:
        raise _PageError(
            422, "Not a passport id", f"{exc.problem[:1].upper()}{exc.problem[1:]}."
        ) from None
    except NotIndexed:
        raise _PageError(
            503,
            "Passport not ready",
            f"Battery passport {show_id(parse_id(text))} was just recorded and is not readable "
            "yet. Please try again in a few seconds.",
        ) from None
    except NotFound:
        raise _PageError(
            404,
            "Passport not found",
            f"No battery passport {show_id(parse_id(text))} is bound on this ledger. Check the "
            "number on the battery's label, or scan its QR code again.",
        ) from None


def _guarded(handler: Callable[[], Response]) -> Response:
    """Run a page handler; its known failures become pages instead of JSON problems."""
    try:
        return handler()
    except _PageError as error:
        return _error_page(error)
    except (NodeError, ConfigurationError) as exc:
        log.warning("passport page: %s", exc)
        return _error_page(
            _PageError(
                503,
                "Service unavailable",
                "The ledger cannot be read right now. Please try again in a minute.",
            )
        )


def canonical_text(passport: bytes) -> str:
    """How the page's address names a passport: its number when it has one that reads back as
    the same id and fits in a path segment, else its 0x hex id."""
    text = show_id(passport)
    in_a_segment = "/" not in text and text not in (".", "..")  # dot segments are resolved away
    if in_a_segment and text == text.strip() and parse_id(text, "passport") == passport:
        return text
    return "0x" + passport.hex()


def page_url(request: Request, passport: bytes) -> str:
    """The page's absolute address, from the request's base URL (what the QR code encodes)."""
    return str(request.url_for("passport_page", passport=quote(canonical_text(passport), safe="")))


def _participants(service: Service, report: Report) -> dict[str, Participant]:
    """The facility and country of every account the page names, as the index holds them."""
    histories = service.store().participants(sorted(report.actors()))
    return {
        account.lower(): Participant(show_id(history.facility), history.country)
        for account, history in histories.items()
        if history.role_changes
    }


@router.get(
    "/passports/{passport}",
    name="passport_page",
    response_class=HTMLResponse,
    responses=PAGE_ERRORS,
    summary="The battery-passport page (HTML): public tier, or detail with a read token.",
)
def passport_page(
    request: Request,
    passport: str,
    token: Annotated[
        str | None,
        Query(
            description="A read token, given once in a link: it is moved into an HttpOnly "
            "cookie and the page reloads without it."
        ),
    ] = None,
) -> Response:
    def render() -> Response:
        service = service_of(request)
        passport_id = _bound_passport(service, passport)
        if token is not None:
            return _token_link(request, token, page_url(request, passport_id))
        report = read_report(json.loads(kept_report(service, passport_id)))
        participants = _participants(service, report)
        url = page_url(request, passport_id)
        detail = read_access(request)
        base = str(request.base_url)
        public = public_view(
            report,
            participants,
            url=url,
            high_risk=service.settings.high_risk_country_set,
            with_diagram=not detail,
        )
        details = (
            detail_view(
                report,
                participants,
                lot_href=lambda lot: f"{base}v1/lots/{lot}",
                provenance_url=f"{base}v1/passports/{report.passport_id}/provenance",
            )
            if detail
            else None
        )
        html = render_page(public, details, ledger=service.ledger.address)
        # The detail tier is per token: never kept by a shared cache; the public page names the
        # address it was asked at, so a cache revalidates it rather than serve another's.
        cache = "private, no-store" if detail else "no-cache"
        return HTMLResponse(html, headers={"Cache-Control": cache, "Vary": "Authorization, Cookie"})

    return _guarded(render)


def _token_link(request: Request, token: str, url: str) -> Response:
    """A link with a read token (``?token=m2c_...``), as an operator sends it to someone: the token
    goes into the cookie the access tier reads and the browser goes on to the page without it in
    the address bar, its history or a Referer."""
    tokens: TokenStore = request.app.state.runtime.tokens
    if tokens.verify(token) is None:
        raise _PageError(
            401,
            "Link not valid",
            "The access token in this link is unknown, revoked or mistyped. Ask for a new link; "
            f"the public passport is at {url}.",
        )
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _qr_filename(passport: bytes, suffix: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", canonical_text(passport))[:60]
    return f"passport-{stem}-qr.{suffix}"


Scale = Annotated[
    int, Query(ge=1, le=40, description="Pixels (PNG) or user units (SVG) per QR module.")
]


@router.get(
    "/passports/{passport}/qr.svg",
    summary="The QR code of the passport page's address, as SVG (for the battery's label).",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **QR_ERRORS},
)
def passport_qr_svg(request: Request, passport: str, scale: Scale = qr.PNG_SCALE) -> Response:
    def render() -> Response:
        passport_id = _bound_passport(service_of(request), passport)
        url = page_url(request, passport_id)
        body = qr.svg_document(url, title=f"Battery passport {show_id(passport_id)}", scale=scale)
        return Response(
            body,
            media_type="image/svg+xml",
            headers={
                "Content-Disposition": f'inline; filename="{_qr_filename(passport_id, "svg")}"'
            },
        )

    return _guarded(render)


@router.get(
    "/passports/{passport}/qr.png",
    summary="The QR code of the passport page's address, as PNG (for the battery's label).",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **QR_ERRORS},
)
def passport_qr_png(request: Request, passport: str, scale: Scale = qr.PNG_SCALE) -> Response:
    def render() -> Response:
        passport_id = _bound_passport(service_of(request), passport)
        body = qr.png(page_url(request, passport_id), scale=scale)
        return Response(
            body,
            media_type="image/png",
            headers={
                "Content-Disposition": f'inline; filename="{_qr_filename(passport_id, "png")}"'
            },
        )

    return _guarded(render)
