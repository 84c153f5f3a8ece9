"""Documents: the registry (entries, submission sets, folders, relations), the repository's
index of encrypted contents, and a patient account's own person.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:14:38.490584
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import partage.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents_contents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sha1", sa.String(length=40), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("scheme", sa.String(length=32), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_documents_contents")),
    )
    with op.batch_alter_table("documents_contents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_documents_contents_kek_id"), ["kek_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_documents_contents_storage_key"), ["storage_key"], unique=False
        )

    op.create_table(
        "documents_folders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("local_identity_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["local_identity_id"],
            ["identity_local.id"],
            name=op.f("fk_documents_folders_local_identity_id_identity_local"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents_folders")),
        sa.UniqueConstraint("unique_id", name=op.f("uq_documents_folders_unique_id")),
    )
    with op.batch_alter_table("documents_folders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_folders_local_identity_id"),
            ["local_identity_id"],
            unique=False,
        )

    op.create_table(
        "documents_submission_sets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("local_identity_id", sa.Uuid(), nullable=False),
        sa.Column("establishment_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("author_label", sa.String(length=300), nullable=True),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["establishment_id"],
            ["establishments.id"],
            name=op.f("fk_documents_submission_sets_establishment_id_establishments"),
        ),
        sa.ForeignKeyConstraint(
            ["local_identity_id"],
            ["identity_local.id"],
            name=op.f("fk_documents_submission_sets_local_identity_id_identity_local"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents_submission_sets")),
        sa.UniqueConstraint("unique_id", name=op.f("uq_documents_submission_sets_unique_id")),
    )
    with op.batch_alter_table("documents_submission_sets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_submission_sets_local_identity_id"),
            ["local_identity_id"],
            unique=False,
        )

    op.create_table(
        "documents_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("lineage_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("local_identity_id", sa.Uuid(), nullable=False),
        sa.Column("establishment_id", sa.Uuid(), nullable=True),
        sa.Column("submission_set_id", sa.Uuid(), nullable=False),
        sa.Column("type_system", sa.String(length=64), nullable=False),
        sa.Column("type_code", sa.String(length=64), nullable=False),
        sa.Column("type_display", sa.String(length=300), nullable=True),
        sa.Column("class_system", sa.String(length=64), nullable=True),
        sa.Column("class_code", sa.String(length=64), nullable=True),
        sa.Column("class_display", sa.String(length=300), nullable=True),
        sa.Column("format_code", sa.String(length=128), nullable=True),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("creation_time", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("service_start", partage.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("service_end", partage.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("author_practitioner_id", sa.Uuid(), nullable=True),
        sa.Column("author_organization_id", sa.Uuid(), nullable=True),
        sa.Column("author_label", sa.String(length=300), nullable=True),
        sa.Column("author_account_id", sa.Uuid(), nullable=True),
        sa.Column("facility_type_code", sa.String(length=64), nullable=True),
        sa.Column("facility_type_display", sa.String(length=300), nullable=True),
        sa.Column("practice_setting_code", sa.String(length=64), nullable=True),
        sa.Column("practice_setting_display", sa.String(length=300), nullable=True),
        sa.Column("confidentiality", sa.String(length=1), nullable=False),
        sa.Column("invisible_patient", sa.Boolean(), nullable=False),
        sa.Column("masked_ps", sa.Boolean(), nullable=False),
        sa.Column("invisible_legal_reps", sa.Boolean(), nullable=False),
        sa.Column("deposited_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_organization_id"],
            ["directory_organizations.id"],
            name=op.f("fk_documents_entries_author_organization_id_directory_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["author_practitioner_id"],
            ["directory_practitioners.id"],
            name=op.f("fk_documents_entries_author_practitioner_id_directory_practitioners"),
        ),
        sa.ForeignKeyConstraint(
            ["establishment_id"],
            ["establishments.id"],
            name=op.f("fk_documents_entries_establishment_id_establishments"),
        ),
        sa.ForeignKeyConstraint(
            ["local_identity_id"],
            ["identity_local.id"],
            name=op.f("fk_documents_entries_local_identity_id_identity_local"),
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["documents_contents.sha256"],
            name=op.f("fk_documents_entries_sha256_documents_contents"),
        ),
        sa.ForeignKeyConstraint(
            ["submission_set_id"],
            ["documents_submission_sets.id"],
            name=op.f("fk_documents_entries_submission_set_id_documents_submission_sets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents_entries")),
        sa.UniqueConstraint("unique_id", name=op.f("uq_documents_entries_unique_id")),
    )
    with op.batch_alter_table("documents_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_entries_author_account_id"),
            ["author_account_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_documents_entries_author_practitioner_id"),
            ["author_practitioner_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_documents_entries_establishment_id"), ["establishment_id"], unique=False
        )
        batch_op.create_index(
            "ix_documents_entries_identity_date",
            ["local_identity_id", "creation_time", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_documents_entries_lineage", ["lineage_id", "version"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_documents_entries_submission_set_id"),
            ["submission_set_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_documents_entries_type_code"), ["type_code"], unique=False
        )

    op.create_table(
        "documents_folder_members",
        sa.Column("folder_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("submission_set_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents_entries.id"],
            name=op.f("fk_documents_folder_members_document_id_documents_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["documents_folders.id"],
            name=op.f("fk_documents_folder_members_folder_id_documents_folders"),
        ),
        sa.ForeignKeyConstraint(
            ["submission_set_id"],
            ["documents_submission_sets.id"],
            name=op.f("fk_documents_folder_members_submission_set_id_documents_submission_sets"),
        ),
        sa.PrimaryKeyConstraint(
            "folder_id", "document_id", name=op.f("pk_documents_folder_members")
        ),
    )
    with op.batch_alter_table("documents_folder_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_folder_members_document_id"), ["document_id"], unique=False
        )

    op.create_table(
        "documents_relations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["documents_entries.id"],
            name=op.f("fk_documents_relations_source_id_documents_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["documents_entries.id"],
            name=op.f("fk_documents_relations_target_id_documents_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents_relations")),
    )
    with op.batch_alter_table("documents_relations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_relations_source_id"), ["source_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_documents_relations_target_id"), ["target_id"], unique=False
        )

    # Plain ALTER TABLE (no batch copy on SQLite: other tables reference accounts).
    op.add_column("accounts", sa.Column("person_id", sa.Uuid(), nullable=True))
    op.create_index("ix_accounts_person_id", "accounts", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_accounts_person_id", table_name="accounts")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("person_id")

    with op.batch_alter_table("documents_relations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_relations_target_id"))
        batch_op.drop_index(batch_op.f("ix_documents_relations_source_id"))

    op.drop_table("documents_relations")
    with op.batch_alter_table("documents_folder_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_folder_members_document_id"))

    op.drop_table("documents_folder_members")
    with op.batch_alter_table("documents_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_entries_type_code"))
        batch_op.drop_index(batch_op.f("ix_documents_entries_submission_set_id"))
        batch_op.drop_index("ix_documents_entries_lineage")
        batch_op.drop_index("ix_documents_entries_identity_date")
        batch_op.drop_index(batch_op.f("ix_documents_entries_establishment_id"))
        batch_op.drop_index(batch_op.f("ix_documents_entries_author_practitioner_id"))
        batch_op.drop_index(batch_op.f("ix_documents_entries_author_account_id"))

    op.drop_table("documents_entries")
    with op.batch_alter_table("documents_submission_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_submission_sets_local_identity_id"))

    op.drop_table("documents_submission_sets")
    with op.batch_alter_table("documents_folders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_folders_local_identity_id"))

    op.drop_table("documents_folders")
    with op.batch_alter_table("documents_contents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_contents_storage_key"))
        batch_op.drop_index(batch_op.f("ix_documents_contents_kek_id"))

    op.drop_table("documents_contents")
