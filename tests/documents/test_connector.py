"""The drop-folder connector on real files and the real platform: documents land and read
back, failures say why, incomplete files wait, a crash is retried without storing twice,
and the command line's exit codes."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from partage.documents.cda import parse_cda
from partage.documents.connector import Connector, ConnectorError, Outcome
from partage.documents.models import DocumentContent, DocumentEntry
from partage.documents.synthetic import pdf
from partage.identity.ins import INS_OIDS
from partage.identity.service import MODEL_CACHE
from partage.identity.traits import IdentityStatus
from partage.platform import Platform
from partage.security.models import Establishment
from tests.cli.test_cli import Cli, cli  # noqa: F401 - the command-line fixture
from tests.conftest import build_platform, create_hospital, directory_practitioner, free_port
from tests.documents import cda_samples
from tests.identity.factories import receive, traits, unique_family

CHU_OID = "1.2.250.1.999.88.1"
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class World:
    platform: Platform
    chu: Establishment
    rpps: str
    ipp: str
    person_id: uuid.UUID


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    platform, database = build_platform(tmp_path_factory.mktemp("connector"), free_port())
    MODEL_CACHE.invalidate()
    chu = create_hospital(platform, "CHU-DROP", CHU_OID)
    rpps = "8" + str(uuid.uuid4().int)[:11]
    directory_practitioner(platform, rpps)
    received = receive(platform, chu, "IPP-1", traits(unique_family()))
    MODEL_CACHE.invalidate()
    yield World(platform, chu, rpps, "IPP-1", received.identity.person_id)
    platform.close()
    database.drop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "drop"
    path.mkdir()
    return path


def connector_for(world: World, folder: Path, *, settle: float = 0.0) -> Connector:
    made = Connector.for_establishment(
        world.platform.sessions,
        world.platform.repository,
        directory=folder,
        establishment="CHU-DROP",
        settle=settle,
    )
    assert made.acquire()
    return made


def run(connector: Connector) -> list[Outcome]:
    return list(connector.poll())


def sidecar(world: World, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "patient": {"domain_oid": CHU_OID, "local_id": world.ipp},
        "type": {"system": "http://loinc.org", "code": "11488-4", "display": "Compte rendu"},
        "title": "Compte rendu de consultation",
        "created": "2024-03-01T10:00:00+01:00",
        "author": {"rpps": world.rpps},
    }
    base.update(overrides)
    return base


def drop(folder: Path, name: str, content: bytes, metadata: dict[str, Any] | None = None) -> None:
    if metadata is not None:
        (folder / f"{Path(name).stem}.json").write_text(json.dumps(metadata), encoding="utf-8")
    (folder / name).write_bytes(content)


def cda(world: World, *, ipp: str | None = None, doc_id: str | None = None) -> bytes:
    data = cda_samples.structured(
        "<paragraph>Patiente sortie ce jour.</paragraph>",
        patient_ids=(
            '<id root="1.2.250.1.999.12.1" extension="ELSEWHERE-9"/>'
            f'<id root="{CHU_OID}" extension="{ipp or world.ipp}"/>'
        ),
    )
    # Each test's document has an id of its own (the uniqueId of a CDA is its id).
    return data.replace(b'extension="DOC-42"', f'extension="{doc_id or uuid.uuid4()}"'.encode())


def entry_of(world: World, document_id: uuid.UUID | None) -> DocumentEntry:
    with world.platform.read_sessions() as session:
        entry = session.get(DocumentEntry, document_id)
        assert entry is not None
        session.expunge(entry)
        return entry


def stored_content(world: World, entry: DocumentEntry) -> bytes:
    with world.platform.read_sessions() as session:
        row = session.get(DocumentContent, entry.sha256)
        assert row is not None
        return world.platform.repository.read(row)


def error_text(folder: Path, stem: str) -> str:
    return (folder / "failed" / f"{stem}.error.txt").read_text(encoding="utf-8")


def test_pdf_with_its_metadata_lands_and_reads_back(world: World, folder: Path) -> None:
    content = pdf(["Compte rendu", "Patiente vue ce jour."], seed=str(uuid.uuid4()))
    drop(folder, "cr-consultation.pdf", content, sidecar(world, visibility=["MASQUE_PS"]))

    [outcome] = run(connector_for(world, folder))

    assert outcome.status == "done", outcome.reason
    assert outcome.person_id == world.person_id
    assert not outcome.already_stored
    done = folder / "done"
    assert (done / "cr-consultation.pdf").read_bytes() == content
    assert (done / "cr-consultation.json").is_file()
    receipt = json.loads((done / "cr-consultation.receipt.json").read_text(encoding="utf-8"))
    assert receipt["document_id"] == str(outcome.document_id)
    assert receipt["person_id"] == str(world.person_id)
    assert receipt["unique_id"] == outcome.unique_id
    assert not list(folder.glob("*.pdf")) and not list((folder / "processing").iterdir())

    entry = entry_of(world, outcome.document_id)
    assert stored_content(world, entry) == content
    assert (entry.type_code, entry.mime_type) == ("11488-4", "application/pdf")
    assert entry.title == "Compte rendu de consultation"
    assert entry.masked_ps and not entry.invisible_patient
    assert entry.author_label is not None and "MARTIN" in entry.author_label
    assert entry.creation_time.replace(tzinfo=None).isoformat() == "2024-03-01T09:00:00"


def test_cda_without_metadata_takes_it_from_its_header(world: World, folder: Path) -> None:
    content = cda(world, doc_id="CDA-HEADER-1")
    drop(folder, "lettre-sortie.xml", content)

    [outcome] = run(connector_for(world, folder))

    assert outcome.status == "done", outcome.reason
    # The identifier of the connector's own domain, not the first one the header lists.
    assert outcome.person_id == world.person_id
    assert outcome.unique_id == "1.2.250.1.999.1.1^CDA-HEADER-1"
    entry = entry_of(world, outcome.document_id)
    assert stored_content(world, entry) == content
    assert entry.type_code == "11490-0"
    assert entry.title == "Lettre de liaison de sortie"
    assert entry.author_label is not None and "DUBOIS" in entry.author_label
    assert entry.creation_time.replace(tzinfo=None).isoformat() == "2024-03-12T13:30:00"
    assert entry.service_end is not None


def test_cda_with_metadata_naming_another_patient_is_refused(world: World, folder: Path) -> None:
    drop(folder, "mismatch.xml", cda(world), {"patient": {"local_id": "IPP-OTHER"}})

    [outcome] = run(connector_for(world, folder))

    assert outcome.status == "failed"
    assert "not the patient of the CDA header" in error_text(folder, "mismatch")


def test_bad_metadata_goes_to_failed_with_every_reason(world: World, folder: Path) -> None:
    metadata = sidecar(world, created="2024-03-01T10:00:00", titel="oops", confidentiality="X")
    drop(folder, "bad.pdf", pdf(["x"], seed=str(uuid.uuid4())), metadata)

    [outcome] = run(connector_for(world, folder))

    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert "titel: Extra inputs are not permitted" in outcome.reason
    assert "created:" in outcome.reason and "timezone" in outcome.reason
    assert "confidentiality:" in outcome.reason
    text = error_text(folder, "bad")
    assert "Motif : le fichier de métadonnées bad.json n'est pas valide" in text
    assert "Reason: the metadata file bad.json is not valid" in text
    assert (folder / "failed" / "bad.pdf").is_file() and (folder / "failed" / "bad.json").is_file()


def test_not_json_pdf_without_metadata_and_unknown_types_fail(world: World, folder: Path) -> None:
    (folder / "broken.json").write_text('{"patient": ', encoding="utf-8")
    (folder / "broken.pdf").write_bytes(pdf(["x"], seed="broken"))
    (folder / "alone.pdf").write_bytes(pdf(["x"], seed="alone"))
    (folder / "letter.docx").write_bytes(b"PK\x03\x04")
    drop(folder, "fake.pdf", b"hello", sidecar(world))

    outcomes = {o.name: o for o in run(connector_for(world, folder))}

    assert {o.status for o in outcomes.values()} == {"failed"}
    assert "not valid JSON (line 1" in (outcomes["broken.pdf"].reason or "")
    assert "metadata missing" in (outcomes["alone.pdf"].reason or "")
    assert "métadonnées manquantes" in error_text(folder, "alone")
    assert "unsupported file type .docx" in (outcomes["letter.docx"].reason or "")
    assert "not a PDF" in (outcomes["fake.pdf"].reason or "")


def test_unknown_patient_goes_to_failed(world: World, folder: Path) -> None:
    metadata = sidecar(world, patient={"local_id": "NOBODY-42"})
    drop(folder, "unknown.pdf", pdf(["x"], seed=str(uuid.uuid4())), metadata)

    [outcome] = run(connector_for(world, folder))

    assert outcome.status == "failed"
    assert outcome.where == "subject"
    text = error_text(folder, "unknown")
    assert "patient inconnu" in text
    assert "no identity of this patient in your identification domain" in text


def test_a_file_still_being_written_is_not_taken(world: World, folder: Path) -> None:
    connector = connector_for(world, folder, settle=0.3)
    (folder / "growing.json").write_text(json.dumps(sidecar(world)), encoding="utf-8")
    path = folder / "growing.pdf"
    content = pdf(["Long compte rendu"], seed=str(uuid.uuid4()))
    path.write_bytes(content[:100])
    (folder / "sent.pdf.tmp").write_bytes(content)  # a sender's file not yet renamed

    assert run(connector) == []  # first sight
    time.sleep(0.35)
    with path.open("ab") as stream:
        stream.write(content[100:])
    assert run(connector) == []  # it changed since
    assert connector.settling == 1  # growing.pdf
    time.sleep(0.35)
    [outcome] = run(connector)

    assert outcome.status == "done", outcome.reason
    assert stored_content(world, entry_of(world, outcome.document_id)) == content
    assert (folder / "sent.pdf.tmp").is_file()  # never touched


def test_a_crash_after_filing_is_retried_without_storing_twice(
    world: World, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = pdf(["Compte rendu"], seed=str(uuid.uuid4()))
    drop(folder, "crash.pdf", content, sidecar(world))

    # The process dies once the document is stored, before it is moved out of processing/.
    def die(self: Connector, path: Path, stored: object) -> Outcome:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Connector, "_succeed", die)
        crashed = connector_for(world, folder)
        with pytest.raises(KeyboardInterrupt):
            run(crashed)
        crashed.release()
    assert (folder / "processing" / "crash.pdf").is_file()
    assert (folder / "processing" / "crash.json").is_file()

    [outcome] = run(connector_for(world, folder))  # the next start

    assert outcome.status == "done", outcome.reason
    assert outcome.already_stored
    receipt = json.loads((folder / "done" / "crash.receipt.json").read_text(encoding="utf-8"))
    assert receipt["already_stored"] is True
    with world.platform.read_sessions() as session:
        stored = session.scalar(
            select(func.count())
            .select_from(DocumentEntry)
            .where(DocumentEntry.unique_id == outcome.unique_id)
        )
    assert stored == 1


def test_a_file_claimed_before_a_crash_is_filed_at_the_next_start(
    world: World, folder: Path
) -> None:
    # Claimed (moved into processing/), its sidecar still in the folder, nothing filed.
    (folder / "processing").mkdir()
    drop(folder / "processing", "half.pdf", pdf(["x"], seed=str(uuid.uuid4())))
    (folder / "half.json").write_text(json.dumps(sidecar(world)), encoding="utf-8")

    [outcome] = run(connector_for(world, folder))

    assert outcome.status == "done", outcome.reason
    assert not outcome.already_stored
    assert (folder / "done" / "half.json").is_file()


def test_the_same_name_again_never_overwrites(world: World, folder: Path) -> None:
    connector = connector_for(world, folder)
    for seed in ("one", "two"):
        drop(folder, "cr.pdf", pdf([seed], seed=str(uuid.uuid4())), sidecar(world))
        [outcome] = run(connector)
        assert outcome.status == "done", outcome.reason
    assert (folder / "done" / "cr.pdf").is_file() and (folder / "done" / "cr-2.pdf").is_file()
    assert (folder / "done" / "cr-2.receipt.json").is_file()


def test_one_connector_per_folder(world: World, folder: Path) -> None:
    first = connector_for(world, folder)
    second = Connector.for_establishment(
        world.platform.sessions, world.platform.repository, directory=folder,
        establishment="CHU-DROP",
    )  # fmt: skip
    assert not second.acquire()
    with pytest.raises(ConnectorError):
        run(second)
    first.release()
    assert second.acquire()
    second.release()


def test_unknown_establishment_is_refused(world: World, folder: Path) -> None:
    with pytest.raises(ConnectorError, match="no establishment"):
        Connector.for_establishment(
            world.platform.sessions, world.platform.repository, directory=folder,
            establishment="NOWHERE",
        )  # fmt: skip


# -- the real French examples ----------------------------------------------------------------


def _fixtures() -> Path:
    configured = os.environ.get("PARTAGE_CDA_FIXTURES")
    path = Path(configured) if configured else REPOSITORY / ".." / "shared" / "fixtures" / "cda-fr"
    return path if path.is_absolute() else REPOSITORY / path


def test_real_french_cda_documents_land_without_metadata(
    fresh_platform: Platform, tmp_path: Path
) -> None:
    directory = _fixtures()
    if not directory.is_dir():
        pytest.skip(f"no CDA examples at {directory}")
    files = sorted(directory.glob("*.xml"))
    assert files
    # Each example's patient, as an identity of the establishment of its IPP's domain; the
    # examples that only give the INS go to the domain where the INS's holder is qualified.
    by_domain: dict[str, list[Path]] = {}
    patients: dict[str, set[str]] = {}
    insless: list[Path] = []
    for path in files:
        header = parse_cda(path.read_bytes())
        ids = [i for i in header.patient.ids if i.extension and i.root not in INS_OIDS]
        if ids:
            by_domain.setdefault(ids[0].root, []).append(path)
            patients.setdefault(ids[0].root, set()).add(ids[0].extension or "")
        else:
            assert header.patient.ins == "279035121518989", path.name
            insless.append(path)
    first = next(oid for oid, ipps in patients.items() if "1234567890121" in ipps)
    by_domain[first] += insless
    outcomes: list[Outcome] = []
    for n, (oid, paths) in enumerate(sorted(by_domain.items())):
        code = f"CHU-EXAMPLES-{n}"
        hospital = create_hospital(fresh_platform, code, oid)
        MODEL_CACHE.invalidate()
        for ipp in sorted(patients[oid]):
            qualified = oid == first and ipp == "1234567890121"
            receive(
                fresh_platform, hospital, ipp,
                traits(unique_family(), ins="279035121518989" if qualified else ""),
                status=IdentityStatus.qualified if qualified else IdentityStatus.provisional,
            )  # fmt: skip
        MODEL_CACHE.invalidate()
        drop_folder = tmp_path / code
        drop_folder.mkdir()
        for path in paths:
            # Read from where they are: never copied into the project.
            (drop_folder / path.name).write_bytes(path.read_bytes())
        connector = Connector.for_establishment(
            fresh_platform.sessions, fresh_platform.repository, directory=drop_folder,
            establishment=code, settle=0,
        )  # fmt: skip
        assert connector.acquire()
        outcomes += connector.poll()
        connector.release()

    failed = {o.name: o.reason for o in outcomes if o.status == "failed"}
    assert not failed
    assert len(outcomes) == len(files)


# -- the command line ------------------------------------------------------------------------


def test_push_once_from_the_command_line(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    created = cli.json("establishments", "create", "--name", "CHU", "--domain", "CHU-CLI")
    oid = created["patient_id_oid"]
    identities = tmp_path / "ipp.csv"
    identities.write_text(
        "local_id,birth_family_name,used_family_name,given_names,sex,birth_date,"
        "birth_place_code,address,postal_code,city,phone,ins\n"
        "IPP-77,QUINTARD,,Hortense,F,1961-03-14,86194,1 rue,86000,Poitiers,0549000000,\n",
        encoding="utf-8",
    )
    cli.run("identities", "import", str(identities), "--source", "CHU-CLI")
    folder = tmp_path / "drop"
    folder.mkdir()
    content = cda_samples.structured(
        "<paragraph>Sortie.</paragraph>", patient_ids=f'<id root="{oid}" extension="IPP-77"/>'
    )
    (folder / "lettre.xml").write_bytes(content)
    (folder / "writing.pdf.part").write_bytes(b"%PDF-")

    result = cli.run(
        "connector", "push", str(folder), "--establishment", "CHU-CLI", "--once",
        "--settle", "0", "--json",
    )  # fmt: skip

    report = json.loads(result.stdout)
    assert (report["done"], report["failed"]) == (1, 0)
    [done] = report["files"]
    assert done["file"] == "lettre.xml" and done["document_id"]
    assert (folder / "done" / "lettre.receipt.json").is_file()
    assert (folder / "writing.pdf.part").is_file()

    (folder / "orphan.pdf").write_bytes(b"%PDF-1.4")
    result = cli.run(
        "connector", "push", str(folder), "--establishment", "CHU-CLI", "--settle", "0.1",
        expect=1,
    )  # fmt: skip
    assert "metadata missing" in result.stdout
    assert "0 done, 1 failed" in result.stderr
    assert (folder / "failed" / "orphan.error.txt").is_file()

    result = cli.run("connector", "push", str(folder), "--establishment", "NOWHERE", expect=1)
    assert "no establishment" in result.stderr
