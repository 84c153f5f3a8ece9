"""Identity-vigilance operations: link, merge, unmerge, not-a-duplicate, INS, status, A40.

Each is an audited action with its author and reason, written in the caller's transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from partage.audit.actions import Actor, record
from partage.db import utcnow
from partage.identity.decide import Verdict
from partage.identity.ins import InvalidIns, ins_oid, validate_ins
from partage.identity.models import (
    IdentityEvent,
    LinkMethod,
    LocalIdentity,
    Person,
    PersonStatus,
    Review,
    ReviewStatus,
)
from partage.identity.service import (
    IdentityError,
    author_of,
    merge_persons,
    move_identity,
    rematch,
)
from partage.identity.store import ATTRIBUTES, count_names, features_of, key_columns
from partage.identity.traits import IdentityStatus


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise IdentityError("a reason is required")
    return reason[:2000]


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    identity_or_person: LocalIdentity | Person,
    **detail: object,
) -> None:
    if isinstance(identity_or_person, LocalIdentity):
        entity_type, person_id = "local_identity", identity_or_person.person_id
    else:
        entity_type, person_id = "person", identity_or_person.id
    record(
        session,
        actor=actor,
        action=f"identity.{action}",
        entity_type=entity_type,
        entity_id=str(identity_or_person.id),
        person_id=str(person_id),
        detail={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in detail.items()},
    )


def _identity(session: Session, identity_id: uuid.UUID) -> LocalIdentity:
    identity = session.get(LocalIdentity, identity_id)
    if identity is None:
        raise IdentityError("no such local identity")
    return identity


def _active_person(session: Session, person_id: uuid.UUID) -> Person:
    person = session.get(Person, person_id)
    if person is None or person.status != PersonStatus.active:
        raise IdentityError("no such active person")
    return person


def do_merge_persons(
    session: Session,
    *,
    kept_id: uuid.UUID,
    absorbed_id: uuid.UUID,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> Person:
    """Two persons are one: every identity of `absorbed` joins `kept`."""
    reason, now = _reason(reason), now or utcnow()
    if kept_id == absorbed_id:
        raise IdentityError("a person cannot be merged into itself")
    kept, absorbed = _active_person(session, kept_id), _active_person(session, absorbed_id)
    moved = merge_persons(
        session,
        absorbed=absorbed,
        kept=kept,
        method=LinkMethod.manual,
        score=None,
        explanation=None,
        author=author_of(actor),
        reason=reason,
        now=now,
    )
    _audit(session, actor, "persons_merged", kept, absorbed=absorbed.id, identities=len(moved))
    return kept


def do_link_review(
    session: Session,
    *,
    review_id: uuid.UUID,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> Person:
    """A reviewer confirms a potential duplicate: the two persons become one."""
    reason, now = _reason(reason), now or utcnow()
    review = _open_review(session, review_id)
    first, second = _identity(session, review.first_id), _identity(session, review.second_id)
    review.status, review.resolved_at = ReviewStatus.linked, now
    review.resolved_by, review.reason = author_of(actor), reason
    if first.person_id == second.person_id:
        return _active_person(session, first.person_id)
    # The older person survives: its id is the one other systems have known longest.
    persons = sorted(
        (_active_person(session, first.person_id), _active_person(session, second.person_id)),
        key=lambda p: p.created_at,
    )
    return do_merge_persons(
        session,
        kept_id=persons[0].id,
        absorbed_id=persons[1].id,
        actor=actor,
        reason=review.reason,
        now=now,
    )


def _open_review(session: Session, review_id: uuid.UUID) -> Review:
    review = session.get(Review, review_id)
    if review is None or review.status != ReviewStatus.open:
        raise IdentityError("no such open review")
    return review


def do_mark_not_duplicate(
    session: Session,
    *,
    first_id: uuid.UUID,
    second_id: uuid.UUID,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> Review:
    """Two identities are two persons: never propose or make this link again."""
    reason, now = _reason(reason), now or utcnow()
    if first_id == second_id:
        raise IdentityError("an identity is not a duplicate of itself")
    first, second = sorted((first_id, second_id))
    a, b = _identity(session, first), _identity(session, second)
    if a.person_id == b.person_id:
        raise IdentityError("these identities are linked: unmerge one of them first")
    review = session.scalars(
        select(Review).where(Review.first_id == first, Review.second_id == second)
    ).one_or_none()
    if review is None:
        review = Review(first_id=first, second_id=second, score=0.0, explanation={}, created_at=now)
        session.add(review)
    review.status, review.resolved_at = ReviewStatus.not_duplicate, now
    review.resolved_by, review.reason = author_of(actor), reason
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind="not_duplicate",
            local_identity_id=first,
            person_id=a.person_id,
            author=author_of(actor),
            reason=reason,
            detail={"other": str(second)},
        )
    )
    _audit(session, actor, "not_duplicate", a, other=second)
    return review


def do_unmerge(
    session: Session,
    *,
    identity_id: uuid.UUID,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> Person:
    """Undo a wrong link: the identity leaves its person and gets back its own.

    Its origin person comes back (with its id, so systems that knew it find it again); if
    the identity is the origin of the person it is in, a new person is made for it. The
    identities it leaves are marked "not a duplicate" of it, so matching will not bring it
    back.
    """
    reason, now = _reason(reason), now or utcnow()
    identity = _identity(session, identity_id)
    if not identity.active:
        raise IdentityError("this identity was merged into another id of its domain")
    current = identity.person_id
    left = [
        other.id
        for other in session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.person_id == current,
                LocalIdentity.active,
                LocalIdentity.id != identity.id,
            )
        )
    ]
    if not left:
        raise IdentityError("this identity is alone in its person: there is nothing to undo")
    origin = session.get(Person, identity.origin_person_id)
    assert origin is not None
    if origin.id != current:
        origin.status, origin.merged_into_id, origin.updated_at = PersonStatus.active, None, now
        target = origin
    else:
        target = Person(id=uuid.uuid4(), created_at=now, updated_at=now)
        session.add(target)
        session.flush()
    author = author_of(actor)
    move_identity(
        session,
        identity,
        target.id,
        method=LinkMethod.unmerge,
        author=author,
        reason=reason,
        now=now,
    )
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind="unmerged",
            local_identity_id=identity.id,
            person_id=target.id,
            author=author,
            reason=reason,
            detail={"from_person": str(current), "identities_left": [str(i) for i in left]},
        )
    )
    session.flush()
    for other_id in left:
        do_mark_not_duplicate(
            session,
            first_id=identity.id,
            second_id=other_id,
            actor=actor,
            reason=f"unmerged: {reason}",
            now=now,
        )
    _audit(session, actor, "unmerged", identity, from_person=current, to_person=target.id)
    return target


def do_attach_ins(
    session: Session,
    *,
    identity_id: uuid.UUID,
    ins: str,
    oid: str = "",
    verified: bool,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> LocalIdentity:
    """Attach the INS returned by the national teleservice (INSi).

    The status follows the national rules: a provisional identity becomes RECUP (INS
    retrieved); a validated one — or one the caller has just checked against an identity
    document (`verified`) — becomes QUAL.
    """
    reason, now = _reason(reason), now or utcnow()
    identity = _identity(session, identity_id)
    try:
        value = validate_ins(ins)
    except InvalidIns as error:
        raise IdentityError(f"invalid INS: {error}") from error
    before = features_of(identity)
    old: dict[str, object] = {"ins": identity.ins, "status": identity.status}
    identity.ins, identity.ins_oid = value, oid or ins_oid(value)
    validated = verified or identity.status in (IdentityStatus.validated, IdentityStatus.qualified)
    identity.status = (IdentityStatus.qualified if validated else IdentityStatus.recovered).value
    return _changed(session, identity, before, old, "ins_attached", actor, reason, now)


def do_change_status(
    session: Session,
    *,
    identity_id: uuid.UUID,
    status: IdentityStatus,
    attributes: frozenset[str],
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> LocalIdentity:
    reason, now = _reason(reason), now or utcnow()
    identity = _identity(session, identity_id)
    unknown = set(attributes) - set(ATTRIBUTES)
    if unknown:
        raise IdentityError(f"unknown identity attributes: {', '.join(sorted(unknown))}")
    if status in (IdentityStatus.qualified, IdentityStatus.recovered) and not identity.ins:
        raise IdentityError(f"the status {status.value} needs an INS: attach it first")
    before = features_of(identity)
    old: dict[str, object] = {"status": identity.status}
    old.update({name: getattr(identity, name) for name in ATTRIBUTES})
    identity.status = status.value
    for name in ATTRIBUTES:
        setattr(identity, name, name in attributes)
    return _changed(session, identity, before, old, "status_changed", actor, reason, now)


def _changed(
    session: Session,
    identity: LocalIdentity,
    before: object,
    old: dict[str, object],
    kind: str,
    actor: Actor,
    reason: str,
    now: datetime,
) -> LocalIdentity:
    features = features_of(identity)
    for name, key in key_columns(features).items():
        setattr(identity, name, key)
    identity.version += 1
    identity.updated_at = now
    author = author_of(actor)
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind=kind,
            local_identity_id=identity.id,
            person_id=identity.person_id,
            author=author,
            reason=reason,
            detail={"before": old},
        )
    )
    session.flush()
    verdict, reviews = rematch(session, identity, features, author=author, now=now)
    _audit(
        session,
        actor,
        kind,
        identity,
        status=identity.status,
        verdict=verdict.value if isinstance(verdict, Verdict) else None,
        reviews=reviews,
    )
    return identity


def do_merge_local(
    session: Session,
    *,
    establishment_id: uuid.UUID,
    surviving_local_id: str,
    absorbed_local_id: str,
    actor: Actor,
    reason: str = "merged by the establishment (A40)",
    now: datetime | None = None,
) -> LocalIdentity:
    """The establishment merged two of its own ids (HL7 A40): the absorbed one is retired
    and its person joins the survivor's."""
    now = now or utcnow()
    if surviving_local_id == absorbed_local_id:
        raise IdentityError("an id cannot be merged into itself")
    rows = {
        row.local_id: row
        for row in session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.establishment_id == establishment_id,
                or_(
                    LocalIdentity.local_id == surviving_local_id,
                    LocalIdentity.local_id == absorbed_local_id,
                ),
            )
        )
    }
    surviving, absorbed = rows.get(surviving_local_id), rows.get(absorbed_local_id)
    if surviving is None or not surviving.active:
        raise IdentityError(f"unknown surviving id {surviving_local_id}")
    if absorbed is None:
        raise IdentityError(f"unknown merged id {absorbed_local_id}")
    if not absorbed.active:
        if absorbed.replaced_by_id == surviving.id:
            return surviving  # the same A40 again: nothing more to do
        raise IdentityError(f"the id {absorbed_local_id} was already merged into another id")
    author = author_of(actor)
    if absorbed.person_id != surviving.person_id:
        merge_persons(
            session,
            absorbed=_active_person(session, absorbed.person_id),
            kept=_active_person(session, surviving.person_id),
            method=LinkMethod.a40,
            score=None,
            explanation=None,
            author=author,
            reason=reason,
            now=now,
        )
    absorbed.active, absorbed.replaced_by_id, absorbed.updated_at = False, surviving.id, now
    for name in key_columns(features_of(absorbed)):
        setattr(absorbed, name, None)  # retired ids are no longer candidates
    count_names(session, [features_of(absorbed)], step=-1)
    session.add(
        IdentityEvent(
            occurred_at=now,
            kind="local_merged",
            local_identity_id=absorbed.id,
            person_id=surviving.person_id,
            author=author,
            reason=reason,
            detail={"into": str(surviving.id)},
        )
    )
    _audit(session, actor, "local_merged", surviving, absorbed=absorbed.id)
    return surviving
