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

from partage.directory import vienne
from partage.directory.rpps import RejectedRow, fold

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

    @property
    def legal_entity(self) -> str | None:
        """The FINESS number of the legal entity (EJ) the site belongs to."""
        return self["nofinessej"]

    def organization_content(self) -> tuple[str | None, ...]:
        """The site's values, in the order of `ORGANIZATION_COLUMNS`."""
        name = self["rslongue"] or self["rs"] or "—"
        postal, city = self.postal_code_and_city
        cog = self["cog"]
        return (
            self.source_key,
            self["nofinesset"],
            self["nofinessej"],
            self["siret"],
            name,
            fold(name),
            self["categetab"],
            self["libcategetab"],
            self.address_line,
            postal,
            city.title() if city else None,
            fold(city) if city else None,
            (self["departement"] or "")[:2] + cog[-3:] if cog else None,
            self["telephone"],
        )


# The directory columns a site fills, source key first (see `FinessRow.organization_content`).
ORGANIZATION_COLUMNS = (
    "source_key", "finess_et", "finess_ej", "siret", "name", "name_folded", "category_code",
    "category_label", "address_line", "postal_code", "city", "city_folded", "city_code", "phone",
)  # fmt: skip


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


# Generated establishments beyond `vienne.SITES`: FINESS category, weight, names.
_GENERATED: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("620", 30, ("Pharmacie du Centre", "Pharmacie de la Place", "Pharmacie de la Mairie",
                 "Pharmacie de la Poste", "Pharmacie du Pont", "Pharmacie Principale",
                 "Pharmacie de {commune}")),
    ("500", 15, ("EHPAD Les Glycines", "EHPAD Les Chênes", "EHPAD Le Logis",
                 "EHPAD La Roseraie", "EHPAD Résidence du Parc", "EHPAD de {commune}")),
    ("202", 6, ("Résidence autonomie Les Capucines", "Résidence autonomie de {commune}")),
    ("354", 6, ("SSIAD de {commune}",)),
    ("603", 6, ("Maison de santé pluriprofessionnelle de {commune}",)),
    ("124", 4, ("Centre de santé de {commune}", "Centre de soins infirmiers de {commune}")),
    ("183", 4, ("IME Les Hirondelles", "IME de {commune}")),
    ("246", 4, ("ESAT de {commune}",)),
)  # fmt: skip


def _site_row(site: vienne.Site, opened: str) -> str:
    commune = site.commune
    fields = [""] * len(COLUMNS)
    values = {
        "nofinesset": site.finess_et,
        "nofinessej": site.finess_ej,
        "rs": fold(site.name)[:38],
        "rslongue": site.name,
        "numvoie": site.street_number,
        "typvoie": site.street_type,
        "voie": fold(site.street),
        "region": "75",
        "libregion": "NOUVELLE-AQUITAINE",
        "departement": "86",
        "libdepartement": "VIENNE",
        "cog": commune.insee_code[2:],
        "codepostal": commune.postal_code,
        "ligneacheminement": f"{commune.postal_code} {fold(commune.name)}",
        "telephone": site.phone,
        "categetab": site.category_code,
        "libcategetab": site.category.label,
        "liblongcategetab": site.category.label,
        "dateouvert": opened,
        "dateautor": opened,
        "datemaj": "2026-10-01",
    }
    for name, value in values.items():
        fields[_INDEX[name]] = value
    return "structureet;" + ";".join(fields)


def _generated_site(rng: random.Random, n: int) -> vienne.Site:
    category, _, names = rng.choices(_GENERATED, [weight for _, weight, _ in _GENERATED])[0]
    communes = vienne.COMMUNES
    commune = rng.choices(communes, [c.population for c in communes])[0]
    street_type, street = rng.choice(vienne.STREETS)
    return vienne.Site(
        finess_et=vienne.finess_number(100000 + n),
        finess_ej=vienne.finess_number(500000 + n),
        name=rng.choice(names).format(commune=commune.name),
        category_code=category,
        commune=commune,
        street_number=str(rng.randint(1, 120)),
        street_type=street_type,
        street=street,
        professions=frozenset(),
        staff=0,
    )


def synthetic_rows(establishments: int, *, seed: int = 86) -> Iterator[str]:
    """Establishment rows (tagged `structureet`) of a synthetic Vienne extract, Latin-1-safe.

    The sites of `vienne.SITES` come first (the demo's establishments, the hospitals the
    synthetic RPPS extract attaches professionals to), then generated pharmacies, nursing
    homes and other establishments across the communes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    for n in range(establishments):
        site = vienne.SITES[n] if n < len(vienne.SITES) else _generated_site(rng, n)
        opened = f"{rng.randint(1950, 2024)}-{rng.randint(1, 12):02d}-01"
        yield _site_row(site, opened)


def write_synthetic_extract(stream: IO[bytes], establishments: int, *, seed: int = 86) -> int:
    stream.write(b"finess;etalab;95;2026-10-01\n")
    count = 0
    for row in synthetic_rows(establishments, seed=seed):
        stream.write(row.encode("latin-1") + b"\n")
        count += 1
    return count
