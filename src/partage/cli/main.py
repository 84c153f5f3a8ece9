"""The `partage` command: assembles the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from partage import __version__
from partage.cli import (
    accounts,
    audit,
    clients,
    connector,
    db,
    directory,
    documents,
    establishments,
    identities,
    keys,
    mllp,
    serve,
)

app = typer.Typer(
    name="partage",
    help="Partage: territorial health-data sharing platform.",
    no_args_is_help=True,
    add_completion=False,
    # Locals of a failing frame can hold passwords, secrets and keys: never print them.
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"partage {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Partage: territorial health-data sharing platform.

    Configuration comes from PARTAGE_* environment variables; by default everything lives
    under ./var (SQLite database, files, keys).
    """


app.command("serve")(serve.serve)
app.command("demo")(serve.demo)
app.command("mllp")(mllp.mllp)
app.add_typer(db.app, name="db")
app.add_typer(establishments.app, name="establishments")
app.add_typer(accounts.app, name="accounts")
app.add_typer(clients.app, name="clients")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(directory.app, name="directory")
app.add_typer(identities.app, name="identities")
app.add_typer(connector.app, name="connector")
app.add_typer(documents.app, name="documents")
