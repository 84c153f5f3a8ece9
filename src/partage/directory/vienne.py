"""The Vienne (86) as the synthetic extracts describe it: communes, establishments and the
numbers that tie the RPPS and FINESS extracts together.

Communes carry their real postal and INSEE codes. The establishments are plausible sites of
the department; their FINESS numbers are well formed (check digit included) but are demo
values, not taken from the national register. The demo territory's establishments are among
them, with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


def check_digit(digits: str) -> str:
    """The Luhn key that completes `digits` (FINESS and RPPS numbers end with one)."""
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


def finess_number(serial: int) -> str:
    """A FINESS number of the Vienne: department, six digits, check digit."""
    digits = f"86{serial:06d}"
    return digits + check_digit(digits)


@dataclass(frozen=True)
class Commune:
    name: str
    postal_code: str
    insee_code: str
    population: int  # weighs where city practices open


COMMUNES: tuple[Commune, ...] = (
    Commune("Poitiers", "86000", "86194", 89916),
    Commune("Châtellerault", "86100", "86066", 31500),
    Commune("Buxerolles", "86180", "86041", 10289),
    Commune("Jaunay-Marigny", "86130", "86115", 7528),
    Commune("Saint-Benoît", "86280", "86214", 7375),
    Commune("Chauvigny", "86300", "86070", 7007),
    Commune("Loudun", "86200", "86137", 6700),
    Commune("Vouneuil-sous-Biard", "86580", "86297", 6290),
    Commune("Migné-Auxances", "86440", "86158", 6285),
    Commune("Montmorillon", "86500", "86165", 6000),
    Commune("Neuville-de-Poitou", "86170", "86177", 5400),
    Commune("Mignaloux-Beauvoir", "86550", "86157", 5229),
    Commune("Chasseneuil-du-Poitou", "86360", "86062", 4743),
    Commune("Vivonne", "86370", "86293", 4400),
    Commune("Saint-Georges-lès-Baillargeaux", "86130", "86222", 4385),
    Commune("Fontaine-le-Comte", "86240", "86100", 3972),
    Commune("Vouillé", "86190", "86294", 3800),
    Commune("Montamisé", "86360", "86163", 3723),
    Commune("Ligugé", "86240", "86133", 3444),
    Commune("Dissay", "86130", "86095", 3101),
    Commune("Saint-Julien-l'Ars", "86800", "86226", 2880),
    Commune("Civray", "86400", "86078", 2600),
    Commune("Lusignan", "86600", "86139", 2544),
    Commune("Rouillé", "86480", "86213", 2533),
    Commune("Mirebeau", "86110", "86160", 2400),
    Commune("Couhé", "86700", "86082", 2000),
    Commune("L'Isle-Jourdain", "86150", "86112", 1100),
)
_COMMUNES_BY_NAME = {commune.name: commune for commune in COMMUNES}

STREET_TYPES = {
    "R": "Rue",
    "AV": "Avenue",
    "BD": "Boulevard",
    "PL": "Place",
    "RTE": "Route",
    "ALL": "Allée",
    "CHE": "Chemin",
}
# (type of way, name of way): upper case, as both extracts write them.
STREETS: tuple[tuple[str, str], ...] = (
    ("R", "DES CARMES"), ("R", "DE LA RÉPUBLIQUE"), ("R", "VICTOR HUGO"), ("R", "DU MOULIN"),
    ("R", "SAINT-NICOLAS"), ("R", "JEAN JAURÈS"), ("AV", "DE LA LIBÉRATION"),
    ("BD", "PASTEUR"), ("PL", "DU MARCHÉ"), ("R", "DE LA GARE"), ("R", "DES ÉCOLES"),
    ("ALL", "DES TILLEULS"), ("RTE", "DE NIORT"), ("R", "DU 8 MAI 1945"), ("AV", "DU CLAIN"),
    ("CHE", "DES VIGNES"), ("R", "DE L'ÉGLISE"), ("BD", "DU GRAND CERF"),
)  # fmt: skip


@dataclass(frozen=True)
class Category:
    """A FINESS category, with the RPPS sector of activity of the people who work there."""

    label: str
    sector_code: str
    sector_label: str


CATEGORIES: dict[str, Category] = {
    "101": Category(
        "Centre Hospitalier Régional (C.H.R.)", "SA01", "Etablissement public de santé"
    ),
    "355": Category("Centre Hospitalier (C.H.)", "SA01", "Etablissement public de santé"),
    "292": Category(
        "Centre Hospitalier Spécialisé lutte Maladies Mentales",
        "SA01",
        "Etablissement public de santé",
    ),
    "365": Category(
        "Etablissement de Soins Pluridisciplinaire", "SA04", "Etablissement privé non PSPH"
    ),
    "603": Category("Maison de santé (L.6223-3)", "SA52", "Maison de santé ou Pôle de santé"),
    "124": Category("Centre de Santé", "SA05", "Centre de santé"),
    "500": Category(
        "Etablissement d'hébergement pour personnes âgées dépendantes",
        "SA17",
        "Etablissement pour personnes âgées",
    ),
    "354": Category(
        "Service de Soins Infirmiers A Domicile (S.S.I.A.D)",
        "SA17",
        "Etablissement pour personnes âgées",
    ),
    "620": Category("Pharmacie d'Officine", "SA33", "Pharmacie d'officine"),
    "202": Category("Résidences autonomie", "SA17", "Etablissement pour personnes âgées"),
    "183": Category(
        "Institut Médico-Educatif (I.M.E.)", "SA16", "Etablissement pour personnes handicapées"
    ),
    "246": Category(
        "Etablissement et Service d'Aide par le Travail (E.S.A.T.)",
        "SA16",
        "Etablissement pour personnes handicapées",
    ),
}
# Where people work for a salary; in a health centre or practice group they are liberal.
_SALARIED = frozenset({"101", "355", "292", "365", "124", "500", "354"})


@dataclass(frozen=True)
class Site:
    """An establishment (FINESS ET) of its legal entity (FINESS EJ), and who works there."""

    finess_et: str
    finess_ej: str
    name: str
    category_code: str
    commune: Commune
    street_number: str
    street_type: str
    street: str
    # Profession codes of the professionals it gathers, and its share of them.
    professions: frozenset[str]
    staff: int

    @property
    def category(self) -> Category:
        return CATEGORIES[self.category_code]

    @property
    def phone(self) -> str:
        return f"0549{self.finess_et[3:9]}"

    def practice_mode(self, profession: str) -> str:
        """The practice mode of a profession at this site: S (salaried) or L (liberal).

        Doctors practise as liberals in private clinics; whether a pharmacist owns the
        pharmacy (L) or is employed there (S) is the generator's draw."""
        if self.category_code == "365" and profession == "10":
            return "L"
        return "S" if self.category_code in _SALARIED else "L"


_HOSPITAL = frozenset({"10", "60", "21", "50", "70", "40"})


def _site(
    finess_et: str,
    finess_ej: str,
    name: str,
    category_code: str,
    commune: str,
    address: tuple[str, str, str],
    professions: frozenset[str],
    staff: int,
) -> Site:
    number, street_type, street = address
    return Site(
        finess_et,
        finess_ej,
        name,
        category_code,
        _COMMUNES_BY_NAME[commune],
        number,
        street_type,
        street,
        professions,
        staff,
    )


# The sites both extracts know, in this order at the start of the FINESS extract. The first
# seven are the demo territory's establishments (`partage.demo`), with its FINESS numbers.
SITES: tuple[Site, ...] = (
    _site("860014208", "860014190", "CHU de Poitiers", "101", "Poitiers",
          ("2", "R", "DE LA MILETRIE"), _HOSPITAL, 400),
    _site("860000934", "860007012", "Groupe hospitalier Nord-Vienne", "355", "Châtellerault",
          ("1", "R", "DU DOCTEUR LUC MONTAGNIER"), _HOSPITAL - {"40"}, 140),
    _site("860002450", "860007038", "Polyclinique de Poitiers", "365", "Poitiers",
          ("1", "R", "DE LA PROVIDENCE"), frozenset({"10", "60", "50", "70", "21"}), 60),
    _site("860010016", "860007053", "Maison de santé de Lusignan", "603", "Lusignan",
          ("4", "PL", "DU BAIL"), frozenset({"10", "60", "70", "50"}), 6),
    _site("860010024", "860007061", "Cabinet médical de Chauvigny", "603", "Chauvigny",
          ("12", "R", "DU MOULIN"), frozenset({"10"}), 3),
    _site("860010032", "860007079", "Pharmacie du Marché de Montmorillon", "620",
          "Montmorillon", ("3", "PL", "DU MARCHÉ"), frozenset({"21"}), 3),
    _site("860010040", "860007087", "Cabinet infirmier de Loudun", "603", "Loudun",
          ("27", "R", "DES ÉCOLES"), frozenset({"60"}), 4),
    _site("860010057", "860014190", "CHU de Poitiers - site de Montmorillon", "355",
          "Montmorillon", ("6", "AV", "DE LA LIBÉRATION"), _HOSPITAL - {"40"}, 40),
    _site("860010065", "860014190", "CHU de Poitiers - site de Lusignan", "355", "Lusignan",
          ("1", "RTE", "DE NIORT"), frozenset({"10", "60", "70"}), 20),
    _site("860010073", "860007012", "Groupe hospitalier Nord-Vienne - site de Loudun", "355",
          "Loudun", ("14", "BD", "DU GRAND CERF"), _HOSPITAL - {"40", "50"}, 30),
    _site("860010081", "860007020", "Centre hospitalier Henri-Laborit", "292", "Poitiers",
          ("370", "AV", "JACQUES COEUR"), frozenset({"10", "60", "21"}), 80),
    _site("860010099", "860007046", "Clinique Saint-Charles", "365", "Poitiers",
          ("9", "R", "DE LA GARE"), frozenset({"10", "60", "70"}), 40),
    _site("860010107", "860007095", "Maison de santé de Vivonne", "603", "Vivonne",
          ("5", "R", "VICTOR HUGO"), frozenset({"10", "60", "70"}), 5),
    _site("860010115", "860007103", "Maison de santé de Mirebeau", "603", "Mirebeau",
          ("2", "R", "DE LA RÉPUBLIQUE"), frozenset({"10", "60", "70"}), 5),
    _site("860010123", "860007111", "Centre de santé de Civray", "124", "Civray",
          ("18", "R", "JEAN JAURÈS"), frozenset({"10", "60", "40"}), 8),
    _site("860010131", "860007129", "Centre de santé dentaire de Poitiers", "124", "Poitiers",
          ("41", "BD", "PASTEUR"), frozenset({"40"}), 8),
    _site("860010149", "860007137", "EHPAD Les Tilleuls", "500", "Neuville-de-Poitou",
          ("8", "ALL", "DES TILLEULS"), frozenset({"10", "60", "70"}), 10),
    _site("860010156", "860007145", "EHPAD Les Rives du Clain", "500", "Jaunay-Marigny",
          ("23", "AV", "DU CLAIN"), frozenset({"10", "60", "70"}), 10),
    _site("860010164", "860007152", "EHPAD Résidence de la Gartempe", "500", "Montmorillon",
          ("11", "R", "SAINT-NICOLAS"), frozenset({"10", "60", "70"}), 10),
    _site("860010172", "860007160", "EHPAD Les Jardins de la Vienne", "500", "Châtellerault",
          ("65", "R", "DES CARMES"), frozenset({"10", "60", "70"}), 12),
    _site("860010180", "860007178", "EHPAD Les Genêts", "500", "L'Isle-Jourdain",
          ("3", "CHE", "DES VIGNES"), frozenset({"10", "60"}), 6),
    _site("860010198", "860007186", "SSIAD du Pays loudunais", "354", "Loudun",
          ("7", "R", "DE L'ÉGLISE"), frozenset({"60"}), 8),
    _site("860010206", "860007194", "SSIAD du Civraisien", "354", "Civray",
          ("10", "R", "DU 8 MAI 1945"), frozenset({"60"}), 6),
    _site("860010214", "860007202", "Pharmacie de la Gare", "620", "Poitiers",
          ("30", "R", "DE LA GARE"), frozenset({"21"}), 4),
    _site("860010222", "860007210", "Pharmacie du Boulevard", "620", "Châtellerault",
          ("52", "BD", "PASTEUR"), frozenset({"21"}), 4),
    _site("860010230", "860007228", "Pharmacie des Halles", "620", "Chauvigny",
          ("1", "PL", "DU MARCHÉ"), frozenset({"21"}), 3),
    _site("860010248", "860007236", "Pharmacie Centrale", "620", "Buxerolles",
          ("16", "R", "DE LA RÉPUBLIQUE"), frozenset({"21"}), 3),
    _site("860010255", "860007244", "Pharmacie du Clain", "620", "Saint-Benoît",
          ("4", "AV", "DU CLAIN"), frozenset({"21"}), 3),
    _site("860010263", "860007251", "Pharmacie du Haut-Poitou", "620", "Neuville-de-Poitou",
          ("21", "R", "VICTOR HUGO"), frozenset({"21"}), 3),
)  # fmt: skip
SITES_BY_FINESS = {site.finess_et: site for site in SITES}
