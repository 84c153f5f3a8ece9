"""Deposits from many threads at once, written in groups: each stored or refused on its own,
the refused one storing nothing and costing the others nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from sqlalchemy import func, select

from partage.audit.models import AuditEvent
from partage.documents.deposit import deposit
from partage.documents.models import DocumentEntry
from partage.documents.submission import (
    AuthorRef,
    Coding,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.documents.synthetic import pdf
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


def test_a_refused_deposit_in_a_group_costs_the_others_nothing(
    platform: Platform, make_establishment: Callable[..., Establishment]
) -> None:
    oid = f"1.2.250.1.999.89.{uuid.uuid4().int % 10**6}"
    establishment = make_establishment(oid=oid)
    receive(platform, establishment, "G-1", traits(unique_family()))
    rpps = "8" + str(uuid.uuid4().int)[:11]
    directory_practitioner(platform, rpps, family="G", given=None)
    principal = Principal(kind="client", label="DPI", client_id="x",
                          establishment_id=establishment.id)  # fmt: skip
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
