"""What every command shares: the process state, the operator, output and error handling.

Commands act as the operator at the server's command line and go through the domain
actions, so access is checked and the audit row is written exactly as for a request.
Errors end the command with a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from partage.access.decision import NotFound
from partage.config import ConfigurationError, Settings, get_settings
from partage.db import transaction
from partage.migrations.runner import current_revision, head_revision, upgrade
from partage.platform import Platform
from partage.security.actions import InvalidInput
from partage.security.principal import Principal, operator_principal

# Rich resolves sys.stdout / sys.stderr at each write, so these follow any redirection.
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_FAILURE = 1
EXIT_USAGE = 2

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def new_table(*headers: str, title: str | None = None) -> Table:
    """A table that folds long values (OIDs, secrets) rather than cutting them short."""
    return Table(*(Column(header, overflow="fold") for header in headers), title=title)


def print_table(table: Table) -> None:
    # Not a terminal (a pipe, a log file): wide enough that ids and secrets stay on one line.
    console = out if out.is_terminal else Console(highlight=False, width=max(out.width, 200))
    console.print(table)


def fail(message: str, *, code: int = EXIT_FAILURE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    # Plain stdout, no styling: it is meant for other programs.
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def operator() -> Principal:
    return operator_principal("command line")


def _first_line(exc: BaseException) -> str:
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn the errors an operator can cause or fix into one line on stderr."""
    try:
        yield
    except ConfigurationError as exc:
        fail(str(exc))
    except InvalidInput as exc:
        fail(str(exc))
    except NotFound:
        fail("not found")
    except IntegrityError as exc:
        fail(f"conflicting change, nothing was written ({_first_line(exc)})")
    except SQLAlchemyError as exc:
        fail(f"database error: {_first_line(exc)}")


def load_settings(**overrides: Any) -> Settings:
    with cli_errors():
        settings = get_settings()
        if overrides:
            settings = settings.model_copy(update=overrides)
        settings.check_production()
        return settings


@contextmanager
def open_platform(settings: Settings | None = None, *, migrate: bool = False) -> Iterator[Platform]:
    """The process state for one command.

    A brand-new database gets its schema at once, so that a first command just works; an
    existing one is upgraded only on request (`migrate`), never behind the operator's back.
    """
    with cli_errors():
        platform = Platform.create(settings or load_settings())
        try:
            current = current_revision(platform.engine)
            if migrate or current is None:
                upgrade(platform.engine)
            elif current != head_revision(platform.engine):
                fail(
                    f"the database schema is at revision {current}, this version needs "
                    f"{head_revision(platform.engine)}: run `partage db upgrade`"
                )
            yield platform
        finally:
            platform.close()


@contextmanager
def unit_of_work(platform: Platform) -> Iterator[Session]:
    """One transaction: committed when the command's block succeeds, rolled back otherwise."""
    with cli_errors(), transaction(platform.sessions) as session:
        yield session


@contextmanager
def reading(platform: Platform) -> Iterator[Session]:
    """A read-only session that never waits for, nor holds, the write lock (long reads)."""
    with cli_errors(), platform.read_sessions() as session:
        yield session


class _CountingReader:
    """A binary stream that reports how far it has read (for the progress bar)."""

    def __init__(self, raw: IO[bytes], on_read: Any) -> None:
        self._raw = raw
        self._on_read = on_read

    def readline(self, size: int = -1) -> bytes:
        line = self._raw.readline(size)
        self._on_read(len(line))
        return line

    def __iter__(self) -> _CountingReader:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


@contextmanager
def reading_with_progress(
    file: Path, raw: IO[bytes], *, disable: bool = False
) -> Iterator[IO[bytes]]:
    """`raw`, read with a progress bar on stderr (bytes of `file` read, time left)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=disable) as bar:
        task = bar.add_task(f"Importing {file.name}", total=file.stat().st_size)
        # The importers only read lines: the counting reader stands in for the stream.
        yield cast(IO[bytes], _CountingReader(raw, lambda n: bar.advance(task, n)))
