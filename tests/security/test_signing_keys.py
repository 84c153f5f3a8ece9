"""Signing keys rotate without breaking the tokens already issued."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from partage.db import transaction
from partage.platform import Platform
from partage.security.models import OAuthClient, SigningKey
from partage.security.signing import rotate_signing_keys


def _token(client: TestClient, registered: OAuthClient, secret: str) -> str:
    answer = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(registered.client_id, secret),
    )
    return str(answer.json()["access_token"])


def _kid(token: str) -> str:
    import base64
    import json

    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=="))["kid"])


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    client: TestClient,
    platform: Platform,
    make_client: Callable[..., tuple[OAuthClient, str | None]],
) -> None:
    registered, secret = make_client()
    assert secret is not None
    before = _token(client, registered, secret)
    with transaction(platform.sessions) as session:
        new_kids = rotate_signing_keys(session, platform.keyring, publish_for=timedelta(hours=1))
    platform.signing_keys.reload()
    after = _token(client, registered, secret)
    assert _kid(after) in new_kids and _kid(before) not in new_kids
    published = {key["kid"] for key in client.get("/oauth2/jwks").json()["keys"]}
    assert {_kid(before), _kid(after)} <= published
    for token in (before, after):
        answer = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


def test_private_keys_are_sealed_at_rest(platform: Platform) -> None:
    platform.signing_keys.reload()
    with transaction(platform.read_sessions) as session:
        for row in session.query(SigningKey):
            assert b'"d"' not in row.private_jwk_sealed
            assert "d" not in row.public_jwk


def test_access_tokens_verify_with_an_independent_jose_library(
    client: TestClient, make_client: Callable[..., tuple[OAuthClient, str | None]]
) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    registered, secret = make_client("system/Patient.rs")
    assert secret is not None
    token = _token(client, registered, secret)
    keys = KeySet.import_key_set(client.get("/oauth2/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["client_id"] == registered.client_id
    assert decoded.claims["scope"] == "system/Patient.rs"
    assert decoded.claims["exp"] - decoded.claims["iat"] == 300


def test_a_token_verified_once_still_ends_with_its_key(
    client: TestClient,
    platform: Platform,
    make_client: Callable[..., tuple[OAuthClient, str | None]],
) -> None:
    """The second request with a token skips the signature check; the token still stops
    working when its key is no longer published, and a changed signature is checked."""
    registered, secret = make_client()
    assert secret is not None
    token = _token(client, registered, secret)
    for _ in range(2):  # the second one from what the first verified
        answer = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    answer = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    with transaction(platform.sessions) as session:
        rotate_signing_keys(session, platform.keyring, publish_for=timedelta(0))
        for key in session.query(SigningKey).filter(SigningKey.kid == _kid(token)):
            key.unpublish_after = key.retired_at
    platform.signing_keys.reload()
    answer = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
