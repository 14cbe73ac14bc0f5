"""Tenant configuration rules without a database: which names and values the catalogue
accepts and why it refuses the others, which deployments it refuses to start with, how a
request of many changes is refused as a whole, and what a rollback changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tenant_svc.config.catalogue import CatalogueError, ConfigCatalogue, split_key
from tenant_svc.config.service import Change, rollback_change, validate_changes
from tenant_svc.models import ConfigHistory
from tenant_svc.settings import Settings

SCHEMAS = {
    "billing.hard_limit_action": {"enum": ["notify", "suspend"]},
    "general.locale": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
    "integrations.webhook": {
        "type": "object",
        "properties": {"url": {"type": "string", "pattern": "^https://"}},
        "required": ["url"],
    },
}
DEFAULTS = {"billing.hard_limit_action": "notify", "general.locale": "en"}


def catalogue(**settings: Any) -> ConfigCatalogue:
    values: dict[str, Any] = {
        "config_defaults": DEFAULTS,
        "config_schemas": SCHEMAS,
        "closed_config_categories": ["billing"],
        "config_value_max_bytes": 64,
        **settings,
    }
    return ConfigCatalogue.from_settings(Settings(**values))


@pytest.mark.parametrize(
    ("dotted", "value", "refusal"),
    [
        pytest.param("billing.hard_limit_action", "suspend", None, id="a value the schema allows"),
        pytest.param("billing.hard_limit_action", "explode", "'explode' is not one of", id="outside the enum"),
        pytest.param("general.locale", "de-AT", None, id="a locale"),
        pytest.param("general.locale", "German", "does not match", id="not a locale"),
        pytest.param("general.locale", 7, "is not of type 'string'", id="a number for a string"),
        pytest.param("general.anything", {"free": ["form"]}, None, id="an open category, no schema"),
        pytest.param("billing.discount", 10, "category 'billing' is closed", id="a closed category"),
        pytest.param("payroll.day", 1, "unknown category 'payroll'", id="an unknown category"),
        pytest.param("general.Locale", "en", "a key is lowercase letters", id="capitals in the key"),
        pytest.param("general.a..b", "en", "a key is lowercase letters", id="an empty part"),
        pytest.param("general." + "k" * 129, 1, "at most 128 characters", id="a key too long"),
        pytest.param("general.note", "x" * 100, "at most 64 are allowed", id="a value too large"),
        pytest.param(
            "integrations.webhook", {"url": "http://plain"}, "does not match '^https://' (at /url)",
            id="the refusal says where in the value",
        ),
        pytest.param(
            "integrations.webhook", {}, "'url' is a required property", id="a required property missing"
        ),
    ],
)  # fmt: skip
def test_which_values_a_key_takes(dotted: str, value: Any, refusal: str | None) -> None:
    category, key = split_key(dotted)
    problem = catalogue().value_problem(category, key, value)
    if refusal is None:
        assert problem is None
    else:
        assert problem is not None and refusal in problem, problem


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        pytest.param({"config_schemas": {"general.x": {"type": "colour"}}}, "schema of general.x is not valid", id="a bad schema"),
        pytest.param({"config_defaults": {"general.locale": "English"}}, "default of general.locale is refused", id="a default breaking its schema"),
        pytest.param({"config_defaults": {"billing.discount": 5}}, "default of billing.discount is refused: category 'billing' is closed", id="a default in a closed category"),
        pytest.param({"config_defaults": {"locale": "en"}}, "is not of the form `category.key`", id="a default without category"),
        pytest.param({"config_schemas": {"payroll.day": {}}}, "payroll.day: unknown category", id="a schema of an unknown category"),
    ],
)  # fmt: skip
def test_a_catalogue_that_would_refuse_its_own_defaults_stops_start_up(
    settings: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(CatalogueError, match=refusal):
        catalogue(**settings)


@pytest.mark.parametrize(
    ("text", "refusal", "effect"),
    [
        pytest.param("defaults:\n  general.locale: fr\n", None, ("general", "locale", "fr"), id="a default changed"),
        pytest.param("closed_categories: [general]\n", None, ("general", "anything", "closed"), id="a category closed"),
        pytest.param("", None, ("general", "locale", "en"), id="an empty file"),
        pytest.param("- general\n", "expected an object", None, id="a list"),
        pytest.param("secrets: {}\n", "unknown sections ['secrets']", None, id="an unknown section"),
        pytest.param("closed_categories: [payroll]\n", "unknown categories ['payroll']", None, id="an unknown closed category"),
    ],
)  # fmt: skip
def test_a_config_file_is_merged_over_the_settings(
    tmp_path: Path, text: str, refusal: str | None, effect: tuple[str, str, str] | None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    if refusal is not None:
        with pytest.raises(CatalogueError, match=re.escape(refusal)):
            catalogue(config_file=path)
        return
    loaded = catalogue(config_file=path)
    assert effect is not None
    category, key, expected = effect
    if expected == "closed":
        assert "is closed" in (loaded.value_problem(category, key, 1) or "")
    else:
        assert loaded.defaults_in(category)[(category, key)] == expected


def test_the_built_in_catalogue_accepts_its_own_defaults() -> None:
    built_in = ConfigCatalogue.from_settings(Settings())
    for (category, key), value in built_in.defaults.items():
        assert built_in.value_problem(category, key, value) is None


# ------------------------------------------------------------------ requests of many changes
def set_(dotted: str, value: Any) -> Change:
    return Change(*split_key(dotted), "set", value)


def delete(dotted: str) -> Change:
    return Change(*split_key(dotted), "delete")


@pytest.mark.parametrize(
    ("changes", "refused", "detail"),
    [
        pytest.param([set_("general.locale", "fr")], [], None, id="one good change"),
        pytest.param(
            [set_("general.locale", "fr"), delete("billing.hard_limit_action")], [], None,
            id="a set and a delete",
        ),
        pytest.param(
            [set_("general.locale", "French")], ["general.locale"], "general.locale: ",
            id="one refused: no count",
        ),
        pytest.param(
            [set_("general.locale", "fr"), set_("billing.discount", 1), delete("payroll.day")],
            ["billing.discount", "payroll.day"],
            "2 of 3 changes were refused and nothing was changed: billing.discount: ",
            id="every refused key named, nothing changed",
        ),
        pytest.param(
            [set_("general.locale", "fr"), delete("general.locale")],
            ["general.locale"],
            "changed twice in one request",
            id="a key twice",
        ),
        pytest.param(
            [delete("billing.discount")], [], None,
            id="deleting needs a good name, not a schema",
        ),
    ],
)  # fmt: skip
def test_a_request_of_changes_is_refused_as_a_whole(
    changes: list[Change], refused: list[str], detail: str | None
) -> None:
    try:
        validate_changes(catalogue(), changes)
    except Exception as refusal:
        named = [e["key"] for e in refusal.extensions["errors"]]  # type: ignore[attr-defined]
        message = str(refusal)
    else:
        named, message = [], None
    assert named == refused
    if detail is None:
        assert message is None
    else:
        assert message is not None and detail in message, message


# ------------------------------------------------------------------ rollback
def history_row(action: str, new_value: Any = None, version: int = 1) -> ConfigHistory:
    return ConfigHistory(
        tenant_id=UUID(int=1),
        category="general",
        key="locale",
        version=version,
        action=action,
        old_value=None,
        new_value=new_value,
        changed_by="ada",
        changed_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(history_row("set", "de"), ("set", "de"), id="to a value: set it again"),
        pytest.param(
            history_row("set", {"nested": [1, None]}), ("set", {"nested": [1, None]}),
            id="a structured value, as it was",
        ),
        pytest.param(history_row("set", None), ("set", None), id="a null that was set"),
        pytest.param(history_row("delete", version=3), ("delete", None), id="to a delete: remove it"),
    ],
)  # fmt: skip
def test_a_rollback_brings_back_what_the_version_did(
    target: ConfigHistory, expected: tuple[str, Any]
) -> None:
    change = rollback_change(("general", "locale"), target)
    assert (change.dotted, change.action, change.value) == ("general.locale", *expected)
