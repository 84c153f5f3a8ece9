"""Identity actions: receive an identity, link, merge, unmerge, not-a-duplicate, INS, status.

Each `do_*` action writes its history (identity events, link periods) and its audit event
in the caller's transaction. Audit details carry ids, methods and scores — never names.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

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
    candidates,
    count_names,
    features_of,
    frequencies_for,
    key_columns,
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
    identity: LocalIdentity
    created: bool
    verdict: Verdict | None  # None: an update that did not re-match
    reviews: int = 0
    changed: list[str] = field(default_factory=list)


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
        select(LocalIdentity).where(
            LocalIdentity.establishment_id == establishment.id, LocalIdentity.local_id == local_id
        )
    ).one_or_none()
    if identity is not None and not identity.active:
        raise IdentityError(f"the local id {local_id} was merged into another id of its domain")
    author = author_of(actor)
    features = Features(value.traits, value.status)
    if identity is None:
        identity = _create(session, establishment, local_id, value, features, author, now)
        outcome = _match(session, identity, features)
        verdict, reviews = _apply(session, identity, outcome, author, now)
        received = Received(identity, True, verdict, reviews)
    else:
        received = _update(session, identity, value, features, author, now)
    record(
        session,
        actor=actor,
        action="identity.received",
        entity_type="local_identity",
        entity_id=str(identity.id),
        person_id=str(identity.person_id),
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
) -> LocalIdentity:
    person = Person(id=uuid.uuid4(), created_at=now, updated_at=now)
    session.add(person)
    session.flush()
    identity = LocalIdentity(
        id=uuid.uuid4(),
        establishment_id=establishment.id,
        local_id=local_id,
        person_id=person.id,
        origin_person_id=person.id,
        status=value.status.value,
        ins_oid=value.ins_oid,
        created_at=now,
        updated_at=now,
        **trait_columns(value.traits),
        **key_columns(features),
        **{name: name in value.attributes for name in ATTRIBUTES},
    )
    session.add(identity)
    session.flush()  # the rows below refer to these two
    session.add(
        Link(
            local_identity_id=identity.id,
            person_id=person.id,
            method=LinkMethod.origin,
            author=author,
            started_at=now,
        )
    )
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind="created",
            local_identity_id=identity.id,
            person_id=person.id,
            author=author,
            detail={"status": value.status.value},
        )
    )
    session.flush()
    count_names(session, [features])
    return identity


def _match(
    session: Session, identity: LocalIdentity, features: Features
) -> Outcome[uuid.UUID, uuid.UUID]:
    model, total = MODEL_CACHE.get(session)
    frequencies = frequencies_for(session, features, total)
    others = candidates(session, features, exclude=identity.id)
    excluded = _not_duplicates(session, identity.id)
    pairs: dict[uuid.UUID, list[tuple[uuid.UUID, PairJudgement]]] = {}
    for other in others:
        if other.person_id == identity.person_id:
            continue
        judgement = judge(features, features_of(other), model, frequencies)
        if other.id in excluded:
            judgement = PairJudgement(judgement.score, Rule.not_duplicate, excluded=True)
        pairs.setdefault(other.person_id, []).append((other.id, judgement))
    return decide_person(pairs, model)


def _not_duplicates(session: Session, identity_id: uuid.UUID) -> set[uuid.UUID]:
    rows = session.execute(
        select(Review.first_id, Review.second_id).where(
            Review.status == ReviewStatus.not_duplicate,
            or_(Review.first_id == identity_id, Review.second_id == identity_id),
        )
    )
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


def _supersede_reviews_within(session: Session, person_id: uuid.UUID, now: datetime) -> None:
    """Open reviews between identities now of one person are answered by the link."""
    members = select(LocalIdentity.id).where(LocalIdentity.person_id == person_id)
    session.execute(
        update(Review)
        .where(
            Review.status == ReviewStatus.open,
            Review.first_id.in_(members),
            Review.second_id.in_(members),
        )
        .values(status=ReviewStatus.superseded, resolved_at=now)
    )


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
        return Received(identity, False, None)
    old = {name: _jsonable(getattr(identity, name)) for name in changed}
    for name, new in columns.items():
        setattr(identity, name, new)
    for name, key in key_columns(features).items():
        setattr(identity, name, key)
    identity.version += 1
    identity.updated_at = now
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind="updated",
            local_identity_id=identity.id,
            person_id=identity.person_id,
            author=author,
            detail={"changed": changed, "before": old},
        )
    )
    count_names(session, [before], step=-1)
    count_names(session, [features])
    session.flush()
    verdict, reviews = rematch(session, identity, features, author=author, now=now)
    return Received(identity, False, verdict, reviews, changed)


def rematch(
    session: Session, identity: LocalIdentity, features: Features, *, author: str, now: datetime
) -> tuple[Verdict | None, int]:
    """After a change: an identity alone in its person is matched again; one linked to
    others is checked against them, and a link that no longer holds is put to review."""
    others = list(
        session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.person_id == identity.person_id,
                LocalIdentity.active,
                LocalIdentity.id != identity.id,
            )
        )
    )
    if not others:
        outcome = _match(session, identity, features)
        return _apply(session, identity, outcome, author, now)
    model, total = MODEL_CACHE.get(session)
    frequencies = frequencies_for(session, features, total)
    doubts = 0
    for other in others:
        judgement = judge(features, features_of(other), model, frequencies)
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
