"""Tenant configuration: platform defaults with tenant overrides, schemas, history, rollback.

Every write — one key or many — goes through :func:`apply_changes`: all
changes are validated first (schemas, closed categories, sizes), then
applied in the caller's transaction together with one history row per key
and one TenantConfigChanged listing every change. A refused change refuses
them all.

Writers of one tenant's configuration take turns (:func:`repository.serialise_writes`)
before they read or lock anything of it: a writer that looked first (is the key
set? which version is it at?) would answer from a state another writer is about
to change, and one that locked a row before waiting its turn would wait on a
writer waiting for that row — a deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from stellara_contracts.events import ConfigChange, TenantConfigChanged, TenantStatus
from stellara_kit.outbox import EventSink
from tenant_svc.config import repository
from tenant_svc.config.catalogue import ConfigCatalogue, ConfigKey, key_problem
from tenant_svc.errors import (
    ConfigKeyNotFound,
    ConfigVersionNotFound,
    InvalidConfig,
    TenantDeleted,
    VersionMismatch,
)
from tenant_svc.models import ConfigHistory, Tenant

Source = Literal["tenant", "default"]


@dataclass(frozen=True)
class Change:
    """One requested change of a key."""

    category: str
    key: str
    action: Literal["set", "delete"]
    value: Any = None

    @property
    def name(self) -> ConfigKey:
        return (self.category, self.key)

    @property
    def dotted(self) -> str:
        return f"{self.category}.{self.key}"


@dataclass(frozen=True)
class ConfigValue:
    """A key's value as a reader sees it, and where it came from."""

    category: str
    key: str
    value: Any
    source: Source
    version: int | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


async def read_config(
    session: AsyncSession,
    catalogue: ConfigCatalogue,
    tenant_id: UUID,
    *,
    category: str | None = None,
    effective: bool = True,
) -> list[ConfigValue]:
    """The tenant's values; with ``effective``, merged over the platform defaults."""
    values: dict[ConfigKey, ConfigValue] = {}
    if effective:
        for (cat, key), value in catalogue.defaults_in(category).items():
            values[(cat, key)] = ConfigValue(cat, key, value, "default")
    for entry in await repository.entries(session, tenant_id, category=category):
        values[(entry.category, entry.key)] = ConfigValue(
            entry.category,
            entry.key,
            entry.value,
            "tenant",
            entry.version,
            entry.updated_at,
            entry.updated_by,
        )
    return [values[name] for name in sorted(values)]


async def read_value(
    session: AsyncSession, catalogue: ConfigCatalogue, tenant_id: UUID, name: ConfigKey
) -> ConfigValue:
    """One key, effective (the tenant's value, else the platform default)."""
    for value in await read_config(session, catalogue, tenant_id, category=name[0]):
        if (value.category, value.key) == name:
            return value
    raise ConfigKeyNotFound(
        f"{name[0]}.{name[1]} is neither set for this tenant nor has a platform default.",
        key=f"{name[0]}.{name[1]}",
    )


def validate_changes(catalogue: ConfigCatalogue, changes: list[Change]) -> None:
    """Refuse the whole request, naming every refused key and why."""
    errors: list[dict[str, str]] = []
    seen: set[ConfigKey] = set()
    for change in changes:
        if change.name in seen:
            errors.append({"key": change.dotted, "reason": "changed twice in one request"})
            continue
        seen.add(change.name)
        if change.action == "set":
            reason = catalogue.value_problem(change.category, change.key, change.value)
        else:
            reason = key_problem(change.category, change.key)
        if reason:
            errors.append({"key": change.dotted, "reason": reason})
    if errors:
        _refuse(errors, len(changes))


def _refuse(errors: list[dict[str, str]], total: int) -> None:
    listed = "; ".join(f"{e['key']}: {e['reason']}" for e in errors[:5])
    prefix = (
        f"{len(errors)} of {total} changes were refused and nothing was changed: "
        if total > 1
        else ""
    )
    raise InvalidConfig(prefix + listed, errors=errors)


async def apply_changes(
    session: AsyncSession,
    sink: EventSink,
    catalogue: ConfigCatalogue,
    tenant: Tenant,
    changes: list[Change],
    *,
    actor: str | None,
    expected_version: int | None = None,
) -> list[ConfigChange]:
    """Apply every change or none; returns what changed (unchanged values are skipped).

    ``expected_version`` (a single change only) is the key's version the caller read.
    """
    if tenant.status == TenantStatus.DELETED:
        raise TenantDeleted("A deleted tenant's configuration cannot be changed.")
    validate_changes(catalogue, changes)
    names = [c.name for c in changes]
    await repository.serialise_writes(session, tenant.id)
    current = await repository.locked_entries(session, tenant.id, names)
    if expected_version is not None:
        entry = current.get(changes[0].name)
        found = entry.version if entry is not None else None
        if found != expected_version:
            raise VersionMismatch(
                f"{changes[0].dotted} is at version {found or 'none (not set)'}, "
                f"not {expected_version}; read it again and retry.",
                key=changes[0].dotted,
                current_version=found,
            )
    missing = [c for c in changes if c.action == "delete" and c.name not in current]
    if missing:
        _refuse(
            [{"key": c.dotted, "reason": "not set for this tenant"} for c in missing], len(changes)
        )

    versions = await repository.last_versions(session, tenant.id, names)
    now = datetime.now(UTC)
    applied: list[ConfigChange] = []
    history: list[dict[str, Any]] = []
    for change in changes:
        entry = current.get(change.name)
        if change.action == "set" and entry is not None and entry.value == change.value:
            continue
        old_value = entry.value if entry is not None else None
        version = versions.get(change.name, 0) + 1
        if change.action == "set":
            await repository.upsert(
                session,
                tenant.id,
                change.name,
                value=change.value,
                version=version,
                at=now,
                by=actor,
            )
        else:
            await repository.remove(session, tenant.id, change.name)
        history.append(
            {
                "tenant_id": tenant.id,
                "category": change.category,
                "key": change.key,
                "version": version,
                "action": change.action,
                "old_value": old_value,
                "new_value": change.value if change.action == "set" else None,
                "changed_by": actor,
                "changed_at": now,
            }
        )
        applied.append(
            ConfigChange(
                category=change.category,
                key=change.key,
                action=change.action,
                old_value=old_value,
                new_value=change.value if change.action == "set" else None,
                version=version,
            )
        )
    await repository.add_history(session, history)
    if applied:
        await sink.publish(
            session, TenantConfigChanged(tenant_id=tenant.id, changes=applied, changed_by=actor)
        )
    return applied


async def set_key(
    session: AsyncSession,
    sink: EventSink,
    catalogue: ConfigCatalogue,
    tenant: Tenant,
    name: ConfigKey,
    value: Any,
    *,
    actor: str | None,
    expected_version: int | None = None,
) -> tuple[ConfigValue, bool]:
    """Set one key; its value afterwards, and whether the tenant had not set it before."""
    await repository.serialise_writes(session, tenant.id)
    existed = bool(await repository.locked_entries(session, tenant.id, [name]))
    await apply_changes(
        session,
        sink,
        catalogue,
        tenant,
        [Change(name[0], name[1], "set", value)],
        actor=actor,
        expected_version=expected_version,
    )
    return await read_value(session, catalogue, tenant.id, name), not existed


async def delete_key(
    session: AsyncSession,
    sink: EventSink,
    catalogue: ConfigCatalogue,
    tenant: Tenant,
    name: ConfigKey,
    *,
    actor: str | None,
    expected_version: int | None = None,
) -> list[ConfigChange]:
    """Remove the tenant's value of one key (the platform default applies again)."""
    await repository.serialise_writes(session, tenant.id)
    if not await repository.locked_entries(session, tenant.id, [name]):
        raise ConfigKeyNotFound(
            f"{name[0]}.{name[1]} is not set for this tenant.", key=".".join(name)
        )
    return await apply_changes(
        session,
        sink,
        catalogue,
        tenant,
        [Change(name[0], name[1], "delete")],
        actor=actor,
        expected_version=expected_version,
    )


async def rollback(
    session: AsyncSession,
    sink: EventSink,
    catalogue: ConfigCatalogue,
    tenant: Tenant,
    name: ConfigKey,
    version: int,
    *,
    actor: str | None,
) -> list[ConfigChange]:
    """Bring a key back to what it was at ``version`` (recorded as a new version)."""
    await repository.serialise_writes(session, tenant.id)
    target = await repository.history_version(session, tenant.id, name, version)
    if target is None:
        raise ConfigVersionNotFound(
            f"{name[0]}.{name[1]} has no version {version}; list its history to see them.",
            key=".".join(name),
            version=version,
        )
    if target.action == "delete" and not await repository.locked_entries(
        session, tenant.id, [name]
    ):
        return []  # removed then and not set now: nothing to bring back
    change = rollback_change(name, target)
    return await apply_changes(session, sink, catalogue, tenant, [change], actor=actor)


def rollback_change(name: ConfigKey, target: ConfigHistory) -> Change:
    """The change that brings a key back to the history row ``target``: the value it set,
    or, when it removed the key, its removal again."""
    if target.action == "delete":
        return Change(name[0], name[1], "delete")
    return Change(name[0], name[1], "set", target.new_value)


async def history(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    name: ConfigKey | None = None,
    category: str | None = None,
    before_id: int | None = None,
    limit: int,
) -> list[ConfigHistory]:
    return await repository.history_page(
        session,
        tenant_id,
        category=name[0] if name else category,
        key=name[1] if name else None,
        before_id=before_id,
        limit=limit,
    )
