"""FHIR errors: every failure under /fhir answers an OperationOutcome, never a bare status."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

FHIR_JSON = "application/fhir+json"

# The issue type (FHIR IssueType) that goes with each HTTP status we answer with.
_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    415: "not-supported",
    422: "processing",
}


class FhirError(Exception):
    def __init__(
        self, status: int, diagnostics: str, *, code: str | None = None, expression: str = ""
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or _ISSUE_CODES.get(status, "exception")
        self.expression = expression


def operation_outcome(
    diagnostics: str, *, code: str, severity: str = "error", expression: str = ""
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(
    body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(content, status_code=status, media_type=FHIR_JSON, headers=headers)


def error_response(
    status: int,
    diagnostics: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = operation_outcome(diagnostics, code=code or _ISSUE_CODES.get(status, "exception"))
    return fhir_response(body, status=status, headers=headers)


def is_fhir_request(request: Request) -> bool:
    path = request.url.path
    return path == "/fhir" or path.startswith("/fhir/")
