"""The README's generated parts match the code, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from stellara_cli.docs import (
    API_END,
    API_START,
    END,
    SETTINGS_END,
    SETTINGS_START,
    START,
    render_api_section,
    render_config_section,
    section,
    service_readmes,
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


def test_each_service_readme_shows_its_settings_as_the_code_has_them() -> None:
    readmes = service_readmes(ROOT)
    assert {path.parent.name for path, _ in readmes} == {
        p.name for p in (ROOT / "services").iterdir() if p.is_dir()
    }, "every service has a README"
    for path, expected in readmes:
        assert section(path, SETTINGS_START, SETTINGS_END) == expected, f"{path}: run `make docs`"


def test_relative_links_in_the_docs_lead_somewhere() -> None:
    documents = [README, ROOT / "bench" / "RESULTS.md", *ROOT.glob("services/*/README.md")]
    broken = []
    for document in documents:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            if not (document.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{document.relative_to(ROOT)} → {target}")
    assert not broken, broken
