"""The documents of the demo territory: what its hospitals and clinics have deposited for
their patients.

For each patient identity of the demo's patient files, a few documents of the common types
(`synthetic.DOCUMENT_TYPES`: consultation, operative, imaging, laboratory reports, discharge
letters), written from the patient's situation (age, sex, the establishment) and signed by
physicians of the demo directory (the demo's hospital doctors among them). Most are
one-page PDFs; some laboratory and imaging reports are structured CDA R2 documents (level
3: sections, tables, coded results), generated here and checked with `cda.parse_cda`. Some
documents were corrected (a second version replaces the first), a few are masked from
professionals (MASQUE_PS) or hidden from the patient (INVISIBLE_PATIENT). The real French
CDA examples in `PARTAGE_CDA_FIXTURES` (default `../shared/fixtures/cda-fr`), when that
directory exists, are deposited unchanged, read where they are, never copied.

Everything goes through the bulk loader (`bulk.deposit_many`): the deposit's rules, in
batches. The ids are derived from the patient and the rank of the document, so a second
run files nothing (what is there is skipped), and an interrupted one is completed.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select

from partage.directory.models import Practitioner, PractitionerRole
from partage.directory.service import IDNPS_OID, IDNST_OID
from partage.documents.bulk import BulkDocument, BulkReport, deposit_many
from partage.documents.cda import parse_cda
from partage.documents.models import DocumentEntry, RelationKind, SubmissionSet
from partage.documents.submission import (
    INVISIBLE_PATIENT,
    LOINC,
    MASQUE_PS,
    AuthorRef,
    Coding,
    NewDocument,
    Relation,
    SubmissionError,
)
from partage.documents.synthetic import DOCUMENT_TYPES, pdf
from partage.identity.models import LocalIdentity
from partage.platform import Platform
from partage.security.models import Establishment
from partage.security.principal import Principal

# The demo's submissions come from this source (an OID arc of the demo's own).
DEMO_SOURCE_ID = "urn:oid:1.2.250.1.999.86.2"
FIXTURES_VARIABLE = "PARTAGE_CDA_FIXTURES"
DEFAULT_FIXTURES = Path("../shared") / "fixtures" / "cda-fr"
_NAMESPACE = uuid.UUID("6c0f3b7e-5a43-4c55-9a3e-86d0c0de0086")
_SEED = 86
# Documents are dated in the ten years before this day (fixed: a run again makes the same).
_TODAY = date(2026, 11, 30)
_PHYSICIAN = "10"
# The demo's hospital doctors, authors of a share of their establishment's documents.
_DEMO_DOCTORS = {"CHU-POITIERS": "810086000014", "GHNV": "810086000022"}
_CDA_MIME = "text/xml"


@dataclass(frozen=True)
class DemoDocuments:
    created: int  # documents filed by this run
    versions: int  # of which, corrected versions replacing an earlier one
    structured: int  # CDA documents generated and filed by this run
    fixtures: int  # real CDA examples filed by this run
    refused: list[str]  # fixture files the deposit refused, with why
    total: int  # documents of the demo's patients now in the registry

    def summary(self) -> str:
        done = (
            f"filed {self.created:,} ({self.versions:,} corrected versions, "
            f"{self.structured:,} structured CDA, {self.fixtures:,} CDA examples)"
            if self.created
            else "already filed"
        )
        line = f"Documents: {done}; {self.total:,} documents in the patients' records."
        if self.refused:
            line += f" Refused: {'; '.join(self.refused)}."
        return line


@dataclass(frozen=True)
class _Patient:
    identity_id: uuid.UUID
    local_id: str
    establishment: str  # code
    establishment_name: str
    domain_oid: str
    family: str
    given: str
    sex: str
    birth_date: date | None
    ins: str


# What the reports say, by kind: (motive or examination, finding, conclusion).
_CONSULTATIONS = (
    ("Cardiologie", "Palpitations à l'effort", "ECG : rythme sinusal régulier",
     "Pas de trouble du rythme objectivé, Holter de 24 heures programmé."),
    ("Diabétologie", "Suivi d'un diabète de type 2", "HbA1c à 7,4 %",
     "Équilibre glycémique à améliorer, metformine augmentée."),
    ("Pneumologie", "Toux chronique", "Auscultation : quelques sibilants",
     "Asthme probable, épreuves fonctionnelles respiratoires demandées."),
    ("Rhumatologie", "Douleurs du genou droit", "Épanchement modéré, mobilité conservée",
     "Gonarthrose, infiltration proposée."),
    ("Neurologie", "Céphalées récidivantes", "Examen neurologique normal",
     "Migraine sans aura, traitement de crise prescrit."),
)  # fmt: skip
_PEDIATRICS = (
    ("Pédiatrie", "Fièvre depuis trois jours", "Otite moyenne aiguë gauche",
     "Amoxicilline pendant huit jours, contrôle si persistance."),
    ("Pédiatrie", "Suivi de croissance", "Courbes staturo-pondérales harmonieuses",
     "Développement normal, vaccinations à jour."),
)  # fmt: skip
_OPERATIONS = (
    ("Cholécystectomie par cœlioscopie", "Vésicule lithiasique, exérèse sans incident"),
    ("Prothèse totale de hanche gauche", "Mise en place d'une prothèse cimentée"),
    ("Appendicectomie", "Appendice inflammatoire, lavage péritonéal"),
    ("Cure de hernie inguinale droite", "Mise en place d'une plaque prothétique"),
)
_IMAGING = (
    ("Radiographie du thorax", "Pas de foyer parenchymateux, cœur de taille normale"),
    ("Scanner abdomino-pelvien", "Pas de lésion focale hépatique, pas d'épanchement"),
    ("IRM du genou droit", "Fissure méniscale interne de grade 2"),
    ("Échographie abdominale", "Foie de taille normale, vésicule alithiasique"),
)
_STAYS = (
    ("Médecine interne", "pneumopathie communautaire", "Amoxicilline pendant sept jours"),
    ("Cardiologie", "décompensation cardiaque", "Furosémide 40 mg, contrôle du poids"),
    ("Chirurgie orthopédique", "fracture du poignet", "Antalgiques, immobilisation six semaines"),
    ("Gériatrie", "chute à domicile", "Kinésithérapie, passage infirmier quotidien"),
)
# Laboratory results: LOINC code, label, unit, low, high, reference shown.
_LAB = (
    ("718-7", "Hémoglobine", "g/dL", 11.5, 16.5, "12,0 - 16,0"),
    ("6690-2", "Leucocytes", "10*9/L", 3.5, 11.0, "4,0 - 10,0"),
    ("777-3", "Plaquettes", "10*9/L", 140.0, 420.0, "150 - 400"),
    ("2160-0", "Créatinine", "µmol/L", 50.0, 120.0, "45 - 110"),
    ("2345-7", "Glucose", "mmol/L", 3.9, 7.5, "4,1 - 5,9"),
    ("1988-5", "Protéine C réactive", "mg/L", 0.5, 40.0, "< 5"),
)


def _rng(seed: object) -> random.Random:
    # Reproducible demo data, not secrets: the same seed makes the same documents.
    return random.Random(str(seed))  # noqa: S311


def fixtures_directory() -> Path:
    """Where the real CDA examples are: `PARTAGE_CDA_FIXTURES`, relative to the working
    directory."""
    return Path(os.environ.get(FIXTURES_VARIABLE) or DEFAULT_FIXTURES)


def load_demo_documents(
    platform: Platform,
    *,
    actor: Principal,
    sources: list[str],
    per_identity: float = 1.2,
    fixtures: Path | None = None,
    progress: Callable[[str, int], AbstractContextManager[Callable[[int], None]]] | None = None,
) -> DemoDocuments:
    """File the demo's documents for the identities of `sources` (establishment codes)
    that are missing; `progress(description, total)` gives a callback of documents done
    (`rich_progress` shows a bar on stderr)."""
    patients = _patients(platform, sources)
    authors = _authors(platform, sources)
    plan = _plan(patients, per_identity)
    folder = fixtures if fixtures is not None else fixtures_directory()
    examples = sorted(folder.glob("*.xml")) if folder.is_dir() else []
    expected = len(plan) + sum(1 for p in plan if p.corrected) + min(len(examples), len(patients))
    created = versions = structured = filed_examples = 0
    refused: list[str] = []
    if patients and _demo_documents(platform) < expected:
        bar = (progress or _silent)("Dépôt des documents de démonstration", expected)
        with bar as advance:
            done = [0]

            def report(batch: BulkReport) -> None:
                total = batch.deposited + batch.skipped
                advance(total - done[0])
                done[0] = total

            counter = _Counter()
            result = deposit_many(
                platform.sessions,
                platform.repository,
                _documents(plan, authors, counter),
                principal=actor,
                read_sessions=platform.read_sessions,
                skip_existing=True,
                progress=report,
            )
            created, versions = result.deposited, result.replaced
            structured = counter.structured if result.deposited else 0
            # The examples one by one: a file the deposit refuses costs only itself.
            for path, patient in zip(examples, patients, strict=False):
                try:
                    one = deposit_many(
                        platform.sessions,
                        platform.repository,
                        [_example(path, patient)],
                        principal=actor,
                        read_sessions=platform.read_sessions,
                        skip_existing=True,
                    )
                except SubmissionError as error:
                    refused.append(f"{path.name}: {error.message}")
                    continue
                filed_examples += one.deposited
                created += one.deposited
                advance(1)
    return DemoDocuments(
        created=created,
        versions=versions,
        structured=structured,
        fixtures=filed_examples,
        refused=refused,
        total=_demo_documents(platform),
    )


def rich_progress(description: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    """A progress bar on stderr (gone once done), as the imports of `partage demo` show."""
    return _RichBar(description, total)


class _RichBar:
    def __init__(self, description: str, total: int) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        self._bar = Progress(*columns, console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self._bar.__enter__()
        return lambda n: self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)


def _silent(description: str, total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda n: None)


class _Counter:
    structured = 0


def _demo_documents(platform: Platform) -> int:
    with platform.read_sessions() as session:
        count = (
            select(func.count())
            .select_from(DocumentEntry)
            .join(SubmissionSet, SubmissionSet.id == DocumentEntry.submission_set_id)
            .where(SubmissionSet.source_id == DEMO_SOURCE_ID)
        )
        return session.scalar(count) or 0


def _patients(platform: Platform, sources: list[str]) -> list[_Patient]:
    with platform.read_sessions() as session:
        rows = session.execute(
            select(
                LocalIdentity.id,
                LocalIdentity.local_id,
                Establishment.code,
                Establishment.name,
                Establishment.patient_id_oid,
                LocalIdentity.used_family_name,
                LocalIdentity.birth_family_name,
                LocalIdentity.given_names,
                LocalIdentity.sex,
                LocalIdentity.birth_date,
                LocalIdentity.ins,
                LocalIdentity.status,
            )
            .join(Establishment, Establishment.id == LocalIdentity.establishment_id)
            .where(Establishment.code.in_(sources), LocalIdentity.active)
            .order_by(Establishment.code, LocalIdentity.local_id)
        ).all()
    return [
        _Patient(
            identity_id=row[0],
            local_id=row[1],
            establishment=row[2],
            establishment_name=row[3],
            domain_oid=row[4],
            family=row[5] or row[6],
            given=(row[7].split() or [""])[0].title(),
            sex=row[8],
            birth_date=row[9],
            ins=row[10] if row[11] == "QUAL" else "",
        )
        for row in rows
    ]


@dataclass(frozen=True)
class _Author:
    ref: AuthorRef
    name: str  # as the report is signed
    rpps: str


def _authors(platform: Platform, sources: list[str]) -> dict[str, list[_Author]]:
    """Each establishment's signing physicians: its demo doctor, and some of the directory's
    physicians (a label of the establishment only, for a directory without any)."""
    with platform.read_sessions() as session:
        physicians = session.execute(
            select(
                Practitioner.id,
                Practitioner.national_id,
                Practitioner.given_name,
                Practitioner.family_name,
            )
            .where(
                Practitioner.id.in_(
                    select(PractitionerRole.practitioner_id).where(
                        PractitionerRole.profession_code == _PHYSICIAN
                    )
                )
            )
            .order_by(Practitioner.national_id)
            .limit(400)
        ).all()
    by_rpps = {row[1]: row for row in physicians}
    rng = _rng(_SEED)
    authors: dict[str, list[_Author]] = {}
    for code in sources:
        chosen = rng.sample(physicians, min(25, len(physicians)))
        demo = by_rpps.get(_DEMO_DOCTORS.get(code, ""))
        if demo is not None:
            chosen = [demo, demo, demo, *chosen]  # their own patients' reports, often
        authors[code] = [
            _Author(
                AuthorRef(practitioner_id=pid),
                f"Dr {(given or '').title()} {family}".replace("  ", " "),
                national,
            )
            for pid, national, given, family in chosen
        ] or [_Author(AuthorRef(label=f"Service médical ({code})"), "Le médecin du service", "")]
    return authors


@dataclass(frozen=True)
class _Planned:
    patient: _Patient
    rank: int
    kind: int  # index in DOCUMENT_TYPES
    structured: bool
    corrected: bool  # a second version replaces it
    visibility: frozenset[str]
    created: datetime


def _plan(patients: list[_Patient], per_identity: float) -> list[_Planned]:
    """Which documents each identity gets (cheap: contents are made as they are filed)."""
    rng = _rng(_SEED)
    planned: list[_Planned] = []
    for patient in patients:
        count = min(8, int(rng.expovariate(1 / per_identity) + 0.5))
        for rank in range(count):
            kind = rng.choices(range(len(DOCUMENT_TYPES)), weights=(35, 10, 20, 25, 10))[0]
            code = DOCUMENT_TYPES[kind][0]
            structured = code in ("11502-2", "18748-4") and rng.random() < 0.3
            draw = rng.random()
            visibility: frozenset[str] = frozenset()
            if draw < 0.015:
                visibility = frozenset({MASQUE_PS})
            elif draw < 0.03:
                visibility = frozenset({INVISIBLE_PATIENT})
            day = _TODAY - timedelta(days=rng.randrange(3650))
            created = datetime(day.year, day.month, day.day, 8 + rng.randrange(10),
                               rng.randrange(60), tzinfo=UTC)  # fmt: skip
            planned.append(
                _Planned(patient, rank, kind, structured, rng.random() < 0.04, visibility, created)
            )
    return planned


def _unique_id(*parts: str) -> str:
    return f"urn:oid:2.25.{uuid.uuid5(_NAMESPACE, ':'.join(parts)).int}"


def _documents(
    plan: list[_Planned], authors: dict[str, list[_Author]], counter: _Counter
) -> Iterator[BulkDocument]:
    for item in plan:
        patient = item.patient
        rng = _rng(f"{patient.identity_id}:{item.rank}")
        author = rng.choice(authors[patient.establishment])
        code, display, class_code, class_display = DOCUMENT_TYPES[item.kind]
        unique_id = _unique_id(patient.establishment, patient.local_id, str(item.rank))
        if item.structured:
            content = _cda(item, author, unique_id, rng)
            counter.structured += 1
            mime, format_code = _CDA_MIME, None
        else:
            lines = _report_lines(item, author, rng)
            content = pdf(lines, size=rng.randint(3_000, 24_000), seed=unique_id)
            mime, format_code = "application/pdf", "urn:ihe:iti:xds-sd:pdf:2008"
        document = NewDocument(
            unique_id=unique_id,
            content=content,
            mime_type=mime,
            type=Coding(LOINC, code, display),
            class_=Coding(LOINC, class_code, class_display),
            format_code=format_code,
            language="fr-FR",
            title=_title(item, rng),
            creation_time=item.created,
            authors=[author.ref],
            visibility=item.visibility,
        )
        yield BulkDocument(patient.identity_id, document, source_id=DEMO_SOURCE_ID)
        if item.corrected:
            lines = [
                *_report_lines(item, author, rng),
                "",
                "Version corrigée : remplace la précédente.",
            ]
            yield BulkDocument(
                patient.identity_id,
                NewDocument(
                    unique_id=_unique_id(unique_id, "v2"),
                    content=pdf(lines, size=len(content) + 200, seed=unique_id + ":v2"),
                    mime_type="application/pdf",
                    type=document.type,
                    class_=document.class_,
                    format_code="urn:ihe:iti:xds-sd:pdf:2008",
                    language="fr-FR",
                    title=f"{document.title} (version corrigée)",
                    creation_time=item.created + timedelta(days=2),
                    authors=[author.ref],
                    visibility=item.visibility,
                    relations=[Relation(RelationKind.replaces, target_unique_id=unique_id)],
                ),
                source_id=DEMO_SOURCE_ID,
            )


def _age(patient: _Patient, on: date) -> int | None:
    birth = patient.birth_date
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _who(patient: _Patient, on: date) -> str:
    civility = {"F": "Mme", "M": "M."}.get(patient.sex, "")
    born = "Née" if patient.sex == "F" else "Né"
    age = _age(patient, on)
    birth = (
        f", {born.lower()} le {patient.birth_date:%d/%m/%Y} ({age} ans)"
        if patient.birth_date and age is not None
        else ""
    )
    return f"{civility} {patient.given} {patient.family}{birth}".strip()


def _title(item: _Planned, rng: random.Random) -> str:
    code = DOCUMENT_TYPES[item.kind][0]
    r = _rng(f"{item.patient.identity_id}:{item.rank}:title")
    if code == "34874-8":
        return f"CR opératoire - {r.choice(_OPERATIONS)[0]}"
    if code == "18748-4":
        return f"CR d'imagerie - {r.choice(_IMAGING)[0]}"
    if code == "11502-2":
        return "Compte rendu d'examens biologiques"
    if code == "18842-5":
        return f"Lettre de liaison - {r.choice(_STAYS)[0]}"
    return f"Consultation de {r.choice(_consultations(item))[0].lower()}"


def _consultations(item: _Planned) -> tuple[tuple[str, str, str, str], ...]:
    age = _age(item.patient, item.created.date())
    return _PEDIATRICS if age is not None and age < 16 else _CONSULTATIONS


def _report_lines(item: _Planned, author: _Author, rng: random.Random) -> list[str]:
    patient = item.patient
    on = item.created.date()
    r = _rng(f"{patient.identity_id}:{item.rank}:title")  # the title's choice
    code, display = DOCUMENT_TYPES[item.kind][:2]
    header = [
        patient.establishment_name,
        display,
        "",
        f"Patient : {_who(patient, on)}",
        f"IPP : {patient.local_id}",
        f"Date : {on:%d/%m/%Y}",
        "",
    ]
    if code == "34874-8":
        operation, finding = r.choice(_OPERATIONS)
        body = [
            f"Intervention : {operation}",
            "Anesthésie générale, installation en décubitus dorsal.",
            f"Constatations : {finding}.",
            "Fermeture plan par plan. Suites opératoires simples attendues.",
        ]
    elif code == "18748-4":
        exam, finding = r.choice(_IMAGING)
        body = [f"Examen : {exam}", "Indication : bilan clinique.", f"Résultat : {finding}.",
                "Conclusion : examen sans anomalie grave."]  # fmt: skip
    elif code == "11502-2":
        body = ["Prélèvement sanguin du jour.", "Analyse / résultat / valeurs de référence :"]
        for _, label, unit, low, high, reference in _LAB:
            value = round(rng.uniform(low, high), 1)
            body.append(f"  {label} : {value} {unit} ({reference})")
    elif code == "18842-5":
        service, reason, treatment = r.choice(_STAYS)
        days = rng.randint(2, 12)
        body = [
            f"Hospitalisation du {on - timedelta(days=days):%d/%m/%Y} au {on:%d/%m/%Y} "
            f"en {service.lower()}",
            f"Motif : {reason}.",
            "Évolution favorable, retour à domicile.",
            f"Traitement de sortie : {treatment}.",
            "Rendez-vous de suivi avec le médecin traitant sous quinze jours.",
        ]
    else:
        specialty, motive, exam, conclusion = r.choice(_consultations(item))
        body = [f"Consultation de {specialty.lower()}", f"Motif : {motive}.",
                f"Examen clinique : {exam}.", f"Conclusion : {conclusion}"]  # fmt: skip
    return [*header, *body, "", author.name]


# --- CDA R2 level 3 ----------------------------------------------------------------------


def _cda(item: _Planned, author: _Author, unique_id: str, rng: random.Random) -> bytes:
    """A CDA R2 document with a structured body (sections, tables, coded entries for the
    laboratory results), after the French CI-SIS header; checked by the parser."""
    patient = item.patient
    code, display = DOCUMENT_TYPES[item.kind][:2]
    when = item.created.strftime("%Y%m%d%H%M%S+0000")
    given, _, family = author.name.removeprefix("Dr ").partition(" ")
    ids = f'<id root="{patient.domain_oid}" extension="{escape(patient.local_id)}"/>'
    if patient.ins:
        ids = f'<id root="1.2.250.1.213.1.4.8" extension="{patient.ins}"/>' + ids
    gender = patient.sex if patient.sex in ("F", "M") else "UN"
    birth = f'<birthTime value="{patient.birth_date:%Y%m%d}"/>' if patient.birth_date else ""
    author_id = (
        f'<id root="{IDNPS_OID}" extension="8{author.rpps}"/>'
        if author.rpps
        else '<id nullFlavor="UNK"/>'
    )
    if code == "11502-2":
        body = _lab_sections(rng)
        template = "1.3.6.1.4.1.19376.1.3.3"
    else:
        body = _imaging_sections(item)
        template = "1.3.6.1.4.1.19376.1.2.20"
    organization = escape(patient.establishment_name)
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="{template}"/>
  <id root="{unique_id.removeprefix("urn:oid:")}"/>
  <code code="{code}" codeSystem="2.16.840.1.113883.6.1" displayName="{escape(display)}"/>
  <title>{escape(_title(item, rng))}</title>
  <effectiveTime value="{when}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <recordTarget><patientRole>{ids}<patient>
    <name><given>{escape(patient.given)}</given><family qualifier="BR">{escape(patient.family)}</family></name>
    <administrativeGenderCode code="{gender}" codeSystem="2.16.840.1.113883.5.1"/>{birth}
  </patient></patientRole></recordTarget>
  <author><time value="{when}"/><assignedAuthor>{author_id}
    <assignedPerson><name><prefix>Dr</prefix><given>{escape(given)}</given><family>{escape(family)}</family></name></assignedPerson>
    <representedOrganization><name>{organization}</name></representedOrganization>
  </assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="{IDNST_OID}" extension="{patient.domain_oid}"/><name>{organization}</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <documentationOf><serviceEvent>
    <effectiveTime><low value="{when}"/><high value="{when}"/></effectiveTime>
  </serviceEvent></documentationOf>
  <component><structuredBody>{body}</structuredBody></component>
</ClinicalDocument>
"""  # noqa: E501 - the CDA's lines as the standard's examples lay them out
    content = text.encode("utf-8")
    parse_cda(content)  # a generator's mistake shows here, not at the deposit
    return content


def _section(code: str, title: str, text: str, entries: str = "") -> str:
    return (
        f'<component><section><code code="{code}" codeSystem="2.16.840.1.113883.6.1"/>'
        f"<title>{escape(title)}</title><text>{text}</text>{entries}</section></component>"
    )


def _lab_sections(rng: random.Random) -> str:
    rows, entries = [], []
    for n, (loinc, label, unit, low, high, reference) in enumerate(_LAB, start=1):
        value = round(rng.uniform(low, high), 1)
        rows.append(
            f'<tr ID="res{n}"><td>{escape(label)}</td><td>{value}</td><td>{escape(unit)}</td>'
            f"<td>{escape(reference)}</td></tr>"
        )
        entries.append(
            f'<entry><observation classCode="OBS" moodCode="EVN">'
            f'<code code="{loinc}" codeSystem="2.16.840.1.113883.6.1" '
            f'displayName="{escape(label)}"/><text><reference value="#res{n}"/></text>'
            f'<statusCode code="completed"/>'
            f'<value xsi:type="PQ" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'value="{value}" unit="{escape(unit)}"/></observation></entry>'
        )
    table = (
        "<table><thead><tr><th>Analyse</th><th>Résultat</th><th>Unité</th>"
        f"<th>Valeurs de référence</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return _section("18719-5", "Hématologie et biochimie", table, "".join(entries)) + _section(
        "18610-6",
        "Commentaire du biologiste",
        "<paragraph>Résultats validés par le biologiste.</paragraph>",
    )


def _imaging_sections(item: _Planned) -> str:
    r = _rng(f"{item.patient.identity_id}:{item.rank}:title")
    exam, finding = r.choice(_IMAGING)
    table = (
        "<table><thead><tr><th>Paramètre</th><th>Valeur</th></tr></thead><tbody>"
        f"<tr><td>Examen</td><td>{escape(exam)}</td></tr>"
        "<tr><td>Dose (PDL)</td><td>312 mGy.cm</td></tr></tbody></table>"
    )
    return (
        _section("55115-0", "Demande d'examen", "<paragraph>Bilan clinique.</paragraph>")
        + _section("55111-9", "Technique", table)
        + _section("18782-3", "Résultat", f"<paragraph>{escape(finding)}.</paragraph>")
        + _section("55110-1", "Conclusion", "<paragraph>Examen sans anomalie grave.</paragraph>")
    )


def _example(path: Path, patient: _Patient) -> BulkDocument:
    """A real CDA example, unchanged, for a demo patient: its header gives the rest."""
    return BulkDocument(
        patient.identity_id,
        NewDocument(
            unique_id=_unique_id("example", path.name),
            content=path.read_bytes(),
            mime_type=_CDA_MIME,
            where=path.name,
        ),
        source_id=DEMO_SOURCE_ID,
    )
