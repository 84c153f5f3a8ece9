"""Token-signing keys: generated sealed in the database, rotated, published as a JWKS.

ES256 signs access tokens (fast to sign and verify); RS256 signs ID tokens, as OpenID
Connect requires every provider to support it. A rotated key stops signing at once and stays
published until every token it signed has expired.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import timedelta
from typing import Any, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from partage.db import transaction, utcnow
from partage.security.keyring import Keyring
from partage.security.models import SigningKey

ACCESS_TOKEN_ALG = "ES256"
ID_TOKEN_ALG = "RS256"
SIGNING_ALGS = (ACCESS_TOKEN_ALG, ID_TOKEN_ALG)
_SEAL_PURPOSE = "signing-key"
_RELOAD_SECONDS = 30.0
# Access tokens whose signature was verified, remembered (by their SHA-256, not as bearer
# secrets) so that a client's next requests with the same token skip the ECDSA check.
_VERIFIED_TOKENS = 4096

AnyKey: TypeAlias = ECKey | RSAKey


def _generate(alg: str) -> AnyKey:
    kid = secrets.token_urlsafe(12)
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params)
    return RSAKey.generate_key(2048, parameters=params)


def _store(session: Session, keyring: Keyring, key: AnyKey, alg: str) -> SigningKey:
    kid = str(key.kid)
    private = json.dumps(key.as_dict(private=True)).encode()
    row = SigningKey(
        kid=kid,
        alg=alg,
        public_jwk=dict(key.as_dict(private=False)),
        private_jwk_sealed=keyring.seal(private, purpose=_SEAL_PURPOSE, aad=kid.encode()),
    )
    session.add(row)
    session.flush()
    return row


def ensure_signing_keys(session: Session, keyring: Keyring) -> None:
    """Make sure one current key exists for each algorithm."""
    for alg in SIGNING_ALGS:
        current = session.scalar(
            select(SigningKey.kid).where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        )
        if current is None:
            _store(session, keyring, _generate(alg), alg)


def rotate_signing_keys(session: Session, keyring: Keyring, *, publish_for: timedelta) -> list[str]:
    """Retire the current keys and make new ones; returns the new key ids."""
    now = utcnow()
    for row in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at = now
        row.unpublish_after = now + publish_for
    return [_store(session, keyring, _generate(alg), alg).kid for alg in SIGNING_ALGS]


class SigningKeys:
    """Process-wide cache of the keys, reloaded periodically to follow rotations elsewhere."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        keyring: Keyring,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions
        self._keyring = keyring
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._current: dict[str, AnyKey] = {}
        self._published: KeySet = KeySet([])
        self._public_jwks: dict[str, Any] = {"keys": []}
        # Access-token verification keys by kid, as `cryptography` objects (the hot path).
        self._access_verifiers: dict[str, ec.EllipticCurvePublicKey] = {}
        # SHA-256 of a token → (the key that verified it, its claims). A hit counts only
        # while that very key object is loaded: a reload (every 30 s, or a key retired)
        # makes every token verify again once.
        self._verified: dict[bytes, tuple[ec.EllipticCurvePublicKey, dict[str, Any]]] = {}

    def ensure_and_load(self) -> None:
        with transaction(self._sessions) as session:
            ensure_signing_keys(session, self._keyring)
        self.reload()

    def reload(self) -> None:
        """Read the keys. Runs inside requests, so it only reads, on its own connection."""
        now = utcnow()
        with self._read_sessions() as session:
            rows = list(
                session.scalars(
                    select(SigningKey).where(
                        or_(SigningKey.unpublish_after.is_(None), SigningKey.unpublish_after > now)
                    )
                )
            )
        current: dict[str, AnyKey] = {}
        public: list[ECKey | RSAKey | Any] = []
        verifiers: dict[str, ec.EllipticCurvePublicKey] = {}
        for row in rows:
            data = json.loads(
                self._keyring.unseal(
                    row.private_jwk_sealed, purpose=_SEAL_PURPOSE, aad=row.kid.encode()
                )
            )
            key: AnyKey = ECKey.import_key(data) if row.alg == "ES256" else RSAKey.import_key(data)
            if row.retired_at is None:
                current[row.alg] = key
            public.append(key)
            if isinstance(key, ECKey) and isinstance(key.public_key, ec.EllipticCurvePublicKey):
                verifiers[row.kid] = key.public_key
        with self._lock:
            self._current = current
            self._published = KeySet(public)
            self._public_jwks = {"keys": [dict(row.public_jwk) for row in rows]}
            self._access_verifiers = verifiers
            self._loaded_at = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at > _RELOAD_SECONDS:
            self.reload()

    def access_token_signer(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The current access-token key as (kid, `cryptography` key): the token hot path."""
        key = self.signing_key(ACCESS_TOKEN_ALG)
        private = key.private_key
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return str(key.kid), private

    def signing_key(self, alg: str) -> AnyKey:
        self._fresh()
        return self._current[alg]

    def verification_keys(self, kid: str | None) -> KeySet:
        self._fresh()
        unknown = kid is not None and not any(k.kid == kid for k in self._published.keys)
        # A key rotated in by another process since our last load (at most one reload a second).
        if unknown and time.monotonic() - self._loaded_at > 1.0:
            self.reload()
        return self._published

    def verified_claims(
        self, digest: bytes, verifier: ec.EllipticCurvePublicKey
    ) -> dict[str, Any] | None:
        """The claims of a token this key verified before (by the token's SHA-256)."""
        hit = self._verified.get(digest)
        if hit is None or hit[0] is not verifier:
            return None
        return dict(hit[1])

    def remember_verified(
        self, digest: bytes, verifier: ec.EllipticCurvePublicKey, claims: dict[str, Any]
    ) -> None:
        if len(self._verified) >= _VERIFIED_TOKENS:
            self._verified.clear()  # crude, and rare: a token lives minutes
        self._verified[digest] = (verifier, dict(claims))

    def access_token_verifier(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        self._fresh()
        verifier = self._access_verifiers.get(kid)
        if verifier is None and time.monotonic() - self._loaded_at > 1.0:
            # A key rotated in by another process since our last load.
            self.reload()
            verifier = self._access_verifiers.get(kid)
        return verifier

    def public_jwks(self) -> dict[str, Any]:
        self._fresh()
        return self._public_jwks
