"""`partage identities`: bulk federation of establishments' patient files, and the links."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select, tuple_

from partage.cli.common import (
    err,
    fail,
    new_table,
    open_platform,
    operator,
    out,
    print_json,
    print_table,
    reading,
    reading_with_progress,
    unit_of_work,
)
from partage.identity.importer import IdentityImport, UnreadableFile, import_identities
from partage.identity.models import LocalIdentity
from partage.identity.synthetic import generate_population, write_import_csvs
from partage.security import service as security_service
from partage.security.models import Establishment

app = typer.Typer(
    help="Patient identities: the territory's master patient index.", no_args_is_help=True
)

SHOWN_REJECTIONS = 20
LINKS_PAGE = 50_000
ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@app.command("import")
def import_command(
    file: ExistingFile,
    source: Annotated[
        str,
        typer.Option(
            "--source", help="The establishment (code or patient-id OID) whose file it is."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Federate an establishment's patient file (CSV, UTF-8).

    Columns: local_id, birth_family_name, used_family_name, given_names (space-separated),
    sex (M/F/U), birth_date (YYYY-MM-DD), birth_place_code, address, postal_code, city, phone,
    ins — and optionally status (PROV/RECUP/VALI/QUAL). New identities are matched against the
    territory and each other; known local ids are updated. All of the file, or nothing.
    """
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with open_platform() as platform:
        establishment = _establishment(platform, source)
        with (
            file.open("rb") as raw,
            reading_with_progress(file, raw, disable=as_json) as reader,
            Progress(*columns, console=err, transient=True, disable=as_json) as bar,
        ):
            task = bar.add_task("matching", total=None)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            try:
                with unit_of_work(platform) as session:
                    report = import_identities(
                        session,
                        establishment=session.merge(establishment),
                        stream=reader,
                        actor=operator().actor,
                        progress=progress,
                        workers=platform.settings.identity_import_workers,
                    )
            except UnreadableFile as error:
                fail(f"{file.name}: {error}")
    _print_report(file, report, as_json)


def _establishment(platform: Any, source: str) -> Establishment:
    with reading(platform) as session:
        establishment = security_service.get_establishment(session, code=source)
        if establishment is None:
            establishment = session.scalars(
                select(Establishment).where(Establishment.patient_id_oid == source)
            ).one_or_none()
    if establishment is None:
        fail(f"no establishment {source!r} (see `partage establishments list`)")
    return establishment


def _print_report(file: Path, report: IdentityImport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "rows": report.rows,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "linked": report.linked,
                "reviews": report.reviews,
                "rejected": [{"line": line, "reason": reason} for line, reason in report.rejected],
                "warnings": [{"line": line, "reason": reason} for line, reason in report.warnings],
            }
        )
        return
    table = new_table(
        "rows", "created", "updated", "unchanged", "linked", "to review", "rejected",
        title=f"Identities of {file.name}",
    )  # fmt: skip
    counts = (
        report.rows, report.created, report.updated, report.unchanged, report.linked,
        report.reviews, len(report.rejected),
    )  # fmt: skip
    table.add_row(*(str(v) for v in counts))
    print_table(table)
    for kind, items in (("rejected", report.rejected), ("warning", report.warnings)):
        for line, reason in items[:SHOWN_REJECTIONS]:
            out.print(f"  {kind} line {line}: {reason}", soft_wrap=True)
        if len(items) > SHOWN_REJECTIONS:
            out.print(f"  … and {len(items) - SHOWN_REJECTIONS} more")


@app.command("links")
def links_command() -> None:
    """Print `source,local_id,person_id` for every local identity (CSV on stdout)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("source", "local_id", "person_id"))
    with open_platform() as platform:
        after: tuple[str, str] = ("", "")
        while True:
            # Pages by key: a read session holds no transaction (PostgreSQL: no cursor).
            with reading(platform) as session:
                rows = session.execute(
                    select(Establishment.code, LocalIdentity.local_id, LocalIdentity.person_id)
                    .join(Establishment, Establishment.id == LocalIdentity.establishment_id)
                    .where(tuple_(Establishment.code, LocalIdentity.local_id) > after)
                    .order_by(Establishment.code, LocalIdentity.local_id)
                    .limit(LINKS_PAGE)
                ).all()
            for code, local_id, person_id in rows:
                writer.writerow((code, local_id, person_id))
            if len(rows) < LINKS_PAGE:
                return
            after = (rows[-1][0], rows[-1][1])


@app.command("generate")
def generate_command(
    directory: Annotated[
        Path, typer.Argument(file_okay=False, help="Where to write one CSV per source.")
    ],
    persons: Annotated[int, typer.Option(min=1, help="How many persons.")] = 1000,
    sources: Annotated[str, typer.Option(help="Comma-separated establishment codes.")] = "CHU,CHNV",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 86,
) -> None:
    """Write synthetic French patient files (with duplicates, twins, homonyms) to import."""
    directory.mkdir(parents=True, exist_ok=True)
    population = generate_population(
        persons=persons, sources=[s.strip() for s in sources.split(",") if s.strip()], seed=seed
    )
    files = write_import_csvs(directory, [r.record for r in population])
    table = new_table("source", "file")
    for source, path in files.items():
        table.add_row(source, str(path))
    print_table(table)
