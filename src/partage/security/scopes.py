"""SMART App Launch v2 scopes: `system/DocumentReference.rs`, `user/*.cruds`, `patient/*.rs`.

SMART v1 forms (`.read`, `.write`, `.*`) are read as their v2 equivalents. Anything else
(`openid`, `fhirUser`, `offline_access`, `launch/patient`…) is a plain scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RESOURCE_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<resource>\*|[A-Z][A-Za-z]+)\."
    r"(?P<perms>[cruds]+|read|write|\*)(?:\?(?P<query>.+))?$"
)
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_ORDER = "cruds"
OPENID_SCOPES = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "email",
        "offline_access",
        "online_access",
        "launch",
        "launch/patient",
    }
)


class InvalidScope(ValueError):
    pass


@dataclass(frozen=True)
class ResourceScope:
    context: str
    resource: str
    permissions: str  # a subset of "cruds", in that order
    query: str | None = None

    def __str__(self) -> str:
        text = f"{self.context}/{self.resource}.{self.permissions}"
        return f"{text}?{self.query}" if self.query else text

    def covers(self, other: ResourceScope) -> bool:
        return (
            self.context == other.context
            and self.resource in ("*", other.resource)
            and set(other.permissions) <= set(self.permissions)
            and (self.query is None or self.query == other.query)
        )


def parse_scope(token: str) -> ResourceScope | str:
    match = _RESOURCE_SCOPE.match(token)
    if match is None:
        if "/" in token and not token.startswith("launch"):
            raise InvalidScope(f"malformed scope: {token}")
        return token
    perms = _V1.get(match["perms"], match["perms"])
    if len(set(perms)) != len(perms) or "".join(sorted(perms, key=_ORDER.index)) != perms:
        raise InvalidScope(f"permissions must be a subset of 'cruds' in that order: {token}")
    return ResourceScope(match["context"], match["resource"], perms, match["query"])


@dataclass(frozen=True)
class Scopes:
    resources: tuple[ResourceScope, ...]
    others: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scopes:
        resources: list[ResourceScope] = []
        others: set[str] = set()
        for token in text.split():
            parsed = parse_scope(token)
            if isinstance(parsed, ResourceScope):
                resources.append(parsed)
            else:
                others.add(parsed)
        return cls(tuple(resources), frozenset(others))

    def __str__(self) -> str:
        return " ".join([*sorted(self.others), *(str(r) for r in self.resources)])

    def allows(self, context: str, resource: str, permission: str) -> bool:
        wanted = ResourceScope(context, resource, permission)
        return any(granted.covers(wanted) for granted in self.resources)

    def has(self, scope: str) -> bool:
        return scope in self.others

    def narrow_to(self, allowed: Scopes) -> Scopes:
        """What of the request the allowed scopes cover (RFC 6749 §3.3: may be fewer)."""
        kept: list[ResourceScope] = []
        for wanted in self.resources:
            perms: set[str] = set()
            for granted in allowed.resources:
                if (
                    granted.context == wanted.context
                    and granted.resource in ("*", wanted.resource)
                    and granted.query in (None, wanted.query)
                ):
                    perms |= set(granted.permissions) & set(wanted.permissions)
            if perms:
                ordered = "".join(c for c in _ORDER if c in perms)
                kept.append(ResourceScope(wanted.context, wanted.resource, ordered, wanted.query))
        return Scopes(tuple(kept), self.others & allowed.others)
