"""Health, metrics, request ids, security headers, logs without secrets, production refusal."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from partage.config import ConfigurationError, Environment, Settings
from partage.ops.logging import JsonFormatter
from partage.platform import Platform
from partage.security.models import OAuthClient


def test_healthz(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["database"] == "ok"


def test_metrics_are_exposed_by_route_template(client: TestClient) -> None:
    client.get("/healthz")
    text = client.get("/metrics").text
    assert "partage_http_requests_total" in text
    assert 'route="/healthz"' in text


def test_request_ids(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123-def-456"})
    assert given.headers["x-request-id"] == "abc-123-def-456"
    forged = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert forged.headers["x-request-id"] != "bad id\twith spaces"
    assert len(forged.headers["x-request-id"]) == 32


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/healthz").headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    # HSTS only makes sense behind TLS; the test server is plain http.
    assert "strict-transport-security" not in headers


def test_logs_carry_no_secret_and_no_query_string(
    client: TestClient,
    make_client: Callable[..., tuple[OAuthClient, str | None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registered, secret = make_client()
    assert secret is not None
    with caplog.at_level(logging.INFO):
        token = client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(registered.client_id, secret),
        ).json()["access_token"]
        client.get("/oauth2/authorize?code_challenge=SENSITIVEVALUE&client_id=x")
        client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    formatter = JsonFormatter()
    # Our server's records (the test's own HTTP client logs the URLs it calls).
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith("partage")]
    assert any('"route": "/oauth2/token"' in line for line in lines)
    joined = "\n".join(lines)
    for leaked in (secret, token, "SENSITIVEVALUE", base64.b64encode(secret.encode()).decode()):
        assert leaked not in joined
    request_lines = [json.loads(line) for line in lines if '"msg": "request"' in line]
    assert all("request_id" in line for line in request_lines)


def test_production_refuses_development_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PARTAGE_MASTER_KEY"):
        Platform.create(
            Settings(
                env=Environment.production, data_dir=tmp_path, public_url="https://partage.example"
            )
        )
    with pytest.raises(ConfigurationError, match="https"):
        Settings(
            env=Environment.production,
            master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            public_url="http://partage.example",
        ).check_production()
    with pytest.raises(ConfigurationError, match="demo"):
        Settings(
            env=Environment.production,
            demo=True,
            public_url="https://partage.example",
            master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        ).check_production()
    Settings(
        env=Environment.production,
        public_url="https://partage.example",
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
    ).check_production()


def test_hsts_behind_tls(tmp_path: Path) -> None:
    from partage.app import create_app
    from partage.migrations.runner import upgrade

    settings = Settings(data_dir=tmp_path, public_url="https://partage.example")
    platform = Platform.create(settings)
    upgrade(platform.engine)
    with TestClient(create_app(settings, platform=platform)) as https_client:
        headers = https_client.get("/healthz").headers
    platform.close()
    assert headers["strict-transport-security"].startswith("max-age=")
