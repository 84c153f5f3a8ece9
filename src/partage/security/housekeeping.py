"""Forgetting what has expired: spent codes, dead refresh tokens, ended sessions…

None of these rows can grant anything once expired; keeping them only grows the tables that
every sign-in and token request reads. The audit trail keeps the history.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import CursorResult, Delete, delete, or_
from sqlalchemy.orm import Session

from partage.audit.actions import record
from partage.db import utcnow
from partage.security.models import (
    AuthorizationCode,
    LoginThrottle,
    RefreshToken,
    RevokedAccessToken,
    SigningKey,
    SsoSession,
    UsedClientAssertion,
)
from partage.security.principal import Principal

# Kept a little past expiry, so that a replay shortly after is still recognised as one.
GRACE = timedelta(hours=1)


def purge_expired(session: Session, *, actor: Principal) -> dict[str, int]:
    """Delete the security rows that can no longer be used; returns counts by kind."""
    cutoff = utcnow() - GRACE
    statements: dict[str, Delete] = {
        "authorization_codes": delete(AuthorizationCode).where(
            AuthorizationCode.expires_at < cutoff
        ),
        "refresh_tokens": delete(RefreshToken).where(
            or_(RefreshToken.expires_at < cutoff, RefreshToken.revoked_at < cutoff)
        ),
        "revoked_access_tokens": delete(RevokedAccessToken).where(
            RevokedAccessToken.expires_at < cutoff
        ),
        "used_client_assertions": delete(UsedClientAssertion).where(
            UsedClientAssertion.expires_at < cutoff
        ),
        "sso_sessions": delete(SsoSession).where(
            or_(SsoSession.expires_at < cutoff, SsoSession.ended_at < cutoff)
        ),
        "login_throttle": delete(LoginThrottle).where(
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < cutoff),
            or_(LoginThrottle.last_failure_at.is_(None), LoginThrottle.last_failure_at < cutoff),
        ),
        "signing_keys": delete(SigningKey).where(SigningKey.unpublish_after < cutoff),
    }
    counts: dict[str, int] = {}
    for kind, statement in statements.items():
        result = session.execute(statement)
        counts[kind] = result.rowcount if isinstance(result, CursorResult) else 0
    record(
        session,
        actor=actor.actor,
        action="security.purge_expired",
        entity_type="Security",
        detail=counts,
    )
    return counts
