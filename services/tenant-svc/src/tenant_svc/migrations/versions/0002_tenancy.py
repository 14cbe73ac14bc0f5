"""tenants, configuration with history, members, API keys, received events, idempotency keys

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from stellara_kit.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)
JSONB = postgresql.JSONB()
NOW = sa.text("now()")

#: tables holding data that belongs to one tenant: row-level security, enabled and forced
TENANT_SCOPED = (
    "tenant_configs",
    "tenant_config_history",
    "tenant_members",
    "tenant_api_keys",
    "tenant_received_events",
)


def _tenant_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"])


def upgrade() -> None:
    # Platform-scoped, no RLS: the tenant row is what a tenant context is derived from
    # (lookups by slug, creation, platform listings); authorization on it is in code.
    op.create_table(
        "tenants",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("slug", name="tenants_slug_key"),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'suspended', 'deleted')", name="tenants_status_check"
        ),
    )
    op.create_index("tenants_created_id_idx", "tenants", ["created_at", "id"])

    op.create_table(
        "tenant_configs",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", JSONB, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "category", "key"),
        _tenant_fk(),
    )

    op.create_table(
        "tenant_config_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("old_value", JSONB, nullable=True),
        sa.Column("new_value", JSONB, nullable=True),
        sa.Column("changed_by", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        # two writers racing on one key cannot both write the same version
        sa.UniqueConstraint(
            "tenant_id", "category", "key", "version", name="tenant_config_history_version_key"
        ),
        sa.CheckConstraint("action IN ('set', 'delete')", name="tenant_config_history_action"),
        _tenant_fk(),
    )
    op.create_index(
        "tenant_config_history_tenant_idx", "tenant_config_history", ["tenant_id", "id"]
    )

    op.create_table(
        "tenant_members",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("via", sa.Text(), nullable=False, server_default="api"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "user_id"),
        sa.CheckConstraint("role IN ('tenant_admin', 'user')", name="tenant_members_role_check"),
        _tenant_fk(),
    )
    op.execute(
        "CREATE UNIQUE INDEX tenant_members_email_key ON tenant_members (tenant_id, lower(email)) "
        "WHERE email IS NOT NULL"
    )

    op.create_table(
        "tenant_api_keys",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("lookup_id", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("lookup_id", name="tenant_api_keys_lookup_key"),
        _tenant_fk(),
    )
    op.create_index("tenant_api_keys_tenant_idx", "tenant_api_keys", ["tenant_id", "created_at"])

    op.create_table(
        "tenant_received_events",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", JSONB, nullable=False, server_default="{}"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("tenant_id", "event_id"),
    )
    op.create_index(
        "tenant_received_events_time_idx", "tenant_received_events", ["tenant_id", "received_at"]
    )

    for table in TENANT_SCOPED:
        enable_tenant_rls(op.execute, table)

    # Belongs to a caller, not a tenant (a key may create a tenant that does not exist yet).
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("headers", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("idempotency_keys_created_idx", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    for table in reversed(TENANT_SCOPED):
        disable_tenant_rls(op.execute, table)
        op.drop_table(table)
    op.drop_table("tenants")
