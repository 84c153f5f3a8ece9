"""Bulk deposit: many documents filed without the HTTP API, for seeding (the demo territory,
the benchmarks' seed territory) and for taking over the contents of an earlier repository.

The rules are the deposit's (`deposit.py`, `filing.file_deposits`): CDA documents completed
from their headers, every content checked (`check_content`), the identity active and the
depositor allowed to file under it (`decide_deposit`), authors found in the directory,
replacements in the same patient's record and of a current version, contents encrypted by
`repository.prepare` and staged before the commit, one audit row per document, chained.
What changes is the cost: documents go `batch_size` at a time, each batch one transaction
whose rows are written with Core `executemany` (one statement per table), its lookups made
once per batch rather than once per document, its contents prepared and staged by a few
threads (hashing and AES-GCM release the interpreter lock, and so do writes and fsyncs).

A batch is all or nothing: a refused document refuses its batch (the earlier batches stay
committed), and the contents it staged are dropped. A content already stored is neither
encrypted nor written again; one stored by someone else while the batch ran loses the race
quietly (`ON CONFLICT DO NOTHING … RETURNING` says which rows this batch wrote), and its
staged copy is dropped: no blob is left that no row names.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from partage.access.decision import decide_deposit
from partage.audit.actions import AuditEntry, new_entry, queue_entries
from partage.bulk import insert_rows
from partage.db import transaction, utcnow
from partage.directory.models import Organization, Practitioner
from partage.documents.deposit import prepare_submission
from partage.documents.filing import check_content
from partage.documents.filing_writes import ResolvedAuthor, entry_row
from partage.documents.models import (
    DocumentContent,
    DocumentEntry,
    DocumentRelation,
    DocumentStatus,
    RelationKind,
    SubmissionSet,
)
from partage.documents.repository import PreparedContent, Repository, StagedContent
from partage.documents.submission import (
    AuthorRef,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.identity.models import LocalIdentity
from partage.security.principal import Principal

DEFAULT_BATCH = 1000
# Threads preparing and staging contents: enough to keep fsyncs in flight on a 2-core host.
DEFAULT_WORKERS = 4
BULK_CHANNEL = "bulk"
# The source of a submission when the caller names none (an OID arc of the platform's own).
BULK_SOURCE_ID = "urn:oid:1.2.250.1.999.86.1"

_CONTENTS = cast(Table, DocumentContent.__table__)
_SETS = cast(Table, SubmissionSet.__table__)
_ENTRIES = cast(Table, DocumentEntry.__table__)
_RELATIONS = cast(Table, DocumentRelation.__table__)
_IN_CHUNK = 500  # values per IN list: well under SQLite's and drivers' parameter limits
# The planner's statistics of the document tables are refreshed when the documents filed
# by this load reach this count, then each time they double.
_FIRST_STATISTICS = 2_000
# The identity is given by id, not by reference: a placeholder to satisfy the completion.
_KNOWN_PATIENT = PatientRef(local_id="-")


@dataclass(frozen=True, slots=True)
class BulkDocument:
    """One document to file under one local identity (the territory's id of an IPP)."""

    local_identity_id: uuid.UUID
    document: NewDocument
    # Documents of one batch that share this id form one submission set; by default each
    # document is a submission of its own (its id derived from the document's uniqueId).
    submission_unique_id: str | None = None
    source_id: str = BULK_SOURCE_ID


@dataclass
class BulkReport:
    deposited: int = 0
    skipped: int = 0  # uniqueIds already stored (with skip_existing)
    contents_written: int = 0  # new contents, encrypted and stored
    contents_shared: int = 0  # documents whose content was stored already (deduplicated)
    bytes_written: int = 0  # plain bytes of the new contents
    replaced: int = 0  # earlier versions superseded
    batches: int = 0


Progress = Callable[[BulkReport], None]


def deposit_many(
    sessions: sessionmaker[Session],
    repository: Repository,
    items: Iterable[BulkDocument],
    *,
    principal: Principal,
    read_sessions: sessionmaker[Session] | None = None,
    channel: str = BULK_CHANNEL,
    batch_size: int = DEFAULT_BATCH,
    workers: int = DEFAULT_WORKERS,
    skip_existing: bool = False,
    progress: Progress | None = None,
) -> BulkReport:
    """File `items` in batches of `batch_size`, each in a transaction of its own.

    `skip_existing`: a document whose uniqueId is stored already is left out (a seed run
    again, or resumed after an interruption, adds only what is missing); otherwise it
    refuses its batch, as a deposit would. Raises `SubmissionError` for a refused batch:
    the batches before it stay committed (`progress` has seen them)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = BulkReport()
    authors = _Authors()
    # Without read sessions of its own, the repository neither looks each content up before
    # staging it nor after the commit: this loader knows both (one query per batch before,
    # RETURNING at the insert), and a lookup per content would cost more than its write.
    repository = Repository(repository.store, repository.keks)
    iterator = iter(items)
    reads = read_sessions or sessions
    workers = max(1, workers)
    # A pipeline of two stages: while one batch is written and committed, the next one is
    # checked, encrypted and staged by another thread (and the caller builds the one after).
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk-docs") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-ahead") as ahead,
    ):

        def start(batch: list[BulkDocument]) -> Future[_Batch] | None:
            if not batch:
                return None
            return ahead.submit(
                _stage_batch, reads, repository, batch, channel=channel,
                skip_existing=skip_existing, pool=pool,
            )  # fmt: skip

        coming = start(list(islice(iterator, batch_size)))
        statistics_at = _FIRST_STATISTICS
        while coming is not None:
            current = coming.result()
            coming = None
            try:
                coming = start(list(islice(iterator, batch_size)))
                _commit_batch(
                    sessions, repository, current, principal=principal, channel=channel,
                    pool=pool, authors=authors, report=report,
                )  # fmt: skip
            except BaseException:
                if coming is not None:  # what the next batch staged meanwhile goes too
                    with suppress(BaseException):
                        list(pool.map(repository.abandoned, coming.result().staged.values()))
                raise
            report.skipped += current.skipped
            report.batches += 1
            if report.deposited >= statistics_at:
                refresh_statistics(sessions)
                statistics_at = 2 * report.deposited
            if progress is not None:
                progress(report)
    return report


def refresh_statistics(sessions: sessionmaker[Session]) -> None:
    """ANALYZE the tables a load grows. A load into a new territory starts on empty tables:
    the plans the database made and keeps for the load's repeated statements (PostgreSQL
    caches a generic plan for a prepared statement) then scan the whole table, and every
    batch's duplicate check costs more as the table grows (2 s per batch at 150,000
    documents, autovacuum off). Fresh statistics replace those plans. Doubling the
    threshold keeps it to a few passes per load."""
    with transaction(sessions) as session:
        quote = session.get_bind().dialect.identifier_preparer.quote
        for table in (_ENTRIES, _CONTENTS, _SETS, _RELATIONS):
            session.execute(text(f"ANALYZE {quote(table.name)}"))


@dataclass(slots=True)
class _Checked:
    item: BulkDocument
    document: NewDocument
    sha1: str
    sha256: str


def _check(item: BulkDocument, channel: str, position: int) -> _Checked:
    """What a deposit checks of a document alone: CDA header completion, the defaults,
    size, hash, type, content type."""
    document = item.document
    if not document.where:
        document = replace(document, where=f"document[{position}]")
    # The deposit's own completion, as for a one-document submission whose patient is known.
    document = prepare_submission(
        Submission("bulk", item.source_id, _KNOWN_PATIENT, channel, [document])
    ).documents[0]
    sha1 = check_content(document)
    return _Checked(item, document, sha1, hashlib.sha256(document.content).hexdigest())


@dataclass(slots=True)
class _Batch:
    checked: list[_Checked]
    staged: dict[str, StagedContent]  # by SHA-256: the contents new to the repository
    skipped: int = 0


def _stage_batch(
    read_sessions: sessionmaker[Session],
    repository: Repository,
    batch: list[BulkDocument],
    *,
    channel: str,
    skip_existing: bool,
    pool: ThreadPoolExecutor,
) -> _Batch:
    """Check the batch's documents, and encrypt and stage its contents new to the
    repository. Raises with nothing left staged."""
    checked = [_check(item, channel, i) for i, item in enumerate(batch)]
    unique_ids = [c.document.unique_id for c in checked]
    if len(set(unique_ids)) != len(unique_ids):
        raise SubmissionError("two documents of the batch share a uniqueId", code="duplicate")
    # Read before anything is staged (outside the write transaction, which must stay
    # short): what is stored already needs no encryption, no write. A content the batch
    # before is about to store is staged again, and dropped when its row loses the race.
    skipped = 0
    with read_sessions() as session:
        taken = _existing(session, _ENTRIES.c.unique_id, unique_ids)
        if skip_existing and taken:
            skipped = sum(1 for c in checked if c.document.unique_id in taken)
            checked = [c for c in checked if c.document.unique_id not in taken]
            taken = set()
        stored = _existing(session, _CONTENTS.c.sha256, [c.sha256 for c in checked])
    if taken:
        first = next(c for c in checked if c.document.unique_id in taken)
        raise SubmissionError(
            f"a document with the uniqueId {first.document.unique_id} is already stored",
            where=f"{first.document.where}.masterIdentifier",
            code="duplicate",
        )
    fresh: dict[str, bytes] = {}
    for c in checked:
        if c.sha256 not in stored:
            fresh.setdefault(c.sha256, c.document.content)

    def stage(content: bytes) -> StagedContent | BaseException:
        try:
            return repository.stage(repository.prepare(content))
        except BaseException as error:  # handed back: the others must be dropped first
            return error

    outcomes = list(pool.map(stage, fresh.values()))
    staged = {o.prepared.sha256: o for o in outcomes if isinstance(o, StagedContent)}
    failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failed is not None:
        list(pool.map(repository.abandoned, staged.values()))
        raise failed
    return _Batch(checked, staged, skipped)


def _commit_batch(
    sessions: sessionmaker[Session],
    repository: Repository,
    batch: _Batch,
    *,
    principal: Principal,
    channel: str,
    pool: ThreadPoolExecutor,
    authors: _Authors,
    report: BulkReport,
) -> None:
    """Write the batch's rows in one transaction; then keep or drop its staged contents."""
    staged = list(batch.staged.values())
    if not batch.checked:
        return
    try:
        with transaction(sessions) as session:
            written = _write_batch(
                session,
                batch.checked,
                batch.staged,
                principal=principal,
                channel=channel,
                authors=authors,
                report=report,
            )
    except BaseException:
        list(pool.map(repository.abandoned, staged))
        raise

    # The rows are committed: promote what this batch's rows name, drop what lost a race
    # (by the threads too: a promotion may create a directory, which costs an fsync).
    def settle(item: StagedContent) -> None:
        if item.prepared.sha256 in written:
            repository.committed(item)
        else:
            repository.abandoned(item)

    list(pool.map(settle, staged))
    report.bytes_written += sum(s.prepared.size for s in staged if s.prepared.sha256 in written)
    report.contents_written += len(written)
    report.contents_shared += len(batch.checked) - len(written)


def _existing(session: Session, column: Any, values: Sequence[Any]) -> set[Any]:
    found: set[Any] = set()
    distinct = list(dict.fromkeys(values))
    for i in range(0, len(distinct), _IN_CHUNK):
        found.update(session.scalars(select(column).where(column.in_(distinct[i : i + _IN_CHUNK]))))
    return found


@dataclass(frozen=True, slots=True)
class _Identity:
    id: uuid.UUID
    person_id: uuid.UUID
    establishment_id: uuid.UUID
    active: bool


@dataclass(slots=True)
class _Target:
    """A document a relation points to: stored, or filed earlier in the same batch."""

    id: uuid.UUID
    unique_id: str
    lineage_id: uuid.UUID
    version: int
    status: str
    person_id: uuid.UUID | None
    in_batch: bool = False


def _write_batch(
    session: Session,
    checked: list[_Checked],
    staged: dict[str, StagedContent],
    *,
    principal: Principal,
    channel: str,
    authors: _Authors,
    report: BulkReport,
) -> set[str]:
    """The batch's rows, in the caller's transaction; the hashes of the contents it wrote."""
    now = utcnow()
    identities = _identities(session, {c.item.local_identity_id for c in checked})
    authors.load(session, [a for c in checked for a in c.document.authors])
    targets = _targets(session, checked)
    sets: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    superseded: list[uuid.UUID] = []
    audit: list[AuditEntry] = []
    decisions: dict[uuid.UUID, Any] = {}
    for c in checked:
        document = c.document
        identity = identities.get(c.item.local_identity_id)
        if identity is None or not identity.active:
            raise SubmissionError(
                f"no active local identity {c.item.local_identity_id}",
                where=f"{document.where}.subject",
                code="not-found",
            )
        decision = decisions.get(identity.establishment_id)
        if decision is None:
            decision = decisions[identity.establishment_id] = decide_deposit(
                principal, identity_establishment_id=identity.establishment_id
            )
        if not decision.allowed:
            raise SubmissionError(
                "no identity of this patient in your identification domain",
                where=f"{document.where}.subject",
                code="not-found",
            )
        author = authors.resolve(document)
        set_uid = c.item.submission_unique_id or _submission_id(document.unique_id)
        submission = sets.get(set_uid)
        if submission is None:
            submission = sets[set_uid] = {
                "id": uuid.uuid4(),
                "unique_id": set_uid,
                "source_id": c.item.source_id,
                "local_identity_id": identity.id,
                "establishment_id": identity.establishment_id,
                "title": None,
                "author_label": author.label,
                "submitted_by": principal.label[:200],
                "channel": channel,
                "submitted_at": now,
            }
        elif submission["local_identity_id"] != identity.id:
            raise SubmissionError(
                f"the submission {set_uid} mixes two patients' documents",
                where=f"{document.where}.subject",
                code="value",
            )
        entry_id = uuid.uuid4()
        lineage_id, version, replaced = entry_id, 1, None
        for relation in document.relations:
            target = targets.get(relation.target_id or relation.target_unique_id or "")
            if target is None or target.person_id != identity.person_id:
                raise SubmissionError(
                    "the related document is not in this patient's record",
                    where=f"{document.where}.relatesTo",
                    code="not-found",
                )
            if relation.kind is RelationKind.replaces:
                if target.status != DocumentStatus.current or replaced is not None:
                    raise SubmissionError(
                        f"the document replaced is {target.status}, not current"
                        if replaced is None
                        else "a document replaces one document only",
                        where=f"{document.where}.relatesTo",
                        code="value",
                    )
                replaced = target
                lineage_id, version = target.lineage_id, target.version + 1
                target.status = DocumentStatus.superseded.value
                if target.in_batch:
                    entries[_entry_index(entries, target.id)]["status"] = target.status
                else:
                    superseded.append(target.id)
            relations.append(
                {
                    "id": uuid.uuid4(),
                    "source_id": entry_id,
                    "target_id": target.id,
                    "kind": relation.kind.value,
                    "created_at": now,
                }
            )
        # Later documents of the batch may replace this one.
        targets[document.unique_id] = _Target(
            entry_id,
            document.unique_id,
            lineage_id,
            version,
            DocumentStatus.current.value,
            identity.person_id,
            in_batch=True,
        )
        targets[entry_id] = targets[document.unique_id]
        entries.append(
            entry_row(
                document,
                entry_id=entry_id,
                lineage_id=lineage_id,
                version=version,
                identity_id=identity.id,
                establishment_id=identity.establishment_id,
                submission_set_id=submission["id"],
                sha256=c.sha256,
                author=author,
                principal=principal,
                now=now,
            )
        )
        audit.append(
            new_entry(
                actor=principal.actor,
                action="document.deposit",
                entity_type="DocumentReference",
                entity_id=str(entry_id),
                person_id=str(identity.person_id),
                basis=decision.basis_code,
                detail={
                    "unique_id": document.unique_id,
                    "submission": set_uid,
                    "channel": channel,
                    "version": version,
                    **({"replaces": str(replaced.id)} if replaced is not None else {}),
                },
            )
        )
        if replaced is not None:
            report.replaced += 1
    written = _insert_contents(session, checked, staged, now)
    insert_rows(session, _SETS, list(sets.values()))
    insert_rows(session, _ENTRIES, entries)
    insert_rows(session, _RELATIONS, relations)
    if superseded:
        session.execute(
            update(_ENTRIES)
            .where(_ENTRIES.c.id == bindparam("target"))
            .values(status=DocumentStatus.superseded.value, updated_at=now),
            [{"target": target} for target in superseded],
        )
    queue_entries(session, audit)
    report.deposited += len(entries)
    return written


def _entry_index(entries: list[dict[str, Any]], entry_id: uuid.UUID) -> int:
    # Rare (a replacement within one batch): a scan from the end finds it quickly.
    for i in range(len(entries) - 1, -1, -1):
        if entries[i]["id"] == entry_id:
            return i
    raise LookupError(entry_id)


def _submission_id(document_unique_id: str) -> str:
    # Stable, so that a run again finds the same submission: derived from the document's.
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'submission:' + document_unique_id)}"


def _insert_contents(
    session: Session,
    checked: list[_Checked],
    staged: dict[str, StagedContent],
    now: datetime,
) -> set[str]:
    """The content rows of what this batch staged; the hashes whose row it wrote (a row
    another deposit committed meanwhile is left as it is). A content the batch did not
    stage was stored before it started, and must still be: its row is not written."""
    sha1s = {c.sha256: c.sha1 for c in checked}
    missing = {c.sha256 for c in checked} - staged.keys()
    rows = [_content_row(s.prepared, sha1s[sha], now) for sha, s in staged.items()]
    written: set[str] = set()
    if rows:
        dialect = session.get_bind().dialect.name
        statement = (
            postgresql.insert(_CONTENTS) if dialect == "postgresql" else sqlite.insert(_CONTENTS)
        ).on_conflict_do_nothing(index_elements=["sha256"])
        written = set(session.scalars(statement.returning(_CONTENTS.c.sha256), rows))
    if missing and len(_existing(session, _CONTENTS.c.sha256, list(missing))) != len(missing):
        raise SubmissionError("a content stored earlier has disappeared meanwhile", code="conflict")
    return written


def _content_row(prepared: PreparedContent, sha1: str, now: datetime) -> dict[str, Any]:
    return {
        "sha256": prepared.sha256,
        "sha1": sha1,
        "size": prepared.size,
        "storage_key": prepared.storage_key,
        "scheme": prepared.scheme,
        "kek_id": prepared.kek_id,
        "wrapped_key": prepared.wrapped_key,
        "created_at": now,
    }


def _identities(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, _Identity]:
    table = cast(Table, LocalIdentity.__table__)
    columns = (table.c.id, table.c.person_id, table.c.establishment_id, table.c.active)
    found: dict[uuid.UUID, _Identity] = {}
    for chunk in _chunks(list(ids)):
        for row in session.execute(select(*columns).where(table.c.id.in_(chunk))):
            found[row[0]] = _Identity(row[0], row[1], row[2], bool(row[3]))
    return found


def _targets(session: Session, checked: list[_Checked]) -> dict[Any, _Target]:
    """The stored documents the batch's relations point to, by id and by uniqueId."""
    by_id = [r.target_id for c in checked for r in c.document.relations if r.target_id]
    by_unique = [
        r.target_unique_id for c in checked for r in c.document.relations if r.target_unique_id
    ]
    if not by_id and not by_unique:
        return {}
    identities = cast(Table, LocalIdentity.__table__)
    columns = (
        _ENTRIES.c.id,
        _ENTRIES.c.unique_id,
        _ENTRIES.c.lineage_id,
        _ENTRIES.c.version,
        _ENTRIES.c.status,
        identities.c.person_id,
    )
    joined = _ENTRIES.join(identities, identities.c.id == _ENTRIES.c.local_identity_id)
    found: dict[Any, _Target] = {}
    for column, values in ((_ENTRIES.c.id, by_id), (_ENTRIES.c.unique_id, by_unique)):
        for chunk in _chunks(values):
            # Locked: the status read here is the one the batch's update replaces.
            statement = select(*columns).select_from(joined).where(column.in_(chunk))
            if session.get_bind().dialect.name == "postgresql":
                statement = statement.with_for_update(of=_ENTRIES)
            for row in session.execute(statement):
                target = _Target(row[0], row[1], row[2], row[3], row[4], row[5])
                found[target.id] = found[target.unique_id] = target
    return found


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


@dataclass
class _Authors:
    """The directory's professionals and structures the documents name, read once for
    the whole run (a territory's documents have a few thousand authors)."""

    practitioners: dict[uuid.UUID, str] = field(default_factory=dict)  # id → "Given FAMILY"
    national_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    organizations: dict[uuid.UUID, str] = field(default_factory=dict)  # id → name
    finess: dict[str, uuid.UUID] = field(default_factory=dict)
    missing: set[Any] = field(default_factory=set)  # looked up, not in the directory

    def load(self, session: Session, refs: list[AuthorRef]) -> None:
        practitioners = {r.practitioner_id for r in refs if r.practitioner_id} - set(
            self.practitioners
        )
        nationals = {
            r.practitioner_national_id
            for r in refs
            if r.practitioner_national_id and not r.practitioner_id
        } - set(self.national_ids)
        organizations = {r.organization_id for r in refs if r.organization_id} - set(
            self.organizations
        )
        finess = {
            r.organization_finess for r in refs if r.organization_finess and not r.organization_id
        } - set(self.finess)
        p = Practitioner
        searches: tuple[tuple[Any, set[Any], dict[Any, Any]], ...] = (
            (p.id, practitioners, self.practitioners),
            (p.national_id, nationals, self.national_ids),
        )
        for column, wanted, known in searches:
            for chunk in _chunks(sorted(wanted - self.missing, key=str)):
                rows = session.execute(
                    select(p.id, p.national_id, p.given_name, p.family_name).where(
                        column.in_(chunk)
                    )
                )
                for pid, national, given, family in rows:
                    self.practitioners[pid] = " ".join(x for x in (given, family) if x)
                    self.national_ids[national] = pid
            self.missing |= wanted - known.keys()
        o = Organization
        for chunk in _chunks(sorted(organizations - self.missing, key=str)):
            for oid, name in session.execute(select(o.id, o.name).where(o.id.in_(chunk))):
                self.organizations[oid] = name
        for number in sorted(finess - self.missing):
            # As the deposit does: the establishment (ET) first, then the legal entity (EJ).
            for by in (o.finess_et, o.finess_ej):
                row = session.execute(
                    select(o.id, o.name).where(by == number).order_by(o.source_key).limit(1)
                ).first()
                if row is not None:
                    self.organizations[row[0]] = row[1]
                    self.finess[number] = row[0]
                    break
        self.missing |= {o_id for o_id in organizations if o_id not in self.organizations}
        self.missing |= {n for n in finess if n not in self.finess}

    def resolve(self, document: NewDocument) -> ResolvedAuthor:
        """`actions._authors`: the first professional, the first structure, the labels."""
        if not document.authors or all(a.is_empty and not a.label for a in document.authors):
            raise SubmissionError(
                "the document has no author", where=f"{document.where}.author", code="required"
            )
        practitioner: uuid.UUID | None = None
        organization: uuid.UUID | None = None
        labels: list[str] = []
        for i, author in enumerate(document.authors):
            where = f"{document.where}.author[{i}]"
            pid = author.practitioner_id or (
                self.national_ids.get(author.practitioner_national_id)
                if author.practitioner_national_id
                else None
            )
            if (author.practitioner_id or author.practitioner_national_id) and (
                pid is None or pid not in self.practitioners
            ):
                known_as = author.practitioner_national_id or str(author.practitioner_id)
                raise SubmissionError(
                    f"unknown author: no professional {known_as} in the territory's directory",
                    where=where,
                    code="not-found",
                )
            oid = author.organization_id or (
                self.finess.get(author.organization_finess) if author.organization_finess else None
            )
            if (author.organization_id or author.organization_finess) and (
                oid is None or oid not in self.organizations
            ):
                known_as = author.organization_finess or str(author.organization_id)
                raise SubmissionError(
                    f"unknown author organization: no structure {known_as} in the territory's "
                    "directory",
                    where=where,
                    code="not-found",
                )
            label = author.label or (self.practitioners[pid] if pid else None)
            if oid is not None:
                name = self.organizations[oid]
                label = f"{label} ({name})" if label else name
            if label:
                labels.append(label)
            practitioner = practitioner or pid
            organization = organization or oid
        return ResolvedAuthor(
            practitioner, organization, "; ".join(labels)[:300] if labels else None
        )
