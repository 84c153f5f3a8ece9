"""The RPPS "Personne activité" extract: its 52 columns, one parsed row, and a generator of
synthetic extracts in exactly the same format (tests, benchmarks, demo).

UTF-8, one header row, fields separated by `|`, every row ending with a `|`. One row per
activity: a professional with two practice sites has two rows.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import IO

COLUMNS: tuple[str, ...] = (
    "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP",
    "Code civilité d'exercice", "Libellé civilité d'exercice", "Code civilité",
    "Libellé civilité", "Nom d'exercice", "Prénom d'exercice", "Code profession",
    "Libellé profession", "Code catégorie professionnelle",
    "Libellé catégorie professionnelle", "Code type savoir-faire",
    "Libellé type savoir-faire", "Code savoir-faire", "Libellé savoir-faire",
    "Code mode exercice", "Libellé mode exercice", "Numéro SIRET site", "Numéro SIREN site",
    "Numéro FINESS site", "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure", "Raison sociale site",
    "Enseigne commerciale site", "Complément destinataire (coord. structure)",
    "Complément point géographique (coord. structure)", "Numéro Voie (coord. structure)",
    "Indice répétition voie (coord. structure)", "Code type de voie (coord. structure)",
    "Libellé type de voie (coord. structure)", "Libellé Voie (coord. structure)",
    "Mention distribution (coord. structure)", "Bureau cedex (coord. structure)",
    "Code postal (coord. structure)", "Code commune (coord. structure)",
    "Libellé commune (coord. structure)", "Code pays (coord. structure)",
    "Libellé pays (coord. structure)", "Téléphone (coord. structure)",
    "Téléphone 2 (coord. structure)", "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)", "Code Département (structure)",
    "Libellé Département (structure)", "Ancien identifiant de la structure",
    "Autorité d'enregistrement", "Code secteur d'activité", "Libellé secteur d'activité",
    "Code section tableau pharmaciens", "Libellé section tableau pharmaciens",
)  # fmt: skip
HEADER = "|".join(COLUMNS) + "|"
_FIELDS = len(COLUMNS) + 1  # the trailing "|" leaves an empty last field


class RejectedRow(ValueError):
    """A row that cannot be imported; the message says why, for the import report."""


@lru_cache(maxsize=65536)  # names and cities repeat across a whole extract
def fold(text: str) -> str:
    """Upper case without accents: 'Lefèvre' and 'LEFEVRE' fold the same."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.upper().replace("’", "'").split())


def digest(*parts: str | None) -> str:
    return hashlib.blake2b("\x1f".join(p or "" for p in parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class RppsRow:
    line: int
    fields: tuple[str, ...]

    def __getitem__(self, column: int) -> str | None:
        value = self.fields[column].strip()
        return value or None

    @property
    def national_id(self) -> str:
        return self.fields[2].strip()

    @property
    def structure_key(self) -> str | None:
        technical = self[23]
        return f"rpps-structure:{technical}" if technical else None

    @property
    def role_key(self) -> str:
        return digest(self.national_id, self[23], self[9], self[13], self[15], self[17])

    @property
    def address_line(self) -> str | None:
        parts = [self[28], self[29], self[31], self[32]]
        text = " ".join(p for p in parts if p)
        return text or None


def parse_line(raw: bytes, line: int) -> RppsRow:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RejectedRow("not UTF-8 text") from None
    fields = text.rstrip("\r\n").split("|")
    if len(fields) != _FIELDS:
        raise RejectedRow(f"{len(fields) - 1} columns instead of {len(COLUMNS)}")
    row = RppsRow(line, tuple(fields))
    id_type, national_id = row[0], row.national_id
    if id_type == "8" and not (
        len(national_id) == 12 and national_id.isdigit() and national_id.startswith("8")
    ):
        raise RejectedRow(f"malformed RPPS national id {national_id!r}")
    if id_type == "0" and not (
        len(national_id) == 10 and national_id.isdigit() and national_id.startswith("0")
    ):
        raise RejectedRow(f"malformed ADELI national id {national_id!r}")
    if id_type not in ("8", "0"):
        raise RejectedRow(f"unknown identifier type {id_type!r}")
    if not row[7]:
        raise RejectedRow("no practice name")
    if not row[9]:
        raise RejectedRow("no profession code")
    return row


def read_rows(stream: IO[bytes]) -> Iterator[RppsRow | RejectedRow]:
    """Parsed rows, or the rejection of a row (with its line number) — never both, never
    stopping at a bad row. The header must be the official one."""
    header = stream.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if header != HEADER:
        raise RejectedRow("line 1 is not the header of an RPPS 'Personne activité' extract")
    for line, raw in enumerate(stream, start=2):
        if not raw.strip():
            continue
        try:
            yield parse_line(raw, line)
        except RejectedRow as rejected:
            rejected.args = (f"line {line}: {rejected.args[0]}",)
            rejected.line = line  # type: ignore[attr-defined]
            yield rejected


# --- synthetic extracts ------------------------------------------------------------------

_FAMILY = (
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU",
    "LAURENT", "SIMON", "MICHEL", "LEFÈVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL",
    "FOURNIER", "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT",
    "MÜLLER", "LEFEBVRE", "FAURE", "ANDRÉ", "MERCIER", "BLANC", "GUÉRIN", "BOYER", "GARNIER",
    "CHEVALIER", "FRANÇOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLÉMENT",
    "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU", "GAUTIER", "MASSON", "D'ALMEIDA",
    "LE GALL", "SAINT-MARTIN", "N'DIAYE", "NGUYEN", "BENOÎT", "HÉBERT", "PÉRON", "CHAUVIN",
)  # fmt: skip
_GIVEN = (
    "MARIE", "JEAN", "PIERRE", "MICHEL", "ANNE", "SOPHIE", "NATHALIE", "ISABELLE", "CATHERINE",
    "FRANÇOISE", "PHILIPPE", "NICOLAS", "JULIEN", "CAMILLE", "LÉA", "CHLOÉ", "HÉLÈNE", "JÉRÔME",
    "ÉMILIE", "FRÉDÉRIC", "THÉO", "INÈS", "JEAN-PIERRE", "MARIE-CLAIRE", "ANAÏS", "NOÉMIE",
)  # fmt: skip
_PROFESSIONS = (
    ("10", "Médecin", 0.40), ("60", "Infirmier", 0.30), ("21", "Pharmacien", 0.10),
    ("40", "Chirurgien-dentiste", 0.07), ("50", "Sage-femme", 0.03),
    ("70", "Masseur-kinésithérapeute", 0.10),
)  # fmt: skip
_SPECIALTIES = (
    ("SM54", "Médecine générale"), ("SM26", "Qualifié en médecine générale"),
    ("SM04", "Anesthésie-réanimation"), ("SM44", "Radiodiagnostic"), ("SM02", "Cardiologie"),
    ("SM15", "Gynécologie-obstétrique"), ("SM40", "Pédiatrie"), ("SM42", "Psychiatrie"),
)  # fmt: skip
_CITIES = (
    ("86000", "86194", "Poitiers"), ("86100", "86066", "Châtellerault"),
    ("86600", "86139", "Lusignan"), ("86300", "86070", "Chauvigny"),
    ("86500", "86165", "Montmorillon"), ("86200", "86137", "Loudun"),
    ("86360", "86062", "Chasseneuil-du-Poitou"), ("86280", "86214", "Saint-Benoît"),
)  # fmt: skip
_STREETS = ("DES CARMES", "DE LA RÉPUBLIQUE", "VICTOR HUGO", "DU MOULIN", "SAINT-NICOLAS")


def synthetic_rows(
    professionals: int, *, seed: int = 86, second_site_share: float = 0.25
) -> Iterator[str]:
    """Rows (without line ends) of a synthetic extract of the Vienne territory: realistic
    names with accents and particles, several professions, some professionals on two sites."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    structures = [f"C{86000000000 + n:011d}" for n in range(max(10, professionals // 8))]
    professions = [p[:2] for p in _PROFESSIONS]
    weights = [p[2] for p in _PROFESSIONS]
    for n in range(professionals):
        local = f"{10000000000 + n * 7919 % 89999999999:011d}"
        national = "8" + local
        family, given = rng.choice(_FAMILY), rng.choice(_GIVEN)
        code, label = rng.choices(professions, weights)[0]
        sites = 2 if rng.random() < second_site_share else 1
        for site in rng.sample(structures, sites):
            specialty = rng.choice(_SPECIALTIES) if code == "10" else ("", "")
            postal, insee, city = rng.choice(_CITIES)
            mode = rng.choice((("L", "Libéral"), ("S", "Salarié")))
            fields = [""] * len(COLUMNS)
            fields[0:13] = [
                "8",
                local,
                national,
                "DR" if code == "10" else "",
                "Docteur" if code == "10" else "",
                rng.choice(("M", "MME")),
                "",
                family,
                given,
                code,
                label,
                "C",
                "Civil",
            ]
            fields[13:17] = [
                "S" if specialty[0] else "",
                "Spécialité ordinale" if specialty[0] else "",
                specialty[0],
                specialty[1],
            ]
            fields[17:19] = list(mode)
            fields[23] = site
            fields[24] = (
                f"CABINET {family}" if mode[0] == "L" else f"CENTRE DE SOINS {city.upper()}"
            )
            fields[28] = str(rng.randint(1, 120))
            fields[30:33] = ["R", "Rue", rng.choice(_STREETS)]
            fields[34] = f"{postal} {city.upper()}"
            fields[35:38] = [postal, insee, city]
            fields[40] = f"05{rng.randint(10000000, 99999999)}"
            fields[44:46] = ["86", "Vienne"]
            fields[47] = "ARS/CNOM/CNOM" if code == "10" else "ARS"
            fields[48:50] = (
                ["SA07", "Cabinet individuel"]
                if mode[0] == "L"
                else ["SA01", "Etablissement public de santé"]
            )
            yield "|".join(fields) + "|"


def write_synthetic_extract(stream: IO[str], professionals: int, *, seed: int = 86) -> int:
    """Write a whole synthetic extract (header included); returns the number of rows."""
    stream.write(HEADER + "\n")
    count = 0
    for row in synthetic_rows(professionals, seed=seed):
        stream.write(row + "\n")
        count += 1
    return count
