"""`partage db`: the database schema."""

from __future__ import annotations

import typer

from partage.cli.common import (
    cli_errors,
    fail,
    load_settings,
    open_platform,
    operator,
    out,
    unit_of_work,
)
from partage.migrations.runner import current_revision, head_revision, upgrade
from partage.platform import Platform
from partage.security.housekeeping import purge_expired

app = typer.Typer(help="The database: migrations and housekeeping.", no_args_is_help=True)


def _platform() -> Platform:
    with cli_errors():
        return Platform.create(load_settings())


@app.command("upgrade")
def upgrade_() -> None:
    """Migrate the database to this version's schema (creating it if it is new)."""
    platform = _platform()
    try:
        with cli_errors():
            before = current_revision(platform.engine)
            upgrade(platform.engine)
            after = current_revision(platform.engine)
    finally:
        platform.close()
    if before == after:
        out.print(f"The schema is up to date (revision {after}).")
    else:
        out.print(f"Schema migrated from {before or 'an empty database'} to revision {after}.")


@app.command("current")
def current() -> None:
    """Show the schema revision of the database and the one this version needs."""
    platform = _platform()
    try:
        with cli_errors():
            revision = current_revision(platform.engine)
            head = head_revision(platform.engine)
    finally:
        platform.close()
    out.print(f"database: {revision or 'empty'}")
    out.print(f"code:     {head}")
    if revision != head:
        fail("the schema is not up to date: run `partage db upgrade`")


@app.command("purge-expired")
def purge_expired_() -> None:
    """Delete expired codes, tokens, sessions and retired keys (run it daily)."""
    with open_platform() as platform, unit_of_work(platform) as session:
        counts = purge_expired(session, actor=operator())
    total = sum(counts.values())
    details = ", ".join(f"{kind} {count}" for kind, count in counts.items() if count)
    out.print(f"Deleted {total} expired rows" + (f": {details}." if details else "."))
