"""Generated parts of the README: configuration tables from the settings classes and the
public route table from the gateway's own route table.

``make docs`` rewrites the README between the ``<!-- config:… -->`` and
``<!-- api:… -->`` markers; a test fails while they differ.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from stellara_cli.stack import service_specs

START, END = "<!-- config:start -->", "<!-- config:end -->"


def _default(field: Any) -> str:
    value = field.default
    if value is PydanticUndefined:
        return "*(required)*" if field.default_factory is None else "*(computed)*"
    if isinstance(value, SecretStr):
        return "*(secret; dev placeholder)*"
    if value is None:
        return "*(unset)*"
    if value == "":
        return "*(empty)*"
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        text = json.dumps(
            sorted(value) if isinstance(value, (set, frozenset)) else value, default=str
        )
        return f"`{text}`" if len(text) <= 60 else "*(see settings.py)*"
    return f"`{value}`"


def settings_table(service: str, package: str) -> str:
    cls = importlib.import_module(f"{package}.settings").Settings
    prefix = cls.model_config.get("env_prefix", "")
    rows = [
        f"#### {service} (`{prefix}*`)",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in cls.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def render_config_section() -> str:
    tables = [settings_table(spec.name, spec.package) for spec in service_specs()]
    return "\n\n".join([START, *tables, END])


API_START, API_END = "<!-- api:start -->", "<!-- api:end -->"

_ACCESS_TEXT = {
    "platform_admin": "platform_admin",
    "tenant_admin": "tenant_admin of the tenant",
    "tenant_read": "any member of the tenant (user, tenant_admin)",
    "authenticated": "anyone signed in",
    "usage_write": "tenant_admin, or an API key with `usage:write`",
    "invitee": "the invited person (signed in)",
}


def render_api_section() -> str:
    """The public route table, from the gateway's own route table."""
    from gateway.routes import ROUTES

    rows = [
        API_START,
        "| method | path | who may call it (platform_admin always may) | API key scopes | served by |",
        "|---|---|---|---|---|",
    ]
    for route in ROUTES:
        scopes = ", ".join(f"`{s}`" for s in sorted(route.api_key_scopes)) or "—"
        who = _ACCESS_TEXT.get(str(route.access), str(route.access))
        rows.append(f"| `{route.method}` | `{route.path}` | {who} | {scopes} | {route.service} |")
    rows.append(API_END)
    return "\n".join(rows)


def _replace(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the README has no {start} … {end} section")
    return pattern.sub(lambda _: body, text)


def update_all(readme: Path) -> bool:
    text = readme.read_text()
    updated = _replace(text, START, END, render_config_section())
    updated = _replace(updated, API_START, API_END, render_api_section())
    if updated != text:
        readme.write_text(updated)
        return True
    return False


def section(readme: Path, start: str, end: str) -> str | None:
    match = re.search(re.escape(start) + ".*?" + re.escape(end), readme.read_text(), re.DOTALL)
    return match.group(0) if match else None
