"""The identity-vigilance console: potential duplicates, persons, local identities, search.

For identity-vigilance officers only (`Action.identity_read` to see, `Action.identity_manage`
to act); anyone else gets the same 404 as for an unknown page, and the denial is audited.
Every page that shows identities is an audited read of patient data, and every action needs
a reason (see `identity_console`, which the sections below share).

One router for the console, gathering its sections under its address.
"""

from __future__ import annotations

from fastapi import APIRouter

from partage.web import (
    identity_dashboard_pages,
    identity_local_pages,
    identity_person_pages,
    identity_review_pages,
    identity_search_pages,
)
from partage.web.identity_views import CONSOLE

router = APIRouter()
for section in (
    identity_dashboard_pages,
    identity_review_pages,
    identity_person_pages,
    identity_local_pages,
    identity_search_pages,
):
    router.include_router(section.router, prefix=CONSOLE, tags=["identity-vigilance"])
