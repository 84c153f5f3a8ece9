"""directory of structures and professionals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("rejections", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_imports")),
    )
    op.create_table(
        "directory_organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("finess_et", sa.String(length=9), nullable=True),
        sa.Column("finess_ej", sa.String(length=9), nullable=True),
        sa.Column("siret", sa.String(length=14), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("name_folded", sa.String(length=300), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=True),
        sa.Column("category_label", sa.String(length=200), nullable=True),
        sa.Column("address_line", sa.String(length=300), nullable=True),
        sa.Column("postal_code", sa.String(length=10), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("city_folded", sa.String(length=100), nullable=True),
        sa.Column("city_code", sa.String(length=5), nullable=True),
        sa.Column("phone", sa.String(length=30), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("last_import_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["directory_organizations.id"],
            name=op.f("fk_directory_organizations_parent_id_directory_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_organizations")),
        sa.UniqueConstraint("source_key", name=op.f("uq_directory_organizations_source_key")),
    )
    with op.batch_alter_table("directory_organizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_city_folded"), ["city_folded"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_finess_ej"), ["finess_ej"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_finess_et"), ["finess_et"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_name_folded"), ["name_folded"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_postal_code"), ["postal_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_siret"), ["siret"], unique=False
        )

    op.create_table(
        "directory_practitioners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("national_id", sa.String(length=12), nullable=False),
        sa.Column("id_type", sa.String(length=1), nullable=False),
        sa.Column("local_id", sa.String(length=11), nullable=False),
        sa.Column("civility_code", sa.String(length=8), nullable=True),
        sa.Column("practice_civility_code", sa.String(length=8), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=True),
        sa.Column("family_name_folded", sa.String(length=200), nullable=False),
        sa.Column("given_name_folded", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("last_import_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_practitioners")),
        sa.UniqueConstraint("national_id", name=op.f("uq_directory_practitioners_national_id")),
    )
    with op.batch_alter_table("directory_practitioners", schema=None) as batch_op:
        batch_op.create_index(
            "ix_directory_practitioners_names",
            ["family_name_folded", "given_name_folded"],
            unique=False,
        )

    op.create_table(
        "directory_practitioner_roles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("role_key", sa.String(length=32), nullable=False),
        sa.Column("practitioner_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("profession_code", sa.String(length=8), nullable=False),
        sa.Column("profession_label", sa.String(length=200), nullable=True),
        sa.Column("category_code", sa.String(length=8), nullable=True),
        sa.Column("specialty_type", sa.String(length=8), nullable=True),
        sa.Column("specialty_code", sa.String(length=16), nullable=True),
        sa.Column("specialty_label", sa.String(length=200), nullable=True),
        sa.Column("practice_mode_code", sa.String(length=8), nullable=True),
        sa.Column("practice_mode_label", sa.String(length=100), nullable=True),
        sa.Column("sector_code", sa.String(length=16), nullable=True),
        sa.Column("sector_label", sa.String(length=200), nullable=True),
        sa.Column("address_line", sa.String(length=300), nullable=True),
        sa.Column("postal_code", sa.String(length=10), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("city_folded", sa.String(length=100), nullable=True),
        sa.Column("city_code", sa.String(length=5), nullable=True),
        sa.Column("phone", sa.String(length=30), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("last_import_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["directory_organizations.id"],
            name=op.f("fk_directory_practitioner_roles_organization_id_directory_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["directory_practitioners.id"],
            name=op.f("fk_directory_practitioner_roles_practitioner_id_directory_practitioners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_practitioner_roles")),
        sa.UniqueConstraint("role_key", name=op.f("uq_directory_practitioner_roles_role_key")),
    )
    with op.batch_alter_table("directory_practitioner_roles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_directory_practitioner_roles_city_folded"), ["city_folded"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_directory_practitioner_roles_last_import_id"),
            ["last_import_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_directory_practitioner_roles_organization_id"),
            ["organization_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_directory_practitioner_roles_practitioner_id"),
            ["practitioner_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_directory_practitioner_roles_profession_code"),
            ["profession_code"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_directory_practitioner_roles_specialty_code"),
            ["specialty_code"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("directory_practitioner_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_practitioner_roles_specialty_code"))
        batch_op.drop_index(batch_op.f("ix_directory_practitioner_roles_profession_code"))
        batch_op.drop_index(batch_op.f("ix_directory_practitioner_roles_practitioner_id"))
        batch_op.drop_index(batch_op.f("ix_directory_practitioner_roles_organization_id"))
        batch_op.drop_index(batch_op.f("ix_directory_practitioner_roles_last_import_id"))
        batch_op.drop_index(batch_op.f("ix_directory_practitioner_roles_city_folded"))

    op.drop_table("directory_practitioner_roles")
    with op.batch_alter_table("directory_practitioners", schema=None) as batch_op:
        batch_op.drop_index("ix_directory_practitioners_names")

    op.drop_table("directory_practitioners")
    with op.batch_alter_table("directory_organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_directory_organizations_siret"))
        batch_op.drop_index(batch_op.f("ix_directory_organizations_postal_code"))
        batch_op.drop_index(batch_op.f("ix_directory_organizations_name_folded"))
        batch_op.drop_index(batch_op.f("ix_directory_organizations_finess_et"))
        batch_op.drop_index(batch_op.f("ix_directory_organizations_finess_ej"))
        batch_op.drop_index(batch_op.f("ix_directory_organizations_city_folded"))

    op.drop_table("directory_organizations")
    op.drop_table("directory_imports")
