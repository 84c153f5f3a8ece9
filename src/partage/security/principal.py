"""Who is calling: a person (account), a system (OAuth client), or the local operator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from partage.audit.actions import Actor
from partage.security.models import Profile
from partage.security.scopes import Scopes

NO_SCOPES = Scopes((), frozenset())


@dataclass(frozen=True)
class Principal:
    kind: str  # account | client | operator
    label: str
    account_id: uuid.UUID | None = None
    profile: Profile | None = None
    establishment_id: uuid.UUID | None = None
    client_id: str | None = None
    scopes: Scopes = field(default=NO_SCOPES)
    # The SSO session (`sid`) a person's request belongs to, if any.
    sid: str | None = None

    @property
    def actor(self) -> Actor:
        if self.kind == "account":
            return Actor(kind="account", id=str(self.account_id), label=self.label)
        if self.kind == "client":
            return Actor(kind="client", id=self.client_id, label=self.label)
        return Actor(kind="operator", id=None, label=self.label)


def operator_principal(label: str = "command line") -> Principal:
    """The person at the server's command line: they hold the database and the keys anyway."""
    return Principal(kind="operator", label=label)
