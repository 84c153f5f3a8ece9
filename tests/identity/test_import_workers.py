"""A bulk import scored ahead by forked workers places every record as one process would."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.db import transaction
from partage.identity import known_scoring
from partage.identity.engine import MemoryIndex
from partage.identity.importer import import_identities
from partage.identity.known_scoring import KnownScoring, WorkerFailed
from partage.identity.models import LocalIdentity, Review
from partage.identity.synthetic import generate_population, write_import_csvs
from partage.platform import Platform
from partage.security import actions
from partage.security.models import Establishment
from partage.security.principal import operator_principal
from partage.security.service import get_territory
from tests.identity.factories import TEST_ACTOR

SOURCES = ("CHU-TEST", "CH-TEST")
Placement = tuple[frozenset[frozenset[str]], frozenset[frozenset[str]]]


def _placement(session: Session) -> Placement:
    """Every identity's person as a partition of "source:local id", and the review pairs."""
    identity = LocalIdentity
    rows = session.execute(
        select(identity.id, identity.person_id, Establishment.code, identity.local_id).join(
            Establishment, Establishment.id == identity.establishment_id
        )
    ).all()
    key = {identity: f"{code}:{local_id}" for identity, _, code, local_id in rows}
    members: defaultdict[object, set[str]] = defaultdict(set)
    for identity, person, _, _ in rows:
        members[person].add(key[identity])
    reviews = session.execute(select(Review.first_id, Review.second_id)).all()
    return (
        frozenset(frozenset(group) for group in members.values()),
        frozenset(frozenset((key[first], key[second])) for first, second in reviews),
    )


def _import(session: Session, path: Path, code: str, workers: int) -> None:
    establishment = session.scalars(select(Establishment).where(Establishment.code == code)).one()
    with path.open("rb") as stream:
        report = import_identities(
            session, establishment=establishment, stream=stream, actor=TEST_ACTOR, workers=workers
        )
    assert report.rejected == []


def test_workers_change_nothing_of_the_placement(fresh_platform: Platform, tmp_path: Path) -> None:
    records = generate_population(persons=1_500, sources=SOURCES, seed=7)
    files = write_import_csvs(tmp_path, records)
    with transaction(fresh_platform.sessions) as session:
        territory = get_territory(session, code="GHT-TEST")
        assert territory is not None
        for code in SOURCES:
            actions.create_establishment(
                session, actor=operator_principal(), territory=territory, name=code, code=code
            )
    with transaction(fresh_platform.sessions) as session:
        _import(session, files[SOURCES[0]], SOURCES[0], workers=0)
    second = files[SOURCES[1]]
    assert len(second.read_text(encoding="utf-8").splitlines()) > 1_200  # 3 chunks or more

    placements = []
    for workers in (0, 1, 2):
        session = fresh_platform.sessions()
        try:
            _import(session, second, SOURCES[1], workers=workers)
            placements.append(_placement(session))
        finally:
            session.rollback()
            session.close()
    persons, reviews = placements[0]
    assert any(len(group) > 1 for group in persons)  # the second file met the first
    assert reviews
    assert placements[1] == placements[0]
    assert placements[2] == placements[0]


def test_a_worker_that_dies_fails_the_import_instead_of_hanging() -> None:
    class Broken(list[object]):
        def __getitem__(self, i: object) -> object:
            raise RuntimeError("no features")

    scoring = KnownScoring(
        index=MemoryIndex(),
        features=Broken(),  # type: ignore[arg-type]
        first=5,
        count=10,
        model=None,  # type: ignore[arg-type]
        frequencies=None,  # type: ignore[arg-type]
        workers=1,
    )
    with pytest.raises(WorkerFailed), scoring:
        list(scoring)


def test_the_default_number_of_workers_fits_the_cpus_and_half_the_free_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gib = 2**30
    monkeypatch.setattr(known_scoring.os, "sched_getaffinity", lambda _: set(range(8)))
    monkeypatch.setattr(known_scoring, "_resident_bytes", lambda: 3 * gib)
    monkeypatch.setattr(known_scoring, "_available_bytes", lambda: 64 * gib)
    assert known_scoring.default_workers() == 4  # at most four
    monkeypatch.setattr(known_scoring, "_available_bytes", lambda: 13 * gib)
    assert known_scoring.default_workers() == 2  # two copies of 3 GiB in half of 13 GiB
    monkeypatch.setattr(known_scoring, "_available_bytes", lambda: 5 * gib)
    assert known_scoring.default_workers() == 0
    monkeypatch.setattr(known_scoring.os, "sched_getaffinity", lambda _: {0})
    monkeypatch.setattr(known_scoring, "_available_bytes", lambda: 64 * gib)
    assert known_scoring.default_workers() == 0  # one CPU: the process does it all
