"""The demo territory: the GHT de la Vienne, its establishments, one account per profile and
a synthetic directory of the department's professionals.

Seeding is idempotent: what exists already is left as it is, so a second run creates
nothing. Every demo account shares one documented password and has a fixed TOTP secret
(patients excepted), printed by `partage demo`. FINESS numbers are well formed (with their
check digit) but are demo values, not taken from the national register; the synthetic
extracts (`partage.directory.vienne`) list the same establishments, and the professionals
behind the professional accounts (same national id, name and profession). Never in
production: the settings refuse demo mode there.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.access.decision import Action, require
from partage.audit.actions import record
from partage.directory import finess, rpps
from partage.directory.importer import ImportSummary, import_finess, import_rpps
from partage.directory.models import DirectoryImport
from partage.platform import Platform
from partage.security import actions, service
from partage.security.authn import set_totp_secret, totp_for
from partage.security.models import (
    Account,
    Establishment,
    EstablishmentKind,
    OAuthClient,
    Profile,
    Territory,
)
from partage.security.principal import Principal

# Documented in the README and printed by `partage demo`: demo accounts only.
DEMO_PASSWORD = "Partage-Clain-2026"
DEMO_CLIENT_NAME = "DPI du CHU de Poitiers"
DEMO_CLIENT_SCOPES = "system/*.rs system/DocumentReference.cruds"
# The size of the Vienne's directory: professionals (RPPS) and establishments (FINESS).
DEMO_PROFESSIONALS = 31380
DEMO_ESTABLISHMENTS = 1200
DEMO_SEED = 86


@dataclass(frozen=True)
class DemoEstablishment:
    code: str
    name: str
    kind: EstablishmentKind
    city: str
    finess: str


@dataclass(frozen=True)
class DemoAccount:
    login: str
    display_name: str
    profile: Profile
    establishment: str | None
    email: str
    totp_secret: str | None
    # The professional's RPPS national id, listed by the synthetic RPPS extract.
    national_id: str | None = None


ESTABLISHMENTS: tuple[DemoEstablishment, ...] = (
    DemoEstablishment(
        "CHU-POITIERS",
        "CHU de Poitiers",
        EstablishmentKind.university_hospital,
        "Poitiers",
        "860014208",
    ),
    DemoEstablishment(
        "GHNV",
        "Groupe hospitalier Nord-Vienne",
        EstablishmentKind.hospital,
        "Châtellerault",
        "860000934",
    ),
    DemoEstablishment(
        "POLYCLINIQUE-POITIERS",
        "Polyclinique de Poitiers",
        EstablishmentKind.clinic,
        "Poitiers",
        "860002450",
    ),
    DemoEstablishment(
        "MSP-LUSIGNAN",
        "Maison de santé de Lusignan",
        EstablishmentKind.city_practice,
        "Lusignan",
        "860010016",
    ),
    DemoEstablishment(
        "CABINET-CHAUVIGNY",
        "Cabinet médical de Chauvigny",
        EstablishmentKind.city_practice,
        "Chauvigny",
        "860010024",
    ),
    DemoEstablishment(
        "PHARMACIE-MONTMORILLON",
        "Pharmacie du Marché de Montmorillon",
        EstablishmentKind.pharmacy,
        "Montmorillon",
        "860010032",
    ),
    DemoEstablishment(
        "IDE-LOUDUN",
        "Cabinet infirmier de Loudun",
        EstablishmentKind.nursing_practice,
        "Loudun",
        "860010040",
    ),
)

ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        "claire.dubois",
        "Dr Claire Dubois",
        Profile.hospital_physician,
        "CHU-POITIERS",
        "claire.dubois@chu-poitiers.example",
        "RSPO72TBX47VRO64CVA2C7LSZAHLDSRI",
        "810086000014",
    ),
    DemoAccount(
        "antoine.girard",
        "Dr Antoine Girard",
        Profile.hospital_physician,
        "GHNV",
        "antoine.girard@ghnv.example",
        "JGFM2BWCEVQQLLIQYPXTQ5XAJKBLM5E2",
        "810086000022",
    ),
    DemoAccount(
        "julie.bernard",
        "Dr Julie Bernard",
        Profile.city_physician,
        "MSP-LUSIGNAN",
        "julie.bernard@msp-lusignan.example",
        "BFGBLH3XRJEODOI2OJR3WE4LV27RLVAJ",
        "810086000030",
    ),
    DemoAccount(
        "marc.lefebvre",
        "Dr Marc Lefebvre",
        Profile.city_physician,
        "CABINET-CHAUVIGNY",
        "marc.lefebvre@cabinet-chauvigny.example",
        "JW4J3KI3MVEBCCQI3FJ3FSNJJBYH3QDC",
        "810086000048",
    ),
    DemoAccount(
        "sophie.rousseau",
        "Sophie Rousseau",
        Profile.pharmacist,
        "PHARMACIE-MONTMORILLON",
        "sophie.rousseau@pharmacie-montmorillon.example",
        "DDLXF6BAP57265DLCNXX5IAB6AIOQ3HH",
        "810086000055",
    ),
    DemoAccount(
        "nathalie.fournier",
        "Nathalie Fournier",
        Profile.nurse,
        "IDE-LOUDUN",
        "nathalie.fournier@ide-loudun.example",
        "COHA3ZPWE5UGB23MMPWU4ZQBOZGYY222",
        "810086000063",
    ),
    DemoAccount(
        "isabelle.petit",
        "Isabelle Petit",
        Profile.identity_vigilance,
        "CHU-POITIERS",
        "isabelle.petit@chu-poitiers.example",
        "CAWKTA2CMK2OHEZLZECH6CL3R3MCEGSD",
    ),
    DemoAccount(
        "thierry.garnier",
        "Thierry Garnier",
        Profile.establishment_admin,
        "CHU-POITIERS",
        "thierry.garnier@chu-poitiers.example",
        "DSCWS44NPAUXWO4XHZJAR5WEMRU7TJWC",
    ),
    DemoAccount(
        "catherine.lambert",
        "Catherine Lambert",
        Profile.territory_admin,
        None,
        "catherine.lambert@ght86.example",
        "MFYKCYW54LL6W7AD77HCDOHKM227W76K",
    ),
    DemoAccount(
        "jean.moreau",
        "Jean Moreau",
        Profile.patient,
        None,
        "jean.moreau@example.org",
        None,
    ),
)


@dataclass(frozen=True)
class DemoLogin:
    login: str
    display_name: str
    profile: Profile
    establishment: str | None
    password: str
    # None for patients, and when the account's authenticator was reset since the seed.
    totp_secret: str | None
    created: bool


@dataclass(frozen=True)
class DemoTerritory:
    territory: str
    establishments_created: int
    logins: list[DemoLogin]
    client_id: str
    # Shown only when the client was created by this run: a secret is never stored.
    client_secret: str | None
    client_created: bool

    @property
    def accounts_created(self) -> int:
        return sum(1 for login in self.logins if login.created)


def seed_demo_territory(session: Session, platform: Platform, *, actor: Principal) -> DemoTerritory:
    """Create whatever of the demo territory is missing; never commits."""
    settings = platform.settings
    territory = actions.ensure_territory(
        session, code=settings.territory_code, name=settings.territory_name
    )
    establishments, created_count = _seed_establishments(session, territory, actor=actor)
    logins = [
        _seed_account(session, platform, spec, establishments, actor=actor) for spec in ACCOUNTS
    ]
    client_id, client_secret = _seed_client(
        session, platform, establishments["CHU-POITIERS"], actor=actor
    )
    return DemoTerritory(
        territory=territory.name,
        establishments_created=created_count,
        logins=logins,
        client_id=client_id,
        client_secret=client_secret,
        client_created=client_secret is not None,
    )


def _seed_establishments(
    session: Session, territory: Territory, *, actor: Principal
) -> tuple[dict[str, Establishment], int]:
    found: dict[str, Establishment] = {}
    created = 0
    for spec in ESTABLISHMENTS:
        establishment = service.get_establishment(session, code=spec.code)
        if establishment is None:
            establishment = actions.create_establishment(
                session,
                actor=actor,
                territory=territory,
                name=spec.name,
                code=spec.code,
                kind=spec.kind,
                finess=spec.finess,
                city=spec.city,
            )
            created += 1
        found[spec.code] = establishment
    return found, created


def _seed_account(
    session: Session,
    platform: Platform,
    spec: DemoAccount,
    establishments: dict[str, Establishment],
    *,
    actor: Principal,
) -> DemoLogin:
    account = service.get_account(session, login=spec.login)
    created = account is None
    if account is None:
        account = actions.create_account(
            session,
            platform.passwords,
            actor=actor,
            login=spec.login,
            display_name=spec.display_name,
            profile=spec.profile,
            password=DEMO_PASSWORD,
            establishment=establishments[spec.establishment] if spec.establishment else None,
            email=spec.email,
            national_id=spec.national_id,
            is_demo=True,
        )
        if spec.totp_secret is not None:
            _install_totp(session, platform, account, spec.totp_secret, actor=actor)
    return DemoLogin(
        login=spec.login,
        display_name=spec.display_name,
        profile=spec.profile,
        establishment=spec.establishment,
        password=DEMO_PASSWORD,
        totp_secret=spec.totp_secret if _has_totp(platform, account, spec.totp_secret) else None,
        created=created,
    )


def _install_totp(
    session: Session, platform: Platform, account: Account, secret: str, *, actor: Principal
) -> None:
    decision = require(
        session,
        actor,
        Action.account_manage,
        entity_type="Account",
        entity_id=str(account.id),
        establishment_id=account.establishment_id,
    )
    set_totp_secret(platform, account, secret)
    record(
        session,
        actor=actor.actor,
        action="account.totp_install",
        entity_type="Account",
        entity_id=str(account.id),
        basis=decision.basis,
        detail={"login": account.login, "demo": True},
    )


def _has_totp(platform: Platform, account: Account, secret: str | None) -> bool:
    """Whether the account still has the documented authenticator (it may have been reset)."""
    if secret is None or not account.has_totp:
        return False
    totp = totp_for(platform, account)
    return totp is not None and totp.secret == secret


def _seed_client(
    session: Session, platform: Platform, owner: Establishment, *, actor: Principal
) -> tuple[str, str | None]:
    existing = session.scalar(
        select(OAuthClient).where(OAuthClient.name == DEMO_CLIENT_NAME).limit(1)
    )
    if existing is not None:
        return existing.client_id, None
    created = actions.create_client(
        session,
        platform.keyring,
        actor=actor,
        name=DEMO_CLIENT_NAME,
        scopes=DEMO_CLIENT_SCOPES,
        establishment=owner,
    )
    return created.client.client_id, created.client_secret


# --- the directory ------------------------------------------------------------------------

# Wraps the binary stream an import reads (the command line shows a progress bar with it).
ExtractReader = Callable[[Path, IO[bytes]], AbstractContextManager[IO[bytes]]]
Importer = Callable[..., ImportSummary]


@dataclass(frozen=True)
class DemoExtract:
    kind: str  # finess | rpps
    path: Path
    # None when the directory already holds this extract: it was not imported again.
    summary: ImportSummary | None


def load_demo_directory(
    platform: Platform,
    *,
    actor: Principal,
    professionals: int = DEMO_PROFESSIONALS,
    establishments: int = DEMO_ESTABLISHMENTS,
    reader: ExtractReader | None = None,
) -> list[DemoExtract]:
    """Write the synthetic FINESS and RPPS extracts of the Vienne under the data directory
    and import them with the real importers (each commits its own chunks).

    Once a demo extract's import is recorded as done, it is not imported again (whatever its
    size): a second run costs nothing, and never undoes a real extract imported since."""
    folder = platform.settings.data_dir / "demo"
    extracts = (
        (
            "finess",
            "etalab-cs1100507-stock-demo-",
            f"{establishments}.csv",
            lambda stream: finess.write_synthetic_extract(stream, establishments, seed=DEMO_SEED),
            import_finess,
        ),
        (
            "rpps",
            "PS_LibreAcces_Personne_activite_demo-",
            f"{professionals}.txt",
            lambda stream: _write_text(stream, professionals),
            import_rpps,
        ),
    )
    loaded = []
    for kind, prefix, suffix, write, importer in extracts:
        imported = _imported(platform, kind, prefix)
        if imported is not None:
            loaded.append(DemoExtract(kind, folder / imported, None))
            continue
        path = folder / (prefix + suffix)
        _write_once(path, write)
        summary = _import(platform, importer, path, actor=actor, reader=reader)
        loaded.append(DemoExtract(kind, path, summary))
    return loaded


def _write_text(stream: IO[bytes], professionals: int) -> int:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
    try:
        return rpps.write_synthetic_extract(text, professionals, seed=DEMO_SEED)
    finally:
        text.detach()  # the caller closes the file


def _imported(platform: Platform, kind: str, prefix: str) -> str | None:
    """The name of the demo extract of this kind imported already, if any."""
    with platform.read_sessions() as session:
        done = select(DirectoryImport.file_name).where(
            DirectoryImport.kind == kind,
            DirectoryImport.file_name.startswith(prefix, autoescape=True),
            DirectoryImport.status == "done",
        )
        return session.scalar(done.limit(1))


def _write_once(path: Path, write: Callable[[IO[bytes]], int]) -> None:
    """Generate an extract unless it is there; a half-written file never takes its name."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as stream:
        write(stream)
    partial.replace(path)


def _import(
    platform: Platform,
    importer: Importer,
    path: Path,
    *,
    actor: Principal,
    reader: ExtractReader | None,
) -> ImportSummary:
    with path.open("rb") as raw, (reader or _plain)(path, raw) as stream:
        return importer(platform.sessions, stream, actor=actor, file_name=path.name)


def _plain(path: Path, raw: IO[bytes]) -> AbstractContextManager[IO[bytes]]:
    return nullcontext(raw)
