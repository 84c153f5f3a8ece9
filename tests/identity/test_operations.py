"""Identity-vigilance operations through the real service: each audited, each undoable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import select

from partage.audit.models import AuditEvent
from partage.db import transaction
from partage.identity.decide import Verdict
from partage.identity.ins import make_nir
from partage.identity.models import Link, LocalIdentity, Person, PersonStatus, Review, ReviewStatus
from partage.identity.operations import (
    do_attach_ins,
    do_change_status,
    do_link_review,
    do_mark_not_duplicate,
    do_merge_persons,
    do_unmerge,
)
from partage.identity.service import IdentityError
from partage.identity.traits import IdentityStatus, Sex
from partage.platform import Platform
from partage.security.models import Establishment
from tests.identity.factories import TEST_ACTOR, receive, traits, unique_family

Make = Callable[..., Establishment]


def another_day(family: str) -> date:
    born = traits(family).birth_date
    assert born is not None
    return born.replace(day=born.day + 1 if born.day < 28 else born.day - 1)


def person_of(platform: Platform, identity_id: object) -> Person:
    with transaction(platform.sessions) as session:
        identity = session.get(LocalIdentity, identity_id)
        assert identity is not None
        person = session.get(Person, identity.person_id)
        assert person is not None
        return person


def test_unmerge_restores_the_origin_person_and_keeps_it_apart(
    platform: Platform, make_establishment: Make
) -> None:
    chu, chnv = make_establishment(), make_establishment()
    family = unique_family()
    first = receive(platform, chu, "1", traits(family)).identity
    second = receive(platform, chnv, "2", traits(family)).identity
    assert person_of(platform, second.id).id == first.person_id
    with transaction(platform.sessions) as session:
        restored = do_unmerge(
            session, identity_id=second.id, actor=TEST_ACTOR, reason="two sisters, checked by phone"
        )
    assert restored.id == second.origin_person_id  # the person systems knew comes back
    assert person_of(platform, second.id).status == PersonStatus.active
    assert person_of(platform, first.id).id != person_of(platform, second.id).id
    with transaction(platform.sessions) as session:
        periods = session.scalars(
            select(Link).where(Link.local_identity_id == second.id).order_by(Link.started_at)
        ).all()
        assert [p.method for p in periods] == ["origin", "probabilistic", "unmerge"]
        assert all(p.ended_at is not None for p in periods[:-1])
        marked = session.scalars(
            select(Review)
            .where(Review.status == ReviewStatus.not_duplicate)
            .where(Review.first_id.in_([first.id, second.id]))
        ).all()
        assert marked
        assert session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "identity.unmerged")
            .where(AuditEvent.entity_id == str(second.id))
        ).one()
    # Sent again, the identity is not linked back: it is marked "not a duplicate".
    again = receive(platform, chnv, "2", traits(family, phone="0549000000"))
    assert person_of(platform, again.identity.id).id != person_of(platform, first.id).id


def test_twins_are_never_merged_and_a_qualified_ins_links(
    platform: Platform, make_establishment: Make
) -> None:
    chu, chnv = make_establishment(), make_establishment()
    family = unique_family()
    born = date(2001, 6, 2)
    anna = receive(platform, chu, "10", traits(family, given_names=("Anna",), birth_date=born))
    lucie = receive(platform, chu, "11", traits(family, given_names=("Lucie",), birth_date=born))
    assert lucie.verdict is Verdict.new
    assert lucie.reviews == 0
    nir = make_nir(sex=Sex.female, birth_date=born, birth_place_code="86194", order=412)
    # One establishment qualified Anna's identity; another knows her under a typo'd name and
    # a used name, but with the same qualified INS: the INS links.
    receive(
        platform,
        chu,
        "10",
        traits(family, given_names=("Anna",), birth_date=born, ins=nir),
        status=IdentityStatus.qualified,
    )
    other = receive(
        platform,
        chnv,
        "Z1",
        traits(family + "E", given_names=("Ana",), birth_date=born, ins=nir, address="", phone=""),
        status=IdentityStatus.qualified,
    )
    assert other.verdict is Verdict.link
    assert person_of(platform, other.identity.id).id == anna.identity.person_id


def test_review_link_and_not_duplicate(platform: Platform, make_establishment: Make) -> None:
    chu, chnv = make_establishment(), make_establishment()
    family = unique_family()
    receive(platform, chu, "20", traits(family))
    doubtful = receive(
        platform,
        chnv,
        "21",
        # Another day, another sex (a typing error, or another person): a person must look.
        traits(family, birth_date=another_day(family), sex=Sex.male, phone=""),
    )
    assert doubtful.verdict is Verdict.review
    with transaction(platform.sessions) as session:
        review = session.scalars(
            select(Review)
            .where(Review.status == ReviewStatus.open)
            .where(
                (Review.first_id == doubtful.identity.id)
                | (Review.second_id == doubtful.identity.id)
            )
        ).one()
        assert review.explanation["levels"]
        with pytest.raises(IdentityError):
            do_link_review(session, review_id=review.id, actor=TEST_ACTOR, reason="  ")
        person = do_link_review(
            session, review_id=review.id, actor=TEST_ACTOR, reason="same NIR on the card"
        )
    assert person_of(platform, doubtful.identity.id).id == person.id
    third = receive(platform, chnv, "22", traits(unique_family()))
    with transaction(platform.sessions) as session:
        marked = do_mark_not_duplicate(
            session,
            first_id=third.identity.id,
            second_id=doubtful.identity.id,
            actor=TEST_ACTOR,
            reason="different persons",
        )
        assert marked.status == ReviewStatus.not_duplicate


def test_attach_ins_and_status_follow_the_national_rules(
    platform: Platform, make_establishment: Make
) -> None:
    chu = make_establishment()
    received = receive(platform, chu, "30", traits(unique_family()))
    nir = make_nir(sex=Sex.female, birth_date=date(1968, 4, 17), birth_place_code="86194", order=7)
    with transaction(platform.sessions) as session:
        with pytest.raises(IdentityError, match="invalid INS"):
            do_attach_ins(
                session,
                identity_id=received.identity.id,
                ins=nir[:-2] + "00",
                verified=False,
                actor=TEST_ACTOR,
                reason="INSi",
            )
        identity = do_attach_ins(
            session,
            identity_id=received.identity.id,
            ins=nir,
            verified=False,
            actor=TEST_ACTOR,
            reason="INSi call",
        )
        assert identity.status == IdentityStatus.recovered
        identity = do_change_status(
            session,
            identity_id=identity.id,
            status=IdentityStatus.qualified,
            attributes=frozenset({"homonym"}),
            actor=TEST_ACTOR,
            reason="ID card seen",
        )
        assert identity.status == IdentityStatus.qualified
        assert identity.homonym


def test_merge_persons_by_hand(platform: Platform, make_establishment: Make) -> None:
    chu, chnv = make_establishment(), make_establishment()
    one = receive(platform, chu, "40", traits(unique_family())).identity
    other = traits(unique_family(), given_names=("Paul",), sex=Sex.male, phone="0611223344")
    two = receive(platform, chnv, "41", other).identity
    with transaction(platform.sessions) as session:
        with pytest.raises(IdentityError):
            do_merge_persons(
                session,
                kept_id=one.person_id,
                absorbed_id=one.person_id,
                actor=TEST_ACTOR,
                reason="x",
            )
        do_merge_persons(
            session,
            kept_id=one.person_id,
            absorbed_id=two.person_id,
            actor=TEST_ACTOR,
            reason="name change after marriage, documents seen",
        )
    absorbed = person_of(platform, one.id)
    assert person_of(platform, two.id).id == absorbed.id
