"""`partage establishments`: the identification domains of the territory."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from partage.access.decision import Action, require
from partage.cli.common import (
    JsonOption,
    new_table,
    open_platform,
    operator,
    out,
    print_json,
    print_table,
    unit_of_work,
)
from partage.security import actions, service
from partage.security.models import Establishment, EstablishmentKind

app = typer.Typer(
    help="Establishments: the structures whose patient ids (IPP) Partage federates.",
    no_args_is_help=True,
)


def establishment_json(establishment: Establishment) -> dict[str, Any]:
    return {
        "code": establishment.code,
        "name": establishment.name,
        "kind": str(establishment.kind),
        "finess": establishment.finess,
        "patient_id_oid": establishment.patient_id_oid,
        "city": establishment.city,
        "active": establishment.active,
        "territory": establishment.territory.code,
    }


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Name, e.g. 'CHU de Poitiers'.")],
    domain: Annotated[
        str, typer.Option(help="Domain code: capitals, digits, hyphens (CHU-POITIERS).")
    ],
    oid: Annotated[
        str | None,
        typer.Option(
            help="OID of the establishment's patient ids; derived from the code if absent."
        ),
    ] = None,
    finess: Annotated[str | None, typer.Option(help="FINESS number (9 characters).")] = None,
    kind: Annotated[EstablishmentKind, typer.Option(help="Kind of structure.")] = (
        EstablishmentKind.hospital
    ),
    city: Annotated[str | None, typer.Option(help="City.")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Create an establishment in the configured territory."""
    with open_platform() as platform, unit_of_work(platform) as session:
        settings = platform.settings
        territory = actions.ensure_territory(
            session, code=settings.territory_code, name=settings.territory_name
        )
        establishment = actions.create_establishment(
            session,
            actor=operator(),
            territory=territory,
            name=name,
            code=domain,
            kind=kind,
            finess=finess,
            oid=oid,
            city=city,
        )
        created = establishment_json(establishment)
    if as_json:
        print_json(created)
    else:
        out.print(
            f"Created establishment [bold]{created['name']}[/] "
            f"(domain {created['code']}, OID {created['patient_id_oid']})."
        )


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List the establishments."""
    with open_platform() as platform, unit_of_work(platform) as session:
        require(session, operator(), Action.establishment_read, entity_type="Establishment")
        rows = [establishment_json(e) for e in service.list_establishments(session)]
    if as_json:
        print_json(rows)
        return
    table = new_table("Domain", "Name", "Kind", "FINESS", "City", "Patient id OID")
    for row in rows:
        table.add_row(
            row["code"],
            row["name"],
            row["kind"],
            row["finess"] or "",
            row["city"] or "",
            row["patient_id_oid"],
        )
    print_table(table)
