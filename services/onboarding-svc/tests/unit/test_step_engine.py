"""The onboarding step engine, in memory: which steps a workflow holds, what completing,
skipping or an accepted invitation does to them, what is refused and what is announced.

The workflow and its steps are the service's own rows, held in memory: the engine's
session only collects them (``add_all``/``flush``) and its outbox keeps the events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from onboarding_svc.definitions import (
    DEFAULT_WORKFLOW,
    InvitationAcceptedCompletion,
    WorkflowCatalogue,
    WorkflowDefinition,
    WorkflowsFileError,
    load_catalogue,
)
from onboarding_svc.models import Tenant
from onboarding_svc.service import Onboarding, WorkflowView
from stellara_contracts import CloudEvent
from stellara_kit.outbox import EventSink

TENANT = UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


# ------------------------------------------------------------------ definitions
def steps(*specs: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [{"title": s.get("key", "step").title(), **s} for s in specs]}


@pytest.mark.parametrize(
    ("definition", "refusal"),
    [
        pytest.param(steps({"key": "a"}), None, id="one required step"),
        pytest.param(
            steps({"key": "a"}, {"key": "b", "depends_on": ["a"]}), None, id="depends on an earlier step"
        ),
        pytest.param({"steps": []}, "at least 1 item", id="no step"),
        pytest.param(steps({"key": "a"}, {"key": "a"}), "step 'a' appears twice", id="a key twice"),
        pytest.param(
            steps({"key": "a", "depends_on": ["b"]}, {"key": "b"}),
            "step 'a' depends on b, which must be steps listed before it",
            id="depends on a later step (no cycles)",
        ),
        pytest.param(
            steps({"key": "a", "depends_on": ["a"]}), "step 'a' depends on a", id="depends on itself"
        ),
        pytest.param(
            steps({"key": "a", "required": False}),
            "a workflow needs at least one required step",
            id="only optional steps",
        ),
        pytest.param(steps({"key": "Bad-Key"}), "String should match pattern", id="key off the pattern"),
        pytest.param(steps({"key": "a", "title": ""}), "at least 1 character", id="empty title"),
        pytest.param(
            steps({"key": "a", "completion": {"kind": "event", "role": "owner"}}),
            "Input should be",
            id="an unknown role",
        ),
        pytest.param(
            steps({"key": "a", "completion": {"kind": "webhook"}}),
            "does not match any of the expected tags",
            id="an unknown completion",
        ),
        pytest.param(steps({"key": "a", "colour": "red"}), "Extra inputs", id="an unknown field"),
    ],
)  # fmt: skip
def test_a_workflow_definition_is_checked(definition: dict[str, Any], refusal: str | None) -> None:
    if refusal is None:
        assert WorkflowDefinition.model_validate(definition).keys
        return
    with pytest.raises(ValueError, match=refusal):
        WorkflowDefinition.model_validate(definition)


@pytest.mark.parametrize(
    ("name", "text", "plans"),
    [
        pytest.param(
            "w.yaml", "", {"any": DEFAULT_WORKFLOW.keys}, id="empty: the built-in default"
        ),
        pytest.param(
            "w.yaml",
            "plans:\n  enterprise:\n    steps:\n      - {key: sso, title: SSO}\n",
            {"enterprise": ["sso"], "free": DEFAULT_WORKFLOW.keys},
            id="a plan of its own, the default for the others",
        ),
        pytest.param(
            "w.json",
            '{"default": {"steps": [{"key": "hello", "title": "Hello"}]}}',
            {"free": ["hello"], "": ["hello"]},
            id="the default replaced (JSON)",
        ),
    ],
)
def test_a_workflows_file_gives_each_plan_its_workflow(
    tmp_path: Path, name: str, text: str, plans: dict[str, list[str]]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    catalogue = load_catalogue(path)
    for plan, keys in plans.items():
        assert catalogue.for_plan(plan or None).keys == keys


@pytest.mark.parametrize(
    ("name", "text", "refusal"),
    [
        pytest.param("w.yaml", "- a\n- b\n", "must hold a mapping", id="a list"),
        pytest.param("w.yaml", "plans: [\n", "is not valid JSON/YAML", id="broken YAML"),
        pytest.param("w.json", "{", "is not valid JSON/YAML", id="broken JSON"),
        pytest.param(
            "w.yaml",
            "plans:\n  pro:\n    steps: [{key: a, title: A, required: false}]\n",
            "plans.pro: Value error, a workflow needs at least one required step",
            id="a plan without a required step",
        ),
        pytest.param("w.yaml", "extra: 1\n", "extra: Extra inputs", id="an unknown section"),
        pytest.param(None, "", "cannot read workflows file", id="a missing file"),
    ],
)
def test_a_bad_workflows_file_is_refused_saying_where(
    tmp_path: Path, name: str | None, text: str, refusal: str
) -> None:
    path = tmp_path / (name or "missing.yaml")
    if name is not None:
        path.write_text(text)
    with pytest.raises(WorkflowsFileError, match=refusal):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("wanted", "accepted", "matches"),
    [(None, "user", True), (None, "tenant_admin", True), ("tenant_admin", "tenant_admin", True),
     ("tenant_admin", "user", False)],
)  # fmt: skip
def test_which_accepted_invitations_complete_a_step(
    wanted: str | None, accepted: str, matches: bool
) -> None:
    assert (
        InvitationAcceptedCompletion.model_validate({"role": wanted}).matches(accepted) is matches
    )


# ------------------------------------------------------------------ the engine, in memory
@dataclass
class Outbox:
    events: list[CloudEvent] = field(default_factory=list)

    async def add_all(self, session: Any, events: Any) -> None:
        self.events.extend(events)


class Rows:
    """All the engine asks of its session: to take new rows and flush."""

    def add_all(self, rows: Any) -> None:
        pass

    async def flush(self) -> None:
        pass


class InMemoryOnboarding(Onboarding):
    """The engine with its one workflow held here instead of read back with a row lock."""

    view: WorkflowView | None = None

    async def _locked(self, session: Any, tenant_id: UUID) -> WorkflowView | None:
        return self.view


@dataclass
class Run:
    engine: InMemoryOnboarding
    outbox: Outbox

    @property
    def view(self) -> WorkflowView:
        assert self.engine.view is not None
        return self.engine.view

    def statuses(self) -> dict[str, str]:
        return {step.key: str(step.status) for step in self.view.steps}

    def announced(self) -> list[str]:
        names = []
        for event in self.outbox.events:
            kind = event.type.removeprefix("stellara.onboarding.").removesuffix(".v1")
            step = getattr(event.data, "step_key", None)
            names.append(f"{kind}:{step}" if step else kind)
        return names


def start(definition: WorkflowDefinition = DEFAULT_WORKFLOW) -> Run:
    outbox = Outbox()
    engine = InMemoryOnboarding(
        sink=EventSink(outbox, source="onboarding-svc"),  # type: ignore[arg-type]
        catalogue=WorkflowCatalogue(default=definition),
        clock=lambda: AT,
    )
    tenant = Tenant(tenant_id=TENANT, slug="acme", name="Acme", plan="starter", status="pending")
    engine.view = asyncio.run(engine._start(Rows(), tenant, started_by="ada"))  # type: ignore[arg-type]
    return Run(engine, outbox)


def act(run: Run, action: str) -> str | None:
    """``complete:<key>``, ``skip:<key>`` or ``accept:<role>``; the refusal's name, if any."""
    verb, _, argument = action.partition(":")
    session: Any = Rows()
    try:
        if verb == "accept":
            coroutine = run.engine.invitation_accepted(
                session, TENANT, role=argument, user_id="bob"
            )
        else:
            coroutine = run.engine.complete_step(
                session, TENANT, argument, by="ada", skip=verb == "skip"
            )
        asyncio.run(coroutine)
    except Exception as refused:
        return type(refused).__name__
    return None


P, IP, D, S = "pending", "in_progress", "done", "skipped"
KEYS = ("invite_admin", "configure_tenant", "setup_billing", "verify_domain")


def default_steps(*statuses: str) -> dict[str, str]:
    return dict(zip(KEYS, statuses, strict=True))


@pytest.mark.parametrize(
    ("actions", "statuses", "workflow", "percent"),
    [
        pytest.param([], default_steps(IP, P, P, P), "running", 0, id="started"),
        pytest.param(["accept:user"], default_steps(IP, P, P, P), "running", 0, id="a user's invitation"),
        pytest.param(["accept:tenant_admin"], default_steps(D, IP, P, P), "running", 33, id="an admin's"),
        pytest.param(
            ["accept:tenant_admin", "complete:configure_tenant"],
            default_steps(D, D, IP, IP),
            "running",
            66,
            id="two steps open at once",
        ),
        pytest.param(
            ["accept:tenant_admin", "complete:configure_tenant", "skip:verify_domain"],
            default_steps(D, D, IP, S),
            "running",
            66,
            id="an optional step skipped",
        ),
        pytest.param(
            ["accept:tenant_admin", "complete:configure_tenant", "complete:setup_billing"],
            default_steps(D, D, D, S),
            "completed",
            100,
            id="every required step done: complete, the optional one skipped",
        ),
        pytest.param(
            ["accept:tenant_admin", "complete:configure_tenant", "complete:configure_tenant"],
            default_steps(D, D, IP, IP),
            "running",
            66,
            id="completing twice changes nothing",
        ),
    ],
)  # fmt: skip
def test_steps_progress(
    actions: list[str], statuses: dict[str, str], workflow: str, percent: int
) -> None:
    run = start()
    for action in actions:
        assert act(run, action) is None, action
    assert run.statuses() == statuses
    assert (str(run.view.workflow.status), run.view.percent_complete) == (workflow, percent)
    open_now = [s.key for s in run.view.next_steps]
    assert open_now == [key for key, status in statuses.items() if status == IP]


@pytest.mark.parametrize(
    ("actions", "refusal"),
    [
        pytest.param(["complete:launch_rocket"], "UnknownStep", id="no such step"),
        pytest.param(["complete:invite_admin"], "StepCompletesAutomatically", id="an event step by hand"),
        pytest.param(["accept:tenant_admin", "complete:setup_billing"], "StepBlocked", id="before its dependency"),
        pytest.param(["accept:tenant_admin", "skip:configure_tenant"], "StepNotSkippable", id="skip a required step"),
        pytest.param(
            ["accept:tenant_admin", "complete:configure_tenant", "complete:setup_billing",
             "skip:verify_domain"],
            None,
            id="skipping what completion skipped: changes nothing",
        ),
        pytest.param(
            ["accept:tenant_admin", "complete:configure_tenant", "complete:setup_billing",
             "complete:verify_domain"],
            "OnboardingNotRunning",
            id="completed: steps no longer change",
        ),
    ],
)  # fmt: skip
def test_what_the_engine_refuses(actions: list[str], refusal: str | None) -> None:
    run = start()
    *before, last = actions
    for action in before:
        assert act(run, action) is None, action
    statuses = run.statuses()
    assert act(run, last) == refusal
    assert run.statuses() == statuses  # a refusal changes nothing


def test_a_cancelled_onboarding_refuses_every_step() -> None:
    run = start()
    asyncio.run(run.engine.cancel(Rows(), TENANT))  # type: ignore[arg-type]
    assert str(run.view.workflow.status) == "cancelled"
    assert act(run, "complete:configure_tenant") == "OnboardingNotRunning"
    assert act(run, "accept:tenant_admin") is None  # an event is simply not applied
    assert run.statuses()["invite_admin"] == IP


def test_each_completion_is_announced_once_and_completion_last() -> None:
    run = start()
    for action in ["accept:tenant_admin", "complete:configure_tenant", "complete:configure_tenant",
                   "complete:setup_billing"]:  # fmt: skip
        act(run, action)
    assert run.announced() == [
        "started",
        "step_completed:invite_admin",
        "step_completed:configure_tenant",
        "step_completed:setup_billing",
        "completed",
    ]
    percents = [
        e.data.percent_complete for e in run.outbox.events if e.type.endswith("step_completed.v1")
    ]
    assert percents == [33, 66, 100]


def test_an_invitation_accepted_before_its_step_opens_completes_it_when_it_does() -> None:
    definition = WorkflowDefinition.model_validate(
        steps(
            {"key": "sign_contract"},
            {
                "key": "invite_team",
                "depends_on": ["sign_contract"],
                "completion": {"kind": "event"},
            },
        )
    )
    run = start(definition)
    assert act(run, "accept:user") is None
    assert run.statuses() == {"sign_contract": IP, "invite_team": P}  # waiting, remembered
    assert act(run, "complete:sign_contract") is None
    assert run.statuses() == {"sign_contract": D, "invite_team": D}
    assert str(run.view.workflow.status) == "completed"
    [step] = [s for s in run.view.steps if s.key == "invite_team"]
    assert step.completed_by == "bob"
