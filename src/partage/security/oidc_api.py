"""The OpenID Connect provider's HTTP endpoints (thin: parse, call the token service)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from partage.audit.actions import ANONYMOUS_ACTOR, AuditEntry, new_entry, record
from partage.db import transaction
from partage.platform import Platform
from partage.security import oauth, service
from partage.security.actions import AUTH_METHODS as CLIENT_AUTH_METHODS
from partage.security.authn import Stage, load_sso_session, sso_cookie_name
from partage.security.bearer import InvalidToken, bearer_token, principal_from_token
from partage.security.models import OAuthClient
from partage.security.oauth import ClientCredentials, OAuthError
from partage.security.scopes import InvalidScope, Scopes
from partage.security.signing import ACCESS_TOKEN_ALG, ID_TOKEN_ALG
from partage.web.deps import get_platform

router = APIRouter(tags=["oidc"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SUPPORTED_SCOPES = [
    "openid",
    "fhirUser",
    "profile",
    "offline_access",
    "online_access",
    "system/*.rs",
    "system/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "patient/*.rs",
]
AUTH_METHODS = list(CLIENT_AUTH_METHODS)
FormStr = Annotated[str | None, Form()]


def _urls(platform: Platform) -> dict[str, str]:
    issuer = platform.settings.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/oauth2/jwks",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
    }


@router.get("/.well-known/openid-configuration")
def openid_configuration(request: Request) -> dict[str, Any]:
    platform = get_platform(request)
    return {
        **_urls(platform),
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "ES256", "ES384"],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "sid",
            "name",
            "preferred_username",
        ],
        "authorization_response_iss_parameter_supported": True,
        "access_token_signing_alg_values_supported": [ACCESS_TOKEN_ALG],
        "ui_locales_supported": ["fr", "en"],
    }


@router.get("/.well-known/smart-configuration")
def smart_configuration(request: Request) -> dict[str, Any]:
    urls = _urls(get_platform(request))
    return {
        "issuer": urls["issuer"],
        "jwks_uri": urls["jwks_uri"],
        "authorization_endpoint": urls["authorization_endpoint"],
        "token_endpoint": urls["token_endpoint"],
        "revocation_endpoint": urls["revocation_endpoint"],
        "introspection_endpoint": urls["introspection_endpoint"],
        "userinfo_endpoint": urls["userinfo_endpoint"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "ES256", "ES384"],
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "sso-openid-connect",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "permission-v2",
            "permission-offline",
            "permission-user",
            "permission-patient",
            "authorize-post",
        ],
    }


@router.get("/oauth2/jwks")
def jwks(request: Request) -> JSONResponse:
    keys = get_platform(request).signing_keys.public_jwks()
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


def _error(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="partage"'
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _client_authentication(
    client_id: FormStr = None,
    client_secret: FormStr = None,
    client_assertion_type: FormStr = None,
    client_assertion: FormStr = None,
    authorization: Annotated[str | None, Header()] = None,
) -> ClientCredentials:
    """What the request presents to authenticate its client (RFC 6749 §2.3, RFC 7523).

    Async although it awaits nothing: FastAPI would run a plain function in a thread.
    """
    return ClientCredentials(
        authorization=authorization,
        client_id=client_id,
        client_secret=client_secret,
        client_assertion_type=client_assertion_type,
        client_assertion=client_assertion,
    )


ClientAuthentication = Annotated[ClientCredentials, Depends(_client_authentication)]


@router.post("/oauth2/token")
async def token(
    request: Request,
    grant_type: FormStr = None,
    scope: FormStr = None,
    code: FormStr = None,
    redirect_uri: FormStr = None,
    code_verifier: FormStr = None,
    refresh_token: FormStr = None,
    *,
    creds: ClientAuthentication,
) -> Response:
    platform = get_platform(request)
    endpoint = f"{platform.settings.issuer}/oauth2/token"
    if grant_type == "client_credentials":
        return await _client_credentials(platform, creds, endpoint=endpoint, scope=scope)
    return await run_in_threadpool(
        _token_changing_state,
        platform,
        creds,
        endpoint=endpoint,
        grant_type=grant_type,
        scope=scope,
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
        refresh_token=refresh_token,
    )


def _token_changing_state(
    platform: Platform,
    creds: ClientCredentials,
    *,
    endpoint: str,
    grant_type: str | None,
    scope: str | None,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    refresh_token: str | None,
) -> Response:
    """Codes and refresh tokens: one write transaction (spent codes, rotated tokens)."""
    error: OAuthError | None = None
    with transaction(platform.sessions) as session:
        # A refusal still commits: a spent code, a revoked token family, the audit row.
        try:
            client = oauth.authenticate_client(session, platform, creds, endpoint=endpoint)
            body = _grant(
                session,
                platform,
                client,
                grant_type=grant_type,
                scope=scope,
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
                refresh_token=refresh_token,
            )
        except OAuthError as exc:
            error = exc
            if exc.error == "invalid_client":
                record(session, **_client_failure(creds))
    if error is not None:
        return _error(error)
    return JSONResponse(body, headers=NO_STORE)


def _client_failure(creds: ClientCredentials) -> dict[str, Any]:
    claimed = creds.client_id or oauth.claimed_client_id(creds)
    return {
        "actor": ANONYMOUS_ACTOR,
        "action": "auth.client",
        "outcome": "failure",
        "entity_type": "OAuthClient",
        "entity_id": (claimed or "")[:64] or None,
    }


async def _client_credentials(
    platform: Platform, creds: ClientCredentials, *, endpoint: str, scope: str | None
) -> Response:
    """A system's token: no state changes, so no write transaction; the audit row is
    group-committed and durable before the token leaves (ADR 0005).

    Runs on the event loop: a secret-authenticated grant is one indexed read and one
    signature, well under a millisecond, and a thread hop would cost more than the work.
    """

    def issue(sessions: sessionmaker[Session]) -> tuple[dict[str, Any], AuditEntry]:
        with transaction(sessions) as session:
            client = oauth.authenticate_client(session, platform, creds, endpoint=endpoint)
            return oauth.grant_client_credentials(platform, client, scope=scope)

    try:
        if creds.client_assertion:
            # An assertion is verified (RSA) and its jti written against replay: a thread.
            body, entry = await run_in_threadpool(issue, platform.sessions)
        else:
            body, entry = issue(platform.read_sessions)
    except OAuthError as exc:
        if exc.error == "invalid_client":
            await platform.audit_batcher.commit_async(new_entry(**_client_failure(creds)))
        return _error(exc)
    await platform.audit_batcher.commit_async(entry)
    return JSONResponse(body, headers=NO_STORE)


def _grant(
    session: Session,
    platform: Platform,
    client: OAuthClient,
    *,
    grant_type: str | None,
    scope: str | None,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    refresh_token: str | None,
) -> dict[str, Any]:
    if grant_type == "authorization_code":
        if not code:
            raise OAuthError("invalid_request", "code is required")
        return oauth.grant_authorization_code(
            session,
            platform,
            client,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
    if grant_type == "refresh_token":
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required")
        return oauth.grant_refresh_token(
            session, platform, client, refresh_token=refresh_token, scope=scope
        )
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is required")
    raise OAuthError("unsupported_grant_type", "unsupported grant_type")


@router.post("/oauth2/revoke")
def revoke(
    request: Request,
    token: FormStr = None,
    token_type_hint: FormStr = None,
    *,
    creds: ClientAuthentication,
) -> Response:
    platform = get_platform(request)
    try:
        with transaction(platform.sessions) as session:
            client = oauth.authenticate_client(
                session, platform, creds, endpoint=f"{platform.settings.issuer}/oauth2/revoke"
            )
            if not token:
                raise OAuthError("invalid_request", "token is required")
            oauth.revoke_token(session, platform, client, token=token)
    except OAuthError as exc:
        return _error(exc)
    return Response(status_code=200, headers=NO_STORE)


@router.post("/oauth2/introspect")
def introspect(
    request: Request,
    token: FormStr = None,
    token_type_hint: FormStr = None,
    *,
    creds: ClientAuthentication,
) -> Response:
    platform = get_platform(request)
    try:
        with transaction(platform.sessions) as session:
            oauth.authenticate_client(
                session,
                platform,
                creds,
                endpoint=f"{platform.settings.issuer}/oauth2/introspect",
            )
            if not token:
                raise OAuthError("invalid_request", "token is required")
            claims = oauth.decode_own_token(platform, token)
            try:
                principal = principal_from_token(session, platform, token)
            except InvalidToken:
                return JSONResponse({"active": False}, headers=NO_STORE)
    except OAuthError as exc:
        return _error(exc)
    assert claims is not None
    body = {
        "active": True,
        "scope": claims.get("scope"),
        "client_id": claims.get("client_id"),
        "username": principal.label if principal.kind == "account" else None,
        "token_type": "Bearer",
        "exp": claims.get("exp"),
        "iat": claims.get("iat"),
        "sub": claims.get("sub"),
        "aud": claims.get("aud"),
        "iss": claims.get("iss"),
        "jti": claims.get("jti"),
    }
    return JSONResponse({k: v for k, v in body.items() if v is not None}, headers=NO_STORE)


@router.get("/oauth2/userinfo")
def userinfo(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    platform = get_platform(request)
    unauthorized = JSONResponse(
        {"error": "invalid_token"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    token_value = bearer_token(authorization)
    if token_value is None:
        return unauthorized
    with transaction(platform.sessions) as session:
        try:
            principal = principal_from_token(session, platform, token_value)
        except InvalidToken:
            return unauthorized
        if principal.kind != "account" or principal.account_id is None:
            return unauthorized
        account = service.get_account_by_id(session, account_id=principal.account_id)
        assert account is not None
        claims = {
            "sub": str(account.id),
            "name": account.display_name,
            "preferred_username": account.login,
            "profile_code": account.profile,
            "locale": account.locale,
        }
        if principal.scopes.has("fhirUser"):
            fhir_user = service.fhir_user(session, issuer=platform.settings.issuer, account=account)
            if fhir_user:
                claims["fhirUser"] = fhir_user
        return JSONResponse(claims, headers=NO_STORE)


def _redirect_with(uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{separator}{query}", status_code=302, headers=NO_STORE)


def _authorize_problem(request: Request, message: str) -> Response:
    from partage.web.pages import error_page

    return error_page(request, message, status_code=400)


@router.get("/oauth2/authorize")
def authorize(
    request: Request,
    response_type: Annotated[str | None, Query()] = None,
    client_id: Annotated[str | None, Query()] = None,
    redirect_uri: Annotated[str | None, Query()] = None,
    scope: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query(max_length=2048)] = None,
    code_challenge: Annotated[str | None, Query()] = None,
    code_challenge_method: Annotated[str | None, Query()] = None,
    nonce: Annotated[str | None, Query(max_length=256)] = None,
    prompt: Annotated[str | None, Query()] = None,
) -> Response:
    platform = get_platform(request)
    issuer = platform.settings.issuer
    with transaction(platform.sessions) as session:
        client = service.get_client(session, client_id=client_id) if client_id else None
        if client is None or not client.is_active:
            return _authorize_problem(request, "unknown_client")
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            return _authorize_problem(request, "bad_redirect_uri")

        def fail(error: str, description: str) -> Response:
            return _redirect_with(
                redirect_uri,
                {"error": error, "error_description": description, "state": state, "iss": issuer},
            )

        if response_type != "code":
            return fail("unsupported_response_type", "only the code flow is supported")
        if "authorization_code" not in client.grant_types:
            return fail("unauthorized_client", "this client may not sign people in")
        if (
            not code_challenge
            or code_challenge_method != "S256"
            or not (43 <= len(code_challenge) <= 128)
        ):
            return fail("invalid_request", "PKCE with S256 is required")
        try:
            requested = Scopes.parse(scope or "openid")
        except InvalidScope as exc:
            return fail("invalid_scope", str(exc))
        granted = requested.narrow_to(Scopes.parse(client.allowed_scopes))
        if requested.others - granted.others or len(granted.resources) < len(requested.resources):
            return fail("invalid_scope", "a requested scope is not allowed for this client")
        sso = load_sso_session(
            session, platform, request.cookies.get(sso_cookie_name(platform.settings))
        )
        if sso is None or sso.stage != Stage.complete.value or prompt == "login":
            if prompt == "none":
                return fail("login_required", "the person is not signed in")
            target = str(request.url.path) + "?" + _without_prompt_login(request)
            return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        code = oauth.create_authorization_code(
            session,
            platform,
            client=client,
            sso=sso,
            redirect_uri=redirect_uri,
            scope=granted,
            code_challenge=code_challenge,
            nonce=nonce,
        )
    return _redirect_with(redirect_uri, {"code": code, "state": state, "iss": issuer})


def _without_prompt_login(request: Request) -> str:
    """Once signed in, coming back must not ask for a new sign-in forever."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "prompt"]
    return urlencode(params)
