"""`samenveilig-auth`: the operator's hand on the identity provider. Registers the relying
parties (clients) whose secrets are shown once and stored hashed, lists and revokes them, and
rotates the signing key. Reads the auth service's settings (SAMENVEILIG_DATABASE_URL,
SAMENVEILIG_MASTER_KEY, SAMENVEILIG_AUTH_URL) like its processes do."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.auth import store
from services.auth.bootstrap import build
from services.auth.domain import TOKEN_EXCHANGE
from services.auth.settings import AuthSettings
from shared.contracts import events as e

app = typer.Typer(help="Kindkans login: OpenID Connect clients and signing keys.", no_args_is_help=True)
clients = typer.Typer(help="Relying parties (OpenID Connect clients).", no_args_is_help=True)
keys = typer.Typer(help="The provider's signing keys.", no_args_is_help=True)
app.add_typer(clients, name="clients")
admins = typer.Typer(help="SWV admins: who may ask for and approve factor resets, and re-invite.",
                     no_args_is_help=True)
app.add_typer(keys, name="keys")
app.add_typer(admins, name="admins")
console = Console()


def operator() -> e.ActedBy:
    """Who runs this command (the OS user): an operator's change names them on the log."""
    return e.ActedBy(actor=f"operator:{getpass.getuser()}", client="samenveilig-auth")


@clients.command("add")
def add_client(
    name: Annotated[str, typer.Option(help="Who the client is, e.g. 'Kindkans'")],
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Exact redirect URI (repeatable)")] = None,
    post_logout_redirect_uri: Annotated[list[str] | None, typer.Option(help="After logout (repeatable)")] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option(help="Told of every ended session")] = None,
    grant: Annotated[list[str] | None, typer.Option(
        help="authorization_code, refresh_token, client_credentials, token-exchange (RFC 8693)")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Scopes a client-credentials token may carry")] = None,
) -> None:
    """Registers a client; its secret is printed once, here, and never again."""
    deps = build(AuthSettings())
    grants = grant or (["authorization_code", "refresh_token"] if redirect_uri else ["client_credentials"])
    grants = [TOKEN_EXCHANGE if name == "token-exchange" else name for name in grants]
    try:
        with deps.engine.begin() as connection:
            registered = deps.service.provider.register_client(
                connection, name, redirect_uri or [], post_logout_redirect_uri or [], backchannel_logout_uri, grants,
                scope or [])
            deps.service.record_operator_action(connection, e.OidcClientRegistered(
                client_id=registered.client_id, name=name, grant_types=grants, scopes=scope or [],
                acted_by=operator()))
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    typer.echo(json.dumps({"client_id": registered.client_id, "client_secret": registered.secret,
                           "issuer": deps.service.provider.issuer}))


@clients.command("list")
def list_clients() -> None:
    """Every client, never a secret."""
    deps = build(AuthSettings())
    with deps.engine.connect() as connection:
        rows = store.list_clients(connection)
    table = Table("client_id", "name", "grants", "redirect URIs", "back-channel logout", "revoked")
    for row in rows:
        table.add_row(row.client_id, row.name, ", ".join(json.loads(row.grant_types)),
                      "\n".join(json.loads(row.redirect_uris)), row.backchannel_logout_uri or "",
                      row.revoked_at.isoformat() if row.revoked_at else "")
    console.print(table)


@clients.command("revoke")
def revoke_client(client_id: str) -> None:
    """The client can no longer authenticate; what it holds stops working within minutes."""
    deps = build(AuthSettings())
    with deps.engine.begin() as connection:
        revoked = store.revoke_client(connection, client_id, deps.clock.now())
        if revoked:
            deps.service.record_operator_action(connection, e.OidcClientRevoked(client_id=client_id,
                                                                                acted_by=operator()))
    if not revoked:
        console.print(f"[red]no active client {client_id}[/red]")
        raise typer.Exit(1)
    typer.echo(f"revoked {client_id}")


@keys.command("rotate")
def rotate_key() -> None:
    """A new signing key from now; the old one stays published until its tokens have expired."""
    deps = build(AuthSettings())
    with deps.engine.begin() as connection:
        kid = deps.service.provider.rotate_signing_key(connection)
    typer.echo(f"signing with {kid}")


@admins.command("grant")
def grant_admin(email: str) -> None:
    """Makes the staff member with this login an SWV admin (of the login accounts, nothing else)."""
    deps = build(AuthSettings())
    with deps.engine.begin() as connection:
        row = store.find_account_by_username(connection, email.strip().lower())
        if row is None or row.disabled_at is not None:
            console.print(f"[red]no active account {email}[/red]")
            raise typer.Exit(1)
        store.grant_admin(connection, row.staff_id, deps.clock.now())
        deps.service.record_operator_action(connection, e.AdminAppointed(staff_id=row.staff_id, acted_by=operator()))
    typer.echo(f"{email} is an admin")


@admins.command("revoke")
def revoke_admin(email: str) -> None:
    deps = build(AuthSettings())
    with deps.engine.begin() as connection:
        row = store.find_account_by_username(connection, email.strip().lower())
        if row is None or not store.revoke_admin(connection, row.staff_id):
            console.print(f"[red]{email} is not an admin[/red]")
            raise typer.Exit(1)
        deps.service.record_operator_action(connection, e.AdminRemoved(staff_id=row.staff_id, acted_by=operator()))
    typer.echo(f"{email} is no longer an admin")


if __name__ == "__main__":
    app()
