"""``stellara tenants``: tenant administration from the command line.

``stellara tenants import-users FILE`` brings an existing (single-tenant)
user base into the default tenant, or the one ``--tenant`` names. FILE is
CSV with a header line, or JSON lines (one object a line); the columns are
``email``, and optionally ``role`` (``user`` — the default —, ``admin`` /
``tenant_admin``), ``user_id`` (the email when left out) and ``name``.

Rows go in batches to ``POST /tenants/{id}/members/import``, which skips users
already there: running the same import again changes nothing, so an import
that stopped half-way is finished by running it again. Each row ends up
created, skipped or invalid (with the reason); the exit code is 1 when any
row is invalid, 2 when the import could not run.

How the command reaches the system:

- by default the local stack's gateway (``--gateway`` for another), as a
  platform administrator: with ``--token`` (or ``STELLARA_TOKEN``) when
  given, otherwise a development token signed with the gateway's settings,
  like ``stellara token`` mints;
- with ``--service-url``, tenant-svc itself, with the short-lived internal
  token the gateway would forward (signed with tenant-svc's
  ``TENANT_SVC_INTERNAL_TOKEN_SECRET``) — for operators inside the cluster.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

app = typer.Typer(help="Tenant administration.", no_args_is_help=True, add_completion=False)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

COLUMNS = ("email", "role", "user_id", "name")
BATCH_MAX = 1000
RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.5
INVALID_SHOWN = 20
CLI_SUBJECT = "stellara-cli"


class FileFormat(StrEnum):
    AUTO = "auto"
    CSV = "csv"
    JSONL = "jsonl"


class ImportFailed(Exception):
    """The import could not run (or stopped); the message says what to do."""


# ------------------------------------------------------------------ reading the file
@dataclass
class UserFile:
    """The rows of a user file: those to send, and those already known to be invalid."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    ignored_columns: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.invalid)

    def add(self, line: int, fields: dict[str, Any]) -> None:
        row: dict[str, Any] = {"line": line}
        for name, value in fields.items():
            if name not in COLUMNS:
                self.ignored_columns.add(name)
                continue
            if isinstance(value, str):
                value = value.strip()
            if name == "user_id" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # numeric ids of the old user base
            if value not in ("", None):
                row[name] = value
        self.rows.append(row)

    def refuse(self, line: int, reason: str) -> None:
        self.invalid.append({"line": line, "outcome": "invalid", "reason": reason})


def _format_of(path: Path, text: str, chosen: FileFormat) -> FileFormat:
    if chosen is not FileFormat.AUTO:
        return chosen
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return FileFormat.CSV
    if suffix in (".jsonl", ".ndjson", ".json"):
        return FileFormat.JSONL
    return FileFormat.JSONL if text.lstrip().startswith("{") else FileFormat.CSV


def _read_csv(text: str, users: UserFile) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            if not {"email", "user_id"} & set(header):
                raise ImportFailed(
                    "The first line must be a header naming the columns, with `email` or "
                    f"`user_id` among them (found: {', '.join(header) or 'nothing'}); for "
                    "example: email,role,user_id,name"
                )
            doubled = sorted({c for c in header if c and header.count(c) > 1})
            if doubled:
                raise ImportFailed(f"The header names {', '.join(doubled)} more than once.")
            continue
        if len(cells) > len(header):
            users.refuse(
                reader.line_num,
                f"{len(cells)} values for {len(header)} columns (a comma inside a value "
                "needs quotes)",
            )
            continue
        users.add(reader.line_num, dict(zip(header, cells, strict=False)))
    if header is None:
        raise ImportFailed("The file is empty: expected a header line and one user a line.")


def _read_json_lines(text: str, users: UserFile) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            users.refuse(number, f"not JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(value, dict):
            users.refuse(number, 'not a JSON object (one user a line, like {"email": …})')
            continue
        users.add(number, {str(k).strip().lower(): v for k, v in value.items()})


def read_user_file(path: Path, file_format: FileFormat = FileFormat.AUTO) -> UserFile:
    """The rows of ``path`` (CSV with a header, or JSON lines), numbered by their line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8.") from exc
    except OSError as exc:
        raise ImportFailed(f"Cannot read {path}: {exc.strerror}.") from exc
    users = UserFile()
    if _format_of(path, text, file_format) is FileFormat.CSV:
        _read_csv(text, users)
    else:
        _read_json_lines(text, users)
    return users


# ------------------------------------------------------------------ talking to the system
@dataclass(frozen=True)
class Endpoint:
    """Where the members live and how to authenticate there (headers fresh per request)."""

    base_url: str
    auth: Callable[[], dict[str, str]]
    default_tenant: str
    description: str


def gateway_endpoint(url: str | None, token: str | None) -> Endpoint:
    from gateway.settings import Settings
    from stellara_cli.stack.processes import service_specs
    from stellara_contracts.events import Role
    from stellara_kit.auth import Principal, mint_user_token

    settings = Settings()  # the gateway's: its user-token keys and its default tenant
    base = url or next(s.url for s in service_specs() if s.name == "gateway")
    if token is None:
        try:
            token = mint_user_token(
                settings,
                Principal(subject=CLI_SUBJECT, role=Role.PLATFORM_ADMIN),
                ttl_seconds=6 * 3600,
            )
        except ValueError as exc:
            raise ImportFailed(
                f"Cannot mint a development token ({exc}); pass a platform_admin token from "
                "your identity provider with --token or STELLARA_TOKEN."
            ) from exc
    headers = {"authorization": f"Bearer {token}"}
    return Endpoint(base, lambda: headers, settings.default_tenant_slug, f"the gateway at {base}")


def service_endpoint(url: str) -> Endpoint:
    from stellara_contracts.events import Role
    from stellara_kit.auth import Principal, mint_internal_token
    from tenant_svc.settings import Settings

    settings = Settings()
    principal = Principal(subject=CLI_SUBJECT, role=Role.PLATFORM_ADMIN, via="internal")

    def auth() -> dict[str, str]:  # internal tokens live a minute: one per request
        return {"authorization": f"Bearer {mint_internal_token(settings, principal)}"}

    return Endpoint(url, auth, settings.default_tenant_slug, f"tenant-svc at {url}")


@dataclass
class ImportResult:
    tenant: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(r["outcome"] == outcome for r in self.results)


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    detail = body.get("detail") or body.get("title") or response.reason_phrase
    return f"HTTP {response.status_code}: {detail}"


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _send(
    client: httpx.AsyncClient, endpoint: Endpoint, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One request, tried again on a network error or a gateway timeout (the import is
    idempotent: a batch sent twice creates its users once)."""
    for attempt in range(RETRIES + 1):
        try:
            response = await client.request(method, path, headers=endpoint.auth(), **kwargs)
        except httpx.TransportError as exc:
            if attempt == RETRIES:
                raise ImportFailed(
                    f"Cannot reach {endpoint.description} ({type(exc).__name__}: {exc}). Is the "
                    "system running (`make up`)? Rerunning the import later is safe."
                ) from exc
        else:
            if response.status_code not in (502, 503, 504) or attempt == RETRIES:
                return response
        await asyncio.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")


async def import_users(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    users: UserFile,
    *,
    tenant: str,
    batch_size: int = 500,
    advance: Callable[[int], None] = lambda n: None,
) -> ImportResult:
    """Send the rows of ``users`` to ``tenant`` (slug or id) in batches; every row's outcome."""
    response = await _send(client, endpoint, "GET", f"/tenants/{tenant}")
    if response.status_code == 404:
        raise ImportFailed(
            f"There is no tenant {tenant!r} at {endpoint.description}. Name an existing one "
            "with --tenant (its slug or id), or leave it out for the default tenant."
        )
    if response.status_code in (401, 403):
        raise ImportFailed(
            f"{endpoint.description} refused the credentials ({_problem(response)}). The import "
            "needs a platform_admin token with the secrets the system runs with."
        )
    if response.status_code != 200:
        raise ImportFailed(f"Reading tenant {tenant!r} failed: {_problem(response)}")
    result = ImportResult(tenant=response.json())
    result.results.extend(users.invalid)
    advance(len(users.invalid))
    path = f"/tenants/{result.tenant['id']}/members/import"
    for batch in _batches(users.rows, batch_size):
        response = await _send(client, endpoint, "POST", path, json={"rows": batch})
        if response.status_code != 200:
            done = len(result.results) - len(users.invalid)
            hint = " (a smaller --batch-size may fit)" if response.status_code == 422 else ""
            raise ImportFailed(
                f"The import stopped after {done} of {len(users.rows)} rows: "
                f"{_problem(response)}{hint}. Rows sent so far are in; fix the cause and run "
                "the same command again (users already imported are skipped)."
            )
        result.results.extend(response.json()["results"])
        advance(len(batch))
    result.results.sort(key=lambda r: r["line"])
    return result


# ------------------------------------------------------------------ the command
def _summary(result: ImportResult, users: UserFile, report: Path | None) -> None:
    tenant = result.tenant
    out.print(
        f"[bold]{tenant['name']} ({tenant['slug']}):[/] {result.count('created')} created, "
        f"{result.count('skipped')} skipped, {result.count('invalid')} "
        f"invalid, of {users.total} rows."
    )
    invalid = [r for r in result.results if r["outcome"] == "invalid"]
    for row in invalid[:INVALID_SHOWN]:
        out.print(f"  line {row['line']}: invalid: {row['reason']}")
    if len(invalid) > INVALID_SHOWN:
        more = len(invalid) - INVALID_SHOWN
        hint = "" if report else " (write every row's outcome with --report FILE)"
        out.print(f"  … and {more} more invalid rows{hint}")
    if report is not None:
        with report.open("w", encoding="utf-8") as handle:
            for row in result.results:
                handle.write(json.dumps(row) + "\n")
        out.print(f"every row's outcome: {report}", soft_wrap=True)
    if invalid:
        out.print("Fix the invalid rows and run the import again: imported users are skipped.")


@app.command("import-users")
def import_users_command(
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        readable=True,
        help="CSV with a header line, or JSON lines: email, and optionally role, user_id, name.",
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", help="Slug or id of the tenant (default: the default tenant)."
    ),
    gateway: str | None = typer.Option(
        None, "--gateway", help="The gateway's URL (default: the local stack's gateway)."
    ),
    service_url: str | None = typer.Option(
        None,
        "--service-url",
        help="Talk to tenant-svc at this URL directly, with an internal token.",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="STELLARA_TOKEN",
        help="A platform_admin token for the gateway (default: a development token).",
    ),
    file_format: FileFormat = typer.Option(
        FileFormat.AUTO, "--format", help="How FILE is written (auto: by its name or content)."
    ),
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=BATCH_MAX, help="Rows a request carries."
    ),
    report: Path | None = typer.Option(
        None, "--report", dir_okay=False, help="Write every row's outcome here (JSON lines)."
    ),
) -> None:
    """Bring an existing user base into a tenant, idempotently (running it twice changes
    nothing the second time). Exit code 1 when a row is invalid, 2 when the import could
    not run."""
    if gateway and service_url:
        raise typer.BadParameter("give --gateway or --service-url, not both")
    try:
        users = read_user_file(file, file_format)
        endpoint = (
            service_endpoint(service_url) if service_url else gateway_endpoint(gateway, token)
        )
    except ImportFailed as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    if users.ignored_columns:
        err.print(
            f"ignoring columns this import does not know: {', '.join(sorted(users.ignored_columns))}"
        )
    target = tenant or endpoint.default_tenant
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )

    async def run() -> ImportResult:
        async with httpx.AsyncClient(base_url=endpoint.base_url, timeout=60) as client:
            with progress:
                task = progress.add_task(f"importing into {target}", total=users.total)
                return await import_users(
                    client,
                    endpoint,
                    users,
                    tenant=target,
                    batch_size=batch_size,
                    advance=lambda n: progress.advance(task, n),
                )

    try:
        result = asyncio.run(run())
    except ImportFailed as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    _summary(result, users, report)
    if result.count("invalid"):
        raise typer.Exit(code=1)
