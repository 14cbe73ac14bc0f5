"""tenants copy, onboarding workflows and steps, invitations

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

TENANT_TABLES = ("tenants", "onboarding_workflows", "onboarding_steps", "invitations")


def _ts(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    uuid = postgresql.UUID(as_uuid=True)
    op.create_table(
        "tenants",
        sa.Column("tenant_id", uuid, primary_key=True),
        sa.Column("slug", sa.Text()),
        sa.Column("name", sa.Text()),
        sa.Column("plan", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "onboarding_workflows",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("tenant_id", uuid, nullable=False, unique=True),
        sa.Column("plan", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_by", sa.Text(), nullable=False),
        _ts("started_at", nullable=False),
        _ts("completed_at"),
        _ts("cancelled_at"),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'cancelled')", name="workflow_status"
        ),
    )
    op.create_table(
        "onboarding_steps",
        sa.Column(
            "workflow_id",
            uuid,
            sa.ForeignKey("onboarding_workflows.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("tenant_id", uuid, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("depends_on", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("completion", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        _ts("started_at"),
        _ts("completed_at"),
        sa.Column("completed_by", sa.Text()),
        sa.Column("payload", postgresql.JSONB()),
        _ts("satisfied_at"),
        sa.Column("satisfied_by", sa.Text()),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'done', 'skipped')", name="step_status"
        ),
    )
    op.create_index("onboarding_steps_tenant", "onboarding_steps", ["tenant_id"])
    op.create_table(
        "invitations",
        sa.Column("id", uuid, primary_key=True),
        sa.Column("tenant_id", uuid, nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), unique=True),
        _ts("created_at", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        _ts("expires_at", nullable=False),
        sa.Column("delivery_state", sa.Text(), nullable=False),
        sa.Column("delivery_attempts", sa.Integer(), nullable=False, server_default="0"),
        _ts("next_delivery_at"),
        sa.Column("last_delivery_error", sa.Text()),
        _ts("sent_at"),
        _ts("accepted_at"),
        sa.Column("accepted_by", sa.Text()),
        _ts("revoked_at"),
        sa.Column("revoked_by", sa.Text()),
        _ts("expired_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'revoked', 'expired')", name="invitation_status"
        ),
        sa.CheckConstraint(
            "delivery_state IN ('pending', 'sent', 'failed')", name="invitation_delivery_state"
        ),
    )
    op.create_index("invitations_tenant_created", "invitations", ["tenant_id", "created_at", "id"])
    # one open invitation per address and tenant
    op.create_index(
        "invitations_open_email",
        "invitations",
        ["tenant_id", sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    # what the sender and the sweeper look for
    op.create_index(
        "invitations_due_delivery",
        "invitations",
        ["next_delivery_at"],
        postgresql_where=sa.text("status = 'pending' AND delivery_state = 'pending'"),
    )
    op.create_index(
        "invitations_open_expiry",
        "invitations",
        ["expires_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    for table in TENANT_TABLES:
        enable_tenant_rls(op.execute, table)


def downgrade() -> None:
    for table in reversed(TENANT_TABLES):
        disable_tenant_rls(op.execute, table)
        op.drop_table(table)
