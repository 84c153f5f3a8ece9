"""Blocking key of local identities on the birth date and postal code (both names mistyped).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BATCH = 5_000


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (no batch copy of the table on SQLite: other
    # tables reference this one).
    op.add_column("identity_local", sa.Column("k_dob_postal", sa.String(length=24), nullable=True))
    _fill_keys()
    op.create_index("ix_identity_local_k_dob_postal", "identity_local", ["k_dob_postal"])


def _fill_keys() -> None:
    """The key of the identities already stored, as `identity.blocking` computes it (kept
    here as it is today: a migration must not change when the package does)."""
    bind = op.get_bind()
    table = sa.table(
        "identity_local",
        sa.column("id", sa.Uuid),
        sa.column("birth_date", sa.Date),
        sa.column("postal_code", sa.String),
        sa.column("k_dob_postal", sa.String),
    )
    update = (
        table.update()
        .where(table.c.id == sa.bindparam("identity"))
        .values(k_dob_postal=sa.bindparam("key"))
    )
    last = None
    while True:
        query = sa.select(table.c.id, table.c.birth_date, table.c.postal_code).where(
            table.c.birth_date.is_not(None), table.c.postal_code != ""
        )
        if last is not None:
            query = query.where(table.c.id > last)
        rows = bind.execute(query.order_by(table.c.id).limit(_BATCH)).all()
        if not rows:
            return
        keys = [
            {"identity": row.id, "key": f"{row.birth_date:%Y%m%d}|{row.postal_code.strip()}"}
            for row in rows
            if (row.birth_date.month, row.birth_date.day) != (1, 1) and row.postal_code.strip()
        ]
        if keys:
            bind.execute(update, keys)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index("ix_identity_local_k_dob_postal", table_name="identity_local")
    op.drop_column("identity_local", "k_dob_postal")  # SQLite 3.35+
