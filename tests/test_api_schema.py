"""Property-based requests against our own OpenAPI: no endpoint answers 500, whatever it gets."""

from __future__ import annotations

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from partage.app import create_app
from partage.platform import Platform
from tests.conftest import build_platform, free_port


def _schema_app() -> FastAPI:
    import tempfile
    from pathlib import Path

    platform: Platform
    platform, _ = build_platform(Path(tempfile.mkdtemp(prefix="partage-schema-")), free_port())
    return create_app(platform.settings, platform=platform)


schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])


def test_every_route_is_in_the_schema(app: FastAPI) -> None:
    paths = set(app.openapi()["paths"])
    for expected in ("/healthz", "/oauth2/token", "/oauth2/authorize", "/api/v1/whoami"):
        assert expected in paths
