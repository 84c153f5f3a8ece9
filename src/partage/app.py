"""The one HTTP application: OIDC provider, APIs, portals, operations."""

from __future__ import annotations

import logging
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from partage import __version__
from partage.access.decision import NotFound
from partage.config import Settings, get_settings
from partage.documents.fhir_api import router as documents_fhir_router
from partage.interop.fhir.api import router as fhir_router
from partage.interop.fhir.outcome import FhirError, error_response, is_fhir_request
from partage.ops.logging import configure_logging
from partage.ops.middleware import OperationsMiddleware
from partage.ops.routes import router as ops_router
from partage.platform import Platform
from partage.security.api import router as security_api_router
from partage.security.oidc_api import router as oidc_router
from partage.web.pages import error_page, wants_html
from partage.web.routes import router as web_router

log = logging.getLogger(__name__)
HTML_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 422: "invalid_request"}


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> FastAPI:
    settings = settings or get_settings()
    platform = platform or Platform.create(settings)
    platform.prepare()
    app = FastAPI(
        title="Partage",
        version=__version__,
        description="Territorial health-data sharing platform.",
        # Swagger UI loads scripts from a CDN and inline: not under our CSP.
        docs_url=None,
        redoc_url=None,
        # Our own metrics (/metrics) and request log (OperationsMiddleware); no OpenTelemetry
        # exporter: FastAPI's own instrumentation would only cost every request its checks.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.platform = platform
    app.add_middleware(OperationsMiddleware, hsts=settings.behind_tls)
    static_dir = resources.files("partage.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    app.include_router(ops_router)
    app.include_router(oidc_router)
    app.include_router(security_api_router)
    # Before the generic FHIR routes: documents are decided person by person.
    app.include_router(documents_fhir_router)
    app.include_router(fhir_router)
    app.include_router(web_router)

    # People's browsers get readable pages in their language; FHIR clients an
    # OperationOutcome; other programs JSON.
    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, exc: FhirError) -> Response:
        return error_response(exc.status, exc.diagnostics, code=exc.code)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        if is_fhir_request(request):
            return error_response(404, "not found")
        if wants_html(request):
            return error_page(request, "not_found", 404)
        return JSONResponse({"detail": "Not found"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if is_fhir_request(request):
            return error_response(400, "the request is not valid")
        if wants_html(request):
            return error_page(request, "invalid_request", 422)
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # A value the database cannot hold (a NUL byte in text, on PostgreSQL) that no check
        # before it caught: the request is at fault, not the server.
        message = "the request contains a value that cannot be stored or searched"
        if is_fhir_request(request):
            return error_response(400, message)
        return JSONResponse({"detail": message}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_fhir_request(request) and exc.status_code >= 400:
            return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
        if wants_html(request) and exc.status_code >= 400:
            code = HTML_ERROR_CODES.get(exc.status_code, "error")
            page = error_page(request, code, exc.status_code)
            page.headers.update(exc.headers or {})
            return page
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    return app


def create_app_from_env() -> FastAPI:
    """Factory for servers that build the app in each worker process (settings from env)."""
    settings = get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    return create_app(settings)
