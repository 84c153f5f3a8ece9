"""The resource types the FHIR API serves, as each domain describes them: how to search
them (a `SearchSpec`), read one, render rows as FHIR JSON, and what `_include` can add."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from partage.search import SearchSpec

Rendered = dict[str, Any]


@dataclass(frozen=True)
class Include:
    """`_include=<source>:<parameter>`: the `target` rows the matched rows refer to."""

    parameter: str
    target: str
    load: Callable[[Session, list[Any]], list[Any]]


@dataclass(frozen=True)
class ResourceType:
    name: str
    profile: str | None
    spec: SearchSpec[Any]
    read: Callable[[Session, uuid.UUID], Any | None]
    # Rows to resources, in bulk (references are resolved once per page, not once per row).
    render: Callable[[Session, list[Any]], list[Rendered]]
    includes: tuple[Include, ...] = ()
    # SMART resource name in scopes, when it differs from the type.
    scope_resource: str | None = None


def registry() -> dict[str, ResourceType]:
    # Imported here: domains depend on this module's types, not the other way round.
    from partage.directory import fhir as directory

    return {t.name: t for t in (*directory.RESOURCE_TYPES,)}
