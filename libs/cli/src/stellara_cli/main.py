"""The ``stellara`` command."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import typer
from rich.console import Console

from stellara_cli.stack import LocalStack, StackError

app = typer.Typer(
    help="Stellara Tenancy: run the local stack and try the system.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()


def _fail(error: Exception) -> None:
    console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(code=1)


@app.command()
def up() -> None:
    """Start PostgreSQL and Kafka (and every service that is built) unless they already run."""
    stack = LocalStack()

    try:
        with console.status("starting the stack…") as spinner:

            def progress(message: str) -> None:
                spinner.update(message)
                console.log(message)

            started = stack.up(progress=progress)
    except StackError as exc:
        _fail(exc)
        return
    for name, was_started in started.items():
        console.print(f"{name}: {'started' if was_started else 'already running'}")
    _print_status(stack)
    console.print(f"logs: {stack.config.logs}   stop with: make down (stellara down)")


@app.command()
def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete the stack's data."),
) -> None:
    """Stop everything the stack started."""
    stack = LocalStack()
    try:
        stopped = stack.down()
        if purge:
            stack.purge()
    except StackError as exc:
        _fail(exc)
        return
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")
    if purge:
        console.print(f"deleted the stack's data under {stack.config.home}")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show what runs, where, and whether it is healthy."""
    try:
        stack = LocalStack()
        if as_json:
            out.print_json(json.dumps([asdict(s) for s in stack.status()]))
            return
        _print_status(stack)
    except StackError as exc:
        _fail(exc)


def _print_status(stack: LocalStack) -> None:
    for s in stack.status():
        state = (
            "[green]healthy[/]"
            if s.healthy
            else "[yellow]unhealthy[/]"
            if s.running
            else "[red]stopped[/]"
        )
        out.print(f"[bold]{s.name:<16}[/] {state:<9} {s.address:<24} pid {s.pid or '-'}")
        out.print(f"  {s.detail}", highlight=False, soft_wrap=True)
        out.print(f"  log: {s.log}", highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover
    sys.exit(app())
