"""Building identities for tests through the real service (matching included).

Tests share one database: each test draws its own rare family name (`unique_family`) so that
its identities are never candidates of another test's.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import replace
from datetime import date, timedelta

from partage.audit.actions import Actor
from partage.db import transaction
from partage.identity.service import IdentityInput, Received, do_receive_identity
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex
from partage.platform import Platform
from partage.security.models import Establishment

TEST_ACTOR = Actor(kind="system", id=None, label="tests")
_GIVEN = (
    "Albane", "Bérénice", "Capucine", "Delphine", "Éléonore", "Faustine", "Gwenaëlle",
    "Hortense", "Isaure", "Joséphine", "Clotilde", "Léonie", "Mahaut", "Noémie", "Ombeline",
    "Perrine", "Quitterie", "Roseline", "Solène", "Tiphaine", "Ursule", "Victoire",
)  # fmt: skip
_VOWELS = "AEIOU"
_CONSONANTS = "BCDFGHJKLMNPRSTVZ"


def unique_family() -> str:
    """A pronounceable family name no other test uses (its phonetic code differs too)."""
    rng = random.SystemRandom()
    syllables = [rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(4)]
    return "".join(syllables) + rng.choice(string.ascii_uppercase[:5]) + "X"


def traits(family: str, **overrides: object) -> IdentityTraits:
    """A woman of that family; her birth date, address and phone derive from the name, so
    that two tests' persons differ in everything."""
    seed = int(hashlib.sha256(family.upper().encode()).hexdigest(), 16)
    base = IdentityTraits(
        birth_family_name=family,
        given_names=(_GIVEN[seed % len(_GIVEN)], _GIVEN[seed // 7 % len(_GIVEN)]),
        sex=Sex.female,
        birth_date=date(1930, 1, 2) + timedelta(days=seed % 25_000),
        birth_place_code="86194",
        address=f"{seed % 97 + 1} rue de la Cathédrale",
        postal_code="86000",
        city="Poitiers",
        phone=f"06{seed % 10**8:08d}",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def receive(
    platform: Platform,
    establishment: Establishment,
    local_id: str,
    identity_traits: IdentityTraits,
    *,
    status: IdentityStatus = IdentityStatus.provisional,
    attributes: frozenset[str] = frozenset(),
) -> Received:
    with transaction(platform.sessions) as session:
        return do_receive_identity(
            session,
            establishment=session.merge(establishment),
            local_id=local_id,
            value=IdentityInput(traits=identity_traits, status=status, attributes=attributes),
            actor=TEST_ACTOR,
        )
