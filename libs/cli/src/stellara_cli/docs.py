"""Generated parts of the README: configuration tables from the settings classes.

``make docs`` rewrites the README between the ``<!-- config:start -->`` and
``<!-- config:end -->`` markers; a test fails while they differ.
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
        return ""
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


def update_readme(readme: Path) -> bool:
    """Rewrite the generated section; returns True if the file changed."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {START} … {END} section")
    updated = pattern.sub(lambda _: render_config_section(), text)
    if updated != text:
        readme.write_text(updated)
        return True
    return False


def readme_section(readme: Path) -> str | None:
    match = re.search(re.escape(START) + ".*?" + re.escape(END), readme.read_text(), re.DOTALL)
    return match.group(0) if match else None
