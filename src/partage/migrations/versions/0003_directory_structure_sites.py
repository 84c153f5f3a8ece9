"""directory: the FINESS site an RPPS structure names

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directory_organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_directory_organizations_site_id"), ["site_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_directory_organizations_site_id_directory_organizations"),
            "directory_organizations",
            ["site_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("directory_organizations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_directory_organizations_site_id_directory_organizations"),
            type_="foreignkey",
        )
        batch_op.drop_index(batch_op.f("ix_directory_organizations_site_id"))
        batch_op.drop_column("site_id")
