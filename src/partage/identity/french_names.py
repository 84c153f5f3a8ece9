"""Reference lists for the synthetic French population: family names, given names by birth
decade, birth places, and the shapes of French typing errors.

Family names are listed by decreasing national frequency (INSEE birth records), with an
origin tag so given names and birth countries stay coherent with them; the generator draws
them with a Zipf-like weight and adds a long tail of rarer regional names built from stems
and suffixes, as real French surnames are. Given names are the popular ones of each decade
(INSEE "fichier des prénoms"), written as the civil status writes them (accents, hyphens).
Birth places carry real INSEE (COG) codes: commune codes, 99xxx for countries.
"""

from __future__ import annotations

import random
import unicodedata

# Origins: fr (default), br (Breton), al (Alsatian/Lorrain), pt (Portuguese), es (Spanish),
# it (Italian), mg (Maghrebi), af (West African), vn (Vietnamese), tr (Turkish).
_RANKED = """
MARTIN BERNARD THOMAS PETIT ROBERT RICHARD DURAND DUBOIS MOREAU LAURENT SIMON MICHEL
LEFEBVRE LEROY ROUX DAVID BERTRAND MOREL FOURNIER GIRARD BONNET DUPONT LAMBERT FONTAINE
ROUSSEAU VINCENT MULLER:al LEFÈVRE FAURE ANDRÉ MERCIER BLANC GUÉRIN BOYER GARNIER CHEVALIER
FRANÇOIS LEGRAND GAUTHIER GARCIA:es PERRIN ROBIN CLÉMENT MORIN NICOLAS HENRY ROUSSEL MATHIEU
GAUTIER MASSON MARCHAND DUVAL DENIS DUMONT MARIE LEMAIRE NOËL MEYER:al DUFOUR MEUNIER BRUN
BLANCHARD GIRAUD JOLY RIVIÈRE LUCAS BRUNET GAILLARD BARBIER ARNAUD MARTINEZ:es GÉRARD ROCHE
RENARD SCHMITT:al ROY LEROUX COLIN VIDAL CARON PICARD ROGER FABRE AUBERT LEMOINE RENAUD DUMAS
LACROIX OLIVIER PHILIPPE BOURGEOIS PIERRE BENOÎT REY LECLERC PAYET ROLLAND LECLERCQ GUILLAUME
LECOMTE LOPEZ:es JEAN DUPUY GUILLOT HUBERT BERGER CARPENTIER SANCHEZ:es DUPUIS MOULIN LOUIS
DESCHAMPS HUET VASSEUR PEREZ:es BOUCHER FLEURY ROYER KLEIN:al JACQUET ADAM PARIS POIRIER MARTY
AUBRY GUYOT CARRÉ CHARLES RENAULT CHARPENTIER MÉNARD MAILLARD BARON BERTIN BAILLY HERVÉ
SCHNEIDER:al FERNANDEZ:es LE_GALL:br COLLET LÉGER BOUVIER JULIEN PRÉVOST MILLET PERROT DANIEL
LE_ROUX:br COUSIN GERMAIN BRETON BESSON LANGLOIS RÉMY LE_GOFF:br PELLETIER LÉVÊQUE PERRIER
LEBLANC BARRÉ LEBRUN MARCHAL WEBER:al MALLET HAMON BOULANGER JACOB MONNIER MICHAUD
RODRIGUEZ:es GUICHARD GILLET ÉTIENNE GRONDIN POULAIN TESSIER CHEVALLIER COLLIN CHAUVIN
DA_SILVA:pt BOUCHET GAY LEMAÎTRE BÉNARD MARÉCHAL HUMBERT REYNAUD ANTOINE HOARAU PERRET
BARTHÉLEMY CORDIER PICHON LEJEUNE GILBERT LAMY DELAUNAY PASQUIER CARLIER LAPORTE
DOS_SANTOS:pt FERREIRA:pt PEREIRA:pt RODRIGUES:pt FERNANDES:pt GONÇALVES:pt OLIVEIRA:pt
BONNEAU GUILLON BOUTET AIRAULT BOUTIN THIBAULT PAIRAULT BILLAUD GIRAULT MARTINEAU BARRAULT
PROUST FOUCAULT MOINEAU BONNIN MÉTAIS RIGAULT CHAIGNEAU BRUNETEAU RAGOT GUILLEMET PINEAU
BRANCHU MORISSET TEXIER AUDEBERT BERTHONNEAU CHARRIER RAYNAUD GUIGNARD
BENALI:mg HADDAD:mg BOUZID:mg BELKACEM:mg BRAHIMI:mg MANSOURI:mg CHERIF:mg SAIDI:mg
MEZIANE:mg KACI:mg HAMIDI:mg EL_AMRANI:mg BEN_SALAH:mg AÏT_ALI:mg EL_IDRISSI:mg BOUAZZA:mg
N'DIAYE:af DIALLO:af TRAORÉ:af KONÉ:af SOW:af DIOP:af CISSÉ:af CAMARA:af KEITA:af
COULIBALY:af FOFANA:af N'GUESSAN:af
LE_BRIS:br LE_CORRE:br KERGOAT:br LE_BIHAN:br GUILLOU:br TANGUY:br LE_MOAL:br QUÉRÉ:br
LE_FLOCH:br MORVAN:br CLOAREC:br
FISCHER:al WAGNER:al BECKER:al HOFFMANN:al KELLER:al ZIMMERMANN:al KOENIG:al SCHAEFFER:al
HUBER:al BAUER:al
GONZALEZ:es ROSSI:it RUSSO:it BIANCHI:it ESPOSITO:it FERRARI:it ROMANO:it
NGUYEN:vn TRAN:vn LE:vn PHAM:vn YILMAZ:tr KAYA:tr DEMIR:tr
DA_COSTA:pt TEIXEIRA:pt MARTINS:pt LOPES:pt CARVALHO:pt SOUSA:pt ALVES:pt RIBEIRO:pt
D'ALMEIDA:pt DE_SOUSA:pt DE_OLIVEIRA:pt
DE_LA_FONTAINE DE_BEAUMONT DES_ROCHES DE_LA_ROCHE D'ARGENTON DU_PLESSIS LE_BRUN LE_BLANC
SAINT-MARTIN SAINT-JEAN DE_SAINT-JUST
"""

FAMILY_NAMES: tuple[tuple[str, str], ...] = tuple(
    (word.partition(":")[0].replace("_", " "), word.partition(":")[2] or "fr")
    for word in _RANKED.split()
)

# The long tail: Poitevin, Charentais and western surnames made of a stem, an ending and
# sometimes a middle syllable (BOUT-EAU, BOUT-ER-EAU).
TAIL_STEMS = (
    "BOUT", "CHAIGN", "BRUN", "GIR", "MART", "RAG", "THIB", "BILL", "PAIR", "BARR", "MOIN",
    "GUILL", "PIN", "BOIS", "CHAB", "COUL", "FOUR", "GAB", "JAN", "MAR", "PAP", "RIV", "ROUL",
    "TOUR", "VERD", "BAUD", "CHAR", "DEL", "GAL", "GRAN", "LAB", "MESN", "NAUD", "POUG",
    "RENOU", "SAB", "TALL", "VALL", "BEAUV", "CHEV", "CORN", "DROU", "FERR", "GODIN", "HERB",
)  # fmt: skip
TAIL_MIDDLES = ("ER", "EL", "ON", "AR", "ET", "ILL")  # with the short endings only
TAIL_SHORT_ENDINGS = ("EAU", "ET", "IN", "AUD", "AULT", "IER", "OT", "AUX", "ARD")
TAIL_ENDINGS = (
    "EAU", "ET", "IN", "AUD", "AULT", "ON", "IER", "ARD", "OT", "ELET", "ONNEAU", "INEAU",
    "ILLON", "AUDIN", "ERON", "ONNET", "AUX", "ÉRAT",
)  # fmt: skip

_F, _M = "F", "M"
# Given names by sex and birth decade, most popular first.
GIVEN_NAMES: dict[tuple[str, int], tuple[str, ...]] = {
    (_F, 1920): ("Marie", "Jeanne", "Marguerite", "Germaine", "Louise", "Yvonne", "Madeleine",
                 "Suzanne", "Marcelle", "Simone", "Paulette", "Denise", "Odette", "Andrée",
                 "Lucienne", "Renée", "Raymonde", "Marie-Louise", "Georgette", "Henriette"),
    (_F, 1930): ("Jacqueline", "Monique", "Simone", "Denise", "Colette", "Paulette", "Marie",
                 "Huguette", "Odette", "Geneviève", "Yvette", "Marie-Thérèse", "Solange",
                 "Gisèle", "Raymonde", "Jeannine", "Micheline", "Claude", "Lucette"),
    (_F, 1940): ("Monique", "Jacqueline", "Nicole", "Michèle", "Françoise", "Danielle",
                 "Christiane", "Annie", "Marie-Thérèse", "Josiane", "Janine", "Arlette",
                 "Bernadette", "Claudine", "Éliane", "Marie-Claude", "Ginette", "Claude"),
    (_F, 1950): ("Martine", "Françoise", "Catherine", "Christine", "Brigitte", "Chantal",
                 "Sylvie", "Nicole", "Annie", "Marie-Christine", "Évelyne", "Dominique",
                 "Joëlle", "Patricia", "Marie-France", "Jocelyne", "Élisabeth", "Maryse"),
    (_F, 1960): ("Isabelle", "Nathalie", "Sylvie", "Catherine", "Christine", "Véronique",
                 "Valérie", "Sandrine", "Patricia", "Corinne", "Pascale", "Laurence",
                 "Florence", "Marie-Pierre", "Béatrice", "Fabienne", "Hélène", "Dominique"),
    (_F, 1970): ("Nathalie", "Stéphanie", "Céline", "Sandrine", "Valérie", "Karine", "Sophie",
                 "Virginie", "Aurélie", "Émilie", "Séverine", "Delphine", "Caroline",
                 "Laetitia", "Audrey", "Christelle", "Anne-Sophie", "Élodie", "Marie-Laure"),
    (_F, 1980): ("Julie", "Aurélie", "Émilie", "Élodie", "Audrey", "Mélanie", "Sarah",
                 "Camille", "Laura", "Marion", "Amandine", "Céline", "Anaïs", "Jessica",
                 "Pauline", "Marine", "Claire", "Anne-Sophie", "Charlotte", "Hélène"),
    (_F, 1990): ("Laura", "Manon", "Camille", "Marine", "Pauline", "Léa", "Sarah", "Océane",
                 "Justine", "Julie", "Mathilde", "Chloé", "Marion", "Clara", "Morgane",
                 "Anaïs", "Inès", "Lucie", "Marie", "Émilie"),
    (_F, 2000): ("Léa", "Manon", "Emma", "Chloé", "Camille", "Clara", "Inès", "Sarah",
                 "Océane", "Lucie", "Jade", "Lilou", "Zoé", "Maëlys", "Lola", "Mathilde",
                 "Louise", "Juliette", "Eva", "Lina", "Anaïs"),
    (_F, 2010): ("Emma", "Jade", "Louise", "Alice", "Chloé", "Lina", "Léa", "Rose", "Anna",
                 "Mila", "Inès", "Ambre", "Julia", "Léna", "Zoé", "Lou", "Manon", "Juliette",
                 "Maëlys", "Camille", "Agathe", "Romane", "Margaux"),
    (_F, 2020): ("Jade", "Louise", "Emma", "Ambre", "Alba", "Alice", "Rose", "Anna", "Romy",
                 "Mia", "Lina", "Léna", "Iris", "Mila", "Lou", "Inaya", "Julia", "Héloïse",
                 "Margaux", "Chloé"),
    (_M, 1920): ("Jean", "André", "Pierre", "René", "Marcel", "Roger", "Louis", "Georges",
                 "Henri", "Maurice", "Robert", "Raymond", "Paul", "Lucien", "Fernand",
                 "Albert", "Joseph", "Émile", "Gaston", "Léon"),
    (_M, 1930): ("Jean", "Jacques", "André", "Pierre", "Michel", "Claude", "Roger", "René",
                 "Robert", "Marcel", "Bernard", "Roland", "Gilbert", "Guy", "Raymond",
                 "Jean-Marie", "Gérard", "Georges"),
    (_M, 1940): ("Jean", "Michel", "Bernard", "Claude", "Jacques", "Pierre", "Gérard",
                 "Daniel", "Alain", "Jean-Claude", "Jean-Pierre", "Christian", "André",
                 "Guy", "Serge", "Yves", "Jean-Marie", "Jean-Louis", "Dominique"),
    (_M, 1950): ("Jean-Pierre", "Michel", "Alain", "Patrick", "Philippe", "Bernard", "Daniel",
                 "Gérard", "Christian", "Jean-Claude", "Dominique", "Jean-Luc", "Didier",
                 "Gilles", "Serge", "Jean-Paul", "Francis", "Marc", "Jean-François", "Joël"),
    (_M, 1960): ("Philippe", "Pascal", "Patrick", "Thierry", "Éric", "Christophe", "Laurent",
                 "Frédéric", "Didier", "Bruno", "Olivier", "Stéphane", "Dominique",
                 "Jean-Marc", "Hervé", "Franck", "Lionel", "Denis", "François"),
    (_M, 1970): ("Christophe", "Stéphane", "Sébastien", "David", "Frédéric", "Nicolas",
                 "Laurent", "Olivier", "Cédric", "Jérôme", "Julien", "Éric", "Arnaud",
                 "Fabrice", "Ludovic", "Grégory", "Vincent", "Yannick", "Mickaël", "Loïc"),
    (_M, 1980): ("Nicolas", "Julien", "Sébastien", "Guillaume", "Jérémy", "Romain",
                 "Anthony", "Mickaël", "Kevin", "Thomas", "Alexandre", "Maxime", "Benjamin",
                 "Jonathan", "Florian", "Damien", "Mathieu", "Loïc", "Adrien", "Yoann"),
    (_M, 1990): ("Thomas", "Kevin", "Nicolas", "Alexandre", "Quentin", "Maxime", "Julien",
                 "Antoine", "Romain", "Clément", "Florian", "Lucas", "Hugo", "Valentin",
                 "Dylan", "Théo", "Benjamin", "Pierre", "Alexis", "Jordan", "Camille"),
    (_M, 2000): ("Lucas", "Thomas", "Hugo", "Théo", "Enzo", "Maxime", "Clément", "Nathan",
                 "Mathis", "Louis", "Antoine", "Alexandre", "Tom", "Baptiste", "Quentin",
                 "Paul", "Noah", "Axel", "Léo", "Raphaël", "Yanis"),
    (_M, 2010): ("Gabriel", "Louis", "Raphaël", "Jules", "Adam", "Lucas", "Léo", "Hugo",
                 "Arthur", "Nathan", "Liam", "Éthan", "Paul", "Nolan", "Sacha", "Noah", "Tom",
                 "Aaron", "Noé", "Timéo", "Gabin", "Maël", "Théo"),
    (_M, 2020): ("Gabriel", "Léo", "Raphaël", "Maël", "Louis", "Noah", "Jules", "Arthur",
                 "Adam", "Lucas", "Isaac", "Sacha", "Gabin", "Eden", "Hugo", "Liam", "Naël",
                 "Noé", "Aylan", "Léon", "Marius"),
}  # fmt: skip

# Given names of families of other origins (drawn for part of their members).
ORIGIN_GIVEN_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pt", _F): ("Maria", "Ana", "Fernanda", "Rosa", "Sandra", "Carla", "Sofia", "Inês"),
    ("pt", _M): ("Manuel", "José", "Joaquim", "António", "Carlos", "Paulo", "Rui", "Tiago"),
    ("mg", _F): ("Fatima", "Nadia", "Samia", "Yasmina", "Leïla", "Myriam", "Amina", "Sonia"),
    ("mg", _M): ("Mohamed", "Karim", "Yacine", "Sofiane", "Rachid", "Samir", "Mehdi", "Bilal"),
    ("af", _F): ("Aminata", "Fatoumata", "Awa", "Mariama", "Aïssatou", "Kadiatou", "Binta"),
    ("af", _M): ("Mamadou", "Moussa", "Ibrahima", "Ousmane", "Abdoulaye", "Seydou", "Issa"),
    ("vn", _F): ("Thi Lan", "Mai", "Linh", "Hoa", "Thu"),
    ("vn", _M): ("Van Minh", "Minh", "Duc", "Thanh", "Quang"),
    ("tr", _F): ("Ayşe", "Elif", "Zeynep", "Fatma", "Emine"),
    ("tr", _M): ("Mehmet", "Mustafa", "Ahmet", "Emre", "Yusuf"),
}

# Second and later given names: grandparents' names and the traditional ones.
MIDDLE_NAMES: dict[str, tuple[str, ...]] = {
    _F: ("Marie", "Anne", "Jeanne", "Louise", "Françoise", "Thérèse", "Madeleine",
         "Catherine", "Hélène", "Claire", "Élisabeth", "Geneviève", "Marguerite", "Rose"),
    _M: ("Jean", "Pierre", "Louis", "Joseph", "Marie", "Paul", "André", "François",
         "Henri", "Jacques", "Michel", "René", "Georges", "Charles"),
}  # fmt: skip


def strip_accents(text: str) -> str:
    """`text` without diacritics, as legacy hospital systems and the INS traits store it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_bare: dict[str, str] = {}


def bare(text: str) -> str:
    """`strip_accents`, remembered: the same few thousand names come back all the time."""
    found = _bare.get(text)
    if found is None:
        found = _bare[text] = strip_accents(text)
    return found


def _accented() -> dict[str, str]:
    """The accented spelling of each given name, by its bare form ("Helene" -> "Hélène")."""
    names = {n for pool in GIVEN_NAMES.values() for n in pool}
    names |= {n for pool in MIDDLE_NAMES.values() for n in pool}
    return {strip_accents(n): n for n in names if strip_accents(n) != n}


ACCENTED_GIVEN_NAMES = _accented()

# Birth places outside the Vienne: (INSEE code, weight). Neighbouring departments weigh
# most; Paris, Lyon and Marseille births are coded by arrondissement.
OTHER_BIRTH_PLACES: tuple[tuple[str, int], ...] = (
    ("79191", 30), ("37261", 30), ("87085", 25), ("16015", 20), ("17300", 15), ("79049", 8),
    ("79329", 6), ("79202", 6), ("17415", 5), ("17299", 5), ("36044", 8), ("49007", 8),
    ("49099", 5), ("33063", 15), ("44109", 10), ("75114", 12), ("75115", 10), ("75112", 8),
    ("75113", 8), ("69383", 5), ("13205", 4), ("31555", 5), ("59350", 4), ("35238", 4),
    ("45234", 4), ("67482", 3), ("68224", 2), ("57463", 2), ("29019", 3), ("29232", 2),
    ("06088", 2), ("34172", 2), ("63113", 3), ("72181", 3), ("14118", 2), ("76540", 2),
    ("51454", 2), ("21231", 2), ("38185", 2), ("42218", 2), ("2A004", 1), ("2B033", 1),
    ("97411", 3), ("97209", 2), ("97120", 2),
)  # fmt: skip

# Countries of birth (INSEE 99xxx codes), overall and for families of a given origin.
BIRTH_COUNTRIES: tuple[str, ...] = (
    "99350", "99352", "99351", "99139", "99134", "99127", "99132", "99109", "99131", "99140",
    "99341", "99335", "99326", "99322", "99333", "99208", "99243", "99114", "99122", "99216",
    "99206", "99212",
)  # fmt: skip
ORIGIN_COUNTRIES: dict[str, tuple[str, ...]] = {
    "pt": ("99139",),
    "es": ("99134",),
    "it": ("99127",),
    "mg": ("99350", "99352", "99351"),
    "af": ("99341", "99335", "99326", "99322"),
    "vn": ("99243",),
    "tr": ("99208",),
    "al": ("99109",),
}

# Keys of a French (AZERTY) keyboard, row by row, with each row's horizontal offset.
_AZERTY = (("AZERTYUIOP", 0.0), ("QSDFGHJKLM", 0.25), ("WXCVBN", 0.75))


def _neighbours() -> dict[str, str]:
    """For each letter, the keys around it: what a slipping finger types instead."""
    position = {
        key: (row, column + offset)
        for row, (keys, offset) in enumerate(_AZERTY)
        for column, key in enumerate(keys)
    }
    return {
        key: "".join(
            other
            for other, (row2, x2) in position.items()
            if other != key and abs(row2 - row) <= 1 and abs(x2 - x) <= 1.0
        )
        for key, (row, x) in position.items()
    }


KEYBOARD_NEIGHBOURS = _neighbours()

# Spellings French speakers confuse because they sound alike (each rule applies both ways
# where listed twice): the Poitevin -AULT/-AUD/-EAU endings, doubled consonants, PH/F...
PHONETIC_SWAPS: tuple[tuple[str, str], ...] = (
    ("AULT", "AUD"), ("AUD", "AULT"), ("AULT", "AUT"), ("EAU", "AUD"), ("NN", "N"),
    ("LL", "L"), ("TT", "T"), ("SS", "S"), ("RR", "R"), ("PH", "F"), ("TH", "T"), ("Y", "I"),
    ("AI", "E"), ("EI", "AI"), ("CQ", "C"), ("K", "C"), ("QU", "C"), ("IE", "Y"),
    ("MICKAEL", "MICHAEL"), ("ANN", "AN"), ("ER", "EZ"), ("Z", "S"),
)  # fmt: skip


# --- how names get written otherwise ------------------------------------------------------

_PARTICLES = {"DE", "DES", "DU", "LA", "LE", "LES", "AU", "AUX", "ET", "SUR", "SOUS"}


def mixed_case(text: str) -> str:
    """Upper-case street or place words in mixed case: "DE LA RÉPUBLIQUE" -> "de la
    République", "L'ÉGLISE" -> "l'Église", "SAINT-NICOLAS" -> "Saint-Nicolas"."""
    words = []
    for word in text.split(" "):
        if word in _PARTICLES:
            words.append(word.lower())
        elif word[:2] in ("L'", "D'"):
            words.append(word[:2].lower() + word[2:].capitalize())
        else:
            words.append("-".join(part.capitalize() for part in word.split("-")))
    return " ".join(words)


def short_city(name: str) -> str:
    """A commune as terse software writes it: "Saint-Benoît" -> "ST BENOIT"."""
    upper = bare(name).upper().replace("SAINT-", "ST ")
    return upper.replace("-", " ").replace("'", " ")


def name_variant(rng: random.Random, name: str) -> str:
    """The upper-case family name with its particle, apostrophe or hyphen written another
    way: LE GALL -> LEGALL or GALL, D'ALMEIDA -> D ALMEIDA or DALMEIDA, MARTIN-DUPONT ->
    MARTIN DUPONT or MARTIN; unchanged when it has none."""
    if "'" in name:
        head, _, tail = name.partition("'")
        forms = [f"{head} {tail}", head + tail, f"{head}\u2019{tail}"]
    elif "SAINT-" in name:
        forms = [name.replace("SAINT-", saint, 1) for saint in ("ST ", "SAINT ", "ST-")]
    elif "-" in name:
        head, _, tail = name.partition("-")
        forms = [f"{head} {tail}", head + tail, head]
    elif " " in name:
        words = name.split(" ")
        forms = ["".join(words), "".join(words), words[-1], f"{words[0]} {''.join(words[1:])}"]
    else:
        return name
    return rng.choice(forms)


def typo(rng: random.Random, text: str) -> str:
    """`text` with one keystroke wrong: a neighbouring key, a letter dropped, doubled or
    inserted, or two letters swapped. Unchanged if it has fewer than two letters."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 2:
        return text
    i = rng.choice(letters)
    c, kind = text[i], rng.random()
    near = KEYBOARD_NEIGHBOURS.get(bare(c).upper(), "")
    key = rng.choice(near) if near else c
    key = key if c.isupper() else key.lower()
    if kind < 0.35 and key != c:
        return text[:i] + key + text[i + 1 :]
    if kind < 0.6:
        return text[:i] + text[i + 1 :]
    if kind < 0.8:
        return text[:i] + (c if kind < 0.7 else key) + text[i:]
    j = i + 1 if i + 1 < len(text) and text[i + 1].isalpha() else i - 1
    a, b = min(i, j), max(i, j)
    if text[a] == text[b] or not text[a].isalpha():
        return text[:i] + text[i + 1 :]
    return text[:a] + text[b] + text[a] + text[b + 1 :]


def phonetic_variant(rng: random.Random, text: str) -> str:
    """`text` spelt as it sounds, one `PHONETIC_SWAPS` rule applied (unchanged if none fits)."""
    upper = text.upper()
    rules = [(a, b) for a, b in PHONETIC_SWAPS if a in upper]
    if not rules or len(upper) != len(text):
        return text
    a, b = rng.choice(rules)
    i = upper.index(a)
    return text[:i] + (b if text[i : i + len(a)].isupper() else b.lower()) + text[i + len(a) :]
