"""The security directory's small JSON API for systems and scripts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from partage.access.decision import Action, require
from partage.db import transaction
from partage.security import service
from partage.security.deps import BearerPrincipal
from partage.web.deps import get_platform

router = APIRouter(prefix="/api/v1", tags=["security"])


class WhoAmI(BaseModel):
    kind: str
    label: str
    client_id: str | None
    profile: str | None
    scopes: list[str]


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: BearerPrincipal) -> WhoAmI:
    """Who the bearer token stands for, re-checked against the current state."""
    return WhoAmI(
        kind=principal.kind,
        label=principal.label,
        client_id=principal.client_id,
        profile=principal.profile,
        scopes=str(principal.scopes).split(),
    )


class EstablishmentOut(BaseModel):
    code: str
    name: str
    kind: str
    finess: str | None
    patient_id_oid: str
    active: bool


@router.get("/establishments", response_model=list[EstablishmentOut])
def list_establishments(request: Request, principal: BearerPrincipal) -> list[EstablishmentOut]:
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        require(session, principal, Action.establishment_read, entity_type="Establishment")
        return [
            EstablishmentOut(
                code=e.code,
                name=e.name,
                kind=e.kind,
                finess=e.finess,
                patient_id_oid=e.patient_id_oid,
                active=e.active,
            )
            for e in service.list_establishments(session)
        ]
