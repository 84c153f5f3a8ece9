"""FastAPI dependencies: the bearer-token principal of an API request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection

from partage.platform import Platform
from partage.security.bearer import (
    InvalidToken,
    TokenClaims,
    bearer_token,
    principal_for,
    read_token,
)
from partage.security.principal import Principal
from partage.web.deps import get_platform

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="partage", error="invalid_token"'}


def bearer_principal(request: Request) -> Principal:
    """The caller of an API: refuses a missing, invalid, revoked or disabled token (401)."""
    return authenticate(get_platform(request), request.headers.get("authorization"))


def authenticate(platform: Platform, authorization: str | None) -> Principal:
    """`bearer_principal` for a route that authenticates in its own worker thread (one
    thread hop per request instead of two, where that counts)."""
    return confirm_claims(platform, token_claims(platform, authorization))


def token_claims(platform: Platform, authorization: str | None) -> TokenClaims:
    """The claims of the request's bearer token, checked locally (401 otherwise); whether
    they still hold is `confirm_claims`'s (or `bearer.principal_for`'s) to say."""
    token = bearer_token(authorization)
    if token is None:
        raise HTTPException(401, "a bearer token is required", headers=_CHALLENGE)
    try:
        return read_token(platform, token)
    except InvalidToken:
        raise HTTPException(401, "the token is not valid", headers=_CHALLENGE) from None


def confirm_claims(platform: Platform, claims: TokenClaims) -> Principal:
    with platform.read_engine.connect() as connection:
        return confirm_claims_on(connection, claims)


def confirm_claims_on(connection: Connection, claims: TokenClaims) -> Principal:
    """The principal the claims stand for, now (401 if the token or its holder was revoked
    or disabled since it was issued)."""
    try:
        return principal_for(connection, claims)
    except InvalidToken:
        raise HTTPException(401, "the token is not valid", headers=_CHALLENGE) from None


BearerPrincipal = Annotated[Principal, Depends(bearer_principal)]
