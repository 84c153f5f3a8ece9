"""A FHIR search request, parsed from its query string (or `_search` form).

Unknown parameters are errors by default: a client that misspells `family` must not get
every practitioner of the territory back. `Prefer: handling=lenient` asks to ignore them
(reported in the bundle as a warning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from partage.interop.fhir.outcome import FhirError
from partage.interop.fhir.resources import ResourceType
from partage.search import Criterion, InvalidSearch, condition_for, decode_after

DEFAULT_COUNT = 20
MAX_COUNT = 200
PAGE_PARAMETER = "_page"
_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
# Result parameters we answer; anything else beginning with "_" is unknown.
_RESULT_PARAMETERS = frozenset(
    {"_count", "_include", "_total", "_summary", "_format", PAGE_PARAMETER, "_totalMethod"}
)
_NAME = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_\-.]*(?::[A-Za-z\-]+)?$"
)  # dots: chained (patient.identifier)


@dataclass
class SearchRequest:
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    after: tuple[Any, ...] | None = None
    includes: list[tuple[str, str]] = field(default_factory=list)  # (parameter, target)
    with_total: bool = False
    # What the self and next links repeat: the search as understood, without paging.
    echoed: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _split_alternatives(value: str) -> tuple[str, ...]:
    """Comma-separated alternatives; `\\,` is a literal comma."""
    parts = re.split(r"(?<!\\),", value)
    return tuple(p.replace("\\,", ",").strip() for p in parts)


def parse_search(
    resource: ResourceType, items: list[tuple[str, str]], *, lenient: bool
) -> SearchRequest:
    request = SearchRequest()
    for raw_name, value in items:
        if not _NAME.match(raw_name):
            _unknown(request, raw_name, lenient)
            continue
        name, _, modifier = raw_name.partition(":")
        if name in _RESULT_PARAMETERS:
            _result_parameter(resource, request, name, value)
            continue
        if name not in resource.spec.parameters:
            _unknown(request, raw_name, lenient)
            continue
        criterion = Criterion(name, _split_alternatives(value), modifier or None)
        try:
            # Checked now, so the error names the parameter before any query runs.
            condition_for(resource.spec, criterion)
        except InvalidSearch as error:
            raise FhirError(400, str(error), expression=raw_name) from None
        request.criteria.append(criterion)
        request.echoed.append((raw_name, value))
    return request


def _unknown(request: SearchRequest, name: str, lenient: bool) -> None:
    if not lenient:
        raise FhirError(
            400,
            f"unknown search parameter '{name}' (see /fhir/metadata for the supported ones)",
            code="not-supported",
            expression=name,
        )
    request.ignored.append(name)


def _result_parameter(
    resource: ResourceType, request: SearchRequest, name: str, value: str
) -> None:
    if name == "_count":
        if not value.isdigit():
            raise FhirError(400, "_count must be a non-negative whole number", expression=name)
        request.count = min(int(value), MAX_COUNT)
        request.echoed.append((name, str(request.count)))
    elif name == PAGE_PARAMETER:
        try:
            request.after = decode_after(value)
        except InvalidSearch as error:
            raise FhirError(400, str(error), expression=name) from None
    elif name == "_include":
        request.includes.append(_include(resource, value))
        request.echoed.append((name, value))
    elif name in ("_total", "_totalMethod"):
        # `_totalMethod=count` is what some clients (fhirpy) send to ask for a total.
        if value not in ("none", "estimate", "accurate", "count"):
            raise FhirError(400, f"{name} takes none, estimate or accurate", expression=name)
        request.with_total = value != "none"
        request.echoed.append((name, value))
    elif name == "_summary":
        if value == "count":
            request.with_total, request.count = True, 0
        elif value != "false":
            raise FhirError(400, "_summary supports count and false", code="not-supported")
        request.echoed.append((name, value))
    elif name == "_format" and value not in _FORMATS:
        raise FhirError(406, "only JSON is served", code="not-supported", expression=name)


def _include(resource: ResourceType, value: str) -> tuple[str, str]:
    source, _, rest = value.partition(":")
    parameter, _, target = rest.partition(":")
    for include in resource.includes:
        if (
            source == resource.name
            and parameter == include.parameter
            and target in ("", include.target)
        ):
            return include.parameter, include.target
    supported = ", ".join(f"{resource.name}:{i.parameter}" for i in resource.includes) or "none"
    raise FhirError(
        400,
        f"_include={value} is not supported on {resource.name} (supported: {supported})",
        code="not-supported",
        expression="_include",
    )
