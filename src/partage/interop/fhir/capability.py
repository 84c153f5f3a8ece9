"""The server's CapabilityStatement, written from what the domains register."""

from __future__ import annotations

from typing import Any

from partage import __version__
from partage.interop.fhir.resources import ResourceType

_RESULT_PARAMETERS = (
    ("_count", "number", "Page size (at most 200)"),
    ("_include", "special", "Referenced resources to add to the page"),
    ("_total", "token", "none | estimate | accurate"),
    ("_summary", "token", "count: the total only"),
)


def capability_statement(issuer: str, resources: dict[str, ResourceType]) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "Partage",
        "kind": "instance",
        "software": {"name": "Partage", "version": __version__},
        "implementation": {"description": "Partage FHIR R4 server", "url": f"{issuer}/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth 2 bearer tokens with SMART v2 scopes; see "
                    f"{issuer}/.well-known/smart-configuration",
                },
                "resource": [_resource(r) for r in resources.values()],
            }
        ],
    }


def _resource(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": resource.name,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "searchParam": [
            {"name": p.name, "type": p.type, "documentation": p.description}
            for p in resource.spec.parameters.values()
        ]
        + [{"name": n, "type": t, "documentation": d} for n, t, d in _RESULT_PARAMETERS],
    }
    if resource.profile:
        entry["profile"] = resource.profile
    if resource.includes:
        entry["searchInclude"] = [f"{resource.name}:{i.parameter}" for i in resource.includes]
    if resource.operations:
        entry["operation"] = [
            {"name": o.name, "definition": o.definition, "documentation": o.documentation}
            for o in resource.operations
        ]
    return entry
