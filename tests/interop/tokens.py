"""A system's access token, obtained the way a hospital's system does (client credentials)."""

from __future__ import annotations

import httpx

from partage.db import transaction
from partage.platform import Platform
from partage.security import actions
from partage.security.models import Establishment
from partage.security.principal import operator_principal


def system_token(
    base: str,
    platform: Platform,
    scopes: str,
    *,
    name: str = "EHR",
    establishment: Establishment | None = None,
) -> str:
    """Register a system with `scopes` (an establishment's system when `establishment` is
    given) and return the access token it gets from `base`."""
    with transaction(platform.sessions) as session:
        created = actions.create_client(
            session,
            platform.keyring,
            actor=operator_principal(),
            name=f"{name} {scopes}",
            scopes=scopes,
            establishment=session.merge(establishment) if establishment else None,
        )
    response = httpx.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(created.client.client_id, created.client_secret or ""),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])
