"""``stellara token``: mint a development user token the local gateway accepts.

The token is signed with the gateway's HS256 development secret and carries
the gateway's audience and issuer, all read from the gateway's settings
(``GATEWAY_JWT_SECRET``, ``GATEWAY_JWT_AUDIENCE``, ``GATEWAY_JWT_ISSUER`` …,
through ``stellara_kit.auth.UserTokenSettings``),
so it works against a gateway started with the same environment. It prints
the token alone on stdout::

    TOKEN=$(stellara token --role tenant_admin --tenant 5b0c8f5e-6a53-4a0e-9a0e-2f1f3a0b6c11)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/tenants/5b0c8f5e-...

Mount it on the main command with ``app.command("token")(token)``, or run it
on its own with ``python -m stellara_cli.token``.
"""

from __future__ import annotations

from uuid import UUID

import typer

from stellara_contracts.events import Role

app = typer.Typer(add_completion=False, help="Mint a development token for the gateway.")


def token(
    role: Role = typer.Option(Role.TENANT_ADMIN, "--role", help="The caller's role."),
    tenant: str | None = typer.Option(
        None, "--tenant", help="The tenant id (a UUID) the token is for; none for platform_admin."
    ),
    subject: str = typer.Option("dev-user", "--subject", help="The user id (`sub`)."),
    ttl: int = typer.Option(3600, "--ttl", min=60, max=86_400, help="Lifetime in seconds."),
    email: str | None = typer.Option(
        None, "--email", help="The user's email (accepting an invitation needs the invited one)."
    ),
) -> None:
    """Print a user token the local gateway accepts (HS256, development secret)."""
    from stellara_kit.auth import Principal, UserTokenSettings, mint_user_token

    tenant_id: UUID | None = None
    if tenant:
        try:
            tenant_id = UUID(tenant)
        except ValueError:
            typer.echo(
                f"--tenant takes a tenant id (a UUID), not {tenant!r}; "
                "find it with GET /tenants or in the output of `stellara demo`.",
                err=True,
            )
            raise typer.Exit(code=2) from None
    if role != Role.PLATFORM_ADMIN and tenant_id is None:
        typer.echo(
            "note: no --tenant: the gateway will use its default tenant for this token", err=True
        )
    settings = UserTokenSettings()
    try:
        minted = mint_user_token(
            settings,
            Principal(subject=subject, role=role, tenant_id=tenant_id, email=email),
            ttl_seconds=ttl,
        )
    except ValueError as exc:
        typer.echo(f"cannot mint a development token: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(minted)


app.command("token")(token)

if __name__ == "__main__":  # pragma: no cover
    app()
