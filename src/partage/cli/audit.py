"""`partage audit`: check and read the hash-chained audit trail."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from partage.access.decision import Action, require
from partage.audit.models import AuditEvent
from partage.audit.service import recent_events, verify_chain
from partage.cli.common import (
    EXIT_FAILURE,
    JsonOption,
    err,
    new_table,
    open_platform,
    operator,
    out,
    print_json,
    print_table,
    reading,
)

app = typer.Typer(
    help="The audit trail: verify its chain, read recent events.", no_args_is_help=True
)


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "person_id": event.person_id,
        "basis": event.basis,
        "ip": event.ip,
        "request_id": event.request_id,
        "detail": event.detail,
    }


@app.command("verify")
def verify(as_json: bool = JsonOption) -> None:
    """Recompute the whole chain; exit code 1 at the first altered or missing row."""
    with open_platform() as platform, reading(platform) as session:
        require(session, operator(), Action.audit_read, entity_type="AuditEvent")
        report = verify_chain(session, key=platform.audit_key)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "broken_at": report.broken_at,
                "reason": report.reason,
            }
        )
    elif report.ok:
        out.print(f"OK: the audit chain is intact ({report.checked} events checked).")
    else:
        err.print(
            f"BROKEN at sequence {report.broken_at}: {report.reason} "
            f"({report.checked} events verified before it)."
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


@app.command("tail")
def tail(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many recent events.")] = 20,
    as_json: bool = JsonOption,
) -> None:
    """Show the most recent events, oldest first."""
    with open_platform() as platform, reading(platform) as session:
        require(session, operator(), Action.audit_read, entity_type="AuditEvent")
        rows = [event_json(e) for e in reversed(recent_events(session, limit=limit))]
    if as_json:
        print_json(rows)
        return
    table = new_table("Seq", "When (UTC)", "Actor", "Action", "Outcome", "Entity", "Basis")
    for row in rows:
        actor = row["actor_label"] or row["actor_id"] or ""
        entity = " ".join(str(part) for part in (row["entity_type"], row["entity_id"]) if part)
        table.add_row(
            str(row["seq"]),
            row["occurred_at"][:19].replace("T", " "),
            f"{row['actor_kind']}: {actor}" if actor else row["actor_kind"],
            row["action"],
            row["outcome"],
            entity,
            row["basis"] or "",
        )
    print_table(table)
