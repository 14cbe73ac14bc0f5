"""The configuration catalogue: categories, platform defaults, JSON Schemas of known keys.

The built-in set is written here; the settings take it as their defaults (so the
environment can override it), and the catalogue is built from the settings and,
when ``config_file`` names one, a JSON or YAML file merged over them. It is
checked at startup: every schema must be a valid JSON Schema and every
default must satisfy its key's schema, so a bad deployment fails early
rather than refusing tenants' writes later.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

if TYPE_CHECKING:
    from tenant_svc.settings import Settings

#: the configuration categories a tenant's keys live in
CONFIG_CATEGORIES: tuple[str, ...] = ("general", "auth", "billing", "features", "integrations")

#: platform defaults, as ``category.key`` → value
BUILTIN_CONFIG_DEFAULTS: dict[str, Any] = {
    "general.locale": "en",
    "general.timezone": "UTC",
    "auth.mfa_required": False,
    "auth.session_ttl_minutes": 60,
    "auth.password_min_length": 12,
    "billing.hard_limit_action": "notify",
    "billing.currency": "USD",
}

#: JSON Schemas of the keys the platform knows, as ``category.key`` → schema
BUILTIN_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "general.locale": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
    "general.timezone": {"type": "string", "minLength": 1, "maxLength": 64},
    "general.display_name": {"type": "string", "minLength": 1, "maxLength": 200},
    "auth.mfa_required": {"type": "boolean"},
    "auth.session_ttl_minutes": {"type": "integer", "minimum": 5, "maximum": 43200},
    "auth.password_min_length": {"type": "integer", "minimum": 8, "maximum": 128},
    "auth.allowed_email_domains": {
        "type": "array",
        "items": {"type": "string", "pattern": r"^[a-z0-9.-]+\.[a-z]{2,}$"},
        "uniqueItems": True,
    },
    "billing.hard_limit_action": {"type": "string", "enum": ["notify", "suspend"]},
    "billing.currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "billing.invoice_email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"},
}

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$")
KEY_MAX_LENGTH = 128
#: a key named in a path: ``category.key``
DOTTED_KEY_PATTERN = (
    "^(?:" + "|".join(CONFIG_CATEGORIES) + r")\." + KEY_PATTERN.pattern.removeprefix("^")
)

ConfigKey = tuple[str, str]


class CatalogueError(ValueError):
    """The configured defaults or schemas are not usable."""


def split_key(dotted: str) -> ConfigKey:
    """``billing.hard_limit_action`` → (``billing``, ``hard_limit_action``)."""
    category, sep, key = dotted.partition(".")
    if not sep or not key:
        raise ValueError(f"{dotted!r} is not of the form `category.key`")
    return category, key


def key_problem(category: str, key: str) -> str | None:
    """Why a (category, key) pair is not acceptable as a name, or None."""
    if category not in CONFIG_CATEGORIES:
        return f"unknown category {category!r}; one of: {', '.join(CONFIG_CATEGORIES)}"
    if len(key) > KEY_MAX_LENGTH or not KEY_PATTERN.match(key):
        return (
            "a key is lowercase letters, digits and underscores, in parts joined by `.` or `-`, "
            f"at most {KEY_MAX_LENGTH} characters"
        )
    return None


def load_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: expected an object with defaults/schemas/closed_categories")
    unknown = set(data) - {"defaults", "schemas", "closed_categories"}
    if unknown:
        raise CatalogueError(f"{path}: unknown sections {sorted(unknown)}")
    return data


@dataclass(frozen=True)
class ConfigCatalogue:
    defaults: dict[ConfigKey, Any]
    validators: dict[ConfigKey, Draft202012Validator]
    closed: frozenset[str]
    max_value_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConfigCatalogue:
        defaults = dict(settings.config_defaults)
        schemas = dict(settings.config_schemas)
        closed = set(settings.closed_config_categories)
        if settings.config_file is not None:
            data = load_file(settings.config_file)
            defaults.update(data.get("defaults") or {})
            schemas.update(data.get("schemas") or {})
            closed.update(data.get("closed_categories") or [])
        unknown = closed - set(CONFIG_CATEGORIES)
        if unknown:
            raise CatalogueError(f"closed_categories names unknown categories {sorted(unknown)}")

        validators: dict[ConfigKey, Draft202012Validator] = {}
        for dotted, schema in schemas.items():
            name = _checked_key(dotted)
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise CatalogueError(f"schema of {dotted} is not valid: {exc.message}") from exc
            validators[name] = Draft202012Validator(schema)
        parsed_defaults = {_checked_key(dotted): value for dotted, value in defaults.items()}
        catalogue = cls(
            parsed_defaults, validators, frozenset(closed), settings.config_value_max_bytes
        )
        for (category, key), value in parsed_defaults.items():
            reason = catalogue.value_problem(category, key, value)
            if reason:
                raise CatalogueError(f"default of {category}.{key} is refused: {reason}")
        return catalogue

    def value_problem(self, category: str, key: str, value: Any) -> str | None:
        """Why ``value`` may not be stored under (category, key), or None."""
        reason = key_problem(category, key)
        if reason:
            return reason
        validator = self.validators.get((category, key))
        if validator is None and category in self.closed:
            return f"category {category!r} is closed: only keys with a schema may be set"
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > self.max_value_bytes:
            return f"the value is {size} bytes of JSON; at most {self.max_value_bytes} are allowed"
        if validator is not None:
            error = best_match(validator.iter_errors(value))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path)
                return f"{error.message}" + (f" (at /{where})" if where else "")
        return None

    def schema_of(self, category: str, key: str) -> dict[str, Any] | None:
        validator = self.validators.get((category, key))
        return dict(validator.schema) if validator is not None else None

    def defaults_in(self, category: str | None = None) -> dict[ConfigKey, Any]:
        return {
            name: value
            for name, value in self.defaults.items()
            if category is None or name[0] == category
        }


def _checked_key(dotted: str) -> ConfigKey:
    try:
        category, key = split_key(dotted)
    except ValueError as exc:
        raise CatalogueError(str(exc)) from exc
    reason = key_problem(category, key)
    if reason:
        raise CatalogueError(f"{dotted}: {reason}")
    return category, key
