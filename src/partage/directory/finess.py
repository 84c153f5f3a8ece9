"""The Etalab FINESS extract of establishments (`etalab-cs1100507-stock-<date>.csv`).

Latin-1, fields separated by `;`. Establishment rows carry 42 fields, from `nofinesset` to
`datemaj`; the published file also has a first line `finess;etalab;…`, establishment rows
tagged `structureet;` and geolocation rows tagged `geolocalisation;`: the tags are dropped
and the other kinds of rows skipped.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from partage.directory.rpps import RejectedRow, digest, fold

COLUMNS: tuple[str, ...] = (
    "nofinesset", "nofinessej", "rs", "rslongue", "complrs", "compldistrib", "numvoie",
    "typvoie", "voie", "compvoie", "lieuditbp", "region", "libregion", "departement",
    "libdepartement", "cog", "codepostal", "libelle_routage", "ligneacheminement",
    "telephone", "telecopie", "categetab", "libcategetab", "liblongcategetab", "categretab",
    "libcategretab", "siret", "codeape", "libcodeape", "mft", "libmft", "liblongmft", "sph",
    "libsph", "numen", "coordx", "coordy", "sourcegeocod", "dategeocod", "dateautor",
    "dateouvert", "datemaj",
)  # fmt: skip
_INDEX = {name: i for i, name in enumerate(COLUMNS)}
_SKIPPED_TAGS = ("finess", "geolocalisation")


@dataclass(frozen=True)
class FinessRow:
    line: int
    fields: tuple[str, ...]

    def __getitem__(self, name: str) -> str | None:
        value = self.fields[_INDEX[name]].strip()
        return value or None

    @property
    def source_key(self) -> str:
        return f"finess-et:{self.fields[0].strip()}"

    @property
    def address_line(self) -> str | None:
        parts = [
            self["numvoie"],
            self["compvoie"],
            self["typvoie"],
            self["voie"],
            self["lieuditbp"],
        ]
        text = " ".join(p for p in parts if p)
        return text or None

    @property
    def postal_code_and_city(self) -> tuple[str | None, str | None]:
        routing = self["ligneacheminement"] or ""
        postal, _, city = routing.partition(" ")
        return (self["codepostal"] or postal or None), (city.strip() or None)

    def organization_values(self) -> dict[str, object]:
        name = self["rslongue"] or self["rs"] or "—"
        postal, city = self.postal_code_and_city
        values: dict[str, object] = {
            "source_key": self.source_key,
            "finess_et": self["nofinesset"],
            "finess_ej": self["nofinessej"],
            "siret": self["siret"],
            "name": name,
            "name_folded": fold(name),
            "category_code": self["categetab"],
            "category_label": self["libcategetab"],
            "address_line": self.address_line,
            "postal_code": postal,
            "city": city.title() if city else None,
            "city_folded": fold(city) if city else None,
            "city_code": (self["departement"] or "")[:2] + (self["cog"] or "")[-3:]
            if self["cog"]
            else None,
            "phone": self["telephone"],
        }
        values["content_hash"] = digest(*(str(v) for v in values.values()))
        return values


def _is_finess(value: str) -> bool:
    value = value.strip()
    return len(value) == 9 and (value.isdigit() or (value[:2].isdigit() and value[2] in "AB"))


def read_rows(stream: IO[bytes]) -> Iterator[FinessRow | RejectedRow]:
    for line, raw in enumerate(stream, start=1):
        text = raw.decode("latin-1").rstrip("\r\n")
        if not text.strip():
            continue
        fields = text.split(";")
        if fields[0] in _SKIPPED_TAGS:
            continue
        if fields[0] == "structureet":
            fields = fields[1:]
        if fields[0] == COLUMNS[0]:
            continue  # a header line
        if len(fields) != len(COLUMNS):
            yield _rejected(line, f"{len(fields)} fields instead of {len(COLUMNS)}")
            continue
        if not _is_finess(fields[0]):
            yield _rejected(line, f"malformed FINESS number {fields[0]!r}")
            continue
        yield FinessRow(line, tuple(fields))


def _rejected(line: int, reason: str) -> RejectedRow:
    rejected = RejectedRow(f"line {line}: {reason}")
    rejected.line = line  # type: ignore[attr-defined]
    return rejected


def synthetic_rows(establishments: int, *, seed: int = 86) -> Iterator[str]:
    """Establishment rows (tagged `structureet`) of a synthetic Vienne extract, Latin-1-safe."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    kinds = (
        ("101", "Centre Hospitalier Régional"),
        ("355", "Centre Hospitalier"),
        ("365", "Etablissement de Soins Pluridisciplinaire"),
        ("620", "Pharmacie d'Officine"),
    )
    cities = (
        ("86000", "86194", "POITIERS"),
        ("86100", "86066", "CHATELLERAULT"),
        ("86500", "86165", "MONTMORILLON"),
        ("86200", "86137", "LOUDUN"),
    )
    for n in range(establishments):
        category, label = rng.choice(kinds)
        postal, cog, city = rng.choice(cities)
        fields = [""] * len(COLUMNS)
        fields[_INDEX["nofinesset"]] = f"86{n + 1000000:07d}"
        fields[_INDEX["nofinessej"]] = f"86{(n // 3) + 5000000:07d}"
        fields[_INDEX["rs"]] = f"{label.upper()[:20]} {city} {n}"
        fields[_INDEX["rslongue"]] = f"{label} de {city.title()} n° {n}"
        fields[_INDEX["numvoie"]] = str(rng.randint(1, 200))
        fields[_INDEX["typvoie"]] = "R"
        fields[_INDEX["voie"]] = "DE LA MILETRIE"
        fields[_INDEX["departement"]] = "86"
        fields[_INDEX["libdepartement"]] = "VIENNE"
        fields[_INDEX["cog"]] = cog[2:]
        fields[_INDEX["codepostal"]] = postal
        fields[_INDEX["ligneacheminement"]] = f"{postal} {city}"
        fields[_INDEX["telephone"]] = f"05{rng.randint(10000000, 99999999)}"
        fields[_INDEX["categetab"]] = category
        fields[_INDEX["libcategetab"]] = label
        fields[_INDEX["datemaj"]] = "2026-10-01"
        yield "structureet;" + ";".join(fields)


def write_synthetic_extract(stream: IO[bytes], establishments: int, *, seed: int = 86) -> int:
    stream.write(b"finess;etalab;95;2026-10-01\n")
    count = 0
    for row in synthetic_rows(establishments, seed=seed):
        stream.write(row.encode("latin-1") + b"\n")
        count += 1
    return count
