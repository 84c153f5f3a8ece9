"""The territory's directory: structures (FINESS), professionals (RPPS/ADELI) and their roles.

Rows are never deleted: an import that no longer lists a role closes it (`valid_to`), so the
directory keeps its history. `content_hash` lets an import skip rows that did not change.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from partage.db import Base, new_uuid, utcnow


class DirectoryImport(Base):
    """One run of an importer, with its counts and the rows it rejected (line and reason)."""

    __tablename__ = "directory_imports"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(16))  # rpps | finess
    file_name: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    # The first rejections, for people to read; the count above is complete.
    rejections: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)


class Organization(Base):
    """A structure: a legal entity (FINESS EJ) or a site (FINESS ET), or a practice that the
    RPPS extract names by its technical id only."""

    __tablename__ = "directory_organizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    # "finess-et:860014208", "finess-ej:…", "rpps-structure:C810001234567": one per source key.
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    finess_et: Mapped[str | None] = mapped_column(String(9), index=True)
    finess_ej: Mapped[str | None] = mapped_column(String(9), index=True)
    siret: Mapped[str | None] = mapped_column(String(14), index=True)
    name: Mapped[str] = mapped_column(String(300))
    name_folded: Mapped[str] = mapped_column(String(300), index=True)
    category_code: Mapped[str | None] = mapped_column(String(16))
    category_label: Mapped[str | None] = mapped_column(String(200))
    address_line: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(10), index=True)
    city: Mapped[str | None] = mapped_column(String(100))
    city_folded: Mapped[str | None] = mapped_column(String(100), index=True)
    city_code: Mapped[str | None] = mapped_column(String(5))
    phone: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(254))
    # A site's legal entity (FINESS EJ).
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("directory_organizations.id"), index=True
    )
    # The FINESS site an RPPS structure names (set at the end of either import).
    site_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("directory_organizations.id"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    valid_to: Mapped[datetime | None]
    content_hash: Mapped[str] = mapped_column(String(32))
    last_import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Practitioner(Base):
    __tablename__ = "directory_practitioners"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    # RPPS "8" + 11 digits, or ADELI "0" + 9 digits: the national identifier.
    national_id: Mapped[str] = mapped_column(String(12), unique=True)
    id_type: Mapped[str] = mapped_column(String(1))
    local_id: Mapped[str] = mapped_column(String(11))
    civility_code: Mapped[str | None] = mapped_column(String(8))
    practice_civility_code: Mapped[str | None] = mapped_column(String(8))
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(200))
    # Upper-case without accents, for accent- and case-insensitive prefix search.
    family_name_folded: Mapped[str] = mapped_column(String(200))
    given_name_folded: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    content_hash: Mapped[str] = mapped_column(String(32))
    last_import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_directory_practitioners_names", "family_name_folded", "given_name_folded"),
    )


class PractitionerRole(Base):
    """A professional's activity at a structure: one row of the RPPS extract."""

    __tablename__ = "directory_practitioner_roles"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    # Digest of what identifies the activity (professional, structure, profession, specialty,
    # mode): the same activity in the next extract is the same role.
    role_key: Mapped[str] = mapped_column(String(32), unique=True)
    practitioner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("directory_practitioners.id"), index=True
    )
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("directory_organizations.id"), index=True
    )
    profession_code: Mapped[str] = mapped_column(String(8), index=True)
    profession_label: Mapped[str | None] = mapped_column(String(200))
    category_code: Mapped[str | None] = mapped_column(String(8))
    specialty_type: Mapped[str | None] = mapped_column(String(8))
    specialty_code: Mapped[str | None] = mapped_column(String(16), index=True)
    specialty_label: Mapped[str | None] = mapped_column(String(200))
    practice_mode_code: Mapped[str | None] = mapped_column(String(8))
    practice_mode_label: Mapped[str | None] = mapped_column(String(100))
    sector_code: Mapped[str | None] = mapped_column(String(16))
    sector_label: Mapped[str | None] = mapped_column(String(200))
    address_line: Mapped[str | None] = mapped_column(String(300))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(100))
    city_folded: Mapped[str | None] = mapped_column(String(100), index=True)
    city_code: Mapped[str | None] = mapped_column(String(5))
    phone: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    valid_to: Mapped[datetime | None]
    content_hash: Mapped[str] = mapped_column(String(32))
    last_import_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    notes: Mapped[str | None] = mapped_column(Text)
