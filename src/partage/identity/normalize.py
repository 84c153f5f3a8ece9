"""Normalisation of French identity traits for matching.

Establishments write the same name in many ways: with or without accents, hyphens, spaces
and apostrophes ("Le Gall", "LEGALL", "D'ALMEIDA", "DALMEIDA"), particles kept or dropped,
compound given names split or joined ("Jean-Pierre", "JEAN PIERRE", "JEANPIERRE"). Matching
compares canonical forms: upper-case ASCII letters only, plus the name's tokens and its
core (the tokens that are not particles), and a French phonetic code.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache

# Particles of French (and neighbouring) family names, dropped in a name's core.
PARTICLES = frozenset(
    {"DE", "DU", "DES", "LE", "LA", "LES", "D", "L", "DEL", "DELLA", "DA", "DOS", "DAS", "DI"}
    | {"VAN", "VON", "DER", "DEN", "TEN", "ST", "SAINT", "SAINTE", "STE", "MC", "MAC", "O"}
)
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"})
_NOT_LETTER = re.compile(r"[^A-Z]+")


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Upper-case ASCII: accents and ligatures resolved, separators turned into spaces."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").upper()
    return _NOT_LETTER.sub(" ", ascii_text).strip()


def tokens(text: str) -> tuple[str, ...]:
    return tuple(fold(text).split())


def compact(text: str) -> str:
    """The letters only: 'Le Gall', 'LEGALL' and 'le-gall' are one form."""
    return fold(text).replace(" ", "")


def core(name_tokens: tuple[str, ...]) -> str:
    """A family name without its particles: 'DE LA FONTAINE' → 'FONTAINE'."""
    kept = [t for t in name_tokens if t not in PARTICLES]
    return "".join(kept) if kept else "".join(name_tokens)


# French phonetics. Ordered rewrite rules on folded letters; the code keeps vowels (simplified)
# because dropping them, as Soundex does, makes far too many French names collide.
_PHONETIC_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"[^A-Z]", ""),
        (r"^MAC|^MC", "MK"),
        (r"SCH|SH|CH", "#"),
        (r"PH", "F"),
        (r"TH", "T"),
        (r"GU(?=[EIY])", "g"),  # a hard G, marked so that the next rule leaves it alone
        (r"G(?=[EIY])", "J"),
        (r"GN", "N"),
        (r"QU|Q|CK|K", "K"),
        (r"C(?=[EIY])", "S"),
        (r"C", "K"),
        (r"Ç", "S"),
        (r"X$", ""),
        (r"X", "KS"),
        (r"W", "V"),
        (r"Y", "I"),
        (r"Z", "S"),
        (r"H", ""),
        (r"EAU|AU", "O"),
        (r"OU", "U"),
        (r"OI", "OA"),
        (r"AI|EI", "E"),
        (r"(?<=[AEIOU])S(?=[AEIOU])", "Z"),
        (r"(ER|EZ|ET)$", "E"),
        (r"(AIN|EIN|IN|IM|UN|UM|YN|YM)(?![AEIOUN])", "1"),
        (r"(AN|AM|EN|EM)(?![AEIOUN])", "2"),
        (r"(ON|OM)(?![AEIOUN])", "3"),
        (r"([A-Z#123])\1+", r"\1"),
        (r"(?<=.)[ESTDXP]+$", ""),
    )
)


@lru_cache(maxsize=200_000)
def phonetic(text: str) -> str:
    """A French sound code: 'Lefèvre', 'LEFEBVRE' and 'Lefebre' share one."""
    code = compact(text)
    if not code:
        return ""
    for pattern, replacement in _PHONETIC_RULES:
        code = pattern.sub(replacement, code)
    code = code.replace("BV", "V").upper()
    return code or compact(text)[:1]


def given_name_list(given_names: tuple[str, ...]) -> tuple[str, ...]:
    """The compact forms of the given names, in order ('Jean-Pierre' stays one name).

    Each element is one given name (the importers split lists on spaces); commas inside an
    element still separate names, a stray space inside one does not.
    """
    names: list[str] = []
    for given in given_names:
        for part in re.split(r"[,;]", given):
            value = compact(part)
            if value:
                names.append(value)
    return tuple(names)


def nir_consistent(ins: str, sex: str, birth_date: date | None) -> bool:
    """Whether a NIR-shaped identifier agrees with the sex and birth date it is recorded with.

    A child registered under a parent's social-security number is a classic identity error:
    the NIR's sex digit, birth year and month then belong to someone else. Identifiers
    without the NIR's structure cannot be checked and are taken as they are.
    """
    if len(ins) != 15 or not ins[:5].isdigit():
        return True
    sex_digit, year, month = ins[0], int(ins[1:3]), int(ins[3:5])
    if sex and sex_digit in "12" and "MF"[int(sex_digit) - 1] != sex:
        return False
    if birth_date is None:
        return True
    if year != birth_date.year % 100:
        return False
    return not (1 <= month <= 12 and not is_placeholder(birth_date) and month != birth_date.month)


def is_placeholder(birth_date: date) -> bool:
    """01/01: the date establishments record when they know only the year."""
    return birth_date.month == 1 and birth_date.day == 1


def swapped(birth_date: date) -> date | None:
    """The date with day and month exchanged, when that is a different, valid date."""
    if birth_date.day == birth_date.month or birth_date.day > 12:
        return None
    try:
        return birth_date.replace(month=birth_date.day, day=birth_date.month)
    except ValueError:
        return None


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def phone_number(text: str) -> str:
    """The national significant number: '+33 6 12…', '0612…' and '06 12…' are one number."""
    number = digits(text)
    if number.startswith("0033"):
        number = number[4:]
    elif number.startswith("33") and len(number) == 11:
        number = number[2:]
    return number.lstrip("0") if len(number) >= 9 else number


_ADDRESS_WORDS = {
    "AV": "AVENUE",
    "AVE": "AVENUE",
    "BD": "BOULEVARD",
    "BLD": "BOULEVARD",
    "BVD": "BOULEVARD",
    "R": "RUE",
    "PL": "PLACE",
    "CHE": "CHEMIN",
    "CH": "CHEMIN",
    "RTE": "ROUTE",
    "IMP": "IMPASSE",
    "ALL": "ALLEE",
    "FG": "FAUBOURG",
    "ST": "SAINT",
    "STE": "SAINTE",
    "LOT": "LOTISSEMENT",
    "RES": "RESIDENCE",
    "BIS": "B",
    "TER": "T",
}


def address_form(text: str) -> str:
    """A street address with its usual abbreviations expanded, digits kept."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").upper()
    words = re.sub(r"[^A-Z0-9]+", " ", ascii_text).split()
    return " ".join(_ADDRESS_WORDS.get(word, word) for word in words)
