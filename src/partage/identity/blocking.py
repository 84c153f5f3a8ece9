"""Blocking: which known identities an incoming one is compared with.

Comparing every pair is impossible at a country's scale, so candidates are found by keys.
One key loses every duplicate with an error in a keyed trait; several keys, each built from
different traits, keep recall: a duplicate is missed only if an error hits every key.
Each identity stores one value per key column; the incoming one looks up several values per
column (its birth and used names, its date with day and month swapped, each of its given
names), so variations are found without storing them.
"""

from __future__ import annotations

from datetime import date

from partage.identity.features import Features
from partage.identity.normalize import phonetic, swapped

KEY_COLUMNS = (
    "k_ins",
    "k_name_dob",
    "k_used_dob",
    "k_given_dob",
    "k_name_given",
    "k_name_given_md",
    "k_phone",
    "k_dob_postal",
)
# The columns a looked-up value is searched in (a used name may be another's birth name).
QUERY_COLUMNS: dict[str, tuple[str, ...]] = {
    "k_ins": ("k_ins",),
    "k_name_dob": ("k_name_dob", "k_used_dob"),
    "k_given_dob": ("k_given_dob",),
    "k_name_given": ("k_name_given",),
    "k_name_given_md": ("k_name_given_md",),
    "k_phone": ("k_phone",),
    "k_dob_postal": ("k_dob_postal",),
}

StoredKeys = tuple[str | None, ...]


def _day(value: date) -> str:
    return value.isoformat().replace("-", "")  # YYYYMMDD, without strftime's cost


def stored_keys(f: Features) -> StoredKeys:
    exact_date = f.dob if f.dob is not None and not f.dob_placeholder else None
    return (
        f.ins[:13] if f.ins else None,
        f"{f.birth_phon}|{_day(exact_date)}" if f.birth_phon and exact_date else None,
        f"{f.used_phon}|{_day(exact_date)}" if f.used_phon and exact_date else None,
        f"{f.first_phon}|{_day(exact_date)}" if f.first_phon and exact_date else None,
        f"{f.birth_phon}|{f.first_phon}" if f.birth_phon and f.first_phon else None,
        f"{f.birth_phon}|{f.first_phon}|{exact_date:%m%d}"
        if f.birth_phon and f.first_phon and exact_date
        else None,
        f.phone if len(f.phone) >= 7 else None,
        # Both names mistyped or replaced: the birth date and where the patient lives.
        f"{_day(exact_date)}|{f.postal}" if exact_date and f.postal else None,
    )


def query_keys(f: Features) -> dict[str, set[str]]:
    """The values to look up, by key (see QUERY_COLUMNS for the columns each is searched in)."""
    names = {n for n in (f.birth_phon, f.used_phon) if n}
    dates: set[date] = set()
    if f.dob is not None and not f.dob_placeholder:
        dates.add(f.dob)
        other = swapped(f.dob)
        if other is not None:
            dates.add(other)
    days = [_day(d) for d in dates]
    givens = {f.first_phon, *(phonetic(g) for g in f.given[1:3])} - {""}
    pairs = {(n, f.first_phon) for n in names if f.first_phon}
    if f.birth_phon and f.first_phon:
        pairs.add((f.first_phon, f.birth_phon))  # family and given names exchanged
    keys: dict[str, set[str]] = {
        "k_ins": {f.ins[:13]} if f.ins else set(),
        "k_name_dob": {f"{n}|{day}" for n in names for day in days},
        "k_given_dob": {f"{g}|{day}" for g in givens for day in days},
        "k_name_given": {f"{n}|{g}" for n, g in pairs},
        "k_name_given_md": {f"{n}|{g}|{day[4:]}" for n, g in pairs for day in days},
        "k_phone": {f.phone} if len(f.phone) >= 7 else set(),
        "k_dob_postal": {f"{day}|{f.postal}" for day in days} if f.postal else set(),
    }
    return keys
