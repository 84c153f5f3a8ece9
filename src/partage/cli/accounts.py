"""`partage accounts`: people's accounts (professionals, patients, administrators)."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

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
from partage.security.models import Account, Establishment, Profile

app = typer.Typer(help="People's accounts: create, list, disable, unlock.", no_args_is_help=True)

LoginArgument = Annotated[str, typer.Argument(help="The account's login.")]


def account_json(account: Account) -> dict[str, Any]:
    return {
        "login": account.login,
        "display_name": account.display_name,
        "profile": str(account.profile),
        "establishment": account.establishment.code if account.establishment else None,
        "email": account.email,
        "national_id": account.national_id,
        "status": str(account.status),
        "totp_enrolled": account.has_totp,
        "is_demo": account.is_demo,
        "created_at": account.created_at.isoformat(),
        "last_login_at": account.last_login_at.isoformat() if account.last_login_at else None,
    }


def _establishment(session: Session, code: str | None) -> Establishment | None:
    if code is None:
        return None
    establishment = service.get_establishment(session, code=code)
    if establishment is None:
        fail(f"no establishment with domain {code.strip().upper()}")
    return establishment


def _account(session: Session, login: str) -> Account:
    account = service.get_account(session, login=login)
    if account is None:
        fail(f"no account with login {actions.normalise_login(login)}")
    return account


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line: the trailing newline is not part of the password.
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input", code=EXIT_USAGE)
        return password
    # Prompts go to stderr so that --json output stays clean.
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return prompted


def _person_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value.removeprefix("Patient/"))
    except ValueError:
        fail(f"{value!r} is not a person id")


@app.command("create")
def create(
    login: Annotated[str, typer.Option(help="Login: 3 to 120 letters, digits or . _ @ + -.")],
    name: Annotated[str, typer.Option(help="Display name, e.g. 'Dr Claire Dubois'.")],
    profile: Annotated[Profile, typer.Option(help="Profile (role).")],
    establishment: Annotated[
        str | None,
        typer.Option(
            help="Domain code of the account's establishment (required for hospital "
            "physicians, identity vigilance and establishment administrators)."
        ),
    ] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    national_id: Annotated[
        str | None, typer.Option(help="RPPS (12 digits) or ADELI (10 digits) number.")
    ] = None,
    person: Annotated[
        str | None,
        typer.Option(help="A patient's territorial person (the Patient id): their record."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Create an account. The password is prompted for twice unless --password-stdin."""
    password = _read_password(password_stdin)
    with open_platform() as platform, unit_of_work(platform) as session:
        account = actions.create_account(
            session,
            platform.passwords,
            actor=operator(),
            login=login,
            display_name=name,
            profile=profile,
            password=password,
            establishment=_establishment(session, establishment),
            email=email,
            national_id=national_id,
            person_id=_person_id(person),
        )
        created = account_json(account)
    if as_json:
        print_json(created)
        return
    out.print(f"Created account [bold]{created['login']}[/] ({created['profile']}).")
    if profile.requires_mfa:
        out.print("A second factor is required: it is enrolled at the first sign-in.")


@app.command("list")
def list_(
    query: Annotated[str, typer.Option(help="Filter on login or display name.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 200,
    as_json: bool = JsonOption,
) -> None:
    """List accounts."""
    with open_platform() as platform, unit_of_work(platform) as session:
        viewer = operator()
        require(session, viewer, Action.account_read, entity_type="Account")
        rows = [
            account_json(a)
            for a in service.list_accounts(session, viewer=viewer, query=query, limit=limit)
        ]
    if as_json:
        print_json(rows)
        return
    table = new_table("Login", "Name", "Profile", "Establishment", "Status", "TOTP", "Last sign-in")
    for row in rows:
        table.add_row(
            row["login"],
            row["display_name"],
            row["profile"],
            row["establishment"] or "",
            row["status"],
            "yes" if row["totp_enrolled"] else "no",
            (row["last_login_at"] or "")[:16],
        )
    print_table(table)


@app.command("disable")
def disable(
    login: LoginArgument,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
) -> None:
    """Disable an account: its sessions end and its tokens stop working at once."""
    with open_platform() as platform, unit_of_work(platform) as session:
        account = _account(session, login)
        actions.set_account_status(
            session, actor=operator(), account=account, active=False, reason=reason
        )
    out.print(f"Disabled {account.login}.")


@app.command("enable")
def enable(login: LoginArgument) -> None:
    """Enable a disabled account."""
    with open_platform() as platform, unit_of_work(platform) as session:
        account = _account(session, login)
        actions.set_account_status(session, actor=operator(), account=account, active=True)
    out.print(f"Enabled {account.login}.")


@app.command("unlock")
def unlock(login: LoginArgument) -> None:
    """Lift a lock-out after too many failed sign-ins."""
    with open_platform() as platform, unit_of_work(platform) as session:
        account = _account(session, login)
        actions.unlock_account(session, actor=operator(), account=account)
    out.print(f"Unlocked {account.login}.")


@app.command("reset-mfa")
def reset_mfa(login: LoginArgument) -> None:
    """Forget the account's TOTP authenticator: it is enrolled again at the next sign-in."""
    with open_platform() as platform, unit_of_work(platform) as session:
        account = _account(session, login)
        actions.reset_second_factor(session, actor=operator(), account=account)
    out.print(f"Second factor of {account.login} reset; sessions ended.")
