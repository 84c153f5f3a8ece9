"""The master patient index: local identities, persons, links, reviews, history, model.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import partage.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_match_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("identities", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_match_models")),
    )
    op.create_table(
        "identity_name_frequencies",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", name=op.f("pk_identity_name_frequencies")),
    )
    op.create_table(
        "identity_persons",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["identity_persons.id"],
            name=op.f("fk_identity_persons_merged_into_id_identity_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_persons")),
    )
    with op.batch_alter_table("identity_persons", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_persons_merged_into_id"), ["merged_into_id"], unique=False
        )

    op.create_table(
        "identity_local",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("establishment_id", sa.Uuid(), nullable=False),
        sa.Column("local_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("origin_person_id", sa.Uuid(), nullable=False),
        sa.Column("birth_family_name", sa.String(length=100), nullable=False),
        sa.Column("given_names", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("birth_place_code", sa.String(length=5), nullable=False),
        sa.Column("used_family_name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("postal_code", sa.String(length=10), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("ins_oid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=5), nullable=False),
        sa.Column("doubtful", sa.Boolean(), nullable=False),
        sa.Column("fictitious", sa.Boolean(), nullable=False),
        sa.Column("homonym", sa.Boolean(), nullable=False),
        sa.Column("usurped", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("replaced_by_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("family_folded", sa.String(length=100), nullable=False),
        sa.Column("used_folded", sa.String(length=100), nullable=False),
        sa.Column("given_folded", sa.String(length=200), nullable=False),
        sa.Column("k_ins", sa.String(length=13), nullable=True),
        sa.Column("k_name_dob", sa.String(length=48), nullable=True),
        sa.Column("k_used_dob", sa.String(length=48), nullable=True),
        sa.Column("k_given_dob", sa.String(length=48), nullable=True),
        sa.Column("k_name_given", sa.String(length=64), nullable=True),
        sa.Column("k_name_given_md", sa.String(length=64), nullable=True),
        sa.Column("k_phone", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["establishment_id"],
            ["establishments.id"],
            name=op.f("fk_identity_local_establishment_id_establishments"),
        ),
        sa.ForeignKeyConstraint(
            ["origin_person_id"],
            ["identity_persons.id"],
            name=op.f("fk_identity_local_origin_person_id_identity_persons"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_persons.id"],
            name=op.f("fk_identity_local_person_id_identity_persons"),
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["identity_local.id"],
            name=op.f("fk_identity_local_replaced_by_id_identity_local"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_local")),
    )
    with op.batch_alter_table("identity_local", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_local_family_folded"), ["family_folded"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_local_k_given_dob"), ["k_given_dob"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_identity_local_k_ins"), ["k_ins"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_identity_local_k_name_dob"), ["k_name_dob"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_local_k_name_given"), ["k_name_given"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_local_k_name_given_md"), ["k_name_given_md"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_identity_local_k_phone"), ["k_phone"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_identity_local_k_used_dob"), ["k_used_dob"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_local_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_local_used_folded"), ["used_folded"], unique=False
        )
        batch_op.create_index(
            "uq_identity_local_domain_local_id", ["establishment_id", "local_id"], unique=True
        )

    op.create_table(
        "identity_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("local_identity_id", sa.Uuid(), nullable=True),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["local_identity_id"],
            ["identity_local.id"],
            name=op.f("fk_identity_events_local_identity_id_identity_local"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_persons.id"],
            name=op.f("fk_identity_events_person_id_identity_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_events")),
    )
    with op.batch_alter_table("identity_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_events_local_identity_id"), ["local_identity_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_events_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_events_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "identity_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("local_identity_id", sa.Uuid(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("explanation", sa.JSON(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", partage.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["local_identity_id"],
            ["identity_local.id"],
            name=op.f("fk_identity_links_local_identity_id_identity_local"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_persons.id"],
            name=op.f("fk_identity_links_person_id_identity_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_links")),
    )
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_links_local_identity_id"), ["local_identity_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_links_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "identity_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("second_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("explanation", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", partage.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", partage.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["first_id"],
            ["identity_local.id"],
            name=op.f("fk_identity_reviews_first_id_identity_local"),
        ),
        sa.ForeignKeyConstraint(
            ["second_id"],
            ["identity_local.id"],
            name=op.f("fk_identity_reviews_second_id_identity_local"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_reviews")),
    )
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_reviews_first_id"), ["first_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_reviews_second_id"), ["second_id"], unique=False
        )
        batch_op.create_index(
            "ix_identity_reviews_status_created", ["status", "created_at"], unique=False
        )
        batch_op.create_index("uq_identity_reviews_pair", ["first_id", "second_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("identity_reviews", schema=None) as batch_op:
        batch_op.drop_index("uq_identity_reviews_pair")
        batch_op.drop_index("ix_identity_reviews_status_created")
        batch_op.drop_index(batch_op.f("ix_identity_reviews_second_id"))
        batch_op.drop_index(batch_op.f("ix_identity_reviews_first_id"))

    op.drop_table("identity_reviews")
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_links_person_id"))
        batch_op.drop_index(batch_op.f("ix_identity_links_local_identity_id"))

    op.drop_table("identity_links")
    with op.batch_alter_table("identity_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_events_person_id"))
        batch_op.drop_index(batch_op.f("ix_identity_events_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_identity_events_local_identity_id"))

    op.drop_table("identity_events")
    with op.batch_alter_table("identity_local", schema=None) as batch_op:
        batch_op.drop_index("uq_identity_local_domain_local_id")
        batch_op.drop_index(batch_op.f("ix_identity_local_used_folded"))
        batch_op.drop_index(batch_op.f("ix_identity_local_person_id"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_used_dob"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_phone"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_name_given_md"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_name_given"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_name_dob"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_ins"))
        batch_op.drop_index(batch_op.f("ix_identity_local_k_given_dob"))
        batch_op.drop_index(batch_op.f("ix_identity_local_family_folded"))

    op.drop_table("identity_local")
    with op.batch_alter_table("identity_persons", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_persons_merged_into_id"))

    op.drop_table("identity_persons")
    op.drop_table("identity_name_frequencies")
    op.drop_table("identity_match_models")
