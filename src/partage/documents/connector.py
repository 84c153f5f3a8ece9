"""The drop-folder connector: a hospital system writes documents into a folder, Partage files
them, and each file ends in `done/` (with a receipt) or `failed/` (with the reason).

The folder's protocol, as a sender sees it:

- a document is `NAME.pdf`, `NAME.xml` (CDA R2) or `NAME.txt`, with its metadata in
  `NAME.json` next to it (the "sidecar"). A CDA needs no sidecar when its header names the
  patient (an identifier in the establishment's domain, or a qualified INS) and the author.
- a file is taken once complete: write `NAME.pdf.tmp` (or `.part`) and rename it into place,
  or write in place and leave it unchanged for the settle time. Write the sidecar first.
- the connector moves the document into `processing/` (a rename: one atomic step), files it,
  then moves it with its sidecar into `done/` (with `NAME.receipt.json`) or `failed/` (with
  `NAME.error.txt`, the reason in French and English).

A crash leaves the document in `processing/`; the next pass files it again. That is safe:
a document's uniqueId is the sidecar's, the CDA's own id, or derived from the establishment,
the file name and the content's SHA-256, so a document stored before the crash is recognised
(same uniqueId, same content) and moved to `done/` instead of being stored twice.

One connector works on a folder at a time (a lock file, `.partage-connector.lock`): retrying
`processing/` is only safe when nobody else is filing its contents. A second connector waits
for the lock, and takes over when the first stops.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from partage.access.decision import decide_deposit
from partage.documents import service
from partage.documents.cda import CdaDocument, InvalidCda, parse_cda
from partage.documents.deposit import deposit
from partage.documents.repository import Repository
from partage.documents.sidecar import (
    Refused,
    Sidecar,
    cda_unique_id,
    check_header_agrees,
    french_reason,
    read_sidecar,
    with_sidecar,
)
from partage.documents.submission import (
    MAX_DOCUMENT_BYTES,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.identity.ins import validate_ins
from partage.security import service as security_service
from partage.security.principal import Principal

__all__ = [
    "Connector",
    "ConnectorError",
    "ConnectorUnavailable",
    "Outcome",
    "Sidecar",
]

log = logging.getLogger(__name__)

PROCESSING = "processing"
DONE = "done"
FAILED = "failed"
LOCK_NAME = ".partage-connector.lock"
SIDECAR_SUFFIX = ".json"
# What a document may be, by its file's suffix (compared in lower case: Windows senders
# write `.PDF`).
MEDIA_TYPES = {".pdf": "application/pdf", ".xml": "text/xml", ".txt": "text/plain"}
# Files being written by a sender that renames them into place when complete.
IN_PROGRESS_SUFFIXES = (".tmp", ".part")
# The namespace of the uniqueIds derived from a file (a UUID of our own, fixed forever: a
# change would make a retried file look new).
_NAMESPACE = uuid.UUID("4f1d7c52-2d6e-4c0e-9a57-5b9f6f0f1c3a")


class ConnectorError(Exception):
    """The connector cannot start: unknown establishment, folder not usable."""


class ConnectorUnavailable(Exception):
    """Partage could not file a document for a reason that is not the document's (the
    database or the store unreachable): it stays in `processing/` for the next pass."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"{name}: {type(cause).__name__}: {cause}")
        self.name = name
        self.cause = cause


# --- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one document file."""

    name: str
    status: Literal["done", "failed"]
    moved_to: Path
    document_id: uuid.UUID | None = None
    unique_id: str | None = None
    person_id: uuid.UUID | None = None
    # Stored by an earlier pass (a retry after a crash): recognised, not stored twice.
    already_stored: bool = False
    reason: str | None = None
    where: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "status": self.status,
            "moved_to": str(self.moved_to),
            "document_id": str(self.document_id) if self.document_id else None,
            "unique_id": self.unique_id,
            "person_id": str(self.person_id) if self.person_id else None,
            "already_stored": self.already_stored,
            "reason": self.reason,
            "where": self.where,
        }


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


@dataclass
class _Stored:
    document_id: uuid.UUID
    unique_id: str
    person_id: uuid.UUID
    version: int
    replaced_id: uuid.UUID | None
    already_stored: bool


# --- the connector --------------------------------------------------------------------------


@dataclass
class Connector:
    """Files the documents dropped in `directory` for one establishment.

    Usable without the command line: `acquire()` the folder, then iterate `poll()` as often
    as wanted (each pass yields an `Outcome` per file it finished), `release()` at the end.
    """

    sessions: sessionmaker[Session]
    repository: Repository
    directory: Path
    establishment_id: uuid.UUID
    establishment_code: str
    domain_oid: str
    settle: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, _Seen] = field(default_factory=dict, init=False, repr=False)
    _lock_fd: int | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_establishment(
        cls,
        sessions: sessionmaker[Session],
        repository: Repository,
        *,
        directory: Path,
        establishment: str,
        settle: float = 2.0,
    ) -> Connector:
        """A connector acting for the establishment `establishment` (its code)."""
        if settle < 0:
            raise ConnectorError("the settle time cannot be negative")
        if not directory.is_dir():
            raise ConnectorError(f"{directory} is not a directory")
        with sessions() as session:
            found = security_service.get_establishment(session, code=establishment)
            if found is None:
                raise ConnectorError(
                    f"no establishment {establishment!r} (see `partage establishments list`)"
                )
            if not found.active:
                raise ConnectorError(f"the establishment {found.code} is deactivated")
            connector = cls(
                sessions=sessions,
                repository=repository,
                directory=directory,
                establishment_id=found.id,
                establishment_code=found.code,
                domain_oid=found.patient_id_oid,
                settle=settle,
            )
        # The principal must be one that may file under its establishment's identities;
        # checked once here so that a refusal says so at start, not once per file.
        decision = decide_deposit(
            connector.principal, identity_establishment_id=connector.establishment_id
        )
        if not decision.allowed:
            raise ConnectorError(f"the connector may not deposit: {decision.reason}")
        for sub in (PROCESSING, DONE, FAILED):
            (directory / sub).mkdir(exist_ok=True)
        return connector

    @property
    def principal(self) -> Principal:
        return Principal(
            kind="client",
            label=f"Connector {self.establishment_code}",
            establishment_id=self.establishment_id,
            # Named in the audit trail: which connector filed a document.
            client_id=f"connector:{self.establishment_code}",
        )

    # -- the folder lock --

    def acquire(self) -> bool:
        """Take the folder (non-blocking): False when another connector holds it."""
        if self._lock_fd is not None:
            return True
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            # Closing the descriptor releases the lock; the file stays (removing it would
            # race with a connector that has just opened it).
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- passes --

    @property
    def settling(self) -> int:
        """Documents seen but not yet taken: still being written, or not yet stable long
        enough."""
        return sum(1 for name in self._seen if not _is_sidecar_name(name))

    def poll(self) -> Iterator[Outcome]:
        """One pass: what `processing/` holds (left by a crash or an outage), then every
        complete document of the folder, one at a time. Stopping the iteration stops between
        two files; `ConnectorUnavailable` leaves the file in `processing/`."""
        if self._lock_fd is None:
            raise ConnectorError("the folder is not acquired: call acquire() first")
        for sub in (PROCESSING, DONE, FAILED):
            (self.directory / sub).mkdir(exist_ok=True)  # an operator may have removed one
        processing = self.directory / PROCESSING
        for path in sorted(processing.iterdir()):
            if path.is_file() and not _is_sidecar_name(path.name):
                yield self._process(path)
        for path in sorted(processing.iterdir()):
            if path.is_file() and path.suffix == SIDECAR_SUFFIX and _document_of(path) is None:
                yield self._orphan_sidecar(path)
        for path in self._ready():
            claimed = self._claim(path)
            if claimed is not None:
                yield self._process(claimed)

    def _ready(self) -> list[Path]:
        """The documents of the folder whose bytes (and sidecar's) have stopped changing."""
        now = self.clock()
        stable: set[str] = set()
        names: set[str] = set()
        for entry in os.scandir(self.directory):
            if not entry.is_file(follow_symlinks=False) or _ignored(entry.name):
                continue
            names.add(entry.name)
            info = entry.stat(follow_symlinks=False)
            seen = self._seen.get(entry.name)
            if seen is None or (seen.size, seen.mtime_ns) != (info.st_size, info.st_mtime_ns):
                # Observed by our own clock, not judged by the mtime: on a network share the
                # file server's clock may be minutes off ours.
                self._seen[entry.name] = _Seen(info.st_size, info.st_mtime_ns, now)
                if self.settle > 0:
                    continue
            elif now - seen.since < self.settle:
                continue
            stable.add(entry.name)
        for gone in set(self._seen) - names:
            del self._seen[gone]
        ready: list[Path] = []
        for name in sorted(stable):
            if _is_sidecar_name(name):
                continue
            stem = Path(name).stem
            sidecar = stem + SIDECAR_SUFFIX
            if sidecar in names and sidecar not in stable:
                continue  # its metadata is still being written
            if any(stem + SIDECAR_SUFFIX + s in names for s in IN_PROGRESS_SUFFIXES):
                continue
            ready.append(self.directory / name)
        return ready

    def _claim(self, path: Path) -> Path | None:
        """Move the document into `processing/` (the claim), then its sidecar."""
        target = self.directory / PROCESSING / path.name
        if target.exists():
            return None  # a namesake is still in processing/: taken at the next pass
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None  # the sender (or an operator) took it back
        self._seen.pop(path.name, None)
        sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
        if sidecar.exists():
            os.rename(sidecar, target.with_name(sidecar.name))
            self._seen.pop(sidecar.name, None)
        return target

    def _process(self, path: Path) -> Outcome:
        sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
        if not sidecar.exists():
            # Left in the folder by a crash between the two renames of the claim.
            left = self.directory / sidecar.name
            if left.exists():
                os.rename(left, sidecar)
        try:
            stored = self._file(path, sidecar if sidecar.exists() else None)
        except SubmissionError as error:
            return self._fail(path, error)
        except ConnectorUnavailable:
            raise
        except Exception as error:
            # A fault of ours that this file brings out: the file is set aside with the
            # error rather than blocking every file behind it.
            log.exception("connector: unexpected error on %s", path.name)
            detail = f"{type(error).__name__}: {error}"
            return self._fail(
                path,
                Refused(
                    f"unexpected error while filing the document ({detail})",
                    french=f"erreur inattendue pendant le dépôt ({detail})",
                    code="exception",
                ),
            )
        return self._succeed(path, stored)

    def _file(self, path: Path, sidecar_path: Path | None) -> _Stored:
        try:
            size = path.stat().st_size
            if size > MAX_DOCUMENT_BYTES:
                # Said before reading it: a stray disk image must not be loaded into memory.
                raise Refused(
                    f"the file weighs {size} bytes, more than the {MAX_DOCUMENT_BYTES} accepted",
                    french=f"le fichier pèse {size} octets, plus que les {MAX_DOCUMENT_BYTES} "
                    "acceptés",
                    where=path.name,
                    code="too-long",
                )
            content = path.read_bytes()
            sidecar_bytes = sidecar_path.read_bytes() if sidecar_path is not None else None
        except OSError as error:
            raise Refused(
                f"the file cannot be read: {error.strerror}",
                french=f"le fichier ne peut pas être lu : {error.strerror}",
                where=path.name,
            ) from None
        sidecar = (
            read_sidecar(sidecar_bytes, sidecar_path.name)
            if sidecar_bytes is not None and sidecar_path is not None
            else None
        )
        submission = self._submission(path.name, content, sidecar)
        document = submission.documents[0]
        # An IntegrityError is a race with another channel filing the same uniqueId at the
        # same moment: the second attempt sees its row and answers "duplicate".
        for attempt in range(2):
            try:
                result = deposit(
                    self.sessions,
                    self.repository,
                    principal=self.principal,
                    submission=submission,
                )
            except SubmissionError as error:
                if error.code != "duplicate":
                    raise
                return self._already_stored(document.unique_id, content, error)
            except IntegrityError as error:
                if attempt == 1:
                    raise Refused(
                        f"conflicting change in the database: {error.orig}",
                        french="modification concurrente dans la base de données",
                    ) from None
                continue
            except (OperationalError, OSError, TimeoutError) as error:
                raise ConnectorUnavailable(path.name, error) from error
            deposited = result.documents[0]
            return _Stored(
                deposited.id,
                deposited.unique_id,
                deposited.person_id,
                deposited.version,
                deposited.replaced_id,
                already_stored=False,
            )
        raise AssertionError("unreachable")

    def _already_stored(self, unique_id: str, content: bytes, error: SubmissionError) -> _Stored:
        """A duplicate is this very file stored by an earlier pass when the stored document
        is ours and its content the same; anything else stays a refusal."""
        with self.sessions() as session:
            entry = service.entry_by_unique_id(session, unique_id)
            if (
                entry is None
                or entry.establishment_id != self.establishment_id
                or entry.sha256 != hashlib.sha256(content).hexdigest()
            ):
                raise error
            person_id = service.person_of_identity(session, entry.local_identity_id)
            assert person_id is not None
            return _Stored(
                entry.id, entry.unique_id, person_id, entry.version, None, already_stored=True
            )

    def _submission(self, name: str, content: bytes, sidecar: Sidecar | None) -> Submission:
        suffix = Path(name).suffix.lower()
        mime_type = MEDIA_TYPES.get(suffix)
        if mime_type is None:
            raise Refused(
                f"unsupported file type {suffix or '(none)'}: the folder takes .pdf, .xml "
                "(CDA R2) and .txt documents, each with its .json metadata file",
                french=f"type de fichier non pris en charge ({suffix or 'aucun'}) : le dossier "
                "accepte les documents .pdf, .xml (CDA R2) et .txt, chacun avec son fichier de "
                "métadonnées .json",
                where=name,
            )
        header: CdaDocument | None = None
        if suffix == ".xml":
            try:
                header = parse_cda(content)
            except InvalidCda as error:
                raise Refused(
                    f"the file is not a valid CDA R2 document: {error}",
                    french=f"le fichier n'est pas un document CDA R2 valide : {error}",
                    where=name,
                ) from None
        elif sidecar is None:
            raise Refused(
                f"metadata missing: a {suffix} document needs its metadata file "
                f"{Path(name).stem}{SIDECAR_SUFFIX}",
                french=f"métadonnées manquantes : un document {suffix} doit être accompagné de "
                f"son fichier {Path(name).stem}{SIDECAR_SUFFIX}",
                where=name,
                code="required",
            )
        elif suffix == ".pdf" and b"%PDF-" not in content[:1024]:
            raise Refused(
                "the .pdf file is not a PDF document",
                french="le fichier .pdf n'est pas un document PDF",
                where=name,
            )
        patient = self._patient(name, sidecar, header)
        unique_id = (
            (sidecar.unique_id if sidecar else None)
            or cda_unique_id(header)
            or self._derived_id("document", name, content)
        )
        document = NewDocument(
            unique_id=unique_id,
            content=content,
            mime_type=mime_type,
            where="document",
        )
        if sidecar is not None:
            document = with_sidecar(document, sidecar)
        return Submission(
            unique_id=self._derived_id(f"submission {unique_id}", name, content),
            source_id=self.domain_oid,
            patient=patient,
            channel="folder",
            documents=[document],
            title=document.title,
        )

    def _patient(
        self, name: str, sidecar: Sidecar | None, header: CdaDocument | None
    ) -> PatientRef:
        given = sidecar.patient if sidecar is not None else None
        if given is not None:
            if given.ins is not None:
                ref = PatientRef(ins=validate_ins(given.ins))
            else:
                ref = PatientRef(domain_oid=given.domain_oid or self.domain_oid,
                                 local_id=given.local_id)  # fmt: skip
            if header is not None:
                check_header_agrees(ref, header)
            return ref
        if header is not None:
            # The header may list several identifiers (other establishments' IPPs, the INS):
            # the one of our own domain first, as the connector files under its identities.
            for identifier in header.patient.ids:
                if identifier.root == self.domain_oid and identifier.extension:
                    return PatientRef(domain_oid=self.domain_oid, local_id=identifier.extension)
            if header.patient.ins:
                return PatientRef(ins=header.patient.ins, ins_oid=header.patient.ins_oid)
            raise Refused(
                "the patient is missing: the CDA header names no identifier of the domain "
                f"{self.domain_oid} nor an INS, and there is no metadata file",
                french="patient manquant : l'en-tête CDA ne donne ni identifiant du domaine "
                f"{self.domain_oid} ni INS, et il n'y a pas de fichier de métadonnées",
                where="recordTarget",
                code="required",
            )
        raise Refused(
            "the patient is missing from the metadata file",
            french="le patient manque dans le fichier de métadonnées",
            where="patient",
            code="required",
        )

    def _derived_id(self, purpose: str, name: str, content: bytes) -> str:
        """A uniqueId the same file always gets (OID 2.25, from a UUID): a retried file is
        recognised. The establishment is part of it, so that two establishments dropping the
        same file never collide (nor learn of each other's documents)."""
        digest = hashlib.sha256(content).hexdigest()
        key = f"{purpose}\n{self.domain_oid}\n{name}\n{digest}"
        return f"2.25.{uuid.uuid5(_NAMESPACE, key).int}"

    # -- endings --

    def _succeed(self, path: Path, stored: _Stored) -> Outcome:
        destination = _free_stem(self.directory / DONE, path)
        receipt = {
            "file": path.name,
            "document_id": str(stored.document_id),
            "unique_id": stored.unique_id,
            "person_id": str(stored.person_id),
            "version": stored.version,
            "replaced_id": str(stored.replaced_id) if stored.replaced_id else None,
            "already_stored": stored.already_stored,
            "establishment": self.establishment_code,
            "processed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_atomically(
            destination.with_name(destination.stem + ".receipt.json"),
            json.dumps(receipt, ensure_ascii=False, indent=2) + "\n",
        )
        moved = self._move_out(path, destination)
        log.info(
            "connector filed %s as %s%s",
            path.name,
            stored.document_id,
            " (already stored)" if stored.already_stored else "",
        )
        return Outcome(
            name=path.name,
            status="done",
            moved_to=moved,
            document_id=stored.document_id,
            unique_id=stored.unique_id,
            person_id=stored.person_id,
            already_stored=stored.already_stored,
        )

    def _fail(self, path: Path, error: SubmissionError) -> Outcome:
        destination = _free_stem(self.directory / FAILED, path)
        french = error.french if isinstance(error, Refused) else french_reason(error)
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        where = error.where or "-"
        text = (
            f"Fichier : {path.name}\n"
            f"Refusé le {now} par le connecteur {self.establishment_code}.\n"
            f"Motif : {french}\n"
            f"Emplacement : {where}\n"
            "\n"
            f"File: {path.name}\n"
            f"Refused on {now} by the connector {self.establishment_code}.\n"
            f"Reason: {error.message}\n"
            f"Where: {where}\n"
            f"Code: {error.code}\n"
        )
        _write_atomically(destination.with_name(destination.stem + ".error.txt"), text)
        moved = self._move_out(path, destination)
        log.info("connector refused %s: %s (%s)", path.name, error.message, where)
        return Outcome(
            name=path.name,
            status="failed",
            moved_to=moved,
            reason=error.message,
            where=error.where or None,
        )

    def _move_out(self, path: Path, destination: Path) -> Path:
        """The document last: while it is in `processing/`, its file is not finished."""
        sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
        os.rename(path, destination)
        if sidecar.exists():
            os.rename(sidecar, destination.with_name(destination.stem + SIDECAR_SUFFIX))
        return destination

    def _orphan_sidecar(self, path: Path) -> Outcome:
        """A sidecar alone in `processing/`: the connector stopped between moving its
        document out and moving it. The document was finished; the sidecar is set aside."""
        destination = _free_stem(self.directory / FAILED, path)
        _write_atomically(
            destination.with_name(destination.stem + ".error.txt"),
            "Fichier de métadonnées resté seul : le connecteur s'est arrêté après avoir traité "
            "son document (voir done/ ou failed/).\n\n"
            "Metadata file left alone: the connector stopped after finishing its document "
            "(see done/ or failed/).\n",
        )
        os.rename(path, destination)
        return Outcome(
            name=path.name,
            status="failed",
            moved_to=destination,
            reason="metadata file left without its document",
        )


# --- helpers --------------------------------------------------------------------------------


def _ignored(name: str) -> bool:
    lowered = name.lower()
    return name.startswith(".") or lowered.endswith(IN_PROGRESS_SUFFIXES)


def _is_sidecar_name(name: str) -> bool:
    return name.lower().endswith(SIDECAR_SUFFIX)


def _document_of(sidecar: Path) -> Path | None:
    for path in sidecar.parent.iterdir():
        if path.stem == sidecar.stem and not _is_sidecar_name(path.name):
            return path
    return None


def _free_stem(folder: Path, path: Path) -> Path:
    """`folder/NAME.ext`, or `NAME-2.ext`, `NAME-3.ext`…: a file of the same name sent
    earlier (and its receipt or error) is never overwritten."""
    stem, suffix = path.stem, path.suffix
    n = 1
    while True:
        candidate_stem = stem if n == 1 else f"{stem}-{n}"
        taken = any(
            (folder / f"{candidate_stem}{ending}").exists()
            for ending in (suffix, SIDECAR_SUFFIX, ".receipt.json", ".error.txt")
        )
        if not taken:
            return folder / f"{candidate_stem}{suffix}"
        n += 1


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
