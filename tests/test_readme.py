"""The README's generated parts match the code, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from stellara_cli.docs import (
    API_END,
    API_START,
    END,
    START,
    render_api_section,
    render_config_section,
    section,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_configuration_tables_match_the_settings_classes() -> None:
    assert section(README, START, END) == render_config_section(), "run `make docs` to refresh"


def test_api_table_matches_the_gateway_route_table() -> None:
    assert section(README, API_START, API_END) == render_api_section(), "run `make docs` to refresh"


def test_quick_start_is_the_two_commands() -> None:
    text = README.read_text()
    quick = text[text.index("## Quick start") :]
    block = re.search(r"```bash\n(.*?)```", quick, re.DOTALL).group(1)  # type: ignore[union-attr]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make up", "make test"]


def test_every_make_target_the_readme_names_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"`make ([a-z][a-z-]*)`", README.read_text()))
    assert named <= targets, f"README names missing make targets: {named - targets}"
