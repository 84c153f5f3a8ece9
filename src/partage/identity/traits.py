"""What an establishment tells us about a patient: the traits of one local identity.

The strict traits (birth family name, birth given names, birth date, sex, birth place) are
the ones identity-vigilance rules require; the others help matching. Values are kept as the
establishment sent them; normalisation for matching happens in `normalize`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class IdentityStatus(StrEnum):
    """The French national identity-vigilance statuses (RNIV)."""

    provisional = "PROV"  # not checked against an identity document
    recovered = "RECUP"  # INS retrieved from the INSi service, identity not checked
    validated = "VALI"  # checked against an identity document, INS not retrieved
    qualified = "QUAL"  # checked AND INS retrieved: the INS may be used and shared


class Sex(StrEnum):
    male = "M"
    female = "F"
    unknown = "U"


@dataclass(frozen=True, slots=True)
class IdentityTraits:
    birth_family_name: str
    given_names: tuple[str, ...]  # the birth given names, in order; the first is the usual one
    sex: Sex
    birth_date: date | None
    used_family_name: str = ""
    birth_place_code: str = ""  # INSEE code of the commune (99xxx: born abroad, by country)
    address: str = ""
    postal_code: str = ""
    city: str = ""
    phone: str = ""
    ins: str = ""  # NIR or NIA: 13 characters and the 2-digit key

    @property
    def first_given_name(self) -> str:
        return self.given_names[0] if self.given_names else ""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One local identity as an establishment (its domain) knows it."""

    source: str  # the establishment's code (its identification domain)
    local_id: str  # the establishment's patient id (IPP)
    traits: IdentityTraits
    status: IdentityStatus = IdentityStatus.provisional

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.local_id)

    @property
    def ins_qualified(self) -> bool:
        return self.status is IdentityStatus.qualified and bool(self.traits.ins)
