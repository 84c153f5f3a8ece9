"""`partage clients`: authorised applications (OAuth clients)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from partage.access.decision import Action, require
from partage.cli.common import (
    EXIT_USAGE,
    JsonOption,
    fail,
    new_table,
    open_platform,
    operator,
    out,
    print_json,
    print_table,
    unit_of_work,
)
from partage.security import actions, service
from partage.security.models import OAuthClient

app = typer.Typer(
    help="Authorised applications: hospital systems, portals, mobile apps.", no_args_is_help=True
)


def client_json(client: OAuthClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "scopes": client.allowed_scopes,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "redirect_uris": list(client.redirect_uris),
        "establishment": client.establishment.code if client.establishment else None,
        "trusted": client.trusted,
        "status": str(client.status),
        "created_at": client.created_at.isoformat(),
    }


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", code=EXIT_USAGE)
    except ValueError:
        fail(f"{path} is not JSON", code=EXIT_USAGE)
    if not isinstance(data, dict):
        fail(f"{path} must hold a JWKS object", code=EXIT_USAGE)
    return data


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Name, e.g. 'DPI du CHU de Poitiers'.")],
    scopes: Annotated[
        str,
        typer.Option(help="Allowed SMART scopes, space separated, e.g. 'system/*.rs'."),
    ],
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(help="Redirect URI for signing people in (repeatable)."),
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(help="JWKS file of the client's public keys (private_key_jwt)."),
    ] = None,
    public: Annotated[
        bool, typer.Option("--public", help="A public client (no secret; PKCE only).")
    ] = False,
    establishment: Annotated[
        str | None, typer.Option(help="Domain code of the establishment it belongs to.")
    ] = None,
    trusted: Annotated[
        bool, typer.Option("--trusted", help="First-party: skips the consent screen.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Register an application. Its secret, if any, is shown once and never stored."""
    key_set = _read_jwks(jwks) if jwks is not None else None
    with open_platform() as platform, unit_of_work(platform) as session:
        owner = None
        if establishment is not None:
            owner = service.get_establishment(session, code=establishment)
            if owner is None:
                fail(f"no establishment with domain {establishment.strip().upper()}")
        created = actions.create_client(
            session,
            platform.keyring,
            actor=operator(),
            name=name,
            scopes=scopes,
            redirect_uris=redirect_uri,
            jwks=key_set,
            public=public,
            establishment=owner,
            trusted=trusted,
        )
        result = {**client_json(created.client), "client_secret": created.client_secret}
    if as_json:
        print_json(result)
        return
    out.print(f"Registered [bold]{result['name']}[/].")
    out.print(f"client_id:     {result['client_id']}")
    out.print(f"scopes:        {result['scopes']}")
    out.print(f"authentication: {result['token_endpoint_auth_method']}")
    if result["client_secret"]:
        out.print(
            Panel(
                result["client_secret"],
                title="client_secret",
                subtitle="shown only once: store it now",
                expand=False,
            )
        )


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List the applications (never their secrets)."""
    with open_platform() as platform, unit_of_work(platform) as session:
        viewer = operator()
        require(session, viewer, Action.client_read, entity_type="OAuthClient")
        rows = [client_json(c) for c in service.list_clients(session, viewer=viewer)]
    if as_json:
        print_json(rows)
        return
    table = new_table("client_id", "Name", "Scopes", "Authentication", "Status")
    for row in rows:
        table.add_row(
            row["client_id"],
            row["name"],
            row["scopes"],
            row["token_endpoint_auth_method"],
            row["status"],
        )
    print_table(table)


@app.command("revoke")
def revoke(client_id: Annotated[str, typer.Argument(help="The application's client_id.")]) -> None:
    """Revoke an application: it can no longer obtain tokens; its refresh tokens die."""
    with open_platform() as platform, unit_of_work(platform) as session:
        client = service.get_client(session, client_id=client_id)
        if client is None:
            fail(f"no application with client_id {client_id}")
        actions.revoke_client(session, actor=operator(), client=client)
    out.print(f"Revoked {client_id}.")
