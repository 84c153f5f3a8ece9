"""Identity actions: receive an identity, link, merge, unmerge, not-a-duplicate, INS, status.

Each `do_*` action writes its history (identity events, link periods) and its audit event
in the caller's transaction. Audit details carry ids, methods and scores — never names.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from partage.audit.actions import Actor, record
from partage.db import utcnow
from partage.identity.decide import (
    Outcome,
    PairJudgement,
    ReviewItem,
    Rule,
    Verdict,
    decide_person,
    judge,
)
from partage.identity.features import Features
from partage.identity.ins import InvalidIns, ins_oid, validate_ins
from partage.identity.model import MatchModel
from partage.identity.models import (
    IdentityEvent,
    Link,
    LinkMethod,
    LocalIdentity,
    Person,
    PersonStatus,
    Review,
    ReviewStatus,
)
from partage.identity.store import (
    ATTRIBUTES,
    ModelCache,
    Stored,
    candidate_identities,
    count_names,
    features_of,
    frequencies_for,
    key_columns,
    other_members,
    trait_columns,
)
from partage.identity.traits import IdentityStatus, IdentityTraits
from partage.security.models import Establishment

MODEL_CACHE = ModelCache()


class IdentityError(ValueError):
    """A request the identity domain refuses; the message says why (English)."""


@dataclass(frozen=True)
class IdentityInput:
    """What an establishment says about one of its patients."""

    traits: IdentityTraits
    status: IdentityStatus = IdentityStatus.provisional
    attributes: frozenset[str] = frozenset()
    ins_oid: str = ""


@dataclass
class Received:
    """What became of an identity received. A new one is written without the ORM: its
    `identity` is built from its row when asked for (not attached to the session)."""

    id: uuid.UUID
    person_id: uuid.UUID
    created: bool
    verdict: Verdict | None  # None: an update that did not re-match
    reviews: int = 0
    changed: list[str] = field(default_factory=list)
    row: dict[str, object] | None = field(default=None, repr=False)
    loaded: LocalIdentity | None = field(default=None, repr=False)

    @property
    def identity(self) -> LocalIdentity:
        if self.loaded is None:
            assert self.row is not None
            self.loaded = LocalIdentity(**self.row)
        return self.loaded


def author_of(actor: Actor) -> str:
    return f"{actor.kind}:{actor.label or actor.id or ''}"[:200]


def checked_input(value: IdentityInput) -> IdentityInput:
    """Refuse what identity-vigilance cannot accept; normalise the INS."""
    traits = value.traits
    if not traits.birth_family_name.strip():
        raise IdentityError("the birth family name is required")
    if not traits.given_names:
        raise IdentityError("at least one given name is required")
    unknown = set(value.attributes) - set(ATTRIBUTES)
    if unknown:
        raise IdentityError(f"unknown identity attributes: {', '.join(sorted(unknown))}")
    ins = ""
    oid = value.ins_oid
    if traits.ins:
        try:
            ins = validate_ins(traits.ins)
        except InvalidIns as error:
            raise IdentityError(f"invalid INS: {error}") from error
        oid = oid or ins_oid(ins)
    if value.status is IdentityStatus.qualified and not ins:
        raise IdentityError("a qualified identity (QUAL) needs its INS")
    if value.status is IdentityStatus.recovered and not ins:
        raise IdentityError("a recovered identity (RECUP) needs its INS")
    if ins == traits.ins and oid == value.ins_oid:
        return value
    return IdentityInput(
        traits=_with_ins(traits, ins), status=value.status, attributes=value.attributes, ins_oid=oid
    )


def _with_ins(traits: IdentityTraits, ins: str) -> IdentityTraits:
    values = {name: getattr(traits, name) for name in IdentityTraits.__slots__}
    values["ins"] = ins
    return IdentityTraits(**values)


# Built once: the statements of an identity received (the ADT feed runs them per message).
_IDENTITIES = cast(Table, LocalIdentity.__table__)
_BY_LOCAL_ID = select(LocalIdentity).where(
    LocalIdentity.establishment_id == bindparam("establishment"),
    LocalIdentity.local_id == bindparam("local_id"),
)
_PERSONS = cast(Table, Person.__table__)
_INSERT_PERSON = insert(_PERSONS)
_TOUCH_PERSON = (
    update(_PERSONS).where(_PERSONS.c.id == bindparam("person")).values(updated_at=bindparam("now"))
)
_INSERT_IDENTITY = insert(_IDENTITIES)
_INSERT_LINKS = insert(cast(Table, Link.__table__))
_INSERT_EVENTS = insert(cast(Table, IdentityEvent.__table__))
_REVIEWS = cast(Table, Review.__table__)
_INSERT_REVIEWS = insert(_REVIEWS)
_UPDATE_IDENTITY = update(_IDENTITIES).where(_IDENTITIES.c.id == bindparam("identity"))
_NOT_DUPLICATES = select(Review.first_id, Review.second_id).where(
    Review.status == ReviewStatus.not_duplicate,
    or_(Review.first_id == bindparam("identity"), Review.second_id == bindparam("identity")),
)


def do_receive_identity(
    session: Session,
    *,
    establishment: Establishment,
    local_id: str,
    value: IdentityInput,
    actor: Actor,
    now: datetime | None = None,
) -> Received:
    """Create or update an establishment's identity, and match it (incremental)."""
    value = checked_input(value)
    now = now or utcnow()
    local_id = local_id.strip()
    if not local_id or len(local_id) > 64:
        raise IdentityError("the local id (IPP) must have 1 to 64 characters")
    identity = session.scalars(
        _BY_LOCAL_ID, {"establishment": establishment.id, "local_id": local_id}
    ).one_or_none()
    if identity is not None and not identity.active:
        raise IdentityError(f"the local id {local_id} was merged into another id of its domain")
    author = author_of(actor)
    features = Features(value.traits, value.status)
    if identity is None:
        received = _create(session, establishment, local_id, value, features, author, now)
    else:
        received = _update(session, identity, value, features, author, now)
    record(
        session,
        actor=actor,
        action="identity.received",
        entity_type="local_identity",
        entity_id=str(received.id),
        person_id=str(received.person_id),
        detail={
            "establishment": establishment.code,
            "created": received.created,
            "verdict": received.verdict.value if received.verdict else None,
            "reviews": received.reviews,
            "changed": received.changed,
        },
    )
    return received


def _create(
    session: Session,
    establishment: Establishment,
    local_id: str,
    value: IdentityInput,
    features: Features,
    author: str,
    now: datetime,
) -> Received:
    """A new identity, matched before it is written: it is then written as it ends up (born
    with its own person, that person merged into the one it joins when it links), each
    table's rows in one statement, without the ORM's unit of work.

    Nothing stored can refer to an identity not yet stored: no candidate to leave out, no
    "not a duplicate" marks to read, no review of its pairs already open.
    """
    identity_id, origin_id = uuid.uuid4(), uuid.uuid4()
    model, total = MODEL_CACHE.get(session)
    others = candidate_identities(session, features)
    # Counted as it would be once stored (its names are counted when it is written).
    outcome = _decide(session, features, others, set(), model, total, uncounted=1)
    person_id = origin_id
    person_row: dict[str, object] = {"id": origin_id, "created_at": now, "updated_at": now}
    links: list[dict[str, object]] = [
        {
            "local_identity_id": identity_id,
            "person_id": origin_id,
            "method": LinkMethod.origin,
            "author": author,
            "reason": None,
            "started_at": now,
            "ended_at": None,
            "ended_reason": None,
            "score": None,
            "explanation": None,
        }
    ]
    events: list[dict[str, object]] = [
        {
            "occurred_at": now,
            "kind": "created",
            "local_identity_id": identity_id,
            "person_id": origin_id,
            "author": author,
            "reason": None,
            "detail": {"status": value.status.value},
        }
    ]
    linked = outcome.verdict is Verdict.link and outcome.person is not None
    if linked:
        assert outcome.judgement is not None
        assert outcome.person is not None
        person_id = outcome.person
        method = LinkMethod.qualified_ins if outcome.judgement.certain else LinkMethod.probabilistic
        score = outcome.judgement.weight
        person_row.update(status=PersonStatus.merged, merged_into_id=person_id)
        links[0].update(ended_at=now, ended_reason=method.value)
        links.append(
            {
                "local_identity_id": identity_id,
                "person_id": person_id,
                "method": method,
                "author": author,
                "reason": None,
                "started_at": now,
                "ended_at": None,
                "ended_reason": None,
                "score": score,
                "explanation": explanation(outcome.judgement, model),
            }
        )
        events.append(
            {
                "occurred_at": now,
                "kind": "persons_merged",
                "local_identity_id": None,
                "person_id": person_id,
                "author": author,
                "reason": None,
                "detail": {
                    "absorbed": str(origin_id),
                    "method": method.value,
                    "identities": [str(identity_id)],
                    "score": score,
                },
            }
        )
    row: dict[str, object] = {
        "id": identity_id,
        "establishment_id": establishment.id,
        "local_id": local_id,
        "person_id": person_id,
        "origin_person_id": origin_id,
        "status": value.status.value,
        "ins_oid": value.ins_oid,
        "active": True,
        "replaced_by_id": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **trait_columns(value.traits),
        **key_columns(features),
        **{name: name in value.attributes for name in ATTRIBUTES},
    }
    session.execute(_INSERT_PERSON, person_row)
    session.execute(_INSERT_IDENTITY, row)
    session.execute(_INSERT_LINKS, links)
    session.execute(_INSERT_EVENTS, events)
    if linked:
        # What merging its own person into the one it joins does to that person.
        session.execute(_TOUCH_PERSON, {"person": person_id, "now": now})
        held = session.identity_map.get(identity_key(Person, person_id))
        if held is not None:  # written past the ORM: what it holds follows
            set_committed_value(held, "updated_at", now)
        _supersede_reviews_within(session, person_id, now)
    if outcome.reviews:
        reviewed: set[uuid.UUID] = set()
        rows: list[dict[str, object]] = []
        for item in outcome.reviews:
            if item.record in reviewed:
                continue
            reviewed.add(item.record)
            first, second = sorted((identity_id, item.record))
            rows.append(
                {
                    "first_id": first,
                    "second_id": second,
                    "score": item.judgement.weight,
                    "explanation": explanation(item.judgement, model),
                    "status": ReviewStatus.open,
                    "created_at": now,
                }
            )
        session.execute(_INSERT_REVIEWS, rows)
    count_names(session, [features])
    return Received(identity_id, person_id, True, outcome.verdict, len(outcome.reviews), row=row)


def _decide(
    session: Session,
    features: Features,
    others: Sequence[Stored],
    excluded: set[uuid.UUID],
    model: MatchModel,
    total: int,
    *,
    uncounted: int = 0,
) -> Outcome[uuid.UUID, uuid.UUID]:
    """Judge the incoming identity against the candidates, person by person."""
    pairs: dict[uuid.UUID, list[tuple[uuid.UUID, PairJudgement]]] = {}
    if others:
        # Read only when there is something to score: the names' frequencies.
        frequencies = frequencies_for(session, features, total, uncounted=uncounted)
        for other in others:
            judgement = judge(features, other.features, model, frequencies)
            if other.id in excluded:
                judgement = PairJudgement(judgement.score, Rule.not_duplicate, excluded=True)
            pairs.setdefault(other.person_id, []).append((other.id, judgement))
    return decide_person(pairs, model)


def _match(
    session: Session, identity: LocalIdentity, features: Features
) -> Outcome[uuid.UUID, uuid.UUID]:
    """A stored identity matched again."""
    model, total = MODEL_CACHE.get(session)
    others = [
        other
        for other in candidate_identities(session, features, exclude=identity.id)
        if other.person_id != identity.person_id
    ]
    excluded = _not_duplicates(session, identity.id) if others else set()
    return _decide(session, features, others, excluded, model, total)


def _not_duplicates(session: Session, identity_id: uuid.UUID) -> set[uuid.UUID]:
    rows = session.execute(_NOT_DUPLICATES, {"identity": identity_id})
    return {second if first == identity_id else first for first, second in rows}


def _apply(
    session: Session,
    identity: LocalIdentity,
    outcome: Outcome[uuid.UUID, uuid.UUID],
    author: str,
    now: datetime,
) -> tuple[Verdict, int]:
    if outcome.verdict is Verdict.link and outcome.person is not None:
        assert outcome.judgement is not None
        method = LinkMethod.qualified_ins if outcome.judgement.certain else LinkMethod.probabilistic
        target = session.get(Person, outcome.person)
        source = session.get(Person, identity.person_id)
        assert target is not None
        assert source is not None
        merge_persons(
            session,
            absorbed=source,
            kept=target,
            method=method,
            score=outcome.judgement.weight,
            explanation=explanation(outcome.judgement, MODEL_CACHE.get(session)[0]),
            author=author,
            reason=None,
            now=now,
        )
    for item in outcome.reviews:
        open_review(session, identity.id, item, author=author, now=now)
    return outcome.verdict, len(outcome.reviews)


def explanation(judgement: PairJudgement, model: MatchModel) -> dict[str, Any]:
    """Why a pair scored what it did, compactly (one is kept per link made)."""
    return {
        "weight": round(judgement.weight, 2),
        "probability": round(model.probability(judgement.weight), 6),
        "rule": judgement.rule.value if judgement.rule else None,
        "levels": list(judgement.score.levels),
        "weights": [round(w, 2) for w in judgement.score.weights],
        "upper": model.upper,
        "lower": model.lower,
    }


def open_review(
    session: Session,
    identity_id: uuid.UUID,
    item: ReviewItem[uuid.UUID, uuid.UUID],
    *,
    author: str,
    now: datetime,
) -> None:
    first, second = sorted((identity_id, item.record))
    existing = session.scalars(
        select(Review).where(Review.first_id == first, Review.second_id == second)
    ).one_or_none()
    model = MODEL_CACHE.get(session)[0]
    if existing is not None:
        if existing.status in (ReviewStatus.open, ReviewStatus.superseded):
            existing.status = ReviewStatus.open
            existing.score = item.judgement.weight
            existing.explanation = explanation(item.judgement, model)
        return
    session.add(
        Review(
            first_id=first,
            second_id=second,
            score=item.judgement.weight,
            explanation=explanation(item.judgement, model),
            created_at=now,
        )
    )


def merge_persons(
    session: Session,
    *,
    absorbed: Person,
    kept: Person,
    method: LinkMethod,
    score: float | None,
    explanation: dict[str, Any] | None,
    author: str,
    reason: str | None,
    now: datetime,
) -> list[LocalIdentity]:
    """Move every active identity of `absorbed` to `kept`; `absorbed` points to `kept`."""
    if absorbed.id == kept.id:
        return []
    moved = list(
        session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.person_id == absorbed.id, LocalIdentity.active
            )
        )
    )
    for identity in moved:
        move_identity(
            session,
            identity,
            kept.id,
            method=method,
            score=score,
            explanation=explanation,
            author=author,
            reason=reason,
            now=now,
        )
    absorbed.status = PersonStatus.merged
    absorbed.merged_into_id = kept.id
    absorbed.updated_at = now
    kept.updated_at = now
    # Persons merged into the absorbed one earlier now point straight at the survivor.
    session.execute(
        update(Person).where(Person.merged_into_id == absorbed.id).values(merged_into_id=kept.id)
    )
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind="persons_merged",
            person_id=kept.id,
            author=author,
            reason=reason,
            detail={
                "absorbed": str(absorbed.id),
                "method": method.value,
                "identities": [str(i.id) for i in moved],
                "score": score,
            },
        )
    )
    _supersede_reviews_within(session, kept.id, now)
    return moved


def move_identity(
    session: Session,
    identity: LocalIdentity,
    person_id: uuid.UUID,
    *,
    method: LinkMethod,
    score: float | None = None,
    explanation: dict[str, Any] | None = None,
    author: str,
    reason: str | None,
    now: datetime,
) -> None:
    session.execute(
        update(Link)
        .where(Link.local_identity_id == identity.id, Link.ended_at.is_(None))
        .values(ended_at=now, ended_reason=f"{method.value}: {reason}" if reason else method.value)
    )
    session.add(
        Link(
            local_identity_id=identity.id,
            person_id=person_id,
            method=method,
            score=score,
            explanation=explanation,
            author=author,
            reason=reason,
            started_at=now,
        )
    )
    identity.person_id = person_id
    identity.updated_at = now


_MEMBER_IDS = select(_IDENTITIES.c.id).where(_IDENTITIES.c.person_id == bindparam("person"))
_SUPERSEDE = (
    update(_REVIEWS)
    .where(
        _REVIEWS.c.status == ReviewStatus.open.value,
        _REVIEWS.c.first_id.in_(_MEMBER_IDS),
        _REVIEWS.c.second_id.in_(_MEMBER_IDS),
    )
    .values(status=ReviewStatus.superseded.value, resolved_at=bindparam("now"))
)


def _supersede_reviews_within(session: Session, person_id: uuid.UUID, now: datetime) -> None:
    """Open reviews between identities now of one person are answered by the link."""
    session.flush()
    result = cast(CursorResult[Any], session.execute(_SUPERSEDE, {"person": person_id, "now": now}))
    if result.rowcount:
        # Written past the ORM (its synchronisation costs more than the statement): the
        # reviews it holds are read again when next used.
        for held in list(session.identity_map.values()):
            if isinstance(held, Review):
                session.expire(held)


def _update(
    session: Session,
    identity: LocalIdentity,
    value: IdentityInput,
    features: Features,
    author: str,
    now: datetime,
) -> Received:
    before = features_of(identity)
    columns: dict[str, object] = {
        **trait_columns(value.traits),
        "status": value.status.value,
        "ins_oid": value.ins_oid,
        **{name: name in value.attributes for name in ATTRIBUTES},
    }
    changed = [name for name, new in columns.items() if getattr(identity, name) != new]
    if not changed:
        return Received(identity.id, identity.person_id, False, None, loaded=identity)
    old = {name: _jsonable(getattr(identity, name)) for name in changed}
    values = {
        **columns,
        **key_columns(features),
        "version": identity.version + 1,
        "updated_at": now,
    }
    # One statement, past the ORM's unit of work; the loaded object is given the values
    # as committed, so that it stays what the database holds.
    session.flush()
    session.execute(_UPDATE_IDENTITY, {"identity": identity.id, **values})
    for name, new in values.items():
        set_committed_value(identity, name, new)
    session.execute(
        _INSERT_EVENTS,
        {
            "occurred_at": now,
            "kind": "updated",
            "local_identity_id": identity.id,
            "person_id": identity.person_id,
            "author": author,
            "reason": None,
            "detail": {"changed": changed, "before": old},
        },
    )
    count_names(session, [features], removed=[before])
    verdict, reviews = rematch(session, identity, features, author=author, now=now)
    return Received(
        identity.id, identity.person_id, False, verdict, reviews, changed, loaded=identity
    )


def rematch(
    session: Session, identity: LocalIdentity, features: Features, *, author: str, now: datetime
) -> tuple[Verdict | None, int]:
    """After a change: an identity alone in its person is matched again; one linked to
    others is checked against them, and a link that no longer holds is put to review."""
    others = other_members(session, identity.person_id, identity.id)
    if not others:
        outcome = _match(session, identity, features)
        return _apply(session, identity, outcome, author, now)
    model, total = MODEL_CACHE.get(session)
    frequencies = frequencies_for(session, features, total)
    doubts = 0
    for other in others:
        judgement = judge(features, other.features, model, frequencies)
        if judgement.excluded or judgement.capped or judgement.weight < model.lower:
            open_review(
                session,
                identity.id,
                ReviewItem(other.person_id, other.id, judgement),
                author=author,
                now=now,
            )
            doubts += 1
    return None, doubts


def _jsonable(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


def active_identities(session: Session, person_id: uuid.UUID) -> Sequence[LocalIdentity]:
    return list(
        session.scalars(
            select(LocalIdentity)
            .where(LocalIdentity.person_id == person_id, LocalIdentity.active)
            .order_by(LocalIdentity.created_at)
        )
    )
