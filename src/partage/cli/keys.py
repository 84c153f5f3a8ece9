"""`partage keys`: the token-signing keys."""

from __future__ import annotations

from datetime import timedelta

import typer

from partage.access.decision import Basis
from partage.audit.actions import record
from partage.cli.common import open_platform, operator, out, unit_of_work
from partage.security.signing import rotate_signing_keys

app = typer.Typer(help="Token-signing keys.", no_args_is_help=True)


@app.command("rotate")
def rotate() -> None:
    """Retire the current signing keys and make new ones.

    Retired keys stay published until the tokens they signed have expired; running
    servers sign with the new keys within 30 seconds.
    """
    with open_platform() as platform, unit_of_work(platform) as session:
        publish_for = timedelta(seconds=platform.settings.signing_key_retire_after_seconds)
        kids = rotate_signing_keys(session, platform.keyring, publish_for=publish_for)
        record(
            session,
            actor=operator().actor,
            action="signing_keys.rotate",
            entity_type="SigningKey",
            basis=Basis.operator,
            detail={"new_kids": kids},
        )
    out.print(f"New signing keys: {', '.join(kids)}.")
    hours = publish_for.total_seconds() / 3600
    out.print(f"The previous keys stay published for {hours:g} hours.")
