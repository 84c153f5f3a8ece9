"""The console's search of local identities: by name, given name, birth date, IPP or INS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from partage.identity.ins import normalize_ins
from partage.identity.models import LocalIdentity
from partage.identity.normalize import fold
from partage.web.i18n import N_
from partage.web.identity_views import IdentityView, identity_views

SEARCH_LIMIT = 50


_DATE_FORMS = (
    re.compile(r"^(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})$"),
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
)


def parse_birth_date(text: str) -> date | None:
    """17/04/1968, 17.04.1968 or 1968-04-17; None if it is not a date."""
    for form in _DATE_FORMS:
        match = form.match(text.strip())
        if match:
            try:
                return date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class SearchCriteria:
    name: str = ""
    given: str = ""
    born: str = ""
    ipp: str = ""
    ins: str = ""

    @property
    def is_empty(self) -> bool:
        return not any((self.name, self.given, self.born, self.ipp, self.ins))

    def used(self) -> list[str]:
        """Which criteria were given (for the audit trail: kinds, never values)."""
        return [key for key, value in vars(self).items() if value]


class InvalidCriteria(ValueError):
    """A criterion the search cannot use; the message is a msgid."""


def search_identities(
    session: Session, criteria: SearchCriteria, locale: str
) -> tuple[list[IdentityView], bool]:
    """Matching identities, in name order, at most SEARCH_LIMIT; True if there were more."""
    conditions = []
    if criteria.name:
        folded = fold(criteria.name)[:100]
        if not folded:
            raise InvalidCriteria(N_("The name must contain letters."))
        conditions.append(
            or_(
                LocalIdentity.family_folded.startswith(folded),
                LocalIdentity.used_folded.startswith(folded),
            )
        )
    if criteria.given:
        folded = fold(criteria.given)[:100]
        if not folded:
            raise InvalidCriteria(N_("The given name must contain letters."))
        conditions.append(
            or_(
                LocalIdentity.given_folded.startswith(folded),
                LocalIdentity.given_folded.contains(" " + folded),
            )
        )
    if criteria.born:
        born = parse_birth_date(criteria.born)
        if born is None:
            raise InvalidCriteria(N_("Enter the birth date as DD/MM/YYYY."))
        conditions.append(LocalIdentity.birth_date == born)
    if criteria.ipp:
        conditions.append(LocalIdentity.local_id == criteria.ipp.strip()[:64])
    if criteria.ins:
        conditions.append(LocalIdentity.ins == normalize_ins(criteria.ins)[:15])
    if not conditions:
        return [], False
    rows = list(
        session.scalars(
            select(LocalIdentity)
            .where(*conditions)
            .order_by(
                LocalIdentity.family_folded,
                LocalIdentity.given_folded,
                LocalIdentity.birth_date,
                LocalIdentity.id,
            )
            .limit(SEARCH_LIMIT + 1)
        )
    )
    return identity_views(session, rows[:SEARCH_LIMIT], locale), len(rows) > SEARCH_LIMIT
