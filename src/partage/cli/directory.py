"""`partage directory`: the structures and professionals, from the national extracts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from partage.cli.common import (
    cli_errors,
    fail,
    new_table,
    open_platform,
    operator,
    out,
    print_json,
    print_table,
    reading_with_progress,
)
from partage.directory import finess
from partage.directory.importer import ImportSummary, import_finess, import_rpps
from partage.directory.rpps import RejectedRow, write_synthetic_extract

app = typer.Typer(help="Directory of structures and professionals.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
SHOWN_REJECTIONS = 20


def _summary_dict(summary: ImportSummary) -> dict[str, Any]:
    return {
        "import_id": str(summary.import_id),
        "rows": summary.rows,
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "closed": summary.closed,
        "rejected": summary.rejected,
        "rejections": summary.rejections,
    }


Importer = Callable[..., ImportSummary]


def _import_file(file: Path, importer: Importer, title: str, as_json: bool) -> None:
    with (
        open_platform() as platform,
        file.open("rb") as raw,
        reading_with_progress(file, raw, disable=as_json) as reader,
    ):
        try:
            with cli_errors():
                summary = importer(
                    platform.sessions,
                    reader,
                    actor=operator(),
                    file_name=file.name,
                )
        except RejectedRow as exc:
            fail(str(exc))
    if as_json:
        print_json(_summary_dict(summary))
        return
    table = new_table(
        "rows",
        "created",
        "updated",
        "unchanged",
        "closed",
        "rejected",
        title=f"{title} of {file.name}",
    )
    counts = (
        summary.rows,
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.closed,
        summary.rejected,
    )
    table.add_row(*(str(v) for v in counts))
    print_table(table)
    for rejection in summary.rejections[:SHOWN_REJECTIONS]:
        out.print(f"  rejected line {rejection['line']}: {rejection['reason']}", soft_wrap=True)
    if summary.rejected > SHOWN_REJECTIONS:
        out.print(f"  … and {summary.rejected - SHOWN_REJECTIONS} more (see the import report)")


ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@app.command("import-rpps")
def import_rpps_command(file: ExistingFile, as_json: JsonOption = False) -> None:
    """Import an RPPS 'Personne activité' extract (pipe-separated, 52 columns).

    Idempotent: importing the same file again changes nothing. Incremental: a later extract
    updates what changed and closes the activities it no longer lists (never deletes them).
    Malformed rows are reported with their line number, not fatal.
    """
    _import_file(file, import_rpps, "RPPS import", as_json)


@app.command("import-finess")
def import_finess_command(file: ExistingFile, as_json: JsonOption = False) -> None:
    """Import the Etalab FINESS extract of establishments (Latin-1, semicolon-separated).

    Idempotent and incremental like import-rpps: sites no longer listed are closed.
    """
    _import_file(file, import_finess, "FINESS import", as_json)


@app.command("generate-rpps")
def generate_rpps(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the extract.")],
    professionals: Annotated[int, typer.Option(min=1, help="How many professionals.")] = 31380,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 86,
) -> None:
    """Write a synthetic RPPS extract of the Vienne territory, in the official format."""
    with file.open("w", encoding="utf-8", newline="\n") as stream:
        rows = write_synthetic_extract(stream, professionals, seed=seed)
    out.print(f"Wrote {rows} rows for {professionals} professionals to {file}.")


@app.command("generate-finess")
def generate_finess(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the extract.")],
    establishments: Annotated[int, typer.Option(min=1, help="How many sites.")] = 1200,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 86,
) -> None:
    """Write a synthetic FINESS establishment extract of the Vienne, in the Etalab layout."""
    with file.open("wb") as stream:
        rows = finess.write_synthetic_extract(stream, establishments, seed=seed)
    out.print(f"Wrote {rows} establishments to {file}.")
