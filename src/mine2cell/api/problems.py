"""Every error as an RFC 9457 problem response (``application/problem+json``) that names the
field or rule at fault; never a stack trace, never a 500 for bad input."""

from __future__ import annotations

import logging
from typing import Any

import requests
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from mine2cell.api.access import Forbidden, Unauthorized
from mine2cell.chain.node import transport_failure
from mine2cell.errors import (
    ConfigurationError,
    InvalidInput,
    LedgerRejected,
    Mine2CellError,
    NodeError,
    StorageError,
)
from mine2cell.ids import show_id

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://mine2cell.example/problems/"
log = logging.getLogger("mine2cell.api")


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is: a JSON path or a parameter name.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the fields at fault."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = Field(default_factory=list)
    error: str | None = Field(default=None, description="The ledger's error, when it refused.")
    arguments: dict[str, Any] | None = Field(default=None, description="The error's data.")


# The problem responses a route may give, for its OpenAPI description.
# ``model`` registers the Problem schema but documents it for application/json only; the media
# type problems are served with needs it too, or no client or checker holds them to it.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {
        "model": Problem,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status in (401, 403, 404, 422, 503)
}
# Writes may also be refused by the request guard (api/guard.py) before any route runs, and
# with a 507 when the data directory cannot store them (a full or read-only disk).
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    **{status: PROBLEMS[422] for status in (413, 429, 507)},
}


class Degraded(Mine2CellError):
    """The service answers but cannot do part of its work (the index cannot store the chain's
    events): not ready, until it recovers by itself."""


class NotFound(Mine2CellError):
    def __init__(self, what: str, field: str) -> None:
        self.field = field
        super().__init__(what)


class NotIndexed(NotFound):
    """A passport bound on the ledger whose binding the index has not stored yet."""

    def __init__(self, passport: bytes) -> None:
        super().__init__(
            f"passport {show_id(passport)} is bound but not indexed yet; retry shortly", "passport"
        )


def problem(
    request: Request,
    status: int,
    kind: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=TYPE_BASE + kind,
        title=title,
        status=status,
        detail=detail,
        instance=str(request.url.path),
        errors=errors or [],
        **extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON
    )


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if not parts and list(loc) == ["body"]:
        return "body"  # the body as a whole (not an object, or missing)
    return ".".join(parts) or "request"


def _field_error(error: Any) -> FieldError:
    if error.get("type") == "json_invalid":
        # Pydantic locates a JSON syntax error by its character offset, as if it were a field.
        reason = (error.get("ctx") or {}).get("error", "cannot be decoded")
        return FieldError(
            field="body", message=f"is not valid JSON: {reason} (at character {error['loc'][-1]})"
        )
    if error.get("type") == "dict_type" and list(error["loc"]) == ["body"]:
        got = type(error.get("input")).__name__
        return FieldError(field="body", message=f"must be a JSON object, got {got}")
    return FieldError(field=_location(error["loc"]), message=error["msg"])


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(e) for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem(request, 422, "invalid-request", "Invalid request", detail, errors)

    @app.exception_handler(InvalidInput)
    async def invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        errors = [FieldError(field=exc.field, message=exc.problem)]
        return problem(request, 422, "invalid-input", "Invalid input", str(exc), errors)

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        errors = [FieldError(field=exc.field, message=str(exc))]
        response = problem(request, 401, "unauthorized", "Token needed", str(exc), errors)
        response.headers["WWW-Authenticate"] = 'Bearer realm="mine2cell"'
        return response

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        errors = [FieldError(field=exc.field, message=str(exc))]
        return problem(request, 403, "forbidden", "Not allowed", str(exc), errors)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        errors = [FieldError(field=exc.field, message=str(exc))]
        return problem(request, 404, "not-found", "Not found", str(exc), errors)

    @app.exception_handler(LedgerRejected)
    async def rejected(request: Request, exc: LedgerRejected) -> JSONResponse:
        return problem(
            request,
            422,
            "ledger-rejected",
            "Rejected by the ledger",
            str(exc),
            error=exc.error,
            arguments={k: _plain(v) for k, v in exc.args_by_name.items()},
        )

    @app.exception_handler(NodeError)
    async def node(request: Request, exc: NodeError) -> JSONResponse:
        return problem(request, 503, "node-unavailable", "Node unavailable", str(exc))

    @app.exception_handler(requests.RequestException)
    async def unreachable(request: Request, exc: requests.RequestException) -> JSONResponse:
        # A route that asks the node while it is down, hanging or behind a failing gateway.
        detail = f"the node does not answer: {transport_failure(exc)}; retry shortly"
        return problem(request, 503, "node-unavailable", "Node unavailable", detail)

    @app.exception_handler(ConfigurationError)
    async def configuration(request: Request, exc: ConfigurationError) -> JSONResponse:
        return problem(request, 503, "not-configured", "Service not configured", str(exc))

    @app.exception_handler(Degraded)
    async def degraded(request: Request, exc: Degraded) -> JSONResponse:
        return problem(request, 503, "degraded", "Service degraded", str(exc))

    @app.exception_handler(StorageError)
    async def storage(request: Request, exc: StorageError) -> JSONResponse:
        # Nothing of the request was stored (SQLite rolled it back): the client may send it again.
        errors = [FieldError(field="data_dir", message=str(exc))]
        if exc.reason in ("no-space", "read-only"):
            title = "Insufficient storage"
            return problem(request, 507, "insufficient-storage", title, str(exc), errors)
        return problem(request, 503, "storage-unavailable", "Storage unavailable", str(exc), errors)

    @app.exception_handler(Mine2CellError)
    async def other(request: Request, exc: Mine2CellError) -> JSONResponse:
        return problem(request, 422, "refused", "Refused", str(exc))

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's answer to a body it could not even decode (bytes that are not UTF-8, JSON
            # nested too deep): an invalid body like any malformed JSON, which it calls a 422.
            errors = [FieldError(field="body", message=f"is not JSON: {exc.__cause__}")]
            detail = f"body: {errors[0].message}"
            return problem(request, 422, "invalid-request", "Invalid request", detail, errors)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem(request, exc.status_code, "http", title, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged here with its trace for the operator; the caller gets no internals.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(
            request,
            500,
            "internal",
            "Internal error",
            "the service failed on this request; the error is in its log",
        )


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
