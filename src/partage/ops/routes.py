"""Liveness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from partage import __version__
from partage.ops.metrics import REGISTRY
from partage.web.deps import get_platform

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    version: str
    database: str


@router.get("/healthz", response_model=Health)
def healthz(request: Request, response: Response) -> Health:
    platform = get_platform(request)
    try:
        with platform.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:
        database = "unavailable"
        response.status_code = 503
    return Health(
        status="ok" if database == "ok" else "degraded", version=__version__, database=database
    )


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
