"""Systems (a hospital's EHR, its PACS) against a running server, with a real OAuth client."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from partage.db import transaction
from partage.platform import Platform
from partage.security import actions, service
from partage.security.models import OAuthClient
from partage.security.principal import operator_principal

pytestmark = pytest.mark.live

MakeClient = Callable[..., tuple[OAuthClient, str | None]]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def whoami(base: str, token: str) -> httpx.Response:
    return httpx.get(f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})


def test_client_credentials_with_basic_authentication(
    live_server: str, make_client: MakeClient
) -> None:
    registered, secret = make_client("system/*.rs system/DocumentReference.cruds")
    with OAuth2Client(
        registered.client_id, secret, token_endpoint_auth_method="client_secret_basic"
    ) as oauth:
        token = oauth.fetch_token(f"{live_server}/oauth2/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] <= 900
    assert set(token["scope"].split()) == {"system/*.rs", "system/DocumentReference.cruds"}
    answer = whoami(live_server, token["access_token"])
    assert answer.status_code == 200
    assert answer.json()["client_id"] == registered.client_id
    assert answer.json()["kind"] == "client"


def test_requested_scopes_are_narrowed_to_the_allowed_ones(
    live_server: str, make_client: MakeClient
) -> None:
    registered, secret = make_client("system/DocumentReference.rs")
    response = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret or ""),
        data={
            "grant_type": "client_credentials",
            "scope": "system/DocumentReference.cruds system/Patient.rs",
        },
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system/DocumentReference.rs"
    refused = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret or ""),
        data={"grant_type": "client_credentials", "scope": "system/Patient.rs"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


def test_client_secret_post_also_works(live_server: str, make_client: MakeClient) -> None:
    registered, secret = make_client()
    response = httpx.post(
        f"{live_server}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": registered.client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("auth", [("nobody", "nothing"), None])
def test_bad_client_credentials_are_refused(
    live_server: str, make_client: MakeClient, auth: tuple[str, str] | None
) -> None:
    registered, _ = make_client()
    response = httpx.post(
        f"{live_server}/oauth2/token",
        auth=auth or (registered.client_id, "wrong"),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers


def test_private_key_jwt(live_server: str, make_client: MakeClient, platform: Platform) -> None:
    private_key = RSAKey.generate_key(2048, parameters={"kid": "ehr-2026"})
    registered, secret = make_client(
        "system/*.rs", jwks={"keys": [private_key.as_dict(private=False)]}
    )
    assert secret is None
    assert registered.token_endpoint_auth_method == "private_key_jwt"
    endpoint = f"{live_server}/oauth2/token"
    with OAuth2Client(
        registered.client_id, private_key, token_endpoint_auth_method="private_key_jwt"
    ) as oauth:
        oauth.register_client_auth_method(PrivateKeyJWT(endpoint))
        token = oauth.fetch_token(endpoint, grant_type="client_credentials")
    assert whoami(live_server, token["access_token"]).status_code == 200

    # An assertion is single-use, and one signed by another key is refused.
    from authlib.oauth2.rfc7523 import private_key_jwt_sign

    assertion = _text(
        private_key_jwt_sign(private_key, client_id=registered.client_id, token_endpoint=endpoint)
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    assert httpx.post(endpoint, data=form).status_code == 200
    replay = httpx.post(endpoint, data=form)
    assert replay.status_code == 401
    other = RSAKey.generate_key(2048)
    forged = _text(
        private_key_jwt_sign(other, client_id=registered.client_id, token_endpoint=endpoint)
    )
    assert httpx.post(endpoint, data={**form, "client_assertion": forged}).status_code == 401


def test_revoking_the_client_stops_its_tokens_at_once(
    live_server: str, make_client: MakeClient, platform: Platform
) -> None:
    registered, secret = make_client()
    token = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret or ""),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    assert whoami(live_server, token).status_code == 200
    with transaction(platform.sessions) as session:
        client = service.get_client(session, client_id=registered.client_id)
        assert client is not None
        actions.revoke_client(session, actor=operator_principal(), client=client)
    refused = whoami(live_server, token)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    again = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret or ""),
        data={"grant_type": "client_credentials"},
    )
    assert again.status_code == 401


def test_token_revocation_and_introspection(live_server: str, make_client: MakeClient) -> None:
    registered, secret = make_client()
    auth = (registered.client_id, secret or "")
    token = httpx.post(
        f"{live_server}/oauth2/token", auth=auth, data={"grant_type": "client_credentials"}
    ).json()["access_token"]
    active = httpx.post(f"{live_server}/oauth2/introspect", auth=auth, data={"token": token}).json()
    assert active["active"] is True
    assert active["client_id"] == registered.client_id
    assert active["exp"] > time.time()
    assert (
        httpx.post(f"{live_server}/oauth2/revoke", auth=auth, data={"token": token}).status_code
        == 200
    )
    assert whoami(live_server, token).status_code == 401
    inactive = httpx.post(
        f"{live_server}/oauth2/introspect", auth=auth, data={"token": token}
    ).json()
    assert inactive == {"active": False}
    # Unknown tokens are not an error (RFC 7009 §2.2).
    assert (
        httpx.post(
            f"{live_server}/oauth2/revoke", auth=auth, data={"token": "nonsense"}
        ).status_code
        == 200
    )


def test_another_clients_token_cannot_be_revoked(live_server: str, make_client: MakeClient) -> None:
    owner, owner_secret = make_client()
    other, other_secret = make_client()
    token = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(owner.client_id, owner_secret or ""),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    httpx.post(
        f"{live_server}/oauth2/revoke",
        auth=(other.client_id, other_secret or ""),
        data={"token": token},
    )
    assert whoami(live_server, token).status_code == 200


@pytest.mark.parametrize("token", ["abc", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_malformed_bearer_tokens_are_refused(live_server: str, token: str) -> None:
    assert whoami(live_server, token).status_code == 401


def test_an_unsigned_token_is_refused(live_server: str, make_client: MakeClient) -> None:
    registered, secret = make_client()
    token = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret or ""),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    header, payload, _ = token.split(".")
    assert whoami(live_server, f"{header}.{payload}.").status_code == 401
    assert whoami(live_server, f"{header}.{payload}.AAAA").status_code == 401


def test_discovery_documents(live_server: str) -> None:
    oidc = httpx.get(f"{live_server}/.well-known/openid-configuration").json()
    assert oidc["issuer"] == live_server
    assert oidc["token_endpoint"] == f"{live_server}/oauth2/token"
    assert "S256" in oidc["code_challenge_methods_supported"]
    assert "private_key_jwt" in oidc["token_endpoint_auth_methods_supported"]
    smart = httpx.get(f"{live_server}/.well-known/smart-configuration").json()
    assert "permission-v2" in smart["capabilities"]
    jwks = httpx.get(f"{live_server}/oauth2/jwks").json()
    assert {key["alg"] for key in jwks["keys"]} >= {"ES256", "RS256"}
    assert all("d" not in key for key in jwks["keys"])


@pytest.mark.parametrize("endpoint", ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
def test_a_nul_byte_in_a_client_id_is_a_failed_authentication_not_a_crash(
    client: TestClient, endpoint: str
) -> None:
    response = client.post(
        endpoint, data={"client_id": "\x00", "grant_type": "client_credentials", "token": "x"}
    )
    assert response.status_code in (400, 401)
    basic = base64.b64encode(b"ab\x00cd:secret").decode()
    response = client.post(
        endpoint,
        data={"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code in (400, 401)
