"""Deposits from many threads at once, written in groups: each stored or refused on its own,
the refused one storing nothing and costing the others nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from partage.audit.models import AuditEvent
from partage.documents import filing
from partage.documents.deposit import deposit, prepare_submission
from partage.documents.filing import DepositRequest, check_content, file_deposit, file_deposits
from partage.documents.models import DocumentContent, DocumentEntry
from partage.documents.submission import (
    AuthorRef,
    Coding,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.documents.synthetic import pdf
from partage.group_commit import GroupCommitter
from partage.platform import Platform
from partage.security.models import Establishment
from partage.security.principal import Principal
from tests.conftest import directory_practitioner
from tests.identity.factories import receive, traits, unique_family


def _submission(domain: str, unique_id: str, *, rpps: str, document_id: str) -> Submission:
    return Submission(
        unique_id=unique_id,
        source_id="1.2.3",
        patient=PatientRef(domain_oid=domain, local_id="G-1"),
        channel="mhd",
        documents=[
            NewDocument(
                unique_id=document_id,
                content=pdf(["group"], seed=document_id),
                mime_type="application/pdf",
                type=Coding("http://loinc.org", "11488-4"),
                authors=[AuthorRef(practitioner_national_id=rpps)],
            )
        ],
    )


def _depositor(
    platform: Platform, make_establishment: Callable[..., Establishment]
) -> tuple[str, str, Principal]:
    """An establishment's system, its patient G-1, and an author in the directory: the
    establishment's domain OID, the author's RPPS, and the system."""
    oid = f"1.2.250.1.999.89.{uuid.uuid4().int % 10**6}"
    establishment = make_establishment(oid=oid)
    receive(platform, establishment, "G-1", traits(unique_family()))
    rpps = "8" + str(uuid.uuid4().int)[:11]
    directory_practitioner(platform, rpps, family="G", given=None)
    principal = Principal(kind="client", label="DPI", client_id="x",
                          establishment_id=establishment.id)  # fmt: skip
    return oid, rpps, principal


def test_a_refused_deposit_in_a_group_costs_the_others_nothing(
    platform: Platform, make_establishment: Callable[..., Establishment]
) -> None:
    oid, rpps, principal = _depositor(platform, make_establishment)
    taken = f"2.25.{uuid.uuid4().int}"
    deposit(
        platform.sessions,
        platform.repository,
        principal=principal,
        submission=_submission(oid, f"2.25.{uuid.uuid4().int}", rpps=rpps, document_id=taken),
        grouped=True,
    )
    with platform.read_sessions() as session:
        before = session.scalar(select(func.count()).select_from(DocumentEntry)) or 0
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(12)
    # Two submissions with one id, sent at once (in one group, or in two): one is stored.
    twins = f"2.25.{uuid.uuid4().int}"

    def send(i: int) -> None:
        document_id = taken if i == 5 else f"2.25.{uuid.uuid4().int}"
        submission_id = twins if i in (7, 8) else f"2.25.{uuid.uuid4().int}"
        barrier.wait()
        try:
            deposit(
                platform.sessions,
                platform.repository,
                principal=principal,
                submission=_submission(oid, submission_id, rpps=rpps, document_id=document_id),
                grouped=True,
            )  # fmt: skip
            outcomes[i] = "stored"
        except SubmissionError as error:
            outcomes[i] = error.code

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.pop(5) == "duplicate"
    assert sorted([outcomes.pop(7), outcomes.pop(8)]) == ["duplicate", "stored"]
    assert set(outcomes.values()) == {"stored"}
    with platform.read_sessions() as session:
        after = session.scalar(select(func.count()).select_from(DocumentEntry)) or 0
        deposits = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "document.deposit", AuditEvent.actor_label == "DPI")
        )
    assert after == before + 10
    assert deposits is not None and deposits >= 11


def test_a_content_stored_meanwhile_by_another_process_costs_the_group_nothing(
    platform: Platform,
    make_establishment: Callable[..., Establishment],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A group's new contents go in by one COPY on PostgreSQL. One of them stored by
    another process between the group's read and its write fails that COPY: each deposit
    is then filed alone, the late one sharing the content stored first."""
    oid, rpps, principal = _depositor(platform, make_establishment)
    submissions = []
    for _ in range(4):
        document_id = f"2.25.{uuid.uuid4().int}"
        submission = _submission(
            oid, f"2.25.{uuid.uuid4().int}", rpps=rpps, document_id=document_id
        )
        content = pdf([f"group {document_id}"])  # each its own content
        submissions.append(
            replace(submission, documents=[replace(submission.documents[0], content=content)])
        )
    requests = []
    for submission in submissions:
        submission = prepare_submission(submission)
        document = submission.documents[0]
        sha1 = check_content(document)
        staged = platform.repository.stage(platform.repository.prepare(document.content))
        requests.append(DepositRequest(submission, [staged.prepared], [sha1], principal))
    # The other process: the third content, deposited (and committed) first.
    deposit(
        platform.sessions,
        platform.repository,
        principal=principal,
        submission=replace(
            submissions[2],
            unique_id=f"2.25.{uuid.uuid4().int}",
            documents=[replace(submissions[2].documents[0], unique_id=f"2.25.{uuid.uuid4().int}")],
        ),
    )
    # ...which the group's read did not see yet.
    read = filing.Registered.read

    def before_it(session: Session, group: Sequence[DepositRequest]) -> filing.Registered:
        registered = read(session, group)
        registered.contents.clear()
        return registered

    monkeypatch.setattr(filing.Registered, "read", before_it)
    committer = GroupCommitter(platform.sessions, file_deposit, apply_many=file_deposits)
    outcomes = committer.apply_group(requests)

    assert [error for _, error in outcomes] == [None] * 4
    results = [result for result, _ in outcomes]
    assert all(r is not None for r in results)
    kept = [bool(r.stored_contents) for r in results if r is not None]
    assert kept == [True, True, False, True]  # the third shares the content stored first
    with platform.read_sessions() as session:
        sha256 = requests[2].contents[0].sha256
        assert (
            session.scalar(
                select(func.count())
                .select_from(DocumentContent)
                .where(DocumentContent.sha256 == sha256)
            )
            == 1
        )
