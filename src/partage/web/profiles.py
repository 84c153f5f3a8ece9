"""What each profile sees on the home page, and the names of profiles and establishment kinds.

A tile without a link is a feature still to come: the page says so plainly instead of
showing empty or invented data.
"""

from __future__ import annotations

from dataclasses import dataclass

from partage.security.models import EstablishmentKind, Profile
from partage.web.i18n import N_

PROFILE_LABELS: dict[Profile, str] = {
    Profile.hospital_physician: N_("Hospital physician"),
    Profile.city_physician: N_("City physician"),
    Profile.pharmacist: N_("Pharmacist"),
    Profile.nurse: N_("Nurse"),
    Profile.patient: N_("Patient"),
    Profile.identity_vigilance: N_("Identity-vigilance officer"),
    Profile.establishment_admin: N_("Establishment administrator"),
    Profile.territory_admin: N_("Territory administrator"),
}

ESTABLISHMENT_KIND_LABELS: dict[EstablishmentKind, str] = {
    EstablishmentKind.university_hospital: N_("University hospital"),
    EstablishmentKind.hospital: N_("Hospital"),
    EstablishmentKind.clinic: N_("Clinic"),
    EstablishmentKind.city_practice: N_("City practice"),
    EstablishmentKind.pharmacy: N_("Pharmacy"),
    EstablishmentKind.nursing_practice: N_("Nursing practice"),
}


@dataclass(frozen=True)
class Tile:
    title: str
    description: str
    href: str | None = None  # None: not available yet

    @property
    def coming_soon(self) -> bool:
        return self.href is None


_SHARED_RECORD = Tile(
    N_("Shared record"),
    N_("Find a patient and read their documents from every establishment of the territory."),
    "/dossier",
)
_IMAGING = Tile(N_("Imaging"), N_("Viewing imaging studies is coming soon."))
_MESSAGES = Tile(
    N_("Secure messages"),
    N_("Secure messaging and tele-expertise are coming soon."),
)
_SECURITY = Tile(
    N_("My account security"),
    N_("Your second factor of authentication."),
    "/account/security",
)
_ACCOUNTS = Tile(N_("Accounts"), N_("Create, disable and unlock user accounts."), "/admin/accounts")
_CLIENTS = Tile(
    N_("Applications"),
    N_("Systems and applications authorised to use Partage."),
    "/admin/clients",
)
_ESTABLISHMENTS = Tile(
    N_("Establishments"),
    N_("Establishments and their patient identification domains."),
    "/admin/establishments",
)
_AUDIT = Tile(N_("Audit trail"), N_("Consulting the audit trail is coming soon."))
_DIRECTORY = Tile(
    N_("Directory"),
    N_("Find a professional or a structure of the territory."),
    "/annuaire",
)
_DIRECTORY_IMPORTS = Tile(
    N_("Directory imports"),
    N_("The RPPS and FINESS imports and the rows they rejected."),
    "/admin/annuaire",
)

HOME_TILES: dict[Profile, tuple[Tile, ...]] = {
    Profile.hospital_physician: (
        _SHARED_RECORD,
        _IMAGING,
        _MESSAGES,
        _DIRECTORY,
        _SECURITY,
    ),
    Profile.city_physician: (
        Tile(
            N_("My patients"),
            N_("The list of patients who chose you as their regular doctor is coming soon."),
        ),
        _SHARED_RECORD,
        _MESSAGES,
        _DIRECTORY,
        _SECURITY,
    ),
    Profile.pharmacist: (
        _SHARED_RECORD,
        _MESSAGES,
        _DIRECTORY,
        _SECURITY,
    ),
    Profile.nurse: (
        _SHARED_RECORD,
        _MESSAGES,
        _DIRECTORY,
        _SECURITY,
    ),
    Profile.patient: (
        Tile(N_("My documents"), N_("Your documents and reports will appear here soon.")),
        Tile(
            N_("Who viewed my record"),
            N_("The history of accesses to your record is coming soon."),
        ),
        Tile(
            N_("My authorisations"),
            N_("Choosing who may see your record is coming soon."),
        ),
        _SECURITY,
    ),
    Profile.identity_vigilance: (
        Tile(
            N_("Potential duplicates"),
            N_("Review the identities the matching could not decide on."),
            "/identitovigilance/doublons",
        ),
        Tile(
            N_("Identities and INS"),
            N_("Search identities, their INS and their status."),
            "/identitovigilance/recherche",
        ),
        _DIRECTORY,
        _SECURITY,
    ),
    Profile.establishment_admin: (_ACCOUNTS, _CLIENTS, _DIRECTORY, _SECURITY),
    Profile.territory_admin: (
        _ACCOUNTS,
        _CLIENTS,
        _ESTABLISHMENTS,
        _DIRECTORY,
        _DIRECTORY_IMPORTS,
        _AUDIT,
        _SECURITY,
    ),
}
