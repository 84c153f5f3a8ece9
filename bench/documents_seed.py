"""Loads the seed territory for the document benchmarks, with its target (≤ 15 minutes).

    .venv/bin/python bench/documents_seed.py [--persons 420500] [--documents 290000]
        [--documents-factor F] [--large 40] [--database-url URL] [--data-dir DIR]

Phases, each printed with wall and CPU time:

1. the directory of the Vienne (31,380 professionals, 1,200 structures), imported with the
   real importers from the demo's synthetic extracts;
2. the patients: `--persons` French persons (`identity.synthetic`, ~1.8 local identities
   each across five hospitals, with their duplicates), written directly with bulk
   statements as the identity importer leaves them when it links every duplicate to its
   person (the matcher is benchmarked by `identity_bulk.py`): persons, local identities
   with their folded names and blocking keys, origin and probabilistic links, the name
   frequencies, the planner's statistics;
3. the documents, through `partage.documents.bulk.deposit_many` (the deposit's checks,
   encryption, staging, a transaction and one audit row per document, batches of 1,000),
   spread with a realistic skew: most patients have none to two, some have dozens. They
   are one-page PDFs of a few KB, incompressible (as scans are), 8 % of them one of 40
   blank forms (consent, information leaflets) deposited for many patients: identical
   contents, stored once. 2 % come in two versions (the second replaces the first), 1 %
   are masked from professionals and 1 % hidden from the patient. `--large` of them weigh
   1 MB (imaging reports with their images), for the retrieval benchmark.

`--documents-factor 10` loads ten times the documents (2.9 M): the same mix, smaller
contents (1 to 3 KB) so that the disk holds them. The data directory is kept (`--data-dir`,
a temporary one by default), described by `bench.json`, for `bench/documents_read.py --from
DIR`; on PostgreSQL the schema is kept too.

On a 2-core machine shared with other work, wall time swings with the load: CPU time (this
process's, and PostgreSQL's own where it is the server) is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from identity_bulk import database

TARGET_SECONDS = 15 * 60.0
SOURCES = ("CHU-POITIERS", "CH-CHATELLERAULT", "GHNV", "CH-LOUDUN", "CLINIQUE-FONTAINE")
PERSONS = 420_500
DOCUMENTS = 290_000
PROFESSIONALS = 31_380
SEED = 86
BENCH_FILE = "bench.json"
_CHUNK = 50_000
_FORMS = 40
_BASE = datetime(2025, 6, 30, tzinfo=UTC)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Phases:
    def __init__(self) -> None:
        self.started, self.started_cpu = time.perf_counter(), cpu()
        self.rows: list[tuple[str, float, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"{name}…", flush=True)
        wall, used = time.perf_counter(), cpu()
        yield
        wall, used = time.perf_counter() - wall, cpu() - used
        self.rows.append((name, wall, used))
        print(f"  {name}: {wall:7.1f} s wall, {used:7.1f} s CPU", flush=True)

    def total(self) -> tuple[float, float]:
        return time.perf_counter() - self.started, cpu() - self.started_cpu


# --- the patients -------------------------------------------------------------------------


def load_patients(platform: Any, establishments: dict[str, Any], persons: int) -> dict[str, Any]:
    """The population written as the importer leaves it once every duplicate is linked."""
    from sqlalchemy import Table, text

    from partage.bulk import Bulk
    from partage.db import transaction, utcnow
    from partage.identity.blocking import KEY_COLUMNS, stored_keys
    from partage.identity.features import Features
    from partage.identity.models import Link, LinkMethod, LocalIdentity, Person
    from partage.identity.store import count_names, trait_columns
    from partage.identity.synthetic import generate_population

    started = time.perf_counter()
    population = generate_population(persons=persons, sources=list(SOURCES), seed=SEED)
    print(
        f"  generated {len(population):,} identities of {persons:,} persons "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    tables = {
        "persons": Person.__table__,
        "identities": LocalIdentity.__table__,
        "links": Link.__table__,
    }
    persons_t, identities_t, links_t = (tables[k] for k in ("persons", "identities", "links"))
    assert isinstance(persons_t, Table)
    assert isinstance(identities_t, Table)
    assert isinstance(links_t, Table)
    identity_columns = (
        "id", "establishment_id", "local_id", "person_id", "origin_person_id",
        "birth_family_name", "given_names", "sex", "birth_date", "birth_place_code",
        "used_family_name", "address", "postal_code", "city", "phone", "ins", "ins_oid",
        "status", "doubtful", "fictitious", "homonym", "usurped", "active", "version",
        "created_at", "updated_at", "family_folded", "used_folded", "given_folded",
        *KEY_COLUMNS,
    )  # fmt: skip
    link_columns = (
        "id", "local_identity_id", "person_id", "method", "score", "started_at", "ended_at",
        "ended_reason", "author",
    )  # fmt: skip
    person_of: dict[int, Any] = {}  # true person → its territorial person (driver form)
    identities_of: dict[int, list[tuple[str, str]]] = {}  # true person → (source, id)
    written = 0
    now = utcnow()
    for start in range(0, len(population), _CHUNK):
        chunk = population[start : start + _CHUNK]
        with transaction(platform.sessions) as session:
            if session.get_bind().dialect.name == "sqlite":
                # As the importer does: 1 GB of page cache while a dozen indexes grow.
                session.execute(text("PRAGMA cache_size = -1048576"))
            bulk = Bulk(session)
            stamp = bulk.value(persons_t, "created_at", now)
            yes, no = (bulk.value(identities_t, "active", v) for v in (True, False))
            merged, active = "merged", "active"
            person_rows: list[tuple[Any, ...]] = []
            identity_rows: list[tuple[Any, ...]] = []
            link_rows: list[tuple[Any, ...]] = []
            features = []
            for item in chunk:
                record = item.record
                identity_id, origin = bulk.new_id(), bulk.new_id()
                person = person_of.get(item.person)
                if person is None:
                    person = person_of[item.person] = origin
                    person_rows.append((origin, active, None, stamp, stamp))
                    link_rows.append(
                        (bulk.new_id(), identity_id, origin, LinkMethod.origin.value, None,
                         stamp, None, None, "bench")
                    )  # fmt: skip
                else:
                    method = LinkMethod.probabilistic.value
                    person_rows.append((origin, merged, person, stamp, stamp))
                    link_rows.append(
                        (bulk.new_id(), identity_id, origin, LinkMethod.origin.value, None,
                         stamp, stamp, method, "bench")
                    )  # fmt: skip
                    link_rows.append(
                        (bulk.new_id(), identity_id, person, method, 40.0, stamp, None, None,
                         "bench")
                    )  # fmt: skip
                traits, status, oid = as_imported(record)
                f = Features(traits, status)
                features.append(f)
                columns = trait_columns(traits)
                identity_rows.append(
                    (
                        identity_id,
                        bulk.value(identities_t, "establishment_id", establishments[record.source]),
                        record.local_id, person, origin,
                        columns["birth_family_name"], columns["given_names"], columns["sex"],
                        bulk.value(identities_t, "birth_date", traits.birth_date),
                        columns["birth_place_code"], columns["used_family_name"],
                        columns["address"], columns["postal_code"], columns["city"],
                        columns["phone"], columns["ins"],
                        oid, status.value,
                        no, no, no, no, yes, 1, stamp, stamp,
                        columns["family_folded"], columns["used_folded"], columns["given_folded"],
                        *stored_keys(f),
                    )
                )  # fmt: skip
                identities_of.setdefault(item.person, []).append((record.source, str(identity_id)))
            # Surviving persons before those merged into them (foreign keys).
            person_rows.sort(key=lambda row: row[1] != active)
            bulk.insert(persons_t, ("id", "status", "merged_into_id", "created_at", "updated_at"),
                        person_rows)  # fmt: skip
            bulk.insert(identities_t, identity_columns, identity_rows)
            bulk.insert(links_t, link_columns, link_rows)
            count_names(session, features)
        written += len(chunk)
        print(f"  {written:,} / {len(population):,} identities written", flush=True)
    with transaction(platform.sessions) as session:
        quote = session.get_bind().dialect.identifier_preparer.quote
        for table in (persons_t, identities_t, links_t):
            session.execute(text(f"ANALYZE {quote(table.name)}"))
    return {"identities": len(population), "persons": len(person_of), "of": identities_of}


def as_imported(record: Any) -> tuple[Any, Any, str]:
    """Traits, status and INS OID as the importer keeps them: a mistyped INS dropped (the
    identity kept, provisional), RECUP or QUAL only with an INS."""
    from dataclasses import replace

    from partage.identity.ins import InvalidIns, ins_oid, validate_ins
    from partage.identity.traits import IdentityStatus

    traits, status = record.traits, record.status
    if traits.ins:
        try:
            traits = replace(traits, ins=validate_ins(traits.ins))
        except InvalidIns:
            traits = replace(traits, ins="")
    if status in (IdentityStatus.qualified, IdentityStatus.recovered) and not traits.ins:
        status = IdentityStatus.provisional
    return traits, status, ins_oid(traits.ins) if traits.ins else ""


# --- the documents ------------------------------------------------------------------------

TITLES = {
    "11488-4": ("Compte rendu de consultation", "11488-4", "Compte rendu"),
    "34874-8": ("Compte rendu opératoire", "11488-4", "Compte rendu"),
    "18748-4": ("Compte rendu d'imagerie médicale", "18748-4", "Imagerie"),
    "11502-2": ("Compte rendu d'examens biologiques", "11502-2", "Biologie"),
    "18842-5": ("Lettre de liaison à la sortie", "18842-5", "Synthèse"),
}
_TYPE_WEIGHTS = (("11488-4", 40), ("11502-2", 25), ("18748-4", 15), ("18842-5", 12),
                 ("34874-8", 8))  # fmt: skip


def fast_pdf(lines: list[str], size: int, rng: random.Random) -> bytes:
    """`synthetic.pdf` padded to `size` bytes with incompressible bytes from `rng` (its own
    padding hashes its way along 32 bytes at a time: too slow for millions of documents).
    The padding is an unreferenced object placed before the cross-reference table."""
    from partage.documents.synthetic import pdf

    body = pdf(lines)
    missing = size - len(body) - 48
    if missing <= 0:
        return body
    noise = rng.randbytes(missing)
    padding = (
        b"99 0 obj\n<< /Length %d >>\nstream\n" % len(noise) + noise + b"\nendstream\nendobj\n"
    )
    xref = body.rindex(b"xref\n")
    head, tail = body[:xref], body[xref:]
    old = tail.rsplit(b"startxref\n", 1)
    tail = old[0] + b"startxref\n%d\n%%%%EOF\n" % (xref + len(padding))
    return head + padding + tail


def allocate(persons: int, documents: int, rng: random.Random) -> list[int]:
    """Documents per person: most have none to two, some dozens (weights: none for 45 %,
    lognormal for the others; then a multinomial draw)."""
    weights = [0.0 if rng.random() < 0.45 else rng.lognormvariate(0.0, 1.3) for _ in range(persons)]
    counts = [0] * persons
    for person in rng.choices(range(persons), weights=weights, k=documents):
        counts[person] += 1
    return counts


def document_items(
    *,
    identities_of: dict[int, list[tuple[str, str]]],
    counts: list[int],
    authors: dict[str, list[uuid.UUID]],
    large: int,
    factor: int,
    rng: random.Random,
) -> Iterator[Any]:
    from partage.documents.bulk import BulkDocument
    from partage.documents.models import RelationKind
    from partage.documents.submission import (
        INVISIBLE_PATIENT,
        LOINC,
        MASQUE_PS,
        AuthorRef,
        Coding,
        NewDocument,
        Relation,
    )

    small = (1_000, 3_000) if factor > 1 else (2_500, 8_000)
    forms = [
        fast_pdf([f"Formulaire {n} - consentement et information du patient"], 6_000, rng)
        for n in range(_FORMS)
    ]
    codes = [code for code, _ in _TYPE_WEIGHTS]
    type_weights = [w for _, w in _TYPE_WEIGHTS]
    with_documents = [p for p, n in enumerate(counts) if n]
    large_persons = set(rng.sample(with_documents, min(large, len(with_documents))))
    for person, count in enumerate(counts):
        for k in range(count):
            source, identity = rng.choice(identities_of[person])
            code = rng.choices(codes, weights=type_weights)[0]
            title, class_code, class_display = TITLES[code]
            created = _BASE - timedelta(days=rng.randrange(3650), minutes=rng.randrange(1440))
            if person in large_persons and k == 0:
                code, (title, class_code, class_display) = "18748-4", TITLES["18748-4"]
                content = fast_pdf([title, "Images jointes"], 1_048_576, rng)
            elif rng.random() < 0.08:
                content = forms[rng.randrange(_FORMS)]
                title = "Formulaire de consentement"
            else:
                lines = [title, f"Patient {person} - {source}", f"Le {created:%d/%m/%Y}"]
                content = fast_pdf(lines, rng.randint(*small), rng)
            visibility: frozenset[str] = frozenset()
            draw = rng.random()
            if draw < 0.01:
                visibility = frozenset({MASQUE_PS})
            elif draw < 0.02:
                visibility = frozenset({INVISIBLE_PATIENT})
            document = NewDocument(
                unique_id=f"urn:oid:2.25.{uuid.UUID(int=rng.getrandbits(128)).int}",
                content=content,
                mime_type="application/pdf",
                type=Coding(LOINC, code, title),
                class_=Coding(LOINC, class_code, class_display),
                format_code="urn:ihe:iti:xds-sd:pdf:2008",
                language="fr-FR",
                title=title,
                creation_time=created,
                authors=[AuthorRef(practitioner_id=rng.choice(authors[source]))],
                visibility=visibility,
            )
            yield BulkDocument(uuid.UUID(identity), document)
            if rng.random() < 0.02:  # a corrected version
                yield BulkDocument(
                    uuid.UUID(identity),
                    NewDocument(
                        unique_id=f"urn:oid:2.25.{uuid.UUID(int=rng.getrandbits(128)).int}",
                        content=fast_pdf([title, "Version corrigée"], rng.randint(*small), rng),
                        mime_type="application/pdf",
                        type=document.type,
                        class_=document.class_,
                        format_code=document.format_code,
                        language="fr-FR",
                        title=f"{title} (corrigé)",
                        creation_time=created + timedelta(days=1),
                        authors=document.authors,
                        relations=[
                            Relation(RelationKind.replaces, target_unique_id=document.unique_id)
                        ],
                    ),
                )


def practitioners_by_source(platform: Any, rng: random.Random) -> dict[str, list[uuid.UUID]]:
    """Each hospital's authors: 300 professionals of the directory each."""
    from sqlalchemy import select

    from partage.directory.models import Practitioner

    with platform.read_sessions() as session:
        ids = list(session.scalars(select(Practitioner.id).order_by(Practitioner.national_id)))
    return {source: rng.sample(ids, min(300, len(ids))) for source in SOURCES}


# --- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=PERSONS)
    parser.add_argument("--documents", type=int, default=DOCUMENTS)
    parser.add_argument("--documents-factor", type=int, default=1)
    parser.add_argument("--large", type=int, default=40, help="documents of 1 MB")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="partage-documents-"))
    data_dir = data_dir.resolve()
    if (data_dir / BENCH_FILE).exists():
        sys.exit(f"{data_dir} holds a loaded territory already: give another --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    documents = args.documents * args.documents_factor
    print(
        f"Seed territory: {args.persons:,} persons, {documents:,} documents "
        f"({args.large} of 1 MB) into {data_dir} on "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}",
        flush=True,
    )
    with database(args.database_url, data_dir, keep=True) as url:
        os.environ["PARTAGE_LOG_LEVEL"] = "WARNING"
        summary = run(args, data_dir, url, documents)
    (data_dir / BENCH_FILE).write_text(json.dumps(summary, indent=2))
    print(f"Kept {data_dir} for bench/documents_read.py --from {data_dir}")


def run(args: argparse.Namespace, data_dir: Path, url: str, documents: int) -> dict[str, Any]:
    from partage.config import Settings
    from partage.db import transaction
    from partage.demo import load_demo_directory
    from partage.documents.bulk import BulkReport, deposit_many
    from partage.migrations.runner import upgrade
    from partage.platform import Platform
    from partage.security import actions
    from partage.security.models import EstablishmentKind
    from partage.security.principal import operator_principal

    phases = Phases()
    settings = Settings(data_dir=data_dir, database_url=url, log_level="WARNING")
    platform = Platform.create(settings)
    operator = operator_principal("documents seed")
    rng = random.Random(SEED)
    with phases.phase("schema and establishments"):
        upgrade(platform.engine)
        establishments: dict[str, Any] = {}
        oids: dict[str, str] = {}
        with transaction(platform.sessions) as session:
            territory = actions.ensure_territory(session, code="GHT-86", name="GHT de la Vienne")
            for n, code in enumerate(SOURCES, start=1):
                kind = (
                    EstablishmentKind.clinic if "CLINIQUE" in code else EstablishmentKind.hospital
                )
                made = actions.create_establishment(
                    session, actor=operator, territory=territory, name=code, code=code, kind=kind,
                    oid=f"1.2.250.1.999.86.{n}",
                )  # fmt: skip
                establishments[code], oids[code] = made.id, made.patient_id_oid
    with phases.phase("directory (RPPS, FINESS)"):
        load_demo_directory(platform, actor=operator, professionals=PROFESSIONALS, patients=0,
                            announce=None)  # fmt: skip
    with phases.phase("patients"):
        patients = load_patients(platform, establishments, args.persons)
    authors = practitioners_by_source(platform, rng)
    ordered = sorted(patients["of"])  # true person numbers, in order
    counts = allocate(len(ordered), documents, rng)
    identities_of = {n: patients["of"][person] for n, person in enumerate(ordered)}
    histogram = {
        "0": sum(1 for c in counts if c == 0),
        "1-2": sum(1 for c in counts if 1 <= c <= 2),
        "3-9": sum(1 for c in counts if 3 <= c <= 9),
        "10-29": sum(1 for c in counts if 10 <= c <= 29),
        "30+": sum(1 for c in counts if c >= 30),
    }
    print(f"  documents per patient: {histogram}, at most {max(counts)}", flush=True)
    last = [time.perf_counter()]

    def progress(report: BulkReport) -> None:
        if report.batches % 20 == 0 or time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(
                f"  {report.deposited:,} documents filed ({report.contents_written:,} contents "
                f"written, {report.contents_shared:,} shared, "
                f"{report.bytes_written / 1e6:,.0f} MB)",
                flush=True,
            )

    with phases.phase("documents"):
        report = deposit_many(
            platform.sessions,
            platform.repository,
            document_items(
                identities_of=identities_of, counts=counts, authors=authors, large=args.large,
                factor=args.documents_factor, rng=rng,
            ),
            principal=operator,
            read_sessions=platform.read_sessions,
            batch_size=args.batch,
            workers=args.workers,
            progress=progress,
        )  # fmt: skip
        print(
            f"  {report.deposited:,} documents in {report.batches:,} batches: "
            f"{report.contents_written:,} contents written ({report.bytes_written / 1e6:,.0f} "
            f"MB), {report.contents_shared:,} documents sharing a stored content, "
            f"{report.replaced:,} versions replaced",
            flush=True,
        )
    with phases.phase("statistics"):
        from sqlalchemy import text

        with transaction(platform.sessions) as session:
            session.execute(text("ANALYZE"))
    wall, used = phases.total()
    print(
        f"Total: {wall:,.1f} s wall ({wall / 60:.1f} min), {used:,.1f} s CPU; target "
        f"≤ {TARGET_SECONDS / 60:.0f} min: ratio {wall / TARGET_SECONDS:.2f} "
        f"({'met' if wall <= TARGET_SECONDS else 'missed'})",
        flush=True,
    )
    platform.close()
    return {
        "database_url": url,
        "persons": patients["persons"],
        "identities": patients["identities"],
        "documents": report.deposited,
        "contents": report.contents_written,
        "large": args.large,
        "establishments": oids,
        "seconds": round(wall, 1),
        "cpu_seconds": round(used, 1),
        "phases": [
            {"name": n, "seconds": round(w, 1), "cpu": round(c, 1)} for n, w, c in phases.rows
        ],
    }


if __name__ == "__main__":
    main()
