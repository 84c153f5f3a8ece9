"""The demo's patients: the hospitals' and clinics' files federated once, a review queue for
the identity-vigilance officer, nothing imported again by a second run."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from partage.db import transaction
from partage.demo import (
    DEMO_MIN_REVIEWS,
    DEMO_PATIENTS,
    DEMO_PROFESSIONALS,
    demo_patients,
    load_demo_directory,
    load_demo_identities,
    patient_file_sources,
    seed_demo_territory,
)
from partage.identity.models import LocalIdentity, Review, ReviewStatus
from partage.platform import Platform
from partage.security.models import Account, Establishment, Profile
from partage.security.principal import operator_principal

PERSONS = 300


@pytest.fixture
def seeded(fresh_platform: Platform) -> Platform:
    with transaction(fresh_platform.sessions) as session:
        seed_demo_territory(session, fresh_platform, actor=operator_principal())
    return fresh_platform


def test_the_hospitals_and_clinics_send_the_patient_files() -> None:
    assert patient_file_sources() == ["CHU-POITIERS", "GHNV", "POLYCLINIQUE-POITIERS"]
    assert demo_patients(DEMO_PROFESSIONALS) == DEMO_PATIENTS
    assert demo_patients(20) >= 1


def test_the_demo_federates_patients_and_queues_reviews_once(seeded: Platform) -> None:
    platform = seeded
    first = load_demo_identities(platform, actor=operator_principal(), persons=PERSONS)
    assert [code for code, _, _ in first.imported] == patient_file_sources()
    for code, path, report in first.imported:
        assert path.is_file() and path.parent == Path(platform.settings.data_dir) / "demo"
        assert code in path.name
        assert report.rows == report.created > 0
        assert report.rejected == []
    created = sum(report.created for _, _, report in first.imported)
    assert first.identities == created + first.near_duplicates
    # Duplicates across the establishments were linked: fewer persons than identities.
    assert 0.9 * PERSONS <= first.persons < first.identities
    assert first.reviews >= DEMO_MIN_REVIEWS

    with transaction(platform.read_sessions) as session:
        codes = dict(session.execute(select(Establishment.id, Establishment.code)).all())
        domains: dict[object, set[str]] = defaultdict(set)
        for person, establishment in session.execute(
            select(LocalIdentity.person_id, LocalIdentity.establishment_id)
        ):
            domains[person].add(codes[establishment])
        assert any(len(found) >= 2 for found in domains.values())
        assert set().union(*domains.values()) == set(patient_file_sources())
        queue = session.scalars(select(Review).where(Review.status == ReviewStatus.open)).all()
        assert len(queue) == first.reviews
        # Someone can work the queue: the demo's identity-vigilance officer.
        officer = session.scalar(
            select(Account).where(Account.profile == Profile.identity_vigilance)
        )
        assert officer is not None and officer.login == "isabelle.petit"

    summary = first.summary("http://127.0.0.1:8000")
    assert summary.startswith("Identities: imported the patient files of CHU-POITIERS")
    assert f"{first.identities:,} identities of {first.persons:,} persons" in summary
    assert f"{first.reviews:,} reviews to do at http://127.0.0.1:8000/identitovigilance" in summary
    assert "\n" not in summary

    again = load_demo_identities(platform, actor=operator_principal(), persons=PERSONS)
    assert again.imported == [] and again.near_duplicates == 0
    assert (again.identities, again.persons, again.reviews) == (
        first.identities,
        first.persons,
        first.reviews,
    )
    assert again.summary().startswith("Identities: already imported;")


def test_the_demo_loader_announces_the_patients_in_one_line(seeded: Platform) -> None:
    lines: list[str] = []
    load_demo_directory(
        seeded, actor=operator_principal(), professionals=100, announce=lines.append
    )
    assert len(lines) == 1
    assert lines[0].startswith("Identities: imported the patient files of")
    assert "reviews to do" in lines[0]
    lines.clear()
    load_demo_directory(seeded, actor=operator_principal(), patients=0, announce=lines.append)
    assert lines == []
