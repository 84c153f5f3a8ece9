"""FastAPI dependencies: the bearer-token principal of an API request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from partage.platform import Platform
from partage.security.bearer import InvalidToken, bearer_token, principal_from_token
from partage.security.principal import Principal
from partage.web.deps import get_platform

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="partage", error="invalid_token"'}


def bearer_principal(request: Request) -> Principal:
    """The caller of an API: refuses a missing, invalid, revoked or disabled token (401)."""
    return authenticate(get_platform(request), request.headers.get("authorization"))


def authenticate(platform: Platform, authorization: str | None) -> Principal:
    """`bearer_principal` for a route that authenticates in its own worker thread (one
    thread hop per request instead of two, where that counts)."""
    token = bearer_token(authorization)
    if token is None:
        raise HTTPException(401, "a bearer token is required", headers=_CHALLENGE)
    with platform.read_engine.connect() as connection:
        try:
            return principal_from_token(connection, platform, token)
        except InvalidToken:
            raise HTTPException(401, "the token is not valid", headers=_CHALLENGE) from None


BearerPrincipal = Annotated[Principal, Depends(bearer_principal)]
