"""`partage documents`: the repository's upkeep (crash recovery, key-encryption keys)."""

from __future__ import annotations

from typing import Annotated

import typer

from partage.access.decision import Basis
from partage.audit.actions import record
from partage.cli.common import fail, open_platform, operator, out, unit_of_work
from partage.documents.repository import KekInUse

app = typer.Typer(help="Documents: the encrypted repository's upkeep.", no_args_is_help=True)


@app.command("recover")
def recover(
    grace: Annotated[
        int,
        typer.Option(help="Object stores: leave objects younger than this (seconds) alone."),
    ] = 3600,
) -> None:
    """Finish or remove what interrupted deposits left (servers do it for local files at
    start; run it for an object store, where it lists the whole bucket)."""
    with open_platform() as platform:
        report = platform.repository.recover(platform.sessions, grace_seconds=grace)
    out.print(f"Contents finished: {report.finished}; leftovers removed: {report.removed}.")


@app.command("rotate-kek")
def rotate_kek() -> None:
    """Make a new key-encryption key current and rewrap every document's data key under it
    (contents are not re-encrypted). Resumable: run it again after an interruption."""
    with open_platform() as platform:
        report = platform.repository.rotate_kek(platform.sessions)
        with unit_of_work(platform) as session:
            record(
                session,
                actor=operator().actor,
                action="documents.kek_rotate",
                entity_type="KeyEncryptionKey",
                entity_id=report.kek_id,
                basis=Basis.operator,
                detail={"rewrapped": report.rewrapped, "previous": list(report.previous)},
            )
    out.print(
        f"Current key-encryption key: {report.kek_id}; {report.rewrapped:,} data keys rewrapped."
    )
    if report.previous:
        out.print(
            "Previous keys, to retire once backups no longer need them: "
            + ", ".join(report.previous)
        )


@app.command("retire-kek")
def retire_kek(kek_id: Annotated[str, typer.Argument(help="The key to delete.")]) -> None:
    """Delete an old key-encryption key once no data key is wrapped by it."""
    with open_platform() as platform:
        try:
            platform.repository.retire_kek(platform.sessions, kek_id)
        except (KekInUse, ValueError) as error:
            fail(str(error))
        with unit_of_work(platform) as session:
            record(
                session,
                actor=operator().actor,
                action="documents.kek_retire",
                entity_type="KeyEncryptionKey",
                entity_id=kek_id,
                basis=Basis.operator,
            )
    out.print(f"Key-encryption key {kek_id} retired.")
