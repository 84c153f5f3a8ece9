"""Index of sites by their legal entity (an organization's page lists its sites; `partof`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("directory_organizations") as batch_op:
        batch_op.create_index("ix_directory_organizations_parent_id", ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("directory_organizations") as batch_op:
        batch_op.drop_index("ix_directory_organizations_parent_id")
