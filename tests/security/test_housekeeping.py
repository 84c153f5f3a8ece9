"""Expired security rows are purged; live ones stay."""

from __future__ import annotations

import secrets
from datetime import timedelta

from partage.audit.models import AuditEvent
from partage.db import transaction, utcnow
from partage.platform import Platform
from partage.security.housekeeping import purge_expired
from partage.security.models import RevokedAccessToken, UsedClientAssertion
from partage.security.principal import operator_principal


def test_purge_removes_only_what_expired(fresh_platform: Platform) -> None:
    now = utcnow()
    with transaction(fresh_platform.sessions) as session:
        for jti, expires in (
            ("old", now - timedelta(days=2)),
            ("live", now + timedelta(minutes=5)),
        ):
            session.add(RevokedAccessToken(jti=jti, expires_at=expires))
        session.add(
            UsedClientAssertion(
                client_id="c", jti=secrets.token_hex(4), expires_at=now - timedelta(days=1)
            )
        )
    with transaction(fresh_platform.sessions) as session:
        counts = purge_expired(session, actor=operator_principal())
    assert counts["revoked_access_tokens"] == 1
    assert counts["used_client_assertions"] == 1
    with transaction(fresh_platform.read_sessions) as session:
        assert [row.jti for row in session.query(RevokedAccessToken)] == ["live"]
        last = session.query(AuditEvent).order_by(AuditEvent.seq.desc()).first()
        assert last is not None and last.action == "security.purge_expired"
