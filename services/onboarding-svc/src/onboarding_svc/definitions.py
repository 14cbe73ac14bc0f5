"""Onboarding workflows as data: ordered steps, their dependencies and how each completes.

A workflow definition is a list of steps. Each step has a key, a title, whether
it is required, the keys of the steps it depends on (which must come earlier, so
a definition can never hold a cycle), and how it completes: ``manual`` (through
``complete-step``) or ``event`` (e.g. when an invitation with a given role is
accepted). The built-in default applies to every plan unless the service's
``workflows_file`` says otherwise::

    default:            # optional: replaces the built-in default
      steps: [...]
    plans:
      enterprise:
        steps: [...]

When a workflow starts, its definition is copied onto the workflow's steps, so
editing the file later never changes a workflow that is already running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stellara_contracts.events import Role

STEP_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManualCompletion(_Frozen):
    """The step is completed by a person through ``complete-step``."""

    kind: Literal["manual"] = "manual"


class InvitationAcceptedCompletion(_Frozen):
    """The step completes by itself when an invitation (with ``role``, if set) is accepted."""

    kind: Literal["event"] = "event"
    event: Literal["invitation_accepted"] = "invitation_accepted"
    role: Role | None = Field(
        default=None,
        description="Only invitations with this role count.",
        examples=["tenant_admin"],
    )

    def matches(self, role: str) -> bool:
        return self.role is None or self.role == role


Completion = Annotated[ManualCompletion | InvitationAcceptedCompletion, Field(discriminator="kind")]


class StepDefinition(_Frozen):
    """One step of an onboarding workflow."""

    key: str = Field(pattern=STEP_KEY_PATTERN, examples=["configure_tenant"])
    title: str = Field(min_length=1, max_length=200, examples=["Configure the tenant"])
    required: bool = Field(
        default=True, description="Onboarding completes when every required step is done."
    )
    depends_on: tuple[str, ...] = Field(
        default=(), description="Keys of earlier steps that must be done (or skipped) first."
    )
    completion: Completion = Field(default_factory=ManualCompletion)

    @property
    def is_manual(self) -> bool:
        return isinstance(self.completion, ManualCompletion)


class WorkflowDefinition(_Frozen):
    """The ordered steps of one onboarding workflow."""

    steps: tuple[StepDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_steps(self) -> WorkflowDefinition:
        seen: set[str] = set()
        for step in self.steps:
            if step.key in seen:
                raise ValueError(f"step {step.key!r} appears twice")
            unknown = [d for d in step.depends_on if d not in seen]
            if unknown:
                raise ValueError(
                    f"step {step.key!r} depends on {', '.join(unknown)}, which must be "
                    "steps listed before it"
                )
            seen.add(step.key)
        if not any(step.required for step in self.steps):
            raise ValueError("a workflow needs at least one required step")
        return self

    @property
    def keys(self) -> list[str]:
        return [step.key for step in self.steps]


class WorkflowCatalogue(_Frozen):
    """The workflow of each plan, and the default for plans not listed."""

    default: WorkflowDefinition
    plans: dict[str, WorkflowDefinition] = Field(default_factory=dict)

    def for_plan(self, plan: str | None) -> WorkflowDefinition:
        if plan is not None and plan in self.plans:
            return self.plans[plan]
        return self.default


DEFAULT_WORKFLOW = WorkflowDefinition(
    steps=(
        StepDefinition(
            key="invite_admin",
            title="Invite the tenant's first administrator",
            completion=InvitationAcceptedCompletion(role=Role.TENANT_ADMIN),
        ),
        StepDefinition(
            key="configure_tenant",
            title="Configure the tenant",
            depends_on=("invite_admin",),
        ),
        StepDefinition(
            key="setup_billing",
            title="Set up billing",
            depends_on=("configure_tenant",),
        ),
        StepDefinition(
            key="verify_domain",
            title="Verify the tenant's domain",
            required=False,
            depends_on=("configure_tenant",),
        ),
    )
)


class WorkflowsFileError(ValueError):
    """The workflows file cannot be read or does not describe valid workflows."""


def load_catalogue(path: Path | None) -> WorkflowCatalogue:
    """The workflow catalogue from ``path`` (JSON or YAML), or the built-in default."""
    if path is None:
        return WorkflowCatalogue(default=DEFAULT_WORKFLOW)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowsFileError(f"cannot read workflows file {path}: {exc}") from exc
    try:
        raw: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise WorkflowsFileError(f"workflows file {path} is not valid JSON/YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WorkflowsFileError(
            f"workflows file {path} must hold a mapping with `default` and/or `plans`"
        )
    raw.setdefault("default", DEFAULT_WORKFLOW.model_dump(mode="json"))
    try:
        return WorkflowCatalogue.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise WorkflowsFileError(f"workflows file {path} is not valid: {problems}") from exc
