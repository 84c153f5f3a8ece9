"""The domain's refusals (`InvalidInput`, in English) as sentences in the person's language.

A refusal the table does not know is shown as the domain wrote it: still true, only not
translated.
"""

from __future__ import annotations

import re

from partage.web.i18n import N_, gettext

_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message)
    for pattern, message in (
        (
            r"^the domain code is 2 to 32 capitals",
            N_("The domain code is 2 to 32 capital letters, digits or hyphens (CHU-POITIERS)."),
        ),
        (r"^the name is required", N_("The name is required (200 characters at most).")),
        (
            r"^a FINESS number is 9 characters",
            N_("A FINESS number has 9 characters (digits, or 2A/2B in Corsica)."),
        ),
        (
            r"^the OID must be dotted digits",
            N_("The OID must be digits separated by dots, such as 1.2.250.1.71.4.2.1."),
        ),
        (
            r"^an establishment with domain (?P<value>.+) already exists$",
            N_("An establishment with the domain %(value)s already exists."),
        ),
        (
            r"^the OID (?P<value>.+) is already the domain of another establishment$",
            N_("The OID %(value)s is already used by another establishment."),
        ),
        (
            r"^a login is 3 to 120 letters",
            N_("A login is 3 to 120 letters, digits or . _ @ + - characters."),
        ),
        (r"^the display name is required", N_("The name is required (200 characters at most).")),
        (
            r"^a national id is RPPS",
            N_(
                "A national identifier is an RPPS (8 followed by 11 digits) or an ADELI number "
                "(0 followed by 9 digits)."
            ),
        ),
        (
            r"^a patient account has no professional national id$",
            N_("A patient account has no professional national identifier."),
        ),
        (
            r"^a \w+ is identified by an RPPS number",
            N_("This profession is identified by an RPPS number (8 followed by 11 digits)."),
        ),
        (
            r"^the RPPS number (?P<value>\d+) has a wrong check digit$",
            N_("The RPPS number %(value)s has a wrong check digit: check it on the card."),
        ),
        (
            r"^a \w+ account belongs to an establishment$",
            N_("An account with this profile must belong to an establishment."),
        ),
        (
            r"^password refused: at least (?P<value>\d+) characters are needed$",
            N_("Password refused: at least %(value)s characters are needed."),
        ),
        (
            r"^password refused: at most (?P<value>\d+) characters are accepted$",
            N_("Password refused: at most %(value)s characters are accepted."),
        ),
        (
            r"^password refused: a repeated or sequential run",
            N_("Password refused: repeated or sequential characters are too easy to guess."),
        ),
        (
            r"^password refused: this password is among the most commonly breached",
            N_("Password refused: this password is among the most commonly breached."),
        ),
        (
            r"^password refused: the password must not contain your login or your name",
            N_("Password refused: it must not contain the login or the name."),
        ),
        (r"^the login (?P<value>.+) is taken$", N_("The login %(value)s is already taken.")),
        (
            r"^the application name is required",
            N_("The application name is required (200 characters at most)."),
        ),
        (
            r"^redirect URIs must be https \(or loopback http\): (?P<value>.+)$",
            N_("Return addresses must use https (or http on the local machine): %(value)s"),
        ),
        (r"^a redirect URI has no fragment", N_("A return address cannot contain a fragment (#).")),
        (
            r"^a public application signs people in",
            N_("A public application signs people in: give it a return address."),
        ),
        (
            r"^give system/ scopes",
            N_(
                "Give system/ scopes (for a system) or a return address (for an application "
                "used by people)."
            ),
        ),
    )
)


def explain(locale: str, problem: Exception) -> str:
    text = str(problem)
    for pattern, message in _PROBLEMS:
        match = pattern.match(text)
        if match:
            return gettext(locale, message) % match.groupdict()
    return text
