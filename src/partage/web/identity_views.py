"""The identity-vigilance console's common pieces: identities as its pages show them.

Reads only: the console's actions go through `partage.identity.operations`. Every value a
page shows is built in the reader's language (labels of statuses, methods, agreement
levels; dates; numbers), here and in the section modules beside this one
(`identity_review_views`, `identity_score_views`, `identity_history_views`,
`identity_search_views`, `identity_dashboard_views`); the templates only lay them out.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from babel.dates import format_date
from babel.numbers import format_decimal
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from partage.identity.ins import InvalidIns, format_ins
from partage.identity.models import LocalIdentity
from partage.identity.store import ATTRIBUTES
from partage.identity.traits import IdentityStatus
from partage.security.models import Establishment
from partage.security.service import establishments_by_id
from partage.web.directory_views import date_time
from partage.web.i18n import N_, gettext

CONSOLE = "/identitovigilance"
HISTORY_LIMIT = 200

# --- labels (msgids in English; French in the catalogue) ---------------------------------

STATUS_LABELS: dict[str, str] = {
    IdentityStatus.provisional: N_("Provisional identity"),
    IdentityStatus.recovered: N_("Recovered identity (INS retrieved, not checked)"),
    IdentityStatus.validated: N_("Validated identity (checked, no INS)"),
    IdentityStatus.qualified: N_("Qualified identity"),
}
ATTRIBUTE_LABELS: dict[str, str] = {
    "doubtful": N_("Doubtful identity"),
    "fictitious": N_("Fictitious identity"),
    "homonym": N_("Homonym"),
    "usurped": N_("Usurped identity"),
}
SEX_LABELS = {"M": N_("Male"), "F": N_("Female"), "U": N_("Unknown")}

# --- the domain's refusals in the reader's language -----------------------------------------

_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message)
    for pattern, message in (
        (r"^a reason is required$", N_("Give the reason: it is required and kept in the history.")),
        (
            r"^no such open review$",
            N_("This potential duplicate has already been dealt with. Reload the page."),
        ),
        (r"^no such local identity$", N_("This identity does not exist.")),
        (
            r"^no such active person$",
            N_("No active person has this identifier (unknown, or already merged into another)."),
        ),
        (r"^a person cannot be merged into itself$", N_("A person cannot be merged with itself.")),
        (
            r"^an identity is not a duplicate of itself$",
            N_("An identity is not a duplicate of itself."),
        ),
        (
            r"^these identities are linked: unmerge one of them first$",
            N_(
                "These two identities belong to the same person: undo the link of one of "
                "them first (on the person's page)."
            ),
        ),
        (
            r"^this identity was merged into another id of its domain$",
            N_("This identity was merged by its establishment into another of its ids (A40)."),
        ),
        (
            r"^this identity is alone in its person: there is nothing to undo$",
            N_("This identity is alone in its person: there is no link to undo."),
        ),
        (
            r"^the status (?P<value>\w+) needs an INS: attach it first$",
            N_("The status %(value)s needs an INS: attach the INS first."),
        ),
        (r"^unknown identity attributes", N_("Unknown identity attribute.")),
        (r"^invalid INS: the INS is empty$", N_("Enter the INS.")),
        (
            r"^invalid INS: an INS has 15 characters \(13 and a 2-digit key\), not (?P<value>\d+)$",
            N_("An INS has 15 characters (13 and a 2-digit key), not %(value)s."),
        ),
        (
            r"^invalid INS: key (?P<key>\d+) does not match the number "
            r"\(expected (?P<value>\d+)\)$",
            N_("The key %(key)s does not match the number (expected %(value)s): check the INS."),
        ),
        (
            r"^invalid INS: first digit [78]",
            N_("This is a provisional number of a health insurance fund, not an INS."),
        ),
        (r"^invalid INS: first digit", N_("The first digit of an INS is 1 or 2.")),
        (
            r"^invalid INS: birth month (?P<value>\d+) is impossible",
            N_("The birth month %(value)s of this INS is impossible."),
        ),
        (
            r"^invalid INS: character",
            N_("An INS has digits only (2A or 2B for a birth in Corsica)."),
        ),
        (r"^invalid INS", N_("This INS is not valid: check it.")),
    )
)


def explain(locale: str, problem: Exception) -> str:
    """An `IdentityError` as a sentence in the reader's language (as written if unknown)."""
    text = str(problem)
    for pattern, message in _PROBLEMS:
        match = pattern.match(text)
        if match:
            return gettext(locale, message) % match.groupdict()
    return text


# --- small pieces ---------------------------------------------------------------------------


def birth_date(value: date | None, locale: str) -> str:
    """Day/month/year in French (a swapped day and month must show); ISO in English."""
    if value is None:
        return ""
    return format_date(value, "dd/MM/yyyy" if locale == "fr" else "yyyy-MM-dd", locale=locale)


def number(value: float, locale: str, *, signed: bool = False) -> str:
    pattern = "+#,##0.0;-#,##0.0" if signed else "#,##0.##"
    return format_decimal(value, pattern, locale=locale)


def percent(value: float, locale: str) -> str:
    sign = "\u202f%" if locale == "fr" else "%"
    if value >= 0.9995:
        return "> " + format_decimal(99.9, "#,##0.0", locale=locale) + sign
    return format_decimal(value * 100, "#,##0.0", locale=locale) + sign


def shown_ins(ins: str) -> str:
    if not ins:
        return ""
    try:
        return format_ins(ins)
    except InvalidIns:
        return ins


def author_label(author: str) -> str:
    """ "account:jdupont" → "jdupont"; systems keep their kind ("system:hl7")."""
    kind, _, label = author.partition(":")
    return label if kind == "account" and label else author


def person_href(person_id: uuid.UUID) -> str:
    return f"{CONSOLE}/personnes/{person_id}"


def identity_href(identity_id: uuid.UUID) -> str:
    return f"{CONSOLE}/identites/{identity_id}"


def review_href(review_id: uuid.UUID) -> str:
    return f"{CONSOLE}/doublons/{review_id}"


# --- identities as pages show them ----------------------------------------------------------


@dataclass(frozen=True)
class IdentityView:
    id: uuid.UUID
    establishment: str
    establishment_code: str
    local_id: str
    birth_family_name: str
    used_family_name: str
    given_names: str
    sex: str
    sex_label: str
    birth_date: str
    birth_place: str
    address: str
    phone: str
    ins: str
    ins_oid: str
    status: str
    status_label: str
    attributes: list[str]
    active: bool
    replaced_by: uuid.UUID | None
    person_id: uuid.UUID
    person_identities: int
    origin_person_id: uuid.UUID
    version: int
    created: str | None
    updated: str | None

    @property
    def href(self) -> str:
        return identity_href(self.id)

    @property
    def person_href(self) -> str:
        return person_href(self.person_id)

    @property
    def name(self) -> str:
        """ "MARTIN (DURAND) Marie Louise": birth name, used name, given names."""
        used = f" ({self.used_family_name})" if self.used_family_name else ""
        return f"{self.birth_family_name}{used} {self.given_names}".strip()

    @property
    def domain(self) -> str:
        return f"{self.establishment} · {self.local_id}"


def identity_counts(session: Session, person_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many active identities each of these persons has."""
    wanted = set(person_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(LocalIdentity.person_id, func.count())
        .where(LocalIdentity.person_id.in_(wanted), LocalIdentity.active)
        .group_by(LocalIdentity.person_id)
    )
    return {person_id: int(count) for person_id, count in rows}


def identity_views(
    session: Session, rows: Sequence[LocalIdentity], locale: str
) -> list[IdentityView]:
    establishments = establishments_by_id(session, (r.establishment_id for r in rows))
    counts = identity_counts(session, (r.person_id for r in rows))
    return [identity_view(r, establishments, counts, locale) for r in rows]


def identity_view(
    row: LocalIdentity,
    establishments: Mapping[uuid.UUID, Establishment],
    counts: Mapping[uuid.UUID, int],
    locale: str,
) -> IdentityView:
    def t(message: str) -> str:
        return gettext(locale, message)

    establishment = establishments.get(row.establishment_id)
    town = " ".join(part for part in (row.postal_code, row.city) if part)
    return IdentityView(
        id=row.id,
        establishment=establishment.name if establishment else "",
        establishment_code=establishment.code if establishment else "",
        local_id=row.local_id,
        birth_family_name=row.birth_family_name,
        used_family_name=row.used_family_name,
        given_names=row.given_names,
        sex=row.sex,
        sex_label=t(SEX_LABELS.get(row.sex, row.sex)),
        birth_date=birth_date(row.birth_date, locale),
        birth_place=row.birth_place_code,
        address=", ".join(part for part in (row.address, town) if part),
        phone=row.phone,
        ins=shown_ins(row.ins),
        ins_oid=row.ins_oid,
        status=row.status,
        status_label=t(STATUS_LABELS.get(row.status, row.status)),
        attributes=[t(ATTRIBUTE_LABELS[name]) for name in ATTRIBUTES if getattr(row, name)],
        active=row.active,
        replaced_by=row.replaced_by_id,
        person_id=row.person_id,
        person_identities=counts.get(row.person_id, 0),
        origin_person_id=row.origin_person_id,
        version=row.version,
        created=date_time(row.created_at, locale),
        updated=date_time(row.updated_at, locale),
    )


def labels_of(session: Session, identity_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """ "Establishment · IPP" of these identities (history rows name identities so)."""
    wanted = set(identity_ids)
    if not wanted:
        return {}
    rows = list(session.scalars(select(LocalIdentity).where(LocalIdentity.id.in_(wanted))))
    establishments = establishments_by_id(session, (r.establishment_id for r in rows))
    labels = {}
    for row in rows:
        establishment = establishments.get(row.establishment_id)
        labels[row.id] = f"{establishment.name if establishment else '?'} · {row.local_id}"
    return labels
