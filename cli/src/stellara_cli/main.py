"""The ``stellara`` command."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.status import Status

from stellara_cli import dlq, events, tenants
from stellara_cli.stack import LocalStack
from stellara_cli.token import token as token_command
from stellara_devstack import StackError
from stellara_devstack.common import read_pid

app = typer.Typer(
    help="Stellara Tenancy: run the local stack and try the system.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(events.app, name="events")
app.add_typer(dlq.app, name="dlq")
app.add_typer(tenants.app, name="tenants")
app.command("token")(token_command)
console = Console(stderr=True)
out = Console()


def _fail(error: Exception) -> None:
    console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(code=1)


@app.command()
def up(
    infra_only: bool = typer.Option(
        False, "--infra-only", help="Only PostgreSQL and Kafka, no services."
    ),
) -> None:
    """Start PostgreSQL, Kafka, the SMTP sink and every service, unless they already run."""
    stack = LocalStack()
    try:
        with console.status("starting the stack…") as spinner:
            started = stack.up(progress=_spinner_progress(spinner), services=not infra_only)
    except StackError as exc:
        _fail(exc)
        return
    for name, was_started in started.items():
        console.print(f"{name}: {'started' if was_started else 'already running'}")
    _print_status(stack)
    if not infra_only:
        gateway = next(s for s in stack.services if s.name == "gateway").spec.url
        console.print(
            f"\n[bold]Stellara Tenancy is up.[/]\n"
            f"  API (gateway):   {gateway}\n"
            f"  API docs:        {gateway}/docs   (OpenAPI: {gateway}/openapi.json)\n"
            f"  a token:         TOKEN=$(uv run stellara token --role platform_admin)\n"
            f'                   curl -H "Authorization: Bearer $TOKEN" {gateway}/tenants\n'
            f"  try the story:   uv run stellara demo\n"
            f"  invitation mail: uv run stellara mail\n"
            f"  logs:            {stack.config.logs}   (stellara logs <component> -f)\n"
            f"  one component:   stellara restart|stop|start <component>\n"
            f"  stop:            make down"
        )


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


COMPONENT_NAMES = "postgres, kafka, smtp-sink, tenant-svc, usage-svc, onboarding-svc or gateway"
COMPONENTS_HELP = f"{COMPONENT_NAMES} (one or more)"


def _spinner_progress(spinner: Status) -> Callable[[str], None]:
    def progress(message: str) -> None:
        spinner.update(message)
        console.log(message)

    return progress


def _component_names(stack: LocalStack, names: list[str]) -> list[str]:
    for name in names:
        stack.component(name)  # refuses an unknown name before anything is done
    return names


@app.command()
def start(
    components: list[str] = typer.Argument(..., metavar="COMPONENT", help=COMPONENTS_HELP),
) -> None:
    """Start components that are not running, each waited for until healthy.

    A service needs Kafka (and PostgreSQL) running already; `stellara up` starts everything.
    """
    stack = LocalStack()
    try:
        for name in _component_names(stack, components):
            with console.status(f"starting {name}…") as spinner:
                began = time.monotonic()
                started = stack.start_component(name, _spinner_progress(spinner))
            took = time.monotonic() - began
            console.print(
                f"{name}: started, healthy in {took:.1f} s"
                if started
                else f"{name}: already running"
            )
    except StackError as exc:
        _fail(exc)


@app.command()
def stop(
    components: list[str] = typer.Argument(..., metavar="COMPONENT", help=COMPONENTS_HELP),
) -> None:
    """Stop components (gracefully: SIGTERM, PostgreSQL's fast shutdown); the rest keep running."""
    stack = LocalStack()
    try:
        for name in _component_names(stack, components):
            with console.status(f"stopping {name}…"):
                was_running = stack.stop_component(name)
            console.print(f"{name}: {'stopped' if was_running else 'was not running'}")
    except StackError as exc:
        _fail(exc)


@app.command()
def restart(
    components: list[str] = typer.Argument(..., metavar="COMPONENT", help=COMPONENTS_HELP),
) -> None:
    """Stop and start components, each waited for until healthy again (started if it was not running)."""
    stack = LocalStack()
    try:
        for name in _component_names(stack, components):
            pid_file = stack.component(name).pid_file
            before = read_pid(pid_file)
            with console.status(f"stopping {name}…") as spinner:
                began = time.monotonic()
                was_running = stack.stop_component(name)
                spinner.update(f"starting {name}…")
                stack.start_component(name, _spinner_progress(spinner))
            took = time.monotonic() - began
            after = read_pid(pid_file)
            was = f"pid {before} → {after}" if was_running else f"was not running; pid {after}"
            console.print(f"{name}: restarted ({was}), healthy in {took:.1f} s")
    except StackError as exc:
        _fail(exc)


@app.command()
def logs(
    component: str = typer.Argument(..., metavar="COMPONENT", help=COMPONENT_NAMES),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing what is appended."),
    lines: int = typer.Option(
        50, "--lines", "-n", help="Lines from the end to print first (0: all)."
    ),
) -> None:
    """Print the end of a component's log file; with -f, follow it until Ctrl-C."""
    from stellara_cli.logtail import follow as follow_file
    from stellara_cli.logtail import last_lines

    stack = LocalStack()
    try:
        log = Path(stack.component(component).log)
    except StackError as exc:
        _fail(exc)
        return
    offset = 0
    if log.exists():
        tail, offset = last_lines(log, lines)
        sys.stdout.buffer.write(tail)
        sys.stdout.buffer.flush()
    elif not follow:
        _fail(StackError(f"{component} has no log yet ({log}); it is written once it starts"))
    if follow:
        console.print(f"following {log} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            follow_file(log, sys.stdout.buffer, offset=offset)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show each process, its URL, its health and its consumer lag."""
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
        lag = s.extra.get("consumer_lag")
        lag_text = f"  lag {lag}" if lag is not None else ""
        out.print(f"[bold]{s.name:<16}[/] {state:<9} {s.address:<24} pid {s.pid or '-'}{lag_text}")
        out.print(f"  {s.detail}", highlight=False, soft_wrap=True)
        out.print(f"  log: {s.log}", highlight=False, soft_wrap=True)


@app.command()
def mail(
    show: int = typer.Option(0, "--show", help="Print message N (1 = newest) in full."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the mail the local SMTP sink received (invitations), newest first."""
    from stellara_cli.mailsink import read_mailbox

    stack = LocalStack()
    messages = read_mailbox(stack.mail.folder)
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "from": m.sender,
                        "to": m.to,
                        "subject": m.subject,
                        "date": m.date,
                        "file": str(m.path),
                        "text": m.text(),
                    }
                    for m in messages
                ]
            )
        )
        return
    if show:
        if not 1 <= show <= len(messages):
            _fail(
                StackError(f"there are {len(messages)} messages; --show takes 1 to {len(messages)}")
            )
        message = messages[show - 1]
        out.print(
            f"From: {message.sender}\nTo: {message.to}\nSubject: {message.subject}\n",
            highlight=False,
        )
        out.print(message.text(), highlight=False, soft_wrap=True)
        return
    if not messages:
        console.print(f"no mail yet (the SMTP sink keeps it in {stack.mail.folder})")
        return
    for number, message in enumerate(messages, 1):
        out.print(
            f"{number:>3}  {message.date:<32} {message.to:<32} {message.subject}", highlight=False
        )
    console.print("show one with: stellara mail --show N")


@app.command()
def demo() -> None:
    """Walk the main story against the running system (make up first); non-zero if a step fails."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from stellara_cli.demo import DemoFailed, Story, Target

    try:
        target = Target.local()
    except StackError as exc:
        _fail(exc)
        return
    progress_bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )

    def make_progress(total: int) -> object:
        task = progress_bar.add_task("sending usage events", total=total)
        progress_bar.start()

        def advance(n: int) -> None:
            progress_bar.update(task, advance=n)
            if progress_bar.tasks[0].finished:
                progress_bar.stop()

        return advance

    step = 0

    def say(text: str) -> None:
        nonlocal step
        step += 1
        console.print(f"[green]✓[/] {step:>2}. {text}")

    try:
        result = asyncio.run(Story(target, say=say, progress=make_progress).run())
    except DemoFailed as exc:
        progress_bar.stop()
        _fail(exc)
        return
    except OSError as exc:
        progress_bar.stop()
        _fail(StackError(f"cannot reach the system ({exc}); start it with `make up`"))
        return
    console.print(f"\n[bold]The story holds.[/] Tenant {result.slug} ({result.tenant_id}).")


def main() -> None:  # pragma: no cover
    sys.exit(app())
