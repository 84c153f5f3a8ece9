"""The master patient index: local identities, territorial persons, links, reviews, history.

Every local identity is born with its own person (its origin person). Linking an identity to
another person merges its person into that one; undoing the link (unmerge) brings the origin
person back. One mechanism — merging persons — serves automatic links, manual links and
merges, and undoing any of them restores what was there, with the history kept.
Nothing here is ever deleted: persons are merged, links ended, identities deactivated.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from partage.db import Base, new_uuid, utcnow


class PersonStatus(StrEnum):
    active = "active"
    merged = "merged"  # absorbed by another person (merged_into_id)


class LinkMethod(StrEnum):
    origin = "origin"  # the identity's own person, at creation
    qualified_ins = "qualified_ins"  # the same qualified INS
    probabilistic = "probabilistic"  # the score was above the upper threshold
    manual = "manual"  # an identity-vigilance officer linked or merged
    a40 = "a40"  # the establishment merged two of its ids (HL7 A40)
    unmerge = "unmerge"  # a wrong link undone


class ReviewStatus(StrEnum):
    open = "open"
    linked = "linked"  # resolved: the same person
    not_duplicate = "not_duplicate"  # resolved: two persons, never to be proposed again
    superseded = "superseded"  # the identities were linked or changed meanwhile


class Person(Base):
    """A territorial person: the territory's identifier is its id."""

    __tablename__ = "identity_persons"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    status: Mapped[PersonStatus] = mapped_column(String(16), default=PersonStatus.active)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("identity_persons.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LocalIdentity(Base):
    """A patient as one establishment (identification domain) knows them, under its IPP."""

    __tablename__ = "identity_local"
    __table_args__ = (
        Index("uq_identity_local_domain_local_id", "establishment_id", "local_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    establishment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("establishments.id"))
    local_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_persons.id"), index=True)
    origin_person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_persons.id"))
    # Strict traits
    birth_family_name: Mapped[str] = mapped_column(String(100))
    given_names: Mapped[str] = mapped_column(String(200))  # space-separated, in order
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date | None] = mapped_column(Date)
    birth_place_code: Mapped[str] = mapped_column(String(5), default="")
    # Other traits
    used_family_name: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    postal_code: Mapped[str] = mapped_column(String(10), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    ins: Mapped[str] = mapped_column(String(15), default="")
    ins_oid: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(5), default="PROV")
    doubtful: Mapped[bool] = mapped_column(Boolean, default=False)
    fictitious: Mapped[bool] = mapped_column(Boolean, default=False)
    homonym: Mapped[bool] = mapped_column(Boolean, default=False)
    usurped: Mapped[bool] = mapped_column(Boolean, default=False)
    # False once the establishment merged this id into another of its ids (A40).
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("identity_local.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Folded names (upper-case ASCII, see normalize.fold) for accent-insensitive searches.
    family_folded: Mapped[str] = mapped_column(String(100), default="", index=True)
    used_folded: Mapped[str] = mapped_column(String(100), default="", index=True)
    given_folded: Mapped[str] = mapped_column(String(200), default="")
    # Blocking keys (see identity.blocking): indexed, one value each.
    k_ins: Mapped[str | None] = mapped_column(String(13), index=True)
    k_name_dob: Mapped[str | None] = mapped_column(String(48), index=True)
    k_used_dob: Mapped[str | None] = mapped_column(String(48), index=True)
    k_given_dob: Mapped[str | None] = mapped_column(String(48), index=True)
    k_name_given: Mapped[str | None] = mapped_column(String(64), index=True)
    k_name_given_md: Mapped[str | None] = mapped_column(String(64), index=True)
    k_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    k_dob_postal: Mapped[str | None] = mapped_column(String(24), index=True)


class Link(Base):
    """One period during which a local identity belonged to a person."""

    __tablename__ = "identity_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    local_identity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("identity_local.id"), index=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_persons.id"), index=True)
    method: Mapped[LinkMethod] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    ended_reason: Mapped[str | None] = mapped_column(Text)


class Review(Base):
    """A potential duplicate: two local identities a person must look at (or has)."""

    __tablename__ = "identity_reviews"
    __table_args__ = (
        Index("ix_identity_reviews_status_created", "status", "created_at"),
        Index("uq_identity_reviews_pair", "first_id", "second_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    # The two identities in a fixed order (smaller id first): one row per pair.
    first_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_local.id"), index=True)
    second_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_local.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[ReviewStatus] = mapped_column(String(16), default=ReviewStatus.open)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)


class IdentityEvent(Base):
    """The history of a local identity or person: what changed, who, why, before/after."""

    __tablename__ = "identity_events"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    local_identity_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("identity_local.id"), index=True
    )
    person_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("identity_persons.id"), index=True
    )
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MatchModelRecord(Base):
    """The matching model's parameters, as last estimated (EM) on the territory's data."""

    __tablename__ = "identity_match_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    identities: Mapped[int] = mapped_column(Integer)  # how many it was estimated on
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)


class NameFrequency(Base):
    """How many active identities carry a normalised name (term-frequency weighting)."""

    __tablename__ = "identity_name_frequencies"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # family | given | total
    value: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
