"""`partage connector`: a drop folder whose documents are filed into Partage (see
`partage.documents.connector` for the folder's protocol)."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from partage.cli.common import err, fail, open_platform, out, print_json
from partage.documents.connector import (
    Connector,
    ConnectorError,
    ConnectorUnavailable,
    Outcome,
)
from partage.platform import Platform

app = typer.Typer(
    help="Drop-folder connector: documents written into a folder are filed into Partage.",
    no_args_is_help=True,
)

# After an outage (database, store, folder unreachable), wait longer each time, up to this.
MAX_BACKOFF_SECONDS = 60.0

Folder = Annotated[
    Path,
    typer.Argument(
        exists=True, file_okay=False, dir_okay=True, writable=True, help="The drop folder."
    ),
]
EstablishmentOption = Annotated[
    str,
    typer.Option(
        "--establishment",
        help="Code of the establishment the connector files for (its patients, its domain).",
    ),
]
SettleOption = Annotated[
    float,
    typer.Option(
        "--settle",
        min=0,
        help="Seconds a file must stay unchanged before it is taken (0: at once, when every "
        "sender writes NAME.tmp and renames it into place).",
    ),
]


@app.command("watch")
def watch(
    directory: Folder,
    establishment: EstablishmentOption,
    settle: SettleOption = 2.0,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between two looks at DIR.")
    ] = 1.0,
) -> None:
    """Watch DIR and file each complete document, until Ctrl-C (or SIGTERM).

    Each document (NAME.pdf, NAME.xml for CDA R2, NAME.txt) comes with its metadata in
    NAME.json; a CDA whose header names the patient and the author needs none. Files end in
    DIR/done/ with NAME.receipt.json, or DIR/failed/ with NAME.error.txt. Files ending in
    .tmp or .part are left alone. One connector works on a folder at a time; a second one
    waits and takes over when the first stops.
    """
    counts: Counter[str] = Counter()
    with open_platform() as platform:
        connector = _connector(platform, directory, establishment, settle)
        backoff = interval
        with _stop_requested() as stop, err.status(f"watching {directory}") as status:
            try:
                while not stop.is_set():
                    if not connector.acquire():
                        status.update(f"waiting: another connector is working on {directory}")
                        stop.wait(interval)
                        continue
                    try:
                        for outcome in connector.poll():
                            _print_outcome(outcome)
                            counts[outcome.status] += 1
                            status.update(_status(directory, counts, connector))
                            if stop.is_set():
                                break
                    except (ConnectorUnavailable, OSError) as error:
                        backoff = min(max(backoff * 2, interval), MAX_BACKOFF_SECONDS)
                        err.print(
                            f"[yellow]unavailable:[/] {escape(str(error))}; "
                            f"trying again in {backoff:.0f} s",
                            soft_wrap=True,
                        )
                        stop.wait(backoff)
                        continue
                    backoff = interval
                    status.update(_status(directory, counts, connector))
                    stop.wait(interval)
            finally:
                connector.release()
    _print_summary(counts, 0)


@app.command("push")
def push(
    directory: Folder,
    establishment: EstablishmentOption,
    settle: SettleOption = 2.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once/",
            help="One pass over what DIR holds, then exit: what push always does (`watch` "
            "keeps going); accepted so that scripts may say it.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
) -> None:
    """File what DIR holds now, then exit: code 0 when every file is done, 1 when some failed.

    Files still being written (changed within the settle time) are left for the next run.
    """
    del once  # push is one pass whether or not it is said
    outcomes: list[Outcome] = []
    with open_platform() as platform:
        connector = _connector(platform, directory, establishment, settle)
        if not connector.acquire():
            fail(f"another connector is working on {directory}")
        try:
            with _stop_requested() as stop:
                # A first look records the files; after the settle time, a second one takes
                # those that did not change (and a settle of 0 takes them at first sight).
                for look in range(2):
                    for outcome in connector.poll():
                        outcomes.append(outcome)
                        if not as_json:
                            _print_outcome(outcome)
                        if stop.is_set():
                            break
                    if look == 1 or stop.is_set() or settle == 0 or not connector.settling:
                        break
                    stop.wait(settle + 0.05)
        except ConnectorUnavailable as error:
            fail(f"unavailable, the file stays in processing/ for the next run: {error}")
        except (ConnectorError, OSError) as error:
            fail(str(error))
        finally:
            connector.release()
    counts: Counter[str] = Counter(outcome.status for outcome in outcomes)
    left = connector.settling
    if as_json:
        print_json(
            {
                "done": counts["done"],
                "failed": counts["failed"],
                "left": left,
                "files": [outcome.as_json() for outcome in outcomes],
            }
        )
    else:
        _print_summary(counts, left)
    if counts["failed"]:
        raise typer.Exit(1)


def _connector(platform: Platform, directory: Path, establishment: str, settle: float) -> Connector:
    try:
        return Connector.for_establishment(
            platform.sessions,
            platform.repository,
            directory=directory,
            establishment=establishment,
            settle=settle,
        )
    except ConnectorError as error:
        fail(str(error))


@contextmanager
def _stop_requested() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (or SIGTERM): the loops stop between two files, so
    that no file is left half-filed. A second Ctrl-C interrupts at once (the file then stays
    in processing/ and is filed again at the next start)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals are only delivered to the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err.print("stopping after the current file (Ctrl-C again to interrupt at once)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def _status(directory: Path, counts: Counter[str], connector: Connector) -> str:
    return (
        f"watching {escape(str(directory))}: {counts['done']} done, {counts['failed']} failed, "
        f"{connector.settling} waiting to settle"
    )


def _print_outcome(outcome: Outcome) -> None:
    name = escape(outcome.name)
    if outcome.status == "done":
        again = " (already stored)" if outcome.already_stored else ""
        out.print(
            f"[green]done[/]    {name} → document {outcome.document_id}{again}", soft_wrap=True
        )
    else:
        where = f" ({escape(outcome.where)})" if outcome.where else ""
        out.print(f"[red]failed[/]  {name}: {escape(outcome.reason or '')}{where}", soft_wrap=True)


def _print_summary(counts: Counter[str], left: int) -> None:
    line = f"{counts['done']} done, {counts['failed']} failed"
    if left:
        line += f", {left} left for the next run (still being written)"
    err.print(line)
