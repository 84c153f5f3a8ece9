"""`partage serve` and `partage demo`: the HTTP server, alone or on the demo territory."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
import uvicorn

from partage.app import create_app
from partage.cli.common import (
    cli_errors,
    fail,
    load_settings,
    new_table,
    open_platform,
    operator,
    out,
    print_table,
    reading_with_progress,
    unit_of_work,
)
from partage.config import Settings
from partage.demo import (
    DEMO_CLIENT_NAME,
    DEMO_PROFESSIONALS,
    DemoExtract,
    DemoTerritory,
    load_demo_directory,
    seed_demo_territory,
)
from partage.directory.rpps import RejectedRow
from partage.ops.logging import configure_logging
from partage.platform import Platform

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")]
_ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104 - only compared against, never bound here


def server_settings(host: str, port: int, **overrides: Any) -> Settings:
    """The settings, with the public address following --host/--port unless configured."""
    settings = load_settings(**overrides)
    if "public_url" not in settings.model_fields_set:
        shown = "127.0.0.1" if host in _ANY_ADDRESS else host
        if ":" in shown:
            shown = f"[{shown}]"
        settings = load_settings(**overrides, public_url=f"http://{shown}:{port}")
    return settings


def run_server(platform: Platform, *, host: str, port: int, workers: int = 1) -> None:
    settings = platform.settings
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    # Our middleware logs requests without their query strings: uvicorn's access log is off.
    common: dict[str, Any] = {"host": host, "port": port, "log_config": None, "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(settings, platform=platform), **common)
        return
    # Each worker process builds its own app from the environment: hand it what the
    # command line decided. Keys and schema are made here first, so workers never race.
    platform.prepare()
    os.environ["PARTAGE_PUBLIC_URL"] = settings.public_url
    os.environ["PARTAGE_DEMO"] = "true" if settings.demo else "false"
    uvicorn.run("partage.app:create_app_from_env", factory=True, workers=workers, **common)


def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes. On SQLite they share one writer (WAL, BEGIN IMMEDIATE) "
            "but spread the CPU work: HTTP, signatures, templates.",
        ),
    ] = 1,
) -> None:
    """Serve HTTP: the API, FHIR, DICOMweb and the portals. Migrates the schema first."""
    settings = server_settings(host, port)
    with open_platform(settings, migrate=True) as platform:
        run_server(platform, host=host, port=port, workers=workers)


def demo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve once the territory is ready.")
    ] = True,
    professionals: Annotated[
        int,
        typer.Option(min=10, help="Professionals of the synthetic directory (first run only)."),
    ] = DEMO_PROFESSIONALS,
) -> None:
    """Create the demo territory (if missing), print its logins, and serve it."""
    settings = server_settings(host, port, demo=True)
    with open_platform(settings, migrate=True) as platform:
        with unit_of_work(platform) as session:
            seeded = seed_demo_territory(session, platform, actor=operator())
        try:
            with cli_errors():
                directory = load_demo_directory(
                    platform,
                    actor=operator(),
                    professionals=professionals,
                    reader=reading_with_progress,
                )
        except RejectedRow as exc:
            fail(str(exc))
        print_demo(seeded, settings, directory)
        if serve:
            run_server(platform, host=host, port=port)


def print_demo(seeded: DemoTerritory, settings: Settings, directory: list[DemoExtract]) -> None:
    done = []
    if seeded.establishments_created or seeded.accounts_created:
        done.append(
            f"created {seeded.establishments_created} establishments and "
            f"{seeded.accounts_created} accounts"
        )
    if any(extract.summary is not None for extract in directory):
        done.append("loaded its directory")
    status = ", ".join(done) or "already in place, nothing created"
    out.print(f"[bold]{seeded.territory}[/] (demo territory): {status}.", soft_wrap=True)
    for extract in directory:
        if extract.summary is None:
            out.print(f"Directory: {extract.path.name} already imported.", soft_wrap=True)
            continue
        summary = extract.summary
        out.print(
            f"Directory: imported {extract.path} ({summary.rows:,} rows, "
            f"{summary.created:,} created, {summary.rejected:,} rejected).",
            soft_wrap=True,
        )
    table = new_table(
        "Login", "Profile", "Establishment", "Password", "TOTP secret", title="Demo logins"
    )
    for login in seeded.logins:
        if login.totp_secret:
            second_factor = login.totp_secret
        elif login.profile.requires_mfa:
            second_factor = "enrol at first sign-in"
        else:
            second_factor = "none (patient)"
        table.add_row(
            login.login,
            login.profile.value,
            login.establishment or "",
            login.password,
            second_factor,
        )
    print_table(table)
    lines = [
        "Second factor: add the TOTP secret to any authenticator app, "
        "or run `oathtool --totp -b SECRET`.",
        f"Example system client ({DEMO_CLIENT_NAME}): client_id [bold]{seeded.client_id}[/]",
    ]
    if seeded.client_secret:
        lines.append(f"  client_secret [bold]{seeded.client_secret}[/] (shown only this once)")
    else:
        lines.append("  (its secret was shown once, when it was created)")
    lines.append(f"Open [bold]{settings.public_url}/[/] to sign in.")
    for line in lines:
        out.print(line, soft_wrap=True)
