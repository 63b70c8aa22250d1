"""CLI: ``modelyard users|tokens|roles``: who may reach the project's server, and how.

Commands act as the local operator (the one who holds the project's files), recorded in
the audit log as ``local:<os user>`` with source ``cli``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .project import UriOption, open_yard
from .render import cell, format_time, listing, say, show

if TYPE_CHECKING:
    from modelyard.backends.metadata.identities import TokenRecord

users = typer.Typer(help="Users (people and service accounts) who hold API tokens.",
                    no_args_is_help=True)
tokens = typer.Typer(help="API tokens: create (shown once), list, revoke.",
                     no_args_is_help=True)
roles = typer.Typer(help="Roles per project and environment: grant, revoke, list.",
                    no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user's name.")]
ProjectOption = Annotated[str | None, typer.Option(
    "--project", "-p", metavar="NAME",
    help="Project the grant is on ('*': every project); default: this project.")]
EnvOption = Annotated[str, typer.Option(
    "--env", "-e", metavar="ENV", help="Environment: dev, staging, prod, or '*' (all).")]


def _local() -> Any:
    from modelyard.security.principals import Principal

    return Principal.local()


def register(app: typer.Typer) -> None:
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")
    app.add_typer(roles, name="roles")


# --- users ------------------------------------------------------------------------------


@users.command("create")
def create_user(
    name: UserArg,
    service: Annotated[bool, typer.Option(
        "--service", help="A service account (a program, not a person).")] = False,
    uri: UriOption = None,
) -> None:
    """Create a user; give it roles with `modelyard roles grant` and a token with
    `modelyard tokens create`."""
    with open_yard(uri) as yard:
        user = yard.security.create_user(name, kind="service" if service else "person",
                                         by=_local(), source="cli")
    say(f"Created {user.kind} [bold]{escape(user.name)}[/]")


@users.command("list")
def list_users(as_json: JsonOption = False, uri: UriOption = None) -> None:
    """List the users, with when each was created or disabled."""
    with open_yard(uri) as yard:
        found = yard.security.users()
    if as_json:
        typer.echo(json.dumps([u.__dict__ for u in found], indent=2))
        return
    if not found:
        say("No users yet: [bold]modelyard users create NAME[/]")
        return
    table = listing(None, ["name", "kind", "created", "by", "disabled"])
    for u in found:
        table.add_row(cell(u.name, "bold"), cell(u.kind), cell(format_time(u.created_at_ms)),
                      cell(u.created_by), cell(format_time(u.disabled_at_ms)))
    show(table)


@users.command("disable")
def disable_user(name: UserArg, uri: UriOption = None) -> None:
    """Disable a user and revoke all its tokens at once."""
    with open_yard(uri) as yard:
        yard.security.disable_user(name, by=_local(), source="cli")
    say(f"Disabled [bold]{escape(name)}[/]; its tokens are revoked")


# --- tokens -----------------------------------------------------------------------------


@tokens.command("create")
def create_token(
    user: UserArg,
    expires: Annotated[str, typer.Option(
        "--expires", metavar="DURATION",
        help="Lifetime: 30d, 12h, 2w, or 'never'.")] = "90d",
    description: Annotated[str, typer.Option(
        "--description", "-d", metavar="TEXT", help="What the token is for.")] = "",
    as_json: JsonOption = False,
    uri: UriOption = None,
) -> None:
    """Create a token for USER and print it once: only its digest is stored."""
    with open_yard(uri) as yard:
        issued = yard.security.create_token(user, expires_in=expires, description=description,
                                            by=_local(), source="cli")
    record = issued.record
    if as_json:
        typer.echo(json.dumps({"token": issued.token, **_token_json(record)}, indent=2))
        return
    typer.echo(issued.token)
    expiry = format_time(record.expires_at_ms) or "never"
    say(f"Token [bold]{record.token_id}[/] for {escape(user)}, expires {expiry}. It is shown "
        "this once: keep it now.")


def _token_json(record: TokenRecord) -> dict[str, Any]:
    import time

    data = {k: v for k, v in record.__dict__.items() if k != "digest"}
    data["state"] = record.state(time.time_ns() // 1_000_000)
    return data


@tokens.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", "-u", metavar="USER",
                                             help="Only this user's tokens.")] = None,
    as_json: JsonOption = False,
    uri: UriOption = None,
) -> None:
    """List tokens (their ids, never the tokens): state, expiry, last use."""
    with open_yard(uri) as yard:
        found = yard.security.tokens(user)
    rows = [_token_json(t) for t in found]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        say("No tokens: [bold]modelyard tokens create USER[/]")
        return
    table = listing(None, ["id", "user", "state", "created", "expires", "last used",
                           "description"], wrap=("description",))
    for r in rows:
        table.add_row(cell(r["token_id"], "bold"), cell(r["user"]), cell(r["state"]),
                      cell(format_time(r["created_at_ms"])),
                      cell(format_time(r["expires_at_ms"]) or "never"),
                      cell(format_time(r["last_used_ms"])), cell(r["description"]))
    show(table)


@tokens.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID",
                                            help="The token's id, as `tokens list` shows.")],
    uri: UriOption = None,
) -> None:
    """Revoke a token: it is refused from now on."""
    with open_yard(uri) as yard:
        yard.security.revoke_token(token_id, by=_local(), source="cli")
    say(f"Revoked token [bold]{escape(token_id)}[/]")


# --- roles ------------------------------------------------------------------------------

RoleArg = Annotated[str, typer.Argument(
    metavar="ROLE", help="viewer, editor, maintainer, admin, or the permission pii:read.")]


@roles.command("grant")
def grant(user: UserArg, role: RoleArg, project: ProjectOption = None,
          environment: EnvOption = "*", uri: UriOption = None) -> None:
    """Grant USER a ROLE on a project, in one environment or all."""
    with open_yard(uri) as yard:
        record = yard.security.grant(user, role, project=project, environment=environment,
                                     by=_local(), source="cli")
    say(f"Granted [bold]{escape(role)}[/] to {escape(user)} on project "
        f"{escape(record.project)}, environment {escape(record.environment)}")


@roles.command("revoke")
def revoke(user: UserArg, role: RoleArg, project: ProjectOption = None,
           environment: EnvOption = "*", uri: UriOption = None) -> None:
    """Take back a grant made with `modelyard roles grant`."""
    with open_yard(uri) as yard:
        yard.security.revoke(user, role, project=project, environment=environment,
                             by=_local(), source="cli")
    say(f"Revoked [bold]{escape(role)}[/] from {escape(user)}")


@roles.command("list")
def list_grants(
    user: Annotated[str | None, typer.Option("--user", "-u", metavar="USER",
                                             help="Only this user's grants.")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", "-p", metavar="NAME", help="Only grants on this project.")] = None,
    as_json: JsonOption = False,
    uri: UriOption = None,
) -> None:
    """List role grants: user, project, environment, role."""
    with open_yard(uri) as yard:
        found = yard.security.grants(user, project)
    if as_json:
        typer.echo(json.dumps([g.__dict__ for g in found], indent=2))
        return
    if not found:
        say("No grants: [bold]modelyard roles grant USER ROLE[/]")
        return
    table = listing(None, ["user", "project", "environment", "role", "granted", "by"])
    for g in found:
        table.add_row(cell(g.user, "bold"), cell(g.project), cell(g.environment),
                      cell(g.role), cell(format_time(g.granted_at_ms)), cell(g.granted_by))
    show(table)
