"""The demo territory: the GHT de la Vienne, its establishments, one account per profile, a
synthetic directory of the department's professionals, and its hospitals' and clinics'
patient files federated into the master patient index.

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
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO

from sqlalchemy import distinct, exists, func, select
from sqlalchemy.orm import Session

from partage.access.decision import Action, require
from partage.audit.actions import Actor, record
from partage.db import transaction
from partage.directory import finess, rpps
from partage.directory.importer import ImportSummary, import_finess, import_rpps
from partage.directory.models import DirectoryImport
from partage.identity.decide import Verdict
from partage.identity.importer import IdentityImport, Progress, import_identities
from partage.identity.models import LocalIdentity, Review, ReviewStatus
from partage.identity.service import IdentityInput, do_receive_identity
from partage.identity.synthetic import SyntheticRecord, generate_population, write_import_csv
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex
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
# Persons in the patient files of the demo's hospitals and clinics, for the full directory
# (a smaller directory gets proportionally fewer: see `demo_patients`).
DEMO_PATIENTS = 3000
# Fewer open reviews than this after the import: a few near-duplicates are received.
DEMO_MIN_REVIEWS = 5
# The console where identity-vigilance officers work the review queue.
IDENTITY_CONSOLE = "/identitovigilance"


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
    patients: int | None = None,
    announce: Callable[[str], None] | None = print,
) -> list[DemoExtract]:
    """Write the synthetic FINESS and RPPS extracts of the Vienne under the data directory
    and import them with the real importers (each commits its own chunks); then the
    patients (`load_demo_identities`: `patients` persons, by default in proportion to the
    professionals, 0 for none), whose one-line summary goes to `announce`.

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
    persons = demo_patients(professionals) if patients is None else patients
    if persons > 0:
        identities = load_demo_identities(platform, actor=actor, persons=persons, reader=reader)
        # Imported here, not at the top: the documents' demo reads this module's sources.
        from partage.documents.demo import load_demo_documents, rich_progress

        documents = load_demo_documents(
            platform, actor=actor, sources=patient_file_sources(), progress=rich_progress
        )
        if announce is not None:
            # One announcement, a line each: the patients, then their documents.
            announce(f"{identities.summary(platform.settings.public_url)}\n{documents.summary()}")
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


# --- the patients -------------------------------------------------------------------------

# The establishments whose patient files the demo federates: hospitals and clinics.
_PATIENT_FILE_KINDS = frozenset(
    {EstablishmentKind.university_hospital, EstablishmentKind.hospital, EstablishmentKind.clinic}
)
# How many of the generated records may be tried as the origin of a near-duplicate.
_NEAR_DUPLICATE_ATTEMPTS = 60


@dataclass(frozen=True)
class DemoIdentities:
    # The files this run imported, with their reports; empty when all were there already.
    imported: list[tuple[str, Path, IdentityImport]]
    near_duplicates: int  # received by this run, when the files gave too few reviews
    identities: int  # active local identities of the territory
    persons: int  # the persons they form
    reviews: int  # open reviews: the identity-vigilance queue

    def summary(self, public_url: str = "") -> str:
        """One line: what this run did, and what the master patient index holds."""
        if self.imported:
            codes = ", ".join(code for code, _, _ in self.imported)
            done = f"imported the patient files of {codes}"
            if self.near_duplicates:
                done += f" and {self.near_duplicates} near-duplicates"
        else:
            done = "already imported"
        return (
            f"Identities: {done}; {self.identities:,} identities of {self.persons:,} persons, "
            f"{self.reviews:,} reviews to do at {public_url}{IDENTITY_CONSOLE}."
        )


def demo_patients(professionals: int) -> int:
    """The demo's persons for a directory of that many professionals (3,000 for the Vienne)."""
    return max(1, round(DEMO_PATIENTS * professionals / DEMO_PROFESSIONALS))


def patient_file_sources() -> list[str]:
    """The codes of the demo establishments that send patient files, in the seed's order."""
    return [spec.code for spec in ESTABLISHMENTS if spec.kind in _PATIENT_FILE_KINDS]


def load_demo_identities(
    platform: Platform,
    *,
    actor: Principal,
    persons: int = DEMO_PATIENTS,
    reader: ExtractReader | None = None,
    progress: Progress | None = None,
) -> DemoIdentities:
    """Federate synthetic patient files of the demo's hospitals and clinics.

    `persons` French persons (`identity.synthetic`: duplicates across and within the
    establishments, typing errors, married names, twins, namesakes, parent and child of one
    name) are written as one import file per establishment under `data_dir/demo/`, and each
    file is imported with the real bulk importer, in a transaction of its own. An
    establishment that has identities already is left alone: a second run imports nothing.
    When the files this run imported leave fewer than `DEMO_MIN_REVIEWS` reviews open, a few
    near-duplicates of their patients are received one by one, so that the identity-vigilance
    console has a queue to show. The establishments must exist (`seed_demo_territory`)."""
    folder = platform.settings.data_dir / "demo"
    sources = patient_file_sources()
    missing = [code for code in sources if not _has_identities(platform, code)]
    imported: list[tuple[str, Path, IdentityImport]] = []
    near_duplicates = 0
    if missing:
        population = generate_population(persons=persons, sources=sources, seed=DEMO_SEED)
        for code in missing:
            records = [r for r in population if r.record.source == code]
            path = folder / f"patients-{code}-demo-{persons}.csv"
            _write_once(path, partial(_write_patients, records=records))
            report = _import_patients(
                platform, code, path, actor=actor.actor, reader=reader, progress=progress
            )
            imported.append((code, path, report))
        if _open_reviews(platform) < DEMO_MIN_REVIEWS:
            near_duplicates = _near_duplicates(
                platform,
                _originals(population, sources=missing),
                actor=actor.actor,
                wanted=DEMO_MIN_REVIEWS - _open_reviews(platform),
            )
    with platform.read_sessions() as session:
        active = select(LocalIdentity).where(LocalIdentity.active).subquery()
        identities = session.scalar(select(func.count()).select_from(active)) or 0
        persons_found = session.scalar(select(func.count(distinct(active.c.person_id)))) or 0
    return DemoIdentities(
        imported=imported,
        near_duplicates=near_duplicates,
        identities=identities,
        persons=persons_found,
        reviews=_open_reviews(platform),
    )


def _has_identities(platform: Platform, code: str) -> bool:
    with platform.read_sessions() as session:
        establishment = service.get_establishment(session, code=code)
        if establishment is None:
            raise LookupError(f"no establishment {code}: seed the demo territory first")
        known = exists().where(LocalIdentity.establishment_id == establishment.id)
        return bool(session.scalar(select(known)))


def _open_reviews(platform: Platform) -> int:
    with platform.read_sessions() as session:
        count = select(func.count()).where(Review.status == ReviewStatus.open)
        return session.scalar(count) or 0


def _write_patients(stream: IO[bytes], *, records: list[SyntheticRecord]) -> int:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        write_import_csv(text, records)
        return len(records)
    finally:
        text.detach()  # the caller closes the file


def _import_patients(
    platform: Platform,
    code: str,
    path: Path,
    *,
    actor: Actor,
    reader: ExtractReader | None,
    progress: Progress | None,
) -> IdentityImport:
    with (
        path.open("rb") as raw,
        (reader or _plain)(path, raw) as stream,
        transaction(platform.sessions) as session,
    ):
        establishment = service.get_establishment(session, code=code)
        assert establishment is not None  # checked by `_has_identities`
        return import_identities(
            session, establishment=establishment, stream=stream, actor=actor, progress=progress
        )


def _near_duplicates(
    platform: Platform, originals: list[SyntheticRecord], *, actor: Actor, wanted: int
) -> int:
    """Receive up to `wanted` near-duplicates that land in the review queue: a patient of one
    file registered again by the same establishment under a new id (`DEMO0001`…: the
    establishment had no identities before this run), one trait mistyped (the birth place's
    commune code, the sex, the birth year), the rest as before."""
    made = 0
    with transaction(platform.sessions) as session:
        for attempt, original in enumerate(originals[:_NEAR_DUPLICATE_ATTEMPTS], start=1):
            if made >= wanted:
                break
            establishment = service.get_establishment(session, code=original.record.source)
            assert establishment is not None
            for variant in _variants(original):
                with session.begin_nested() as savepoint:
                    received = do_receive_identity(
                        session,
                        establishment=establishment,
                        local_id=f"DEMO{attempt:04d}",
                        value=IdentityInput(traits=variant, status=original.record.status),
                        actor=actor,
                    )
                    if received.verdict is not Verdict.review:
                        savepoint.rollback()  # linked outright, or a new person: not a review
                        continue
                made += 1
                break
    return made


def _originals(population: list[SyntheticRecord], *, sources: list[str]) -> list[SyntheticRecord]:
    """The records of `sources` whose person has no other record, provisional (no INS) and
    complete enough to compare: the patients a near-duplicate can be made of."""
    counts: dict[int, int] = {}
    for item in population:
        counts[item.person] = counts.get(item.person, 0) + 1
    return [
        item
        for item in population
        if counts[item.person] == 1
        and item.record.source in sources
        and item.record.status is IdentityStatus.provisional
        and not item.record.traits.ins
        and item.record.traits.birth_date is not None
        and item.record.traits.sex is not Sex.unknown
        and item.record.traits.given_names
    ]


def _variants(original: SyntheticRecord) -> list[IdentityTraits]:
    traits = original.record.traits
    variants = []
    if traits.birth_place_code.isdigit():
        # A commune of another department typed for the birth place.
        wrong_place = "75056" if not traits.birth_place_code.startswith("75") else "86194"
        variants.append(replace(traits, birth_place_code=wrong_place))
    variants.append(replace(traits, sex=Sex.female if traits.sex is Sex.male else Sex.male))
    assert traits.birth_date is not None
    birth = traits.birth_date
    with suppress(ValueError):  # not for a 29 February
        variants.append(replace(traits, birth_date=birth.replace(year=birth.year - 1)))
    return variants
