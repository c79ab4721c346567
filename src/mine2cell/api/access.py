"""The access tiers of the HTTP service, after the battery-passport practice: the public summary
is open to anyone; facility-level and volume detail needs a read token; every write is a
signature of an accredited participant, and in hosted-key mode a token naming the key the
service signs with.

A token comes as ``Authorization: Bearer m2c_...`` or, for the passport page in a browser, as the
``mine2cell_token`` cookie (HttpOnly, set by the page from a one-time ``?token=`` link)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mine2cell.access.tokens import Token, TokenStore
from mine2cell.errors import Mine2CellError

COOKIE = "mine2cell_token"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An access token (m2c_...) from `mine2cell token create`: read tier for "
    "facility-level and volume detail, hosted tier to have the service sign with a key it holds.",
)


class Unauthorized(Mine2CellError):
    """No valid token where the route needs one (401)."""

    field = "Authorization"


class Forbidden(Mine2CellError):
    """A valid token that does not grant this (403)."""

    field = "Authorization"


def _tokens(request: Request) -> TokenStore:
    tokens: TokenStore = request.app.state.runtime.tokens
    return tokens


def presented(request: Request) -> str | None:
    """The token text the request carries, if any (header first, then cookie)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE)


def token_of(request: Request) -> Token | None:
    """The valid token the request carries, or None."""
    text = presented(request)
    return None if text is None else _tokens(request).verify(text)


def read_access(request: Request) -> bool:
    """True when the request may see the detail tier."""
    return token_of(request) is not None


def require_read(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Token:
    """A route of the detail tier: facility-level and volume data."""
    text = presented(request)
    if text is None:
        raise Unauthorized(
            "this route shows facility-level and volume detail: send a read token as "
            "'Authorization: Bearer m2c_...' (an operator creates one with `mine2cell token "
            "create --read LABEL`); the public summary needs none"
        )
    token = _tokens(request).verify(text)
    if token is None:
        raise Unauthorized("the token is not valid: unknown, revoked or mistyped")
    return token


ReadToken = Annotated[Token, Depends(require_read)]


def require_hosted(token: ReadToken, key: str) -> Token:
    """A hosted-key write: the token must be of the hosted tier and name ``key``."""
    if token.tier != "hosted":
        raise Forbidden(
            f"token {token.id} is a read token; the service signs only for hosted tokens "
            f"(`mine2cell token create --hosted {key} LABEL`)"
        )
    if token.key_name != key:
        raise Forbidden(f"token {token.id} signs for key {token.key_name!r}, not {key!r}")
    return token
