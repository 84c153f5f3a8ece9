from __future__ import annotations

import pytest

from partage.config import Settings
from partage.security.passwords import PasswordRejected, Passwords


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(Settings(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1))


def test_hash_is_argon2id_and_verifies(passwords: Passwords) -> None:
    hashed = passwords.hash("une phrase de passe assez longue")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "une phrase de passe assez longue")
    assert not passwords.verify(hashed, "une phrase de passe assez longue!")
    assert not passwords.verify(None, "anything at all here")
    assert not passwords.verify("not a hash", "anything at all here")


def test_unicode_is_normalised(passwords: Passwords) -> None:
    composed = "café crème brûlée du matin"
    decomposed = "cafe\u0301 cre\u0300me bru\u0302le\u0301e du matin"
    assert passwords.verify(passwords.hash(composed), decomposed)


@pytest.mark.parametrize(
    "password",
    [
        "court",  # too short
        "aaaaaaaaaaaaaaaa",  # one character
        "abababababababab",  # two characters
        "123456789012",  # sequence
        "azertyuiopqsdf",  # keyboard row
        "motdepasse2024!",  # breached word with digits
        "Password1234",
        "P@ssw0rd!P@ssw0rd!",
        "soleil soleil 2026",
    ],
)
def test_weak_passwords_are_refused(passwords: Passwords, password: str) -> None:
    with pytest.raises(PasswordRejected):
        passwords.check_policy(password)


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "la Vienne coule à Châtellerault",
        "j'aime le fromage de chèvre",
        "7f#Kq9!vZ2@pLm",
    ],
)
def test_no_composition_rules(passwords: Passwords, password: str) -> None:
    passwords.check_policy(password)


def test_the_login_is_not_a_password(passwords: Passwords) -> None:
    with pytest.raises(PasswordRejected):
        passwords.check_policy("jdupont-secure-2026", context=("jdupont", "Jeanne", "Dupont"))


def test_long_passphrases_are_accepted_up_to_the_maximum(passwords: Passwords) -> None:
    passwords.check_policy("une phrase " * 20)
    with pytest.raises(PasswordRejected):
        passwords.check_policy("x1y2z3w4" * 40)
