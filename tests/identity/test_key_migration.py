"""Migration 0006 computes the new blocking key of the identities already stored."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from alembic import command
from sqlalchemy import select

from partage.db import transaction
from partage.identity.models import LocalIdentity
from partage.migrations.runner import alembic_config, upgrade
from partage.security import actions
from partage.security.models import EstablishmentKind
from partage.security.principal import operator_principal
from partage.security.service import get_territory
from tests.conftest import build_platform, free_port
from tests.identity.factories import receive, traits, unique_family


def test_downgrade_then_upgrade_refills_the_birth_date_and_postal_code_key(
    tmp_path: Path,
) -> None:
    platform, database = build_platform(tmp_path, free_port())
    try:
        with transaction(platform.sessions) as session:
            territory = get_territory(session, code="GHT-TEST")
            assert territory is not None
            establishment = actions.create_establishment(
                session,
                actor=operator_principal(),
                territory=territory,
                name="CH de test",
                code="CH-MIGRATION",
                kind=EstablishmentKind.hospital,
            )
        family = unique_family()
        receive(platform, establishment, "A1", traits(family, birth_date=date(1961, 8, 10)))
        # 1 January stands for "year only": no key; no postal code: no key.
        receive(platform, establishment, "A2", traits(unique_family(), birth_date=date(1961, 1, 1)))
        receive(platform, establishment, "A3", traits(unique_family(), postal_code=""))

        config = alembic_config(platform.engine)
        with platform.engine.connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
            connection.commit()
        upgrade(platform.engine)

        with platform.sessions() as session:
            rows = session.execute(select(LocalIdentity.local_id, LocalIdentity.k_dob_postal))
            keys = dict(rows.all())  # a list of rows: a Result has keys() of its own
        assert keys == {"A1": "19610810|86000", "A2": None, "A3": None}
    finally:
        platform.close()
        database.drop()
