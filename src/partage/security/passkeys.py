"""WebAuthn passkeys, an alternative second factor to TOTP.

The relying party is the host of `PARTAGE_PUBLIC_URL`; browsers refuse WebAuthn on a bare IP
address, so passkeys work at https://… or http://localhost, not http://127.0.0.1. The pending
challenge lives on the SSO session, so a ceremony is bound to the browser that started it.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from partage.audit.actions import record
from partage.config import Settings
from partage.db import utcnow
from partage.platform import Platform
from partage.security import b64url
from partage.security.authn import (
    PasswordOutcome,
    Stage,
    account_actor,
    second_factor_locked,
    second_factor_result,
)
from partage.security.models import Account, SsoSession, WebAuthnCredential

RP_NAME = "Partage"
MAX_CREDENTIAL_JSON = 64 * 1024


def relying_party(settings: Settings) -> tuple[str, str]:
    """(rp id, origin) from the public address."""
    parts = urlsplit(settings.issuer)
    return parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}"


def credentials_of(session: Session, account: Account) -> list[WebAuthnCredential]:
    return list(
        session.scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.account_id == account.id)
            .order_by(WebAuthnCredential.created_at)
        )
    )


def registration_options(session: Session, platform: Platform, *, sso: SsoSession) -> str:
    rp_id, _ = relying_party(platform.settings)
    account = sso.account
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_id=account.id.bytes,
        user_name=account.login,
        user_display_name=account.display_name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=c.credential_id)
            for c in credentials_of(session, account)
        ],
    )
    sso.webauthn_challenge = b64url.encode(options.challenge)
    return str(options_to_json(options))


def finish_registration(
    session: Session, platform: Platform, *, sso: SsoSession, credential_json: str, name: str
) -> WebAuthnCredential | None:
    """Verify the browser's answer and keep the passkey; None when it does not verify."""
    rp_id, origin = relying_party(platform.settings)
    challenge, sso.webauthn_challenge = sso.webauthn_challenge, None
    account = sso.account
    if challenge is None or len(credential_json) > MAX_CREDENTIAL_JSON:
        return None
    try:
        verified = verify_registration_response(
            credential=credential_json,
            expected_challenge=b64url.decode(challenge),
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        record(
            session,
            actor=account_actor(account),
            action="mfa.passkey_register",
            outcome="failure",
            entity_type="Account",
            entity_id=str(account.id),
        )
        return None
    credential = WebAuthnCredential(
        account_id=account.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=(name.strip() or "Clé d'accès")[:100],
    )
    session.add(credential)
    record(
        session,
        actor=account_actor(account),
        action="mfa.passkey_register",
        entity_type="Account",
        entity_id=str(account.id),
        detail={"name": credential.name},
    )
    return credential


def authentication_options(session: Session, platform: Platform, *, sso: SsoSession) -> str:
    rp_id, _ = relying_party(platform.settings)
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=c.credential_id)
            for c in credentials_of(session, sso.account)
        ],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    sso.webauthn_challenge = b64url.encode(options.challenge)
    return str(options_to_json(options))


def finish_authentication(
    session: Session, platform: Platform, *, sso: SsoSession, credential_json: str
) -> PasswordOutcome:
    rp_id, origin = relying_party(platform.settings)
    account = sso.account
    challenge, sso.webauthn_challenge = sso.webauthn_challenge, None
    throttle = second_factor_locked(session, sso)
    if throttle is None:
        return PasswordOutcome.locked
    stored = None
    verified = None
    if (
        challenge is not None
        and sso.stage == Stage.password.value
        and (len(credential_json) <= MAX_CREDENTIAL_JSON)
    ):
        by_id = {b64url.encode(c.credential_id): c for c in credentials_of(session, account)}
        try:
            raw_id = json.loads(credential_json).get("rawId", "")
            stored = by_id.get(raw_id) if isinstance(raw_id, str) else None
            if stored is not None:
                verified = verify_authentication_response(
                    credential=credential_json,
                    expected_challenge=b64url.decode(challenge),
                    expected_rp_id=rp_id,
                    expected_origin=origin,
                    credential_public_key=stored.public_key,
                    credential_current_sign_count=stored.sign_count,
                )
        except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError, AttributeError):
            verified = None
    if stored is not None and verified is not None:
        stored.sign_count = verified.new_sign_count
        stored.last_used_at = utcnow()
    return second_factor_result(
        session,
        platform,
        sso=sso,
        throttle=throttle,
        method="passkey",
        amr="hwk" if verified is not None else None,
    )


def remove_passkey(session: Session, *, account: Account, credential_id: uuid.UUID) -> bool:
    """Forget one of the account's own passkeys; False when it has no such passkey."""
    credential = session.get(WebAuthnCredential, credential_id)
    if credential is None or credential.account_id != account.id:
        return False
    session.delete(credential)
    record(
        session,
        actor=account_actor(account),
        action="mfa.passkey_remove",
        entity_type="Account",
        entity_id=str(account.id),
        detail={"name": credential.name},
    )
    return True
