"""People's passwords: Argon2id, and the NIST SP 800-63B rules.

No composition rules (no "one digit, one symbol"); a minimum length of 12, a maximum of 256
so that long passphrases fit; refusal of passwords made of common breached words, of one
repeated or sequential character run, or of the person's own login and name.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from partage.config import Settings

MAX_LENGTH = 256
_SEQUENCES = (
    "0123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "azertyuiopqsdfghjklmwxcvbn",
    "qwertyuiopasdfghjklzxcvbnm",
)


class PasswordRejected(ValueError):
    """The password does not meet the policy; the message says why, for the person."""


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self.min_length = settings.password_min_length
        self._dummy: str | None = None
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the login is unknown, so that both paths cost the same.

    def _dummy_hash(self) -> str:
        # Made on first use, not at start-up: every command builds a Passwords, few verify.
        if self._dummy is None:
            self._dummy = self._hasher.hash("not a real password, only a timing equaliser")
        return self._dummy

    def hash(self, password: str) -> str:
        return self._hasher.hash(normalise(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash(), normalise(password))
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def check_policy(self, password: str, *, context: tuple[str, ...] = ()) -> None:
        candidate = normalise(password)
        if len(candidate) < self.min_length:
            raise PasswordRejected(f"at least {self.min_length} characters are needed")
        if len(candidate) > MAX_LENGTH:
            raise PasswordRejected(f"at most {MAX_LENGTH} characters are accepted")
        folded = _fold(candidate)
        if len(set(folded)) <= 2 or _is_sequence(folded):
            raise PasswordRejected(
                "a repeated or sequential run of characters is too easy to guess"
            )
        if _only_common_words(folded):
            raise PasswordRejected("this password is among the most commonly breached")
        for word in context:
            word_folded = _fold(word)
            if len(word_folded) >= 4 and word_folded in folded:
                raise PasswordRejected("the password must not contain your login or your name")


def normalise(password: str) -> str:
    # SP 800-63B 5.1.1.2: Unicode passwords are normalised (NFKC) before hashing.
    return unicodedata.normalize("NFKC", password)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _is_sequence(folded: str) -> bool:
    compact = re.sub(r"[\W_]+", "", folded)
    if len(compact) < 6:
        return False
    # Cyclic: 123456789012 and zabcdef are runs too.
    return any(compact in seq * 3 or compact in (seq * 3)[::-1] for seq in _SEQUENCES)


@cache
def _common_words() -> tuple[str, ...]:
    text = resources.files("partage.security").joinpath("data/common-passwords.txt").read_text()
    words = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    # Longest first, so that "azertyuiop" is consumed before "azerty".
    return tuple(sorted(words, key=len, reverse=True))


_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "@": "a", "$": "s"})


def _only_common_words(folded: str) -> bool:
    """True when nothing is left once common words are removed (digits, symbols ignored)."""
    for variant in (folded, folded.translate(_LEET)):
        letters = re.sub(r"[^a-z]+", " ", variant)
        if not letters.strip():
            continue
        for word in _common_words():
            letters = letters.replace(word, " ")
        if not letters.strip():
            return True
    return False
