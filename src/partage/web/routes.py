"""The portals' pages, gathered for the application."""

from __future__ import annotations

from fastapi import APIRouter

from partage.web import (
    admin,
    auth_pages,
    directory_admin_pages,
    directory_pages,
    end_session,
    identity_pages,
    passkey_pages,
    portal,
    record_pages,
)

router = APIRouter()
router.include_router(auth_pages.router)
router.include_router(portal.router)
router.include_router(admin.router)
router.include_router(directory_admin_pages.router)
router.include_router(directory_pages.router)
router.include_router(identity_pages.router)
router.include_router(passkey_pages.router)
router.include_router(record_pages.router)
router.include_router(end_session.router)
