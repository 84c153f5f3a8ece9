"""Signing people in: password, lock-out, second factor (TOTP or passkey), SSO sessions.

The cookie of an SSO session holds a random secret; the database keeps only its SHA-256.
Lock-out counts failures per login name whether or not the account exists, and the page
says the same thing in both cases, so it reveals nothing about which logins exist.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.audit.actions import ANONYMOUS_ACTOR, Actor, record
from partage.config import Settings
from partage.db import utcnow
from partage.platform import Platform
from partage.security.actions import normalise_login
from partage.security.models import Account, LoginThrottle, SsoSession, WebAuthnCredential

TOTP_PURPOSE = "totp-secret"
SSO_COOKIE = "partage_sso"
TOTP_ISSUER = "Partage"


class Stage(StrEnum):
    password = "password"  # first factor done; second factor pending
    complete = "complete"


class PasswordOutcome(StrEnum):
    signed_in = "signed_in"
    second_factor = "second_factor"
    enrol_second_factor = "enrol_second_factor"
    failed = "failed"
    locked = "locked"


@dataclass(frozen=True)
class PasswordResult:
    outcome: PasswordOutcome
    cookie_secret: str | None = None


def sso_cookie_name(settings: Settings) -> str:
    # The __Host- prefix pins the cookie to our origin, Secure, Path=/ (only under TLS).
    return f"__Host-{SSO_COOKIE}" if settings.behind_tls else SSO_COOKIE


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def account_actor(account: Account) -> Actor:
    return Actor(kind="account", id=str(account.id), label=account.login)


def has_passkeys(session: Session, account: Account) -> bool:
    return (
        session.scalar(
            select(WebAuthnCredential.id).where(WebAuthnCredential.account_id == account.id)
        )
        is not None
    )


def register_failure(platform: Platform, throttle: LoginThrottle) -> PasswordOutcome:
    now = utcnow()
    throttle.failures += 1
    throttle.last_failure_at = now
    if throttle.failures >= platform.settings.login_max_failures:
        throttle.locked_until = now + timedelta(seconds=platform.settings.login_lock_seconds)
        throttle.failures = 0
        return PasswordOutcome.locked
    return PasswordOutcome.failed


def throttle_for(session: Session, login: str) -> LoginThrottle:
    throttle = session.get(LoginThrottle, login)
    if throttle is None:
        throttle = LoginThrottle(login=login, failures=0)
        session.add(throttle)
    return throttle


def is_locked(throttle: LoginThrottle) -> bool:
    return throttle.locked_until is not None and throttle.locked_until > utcnow()


def sign_in_with_password(
    session: Session, platform: Platform, *, login: str, password: str
) -> PasswordResult:
    login = normalise_login(login)[:120]
    throttle = throttle_for(session, login)
    if is_locked(throttle):
        record(
            session,
            actor=ANONYMOUS_ACTOR,
            action="auth.password",
            outcome="locked",
            entity_type="Login",
            entity_id=login,
        )
        return PasswordResult(PasswordOutcome.locked)
    account = session.scalar(select(Account).where(Account.login == login))
    valid = platform.passwords.verify(account.password_hash if account else None, password)
    if account is None or not valid or not account.is_active:
        outcome = register_failure(platform, throttle)
        record(
            session,
            actor=ANONYMOUS_ACTOR,
            action="auth.password",
            outcome="failure",
            entity_type="Login",
            entity_id=login,
            detail={"locked": outcome is PasswordOutcome.locked},
        )
        return PasswordResult(outcome)
    throttle.failures = 0
    throttle.locked_until = None
    if platform.passwords.needs_rehash(account.password_hash):
        account.password_hash = platform.passwords.hash(password)
    second_factor = account.has_totp or has_passkeys(session, account)
    needs_mfa = account.profile_requires_mfa or second_factor
    stage = Stage.password if needs_mfa else Stage.complete
    secret = _open_sso_session(session, platform, account, stage=stage, amr=["pwd"])
    record(
        session,
        actor=account_actor(account),
        action="auth.password",
        outcome="success",
        entity_type="Account",
        entity_id=str(account.id),
    )
    if not needs_mfa:
        account.last_login_at = utcnow()
        return PasswordResult(PasswordOutcome.signed_in, secret)
    if second_factor:
        return PasswordResult(PasswordOutcome.second_factor, secret)
    return PasswordResult(PasswordOutcome.enrol_second_factor, secret)


def _open_sso_session(
    session: Session, platform: Platform, account: Account, *, stage: Stage, amr: list[str]
) -> str:
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        SsoSession(
            id_hash=_digest(secret),
            sid=secrets.token_urlsafe(16),
            account_id=account.id,
            stage=stage.value,
            amr=amr,
            created_at=now,
            auth_time=now if stage is Stage.complete else None,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=platform.settings.sso_session_ttl_seconds),
            csrf_token=secrets.token_urlsafe(24),
        )
    )
    return secret


def load_sso_session(
    session: Session, platform: Platform, cookie_secret: str | None
) -> SsoSession | None:
    """The live session behind a cookie, or None (ended, expired, idle or account disabled)."""
    if not cookie_secret or len(cookie_secret) > 100:
        return None
    sso = session.get(SsoSession, _digest(cookie_secret))
    if sso is None or sso.ended_at is not None:
        return None
    now = utcnow()
    idle = timedelta(seconds=platform.settings.sso_idle_timeout_seconds)
    if sso.expires_at <= now or sso.last_seen_at + idle <= now or not sso.account.is_active:
        return None
    if now - sso.last_seen_at > timedelta(seconds=60):
        sso.last_seen_at = now
    return sso


def end_sso_session(session: Session, sso: SsoSession, *, reason: str = "logout") -> None:
    if sso.ended_at is None:
        sso.ended_at = utcnow()
        record(
            session,
            actor=account_actor(sso.account),
            action="auth.logout",
            entity_type="SsoSession",
            entity_id=sso.sid,
            detail={"reason": reason},
        )


def finish_second_factor(sso: SsoSession, method: str) -> None:
    now = utcnow()
    sso.stage = Stage.complete.value
    sso.amr = [*sso.amr, method, "mfa"]
    sso.auth_time = now
    sso.account.last_login_at = now


def totp_for(platform: Platform, account: Account) -> pyotp.TOTP | None:
    if account.totp_secret_sealed is None:
        return None
    secret = platform.keyring.unseal(
        account.totp_secret_sealed, purpose=TOTP_PURPOSE, aad=str(account.id).encode()
    ).decode()
    return pyotp.TOTP(secret, issuer=TOTP_ISSUER, name=account.login)


def _accept_totp(account: Account, totp: pyotp.TOTP, code: str) -> bool:
    """Accept a code of the current step or the one either side, each step only once."""
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return False
    now = int(utcnow().timestamp())
    step_now = now // totp.interval
    for step in (step_now, step_now - 1, step_now + 1):
        if secrets.compare_digest(totp.at(step * totp.interval), code):
            if account.totp_last_step is not None and step <= account.totp_last_step:
                return False
            account.totp_last_step = step
            return True
    return False


def second_factor_locked(session: Session, sso: SsoSession) -> LoginThrottle | None:
    """The throttle of the account, or None (and the attempt audited) when it is locked."""
    account = sso.account
    throttle = throttle_for(session, account.login)
    if not is_locked(throttle):
        return throttle
    record(
        session,
        actor=account_actor(account),
        action="auth.mfa",
        outcome="locked",
        entity_type="Account",
        entity_id=str(account.id),
    )
    return None


def second_factor_result(
    session: Session,
    platform: Platform,
    *,
    sso: SsoSession,
    throttle: LoginThrottle,
    method: str,
    amr: str | None,
) -> PasswordOutcome:
    """Conclude a second-factor attempt, whatever the factor: `amr` is the method reference
    (RFC 8176) on success, None on failure. A failure counts towards the lock-out, and the
    one that locks ends the session."""
    account = sso.account
    if amr is None:
        outcome = register_failure(platform, throttle)
        if outcome is PasswordOutcome.locked:
            end_sso_session(session, sso, reason="locked")
    else:
        throttle.failures = 0
        finish_second_factor(sso, amr)
        outcome = PasswordOutcome.signed_in
    record(
        session,
        actor=account_actor(account),
        action="auth.mfa",
        outcome="success" if amr else "failure",
        entity_type="Account",
        entity_id=str(account.id),
        detail={"method": method},
    )
    return outcome


def verify_second_factor_totp(
    session: Session, platform: Platform, *, sso: SsoSession, code: str
) -> PasswordOutcome:
    throttle = second_factor_locked(session, sso)
    if throttle is None:
        return PasswordOutcome.locked
    account = sso.account
    totp = totp_for(platform, account)
    accepted = totp is not None and account.has_totp and _accept_totp(account, totp, code)
    return second_factor_result(
        session,
        platform,
        sso=sso,
        throttle=throttle,
        method="totp",
        amr="otp" if accepted else None,
    )


def start_totp_enrolment(platform: Platform, account: Account) -> pyotp.TOTP:
    """A new, unconfirmed secret: it replaces any earlier unconfirmed one."""
    if account.has_totp:
        raise ValueError("a TOTP authenticator is already enrolled")
    secret = pyotp.random_base32()
    account.totp_secret_sealed = platform.keyring.seal(
        secret.encode(), purpose=TOTP_PURPOSE, aad=str(account.id).encode()
    )
    account.totp_last_step = None
    return pyotp.TOTP(secret, issuer=TOTP_ISSUER, name=account.login)


def set_totp_secret(platform: Platform, account: Account, secret: str) -> None:
    """Install a known, confirmed secret (demo accounts and administrators' tools)."""
    account.totp_secret_sealed = platform.keyring.seal(
        secret.encode(), purpose=TOTP_PURPOSE, aad=str(account.id).encode()
    )
    account.totp_confirmed_at = utcnow()
    account.totp_last_step = None


def confirm_totp_enrolment(
    session: Session,
    platform: Platform,
    *,
    account: Account,
    code: str,
    sso: SsoSession | None = None,
) -> bool:
    totp = totp_for(platform, account)
    if totp is None or account.has_totp or not _accept_totp(account, totp, code):
        record(
            session,
            actor=account_actor(account),
            action="mfa.totp_enrol",
            outcome="failure",
            entity_type="Account",
            entity_id=str(account.id),
        )
        return False
    account.totp_confirmed_at = utcnow()
    record(
        session,
        actor=account_actor(account),
        action="mfa.totp_enrol",
        outcome="success",
        entity_type="Account",
        entity_id=str(account.id),
    )
    if sso is not None and sso.stage == Stage.password.value:
        finish_second_factor(sso, "otp")
    return True
