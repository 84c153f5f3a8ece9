"""The resource types the FHIR API serves, as each domain describes them: how to search
them (a `SearchSpec`), read one, render rows as FHIR JSON, what `_include` can add, who may
see them (the access decision's action), whether each read is audited (patient data), and
the operations (`$name`) they answer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from partage.access.decision import Action, Decision
from partage.search import SearchSpec
from partage.security.principal import Principal

Rendered = dict[str, Any]


@dataclass(frozen=True)
class Include:
    """`_include=<source>:<parameter>`: the `target` rows the matched rows refer to."""

    parameter: str
    target: str
    load: Callable[[Session, list[Any]], list[Any]]


@dataclass(frozen=True)
class Audit:
    """Reads and searches of this type are patient data: each one is audited in its own
    transaction, as `<action>.read` / `<action>.search`, keyed to the person it is about."""

    action: str
    person_of: Callable[[Any], str | None]


@dataclass(frozen=True)
class OperationCall:
    """One invocation of an operation, as the route received it, once allowed."""

    principal: Principal
    decision: Decision
    base: str  # the FHIR base URL ("https://…/fhir"): references and logical-id systems
    parameters: list[tuple[str, str]]  # the query string, in order
    body: Any | None = None  # the JSON body of a POST; None for a GET


@dataclass(frozen=True)
class OperationResult:
    body: Rendered
    status: int = 200


@dataclass(frozen=True)
class Operation:
    """`[base]/<type>/$<name>`: runs in a write transaction (it writes its own audit rows)
    after the scope check and the access decision of its resource type."""

    name: str  # without the "$"
    definition: str  # canonical URL of its OperationDefinition (CapabilityStatement)
    documentation: str
    methods: frozenset[str]
    run: Callable[[Session, OperationCall], OperationResult]
    # The SMART permission on the type the token must hold.
    permission: str = "s"


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
    # What the access decision is asked before any read or search.
    action: Action = Action.directory_read
    # None: public data, read without an audit row from the read-only sessions.
    audit: Audit | None = None
    operations: tuple[Operation, ...] = ()

    def operation(self, name: str) -> Operation | None:
        return next((o for o in self.operations if o.name == name), None)


def registry() -> dict[str, ResourceType]:
    # Imported here: domains depend on this module's types, not the other way round.
    from partage.directory import fhir as directory
    from partage.identity import fhir as identity

    return {t.name: t for t in (*directory.RESOURCE_TYPES, *identity.RESOURCE_TYPES)}
