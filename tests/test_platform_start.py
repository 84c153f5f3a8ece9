"""What the platform says at start about the database it runs on."""

from __future__ import annotations

import logging

import pytest

from partage.platform import Platform


def test_postgresql_without_autovacuum_is_reported(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="partage.platform"):
        platform.prepare()
    warned = any("autovacuum off" in r.getMessage() for r in caplog.records)
    if platform.engine.dialect.name != "postgresql":
        assert not warned
        return
    with platform.engine.connect() as connection:
        setting = connection.exec_driver_sql("SHOW autovacuum").scalar()
    assert warned == (setting != "on")
