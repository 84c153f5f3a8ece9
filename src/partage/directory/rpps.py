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

from partage.directory import vienne

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


@dataclass(frozen=True, slots=True)
class RppsRow:
    """One activity: its line in the file and its 52 values, stripped (`None` when empty)."""

    line: int
    values: tuple[str | None, ...]

    def __getitem__(self, column: int) -> str | None:
        return self.values[column]

    @property
    def national_id(self) -> str:
        return self.values[2] or ""

    @property
    def structure_key(self) -> str | None:
        technical = self.values[23]
        return f"rpps-structure:{technical}" if technical else None

    @property
    def role_key(self) -> str:
        v = self.values
        return digest(v[2], v[23], v[9], v[13], v[15], v[17])

    @property
    def address_line(self) -> str | None:
        v = self.values
        text = " ".join(p for p in (v[28], v[29], v[31], v[32]) if p)
        return text or None


def parse_line(raw: bytes, line: int) -> RppsRow:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RejectedRow("not UTF-8 text") from None
    fields = text.rstrip("\r\n").split("|")
    if len(fields) != _FIELDS:
        raise RejectedRow(f"{len(fields) - 1} columns instead of {len(COLUMNS)}")
    # Stripped once here: the importer reads most columns, some of them twice.
    values = tuple([field.strip() or None for field in fields[:-1]])
    id_type, national_id = values[0], values[2] or ""
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
    if not values[7]:
        raise RejectedRow("no practice name")
    if not values[9]:
        raise RejectedRow("no profession code")
    return RppsRow(line, values)


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
    "AUDEBERT", "BONNEAU", "BOUTIN", "CHAUVET", "GIRAULT", "MÉTAYER", "RIVIÈRE", "TEXIER",
    "MOINARD", "PROUTEAU", "RENAUDEAU", "DE LA TOUR", "DU BREUIL", "DES ROCHES",
)  # fmt: skip
_FEMININE = (
    "MARIE", "ANNE", "SOPHIE", "NATHALIE", "ISABELLE", "CATHERINE", "FRANÇOISE", "CAMILLE",
    "LÉA", "CHLOÉ", "HÉLÈNE", "ÉMILIE", "INÈS", "MARIE-CLAIRE", "ANAÏS", "NOÉMIE", "CLAIRE",
    "JULIE", "AURÉLIE", "CÉLINE", "MANON", "ZOÉ", "ÉLODIE", "MAËLLE",
)  # fmt: skip
_MASCULINE = (
    "JEAN", "PIERRE", "MICHEL", "PHILIPPE", "NICOLAS", "JULIEN", "CAMILLE", "FRÉDÉRIC", "THÉO",
    "JEAN-PIERRE", "JÉRÔME", "ANTOINE", "MARC", "LUC", "FRANÇOIS", "HUGO", "LOÏC", "GAËL",
    "BENOÎT", "STÉPHANE", "MATHIS", "JOËL", "CLÉMENT", "RÉMI",
)  # fmt: skip

# Savoir-faire (type, type label, code, label) and its weight among the profession.
Specialty = tuple[str, str, str, str]
_NONE: Specialty = ("", "", "", "")
_ORDINAL = ("S", "Spécialité ordinale")
_MEDICAL: tuple[tuple[Specialty, int], ...] = tuple(
    ((*_ORDINAL, code, label), weight)
    for code, label, weight in (
        ("SM54", "Médecine générale", 40), ("SM26", "Qualifié en Médecine générale", 8),
        ("SM53", "Spécialiste en Médecine générale", 4), ("SM02", "Anesthésie-réanimation", 5),
        ("SM04", "Cardiologie et Maladies vasculaires", 4), ("SM42", "Psychiatrie", 5),
        ("SM20", "Gynécologie-obstétrique", 3), ("SM40", "Pédiatrie", 3),
        ("SM44", "Radio-diagnostic", 4), ("SM59", "Médecine d'urgence", 4),
        ("SM24", "Gastro-entérologie et Hépatologie", 2), ("SM38", "Ophtalmologie", 3),
        ("SM15", "Dermatologie et Vénéréologie", 2), ("SM32", "Neurologie", 2),
        ("SM18", "Gériatrie", 2), ("SM08", "Chirurgie orthopédique et Traumatologie", 2),
        ("SM41", "Pneumologie", 2), ("SM27", "Médecine interne", 2),
        ("SM14", "Chirurgie viscérale et digestive", 1), ("SM39", "Oto-rhino-laryngologie", 1),
        ("SM48", "Rhumatologie", 1), ("SM30", "Néphrologie", 1),
    )
)  # fmt: skip
_DENTAL: tuple[tuple[Specialty, int], ...] = (
    (_NONE, 85),
    ((*_ORDINAL, "SCD01", "Orthopédie dento-faciale"), 8),
    ((*_ORDINAL, "SCD02", "Chirurgie orale"), 4),
    ((*_ORDINAL, "SCD03", "Médecine bucco-dentaire"), 3),
)
_NURSING: tuple[tuple[Specialty, int], ...] = (
    (_NONE, 94),
    ((*_ORDINAL, "SI01", "Exercice infirmier en pratique avancée pathologies chroniques"), 2),
    ((*_ORDINAL, "SI07", "Infirmier(ère) anesthésiste"), 2),
    ((*_ORDINAL, "SI06", "Infirmier(ère) de bloc opératoire"), 2),
)


@dataclass(frozen=True)
class _Profession:
    code: str
    label: str
    share: float  # of all professionals
    women: float  # share of women
    authority: str  # "Autorité d'enregistrement"
    doctor: bool  # "Docteur" as civility of practice
    on_sites: float  # share practising at an establishment; the others, in city practices
    practice_names: tuple[str, ...]  # {family}, {street}, {commune}
    practice_size: int  # professionals per city practice
    specialties: tuple[tuple[Specialty, int], ...] = ((_NONE, 1),)
    adeli: float = 0.0  # share still registered by their ADELI number


_PROFESSIONS = (
    _Profession("10", "Médecin", 0.40, 0.50, "ARS/CNOM/CNOM", True, 0.45,
                ("CABINET DU DR {family}", "CABINET MÉDICAL {street}",
                 "MAISON MÉDICALE DE {commune}"), 2, _MEDICAL),
    _Profession("60", "Infirmier", 0.30, 0.87, "ARS/CNOI/CNOI", False, 0.75,
                ("CABINET INFIRMIER {family}", "CABINET DE SOINS INFIRMIERS DE {commune}"), 3,
                _NURSING, adeli=0.03),
    _Profession("21", "Pharmacien", 0.10, 0.68, "ARS/CNOP/CNOP", True, 0.15,
                ("PHARMACIE {street}", "PHARMACIE DE {commune}", "PHARMACIE {family}"), 3),
    _Profession("40", "Chirurgien-Dentiste", 0.07, 0.48, "ARS/CNOCD/CNOCD", True, 0.08,
                ("CABINET DENTAIRE {family}", "CABINET DENTAIRE DE {commune}"), 2, _DENTAL),
    _Profession("50", "Sage-Femme", 0.03, 0.97, "ARS/CNOSF/CNOSF", False, 0.70,
                ("CABINET DE SAGE-FEMME {family}",), 1),
    _Profession("70", "Masseur-Kinésithérapeute", 0.10, 0.50, "ARS/CNOMK/CNOMK", False, 0.20,
                ("CABINET DE KINÉSITHÉRAPIE {family}",
                 "CABINET DE KINÉSITHÉRAPIE DE {commune}"), 2, adeli=0.03),
)  # fmt: skip
_PROFESSIONS_BY_CODE = {profession.code: profession for profession in _PROFESSIONS}
_MODES = {"L": "Libéral, indépendant, artisan, commerçant", "S": "Salarié"}
_PHARMACY_SECTIONS = {
    "A": "Pharmaciens titulaires d'officine",
    "D": "Pharmaciens adjoints d'officine et autres exercices",
    "H": "Pharmaciens des établissements de santé",
}


def _rpps_number(serial: int) -> str:
    """An RPPS number: "10", eight digits, the check digit."""
    digits = f"10{serial:08d}"
    return digits + vienne.check_digit(digits)


@dataclass(frozen=True)
class NamedProfessional:
    """A professional every synthetic extract lists first, whatever its seed: the demo
    territory's accounts carry these national ids."""

    rpps: str
    civility: str  # M | MME
    family_name: str
    given_name: str
    profession: str
    specialty: str  # a code of the profession's savoir-faire, or ""
    finess_et: str  # the site of their first activity
    mode: str  # L | S

    @property
    def national_id(self) -> str:
        return "8" + self.rpps


NAMED_PROFESSIONALS: tuple[NamedProfessional, ...] = (
    NamedProfessional(_rpps_number(8600001), "MME", "DUBOIS", "CLAIRE", "10", "SM04",
                      "860014208", "S"),
    NamedProfessional(_rpps_number(8600002), "M", "GIRARD", "ANTOINE", "10", "SM59",
                      "860000934", "S"),
    NamedProfessional(_rpps_number(8600003), "MME", "BERNARD", "JULIE", "10", "SM54",
                      "860010016", "L"),
    NamedProfessional(_rpps_number(8600004), "M", "LEFEBVRE", "MARC", "10", "SM54",
                      "860010024", "L"),
    NamedProfessional(_rpps_number(8600005), "MME", "ROUSSEAU", "SOPHIE", "21", "",
                      "860010032", "L"),
    NamedProfessional(_rpps_number(8600006), "MME", "FOURNIER", "NATHALIE", "60", "",
                      "860010040", "L"),
    NamedProfessional(_rpps_number(8600007), "MME", "LEFÈVRE", "HÉLÈNE", "50", "",
                      "860014208", "S"),
)  # fmt: skip


@dataclass(frozen=True)
class _Structure:
    """Where an activity takes place: a FINESS site, or a city practice the extract names by
    its technical id only. `columns` are its values from "Numéro SIRET site" (19) to
    "Ancien identifiant de la structure" (46)."""

    columns: tuple[str, ...]
    sector: tuple[str, str]
    site: vienne.Site | None = None


def _structure_columns(
    finess: tuple[str, str],
    technical_id: str,
    name: str,
    address: tuple[str, str, str],
    commune: vienne.Commune,
    phone: str,
) -> tuple[str, ...]:
    number, street_type, street = address
    columns = [""] * 28
    columns[21 - 19 : 26 - 19] = [*finess, technical_id, name, ""]
    columns[28 - 19] = number
    columns[30 - 19 : 33 - 19] = [street_type, vienne.STREET_TYPES[street_type], street]
    columns[34 - 19] = f"{commune.postal_code} {fold(commune.name)}"
    columns[35 - 19 : 38 - 19] = [commune.postal_code, commune.insee_code, commune.name]
    columns[40 - 19] = phone
    columns[44 - 19 : 46 - 19] = ["86", "Vienne"]
    return tuple(columns)


def _site_structure(site: vienne.Site) -> _Structure:
    category = site.category
    columns = _structure_columns(
        (site.finess_et, site.finess_ej),
        f"F{site.finess_et}",
        fold(site.name),
        (site.street_number, site.street_type, site.street),
        site.commune,
        site.phone,
    )
    return _Structure(columns, (category.sector_code, category.sector_label), site)


def _city_practices(
    rng: random.Random, profession: _Profession, professionals: int, first_serial: int
) -> list[_Structure]:
    """The city practices of a profession, spread over the communes by population."""
    liberal = professionals * profession.share * (1 - profession.on_sites)
    count = max(3, round(liberal / profession.practice_size))
    communes = rng.choices(vienne.COMMUNES, [c.population for c in vienne.COMMUNES], k=count)
    practices = []
    for serial, commune in enumerate(communes, start=first_serial):
        street_type, street = rng.choice(vienne.STREETS)
        name = rng.choice(profession.practice_names).format(
            family=rng.choice(_FAMILY), street=street, commune=commune.name.upper()
        )
        if profession.code == "21":
            sector = ("SA33", "Pharmacie d'officine")
        elif profession.practice_size > 1 and rng.random() < 0.6:
            sector = ("SA08", "Cabinet de groupe")
        else:
            sector = ("SA07", "Cabinet individuel")
        columns = _structure_columns(
            ("", ""),
            f"C{86000000000 + serial:011d}",
            name,
            (str(rng.randint(1, 120)), street_type, street),
            commune,
            f"0549{rng.randint(0, 999999):06d}",
        )
        practices.append(_Structure(columns, sector))
    return practices


@dataclass
class _Workplaces:
    """Where each profession practises: establishments (by staff) and city practices."""

    sites: dict[str, tuple[list[_Structure], list[int]]]
    practices: dict[str, list[_Structure]]
    by_finess: dict[str, _Structure]

    @classmethod
    def build(cls, rng: random.Random, professionals: int) -> _Workplaces:
        structures = [_site_structure(site) for site in vienne.SITES]
        sites: dict[str, tuple[list[_Structure], list[int]]] = {}
        for profession in _PROFESSIONS:
            employing = [
                (structure, site.staff)
                for structure in structures
                if (site := structure.site) and profession.code in site.professions
            ]
            sites[profession.code] = ([s for s, _ in employing], [w for _, w in employing])
        practices: dict[str, list[_Structure]] = {}
        serial = 1
        for profession in _PROFESSIONS:
            practices[profession.code] = _city_practices(rng, profession, professionals, serial)
            serial += len(practices[profession.code])
        by_finess = {s.site.finess_et: s for s in structures if s.site}
        return cls(sites, practices, by_finess)

    def draw(self, rng: random.Random, profession: _Profession) -> _Structure:
        if rng.random() < profession.on_sites:
            sites, staff = self.sites[profession.code]
            return rng.choices(sites, staff)[0]
        return rng.choice(self.practices[profession.code])

    def draw_other(
        self, rng: random.Random, profession: _Profession, first: _Structure
    ) -> _Structure:
        """A second place of practice, never the first one."""
        for _ in range(8):
            other = self.draw(rng, profession)
            if other is not first:
                return other
        practices = self.practices[profession.code]  # at least three
        return practices[0] if practices[0] is not first else practices[1]


@dataclass(frozen=True)
class _Person:
    """Columns 0 to 16 of every row of a professional, and what the others depend on."""

    columns: tuple[str, ...]
    profession: _Profession


def _person(
    id_type: str,
    local_id: str,
    civility: str,
    family: str,
    given: str,
    profession: _Profession,
    specialty: Specialty,
    professor: bool = False,
) -> _Person:
    if professor:
        practice_civility = ("PR", "Professeur")
    elif profession.doctor:
        practice_civility = ("DR", "Docteur")
    else:
        practice_civility = ("", "")
    columns = (
        id_type,
        local_id,
        id_type + local_id,
        *practice_civility,
        civility,
        "Madame" if civility == "MME" else "Monsieur",
        family,
        given,
        profession.code,
        profession.label,
        "C",
        "Civil",
        *specialty,
    )
    return _Person(columns, profession)


def _row(person: _Person, structure: _Structure, mode: str) -> str:
    profession = person.profession
    section = ("", "")
    if profession.code == "21":
        if structure.site is not None and structure.site.category_code != "620":
            section = ("H", _PHARMACY_SECTIONS["H"])
        else:
            code = "A" if mode == "L" else "D"
            section = (code, _PHARMACY_SECTIONS[code])
    fields = (
        *person.columns,
        mode,
        _MODES[mode],
        *structure.columns,
        profession.authority,
        *structure.sector,
        *section,
    )
    return "|".join(fields) + "|"


def _mode(rng: random.Random, profession: _Profession, structure: _Structure) -> str:
    site = structure.site
    if profession.code == "21" and (site is None or site.category_code == "620"):
        return "L" if rng.random() < 0.4 else "S"  # the pharmacy's owner, or employed there
    return "L" if site is None else site.practice_mode(profession.code)


def synthetic_rows(
    professionals: int, *, seed: int = 86, second_site_share: float = 0.25
) -> Iterator[str]:
    """Rows (without line ends) of a synthetic extract of the Vienne territory.

    The named professionals come first. Each professional practises at an establishment of
    `vienne.SITES` (their rows carry its FINESS site and legal entity numbers, as in the
    FINESS extract) or in a city practice of a Vienne commune; some also have a second site.
    Names have accents and particles; doctors have specialties; a few nurses and
    physiotherapists still have an ADELI number."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    workplaces = _Workplaces.build(rng, professionals)
    shares = [profession.share for profession in _PROFESSIONS]
    adeli_serials = dict.fromkeys(_PROFESSIONS_BY_CODE, 0)
    for n in range(professionals):
        if n < len(NAMED_PROFESSIONALS):
            named = NAMED_PROFESSIONALS[n]
            profession = _PROFESSIONS_BY_CODE[named.profession]
            specialty = next(
                (s for s, _ in profession.specialties if s[2] == named.specialty), _NONE
            )
            person = _person(
                "8", named.rpps, named.civility, named.family_name, named.given_name,
                profession, specialty,
            )  # fmt: skip
            first = workplaces.by_finess[named.finess_et]
            first_mode = named.mode
        else:
            profession = rng.choices(_PROFESSIONS, shares)[0]
            woman = rng.random() < profession.women
            specialties = profession.specialties
            specialty = rng.choices([s for s, _ in specialties], [w for _, w in specialties])[0]
            first = workplaces.draw(rng, profession)
            first_mode = _mode(rng, profession, first)
            professor = (
                profession.code == "10"
                and first.site is not None
                and first.site.category_code == "101"
                and rng.random() < 0.1
            )
            id_type, local_id = "8", _rpps_number(10_000_000 + n * 7919 % 90_000_000)
            if rng.random() < profession.adeli and adeli_serials[profession.code] < 9999:
                adeli_serials[profession.code] += 1
                digits = f"86{profession.code}{adeli_serials[profession.code]:04d}"
                id_type, local_id = "0", digits + vienne.check_digit(digits)
            person = _person(
                id_type, local_id, "MME" if woman else "M", rng.choice(_FAMILY),
                rng.choice(_FEMININE if woman else _MASCULINE), profession, specialty, professor,
            )  # fmt: skip
        yield _row(person, first, first_mode)
        if rng.random() < second_site_share:
            second = workplaces.draw_other(rng, profession, first)
            yield _row(person, second, _mode(rng, profession, second))


def write_synthetic_extract(stream: IO[str], professionals: int, *, seed: int = 86) -> int:
    """Write a whole synthetic extract (header included); returns the number of rows."""
    stream.write(HEADER + "\n")
    count = 0
    for row in synthetic_rows(professionals, seed=seed):
        stream.write(row + "\n")
        count += 1
    return count
