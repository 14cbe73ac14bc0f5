"""A client generated from the gateway's `/openapi.json` walks the main story.

At test time, `openapi-python-client` generates a Python client from the
running gateway's document into a temporary folder; every module must
import, and the story (create a tenant, onboarding, invite, accept,
complete the steps, configuration, usage in and out, invoice preview) runs
with nothing but that client, whose calls parse every answer they get —
successes into the services' models, refusals into `Problem`.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx
import jsonschema
import pytest

from stellara_cli.mailsink import read_mailbox
from stellara_contracts.events import Role

from .conftest import System

PACKAGE = "stellara_generated_client"
TOKEN_RE = re.compile(r"/invitations/([A-Za-z0-9_\-]+)/accept")
METRIC = "transactions"
T = TypeVar("T")
generated_from: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def generated(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, imported."""
    folder = tmp_path_factory.mktemp("client")
    document = folder / "openapi.json"
    document.write_bytes(httpx.get(f"{system.gateway_url}/openapi.json", timeout=10).content)
    generated_from[system.gateway_url] = json.loads(document.read_text())
    tools = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(tools / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # the generator formats its output with ruff, found on PATH
        env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the one thing it leaves out is the NDJSON body (not a format it generates)
    said = result.stdout + result.stderr
    warnings = [line for line in said.splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING parsing POST /usage/events within usage."], said
    assert "Unsupported content type application/x-ndjson" in said
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Conformance:
    """Checks every answer the client gets against the document it was generated from: the
    status is documented for the operation, the media type for the status, and the body
    validates against its schema."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.templates = [
            (re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in document["paths"]
        ]
        self.checked = 0

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        path = next(t for pattern, t in self.templates if pattern.match(request.url.path))
        operation = self.document["paths"][path][request.method.lower()]
        where = f"{request.method} {path} → {response.status_code}"
        answer = operation["responses"].get(str(response.status_code))
        assert answer is not None, f"{where} is not documented: {response.text[:300]}"
        content = answer.get("content") or {}
        if not response.content:
            assert not content or response.status_code == 204, where
            return
        media = response.headers["content-type"].split(";")[0]
        assert media in content, f"{where}: {media} is not documented ({sorted(content)})"
        schema = content[media].get("schema")
        if schema is not None and media.endswith("json"):
            validator = jsonschema.Draft202012Validator(
                {**schema, "components": self.document["components"]}
            )
            errors = [e.message for e in validator.iter_errors(response.json())]
            assert not errors, f"{where}: {errors[:3]}"
        self.checked += 1


def module(generated: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{generated.__name__}.{name}")


def eventually(probe: Callable[[], T], until: Callable[[T], bool], *, what: str) -> T:
    deadline = time.monotonic() + 60
    last = probe()
    while not until(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within 60 s (last: {last!r})")
        time.sleep(0.25)
        last = probe()
    return last


def test_every_generated_module_imports(generated: ModuleType) -> None:
    names = [m.name for m in pkgutil.walk_packages(generated.__path__, f"{generated.__name__}.")]
    for name in names:
        importlib.import_module(name)
    operations = [n for n in names if ".api." in n and n.count(".") == 3]
    assert len(operations) >= 40, operations  # every public route (and health, metrics)


def test_a_generated_client_walks_the_story(generated: ModuleType, system: System) -> None:
    client_module = module(generated, "client")
    m = module(generated, "models")
    api = f"{generated.__name__}.api"

    def call(operation: str, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module(f"{api}.{operation}").sync_detailed(*args, **kwargs)

    target = system.target()
    conformance = Conformance(generated_from[system.gateway_url])

    def as_(token: str, prefix: str = "Bearer") -> Any:
        return client_module.AuthenticatedClient(
            base_url=system.gateway_url,
            token=token,
            prefix=prefix,
            timeout=httpx.Timeout(30),
            httpx_args={"event_hooks": {"response": [conformance]}},
        )

    admin = as_(target.token(Role.PLATFORM_ADMIN, subject="generated-client-operator"))

    # refusals parse as problems
    nobody = as_("not-a-token")
    refused = call("tenants.get_tenants", client=nobody)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, m.Problem) and refused.parsed.status == 401

    # create a tenant
    slug = f"gen-{uuid.uuid4().hex[:8]}"
    created = call(
        "tenants.post_tenants",
        client=admin,
        body=m.TenantCreate(name=f"Generated {slug}", slug=slug, plan="starter"),
        idempotency_key=str(uuid.uuid4()),
    )
    assert created.status_code == 201, created.content
    tenant = created.parsed
    assert isinstance(tenant, m.TenantOut) and tenant.status == m.TenantStatus.PENDING
    assert created.headers["location"] == f"/tenants/{tenant.id}"
    assert created.headers["etag"] == f'"{tenant.version}"'
    tenant_id = str(tenant.id)

    missing = call("tenants.get_tenants_id", str(uuid.uuid4()), client=admin)
    assert missing.status_code == 404 and missing.parsed.type_.endswith("tenant-not-found")

    # onboarding starts by itself; starting it again is a documented 409
    status = eventually(
        lambda: call("onboarding.get_tenants_id_onboarding_status", tenant_id, client=admin),
        lambda r: r.status_code == 200,
        what="onboarding starts",
    )
    assert isinstance(status.parsed, m.OnboardingStatus)
    again = call("onboarding.post_tenants_id_onboard", tenant_id, client=admin)
    assert again.status_code == 409 and isinstance(again.parsed, m.Problem)

    # invite an admin; the mail carries the token
    email = f"admin@{slug}.example"
    invited = call(
        "invitations.post_tenants_id_invitations",
        tenant_id,
        client=admin,
        body=m.InvitationIn(email=email, role=m.InvitationInRole.TENANT_ADMIN),
    )
    assert invited.status_code == 201, invited.content
    assert isinstance(invited.parsed, m.InvitationOut)

    def mail() -> str | None:
        return next((x.text() for x in read_mailbox(system.mail_folder) if email in x.to), None)

    text = eventually(mail, lambda found: found is not None, what="the invitation mail")
    assert text is not None
    match = TOKEN_RE.search(text)
    assert match, text

    # accept it as the invited person (the token carries the invited address)
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    invitee = as_(target.token(Role.USER, subject=user_id, email=email))
    accepted = call("invitations.post_invitations_token_accept", match.group(1), client=invitee)
    assert accepted.status_code == 200, accepted.content
    assert isinstance(accepted.parsed, m.AcceptedInvitation)
    assert str(accepted.parsed.tenant_id) == tenant_id

    def members() -> Any:
        return call("members.get_tenants_id_members", tenant_id, client=admin)

    eventually(
        members,
        lambda r: r.status_code == 200 and any(x.user_id == user_id for x in r.parsed.items),
        what="the invited admin becomes a member",
    )
    ada = as_(target.token(Role.TENANT_ADMIN, tenant_id=tenant.id, subject=user_id, email=email))

    # complete the manual steps; the tenant becomes active
    for step in ("configure_tenant", "setup_billing"):
        done = call(
            "onboarding.post_tenants_id_onboard_complete_step",
            tenant_id,
            client=ada,
            body=m.CompleteStep(
                step_key=step, payload=m.CompleteStepPayloadType0.from_dict({"by": "client"})
            ),
        )
        assert done.status_code == 200, done.content
        assert isinstance(done.parsed, m.OnboardingStatus)
    eventually(
        lambda: call("tenants.get_tenants_id", tenant_id, client=admin),
        lambda r: r.status_code == 200 and r.parsed.status == m.TenantStatus.ACTIVE,
        what="the tenant becomes active",
    )

    # configuration: set, read, a stale If-Match is a 412
    entry = call(
        "configuration.post_tenants_id_config",
        tenant_id,
        client=ada,
        body=m.ConfigSet(
            category=m.ConfigSetCategory.BILLING, key="hard_limit_action", value="notify"
        ),
    )
    assert entry.status_code == 201, entry.content
    assert isinstance(entry.parsed, m.ConfigEntryOut)
    read = call(
        "configuration.get_tenants_id_config_key",
        tenant_id,
        "billing.hard_limit_action",
        client=ada,
    )
    assert read.status_code == 200 and read.parsed.value == "notify"
    stale = call(
        "configuration.put_tenants_id_config_key",
        tenant_id,
        "billing.hard_limit_action",
        client=ada,
        body=m.ConfigValueIn(value="suspend"),
        if_match='"999"',
    )
    assert stale.status_code == 412 and isinstance(stale.parsed, m.Problem)
    updated = call(
        "configuration.put_tenants_id_config_key",
        tenant_id,
        "billing.hard_limit_action",
        client=ada,
        body=m.ConfigValueIn(value="suspend"),
        if_match=read.headers["etag"],
    )
    assert updated.status_code == 200 and updated.parsed.value == "suspend"
    rolled_back = call(
        "configuration.post_tenants_id_config_key_rollback",
        tenant_id,
        "billing.hard_limit_action",
        client=ada,
        body=m.RollbackRequest(version=1),
    )
    assert rolled_back.status_code == 200, rolled_back.content
    (change,) = rolled_back.parsed.changes
    assert (change.old_value, change.new_value) == ("suspend", "notify")

    # usage in: an API key sends a batch (one event invalid, reported by index)
    key = call(
        "api_keys.post_tenants_id_api_keys",
        tenant_id,
        client=ada,
        body=m.ApiKeyCreate(name="generated client", scopes=["usage:write", "usage:read"]),
    )
    assert key.status_code == 201, key.content
    machine = as_(key.parsed.secret, prefix="ApiKey")
    now = datetime.now(UTC)
    events = [
        m.UsageEventIn(
            metric=METRIC,
            value=1,
            occurred_at=now - timedelta(seconds=i),
            properties=m.UsageEventInProperties.from_dict({"channel": "generated"}),
        )
        for i in range(20)
    ]
    events.append(m.UsageEventIn(metric="Not A Meter", value=1, occurred_at=now))
    sent = call("usage.post_usage_events", client=machine, body=m.UsageBatch(events=events))
    assert sent.status_code == 202, sent.content
    result = sent.parsed
    assert isinstance(result, m.IngestionResult)
    assert (result.accepted, result.rejected) == (20, 1)
    assert result.errors[0].index == 20

    # usage out: summary, daily series, invoice preview
    summary = eventually(
        lambda: call("usage.get_tenants_id_usage", tenant_id, client=ada, metric=[METRIC]),
        lambda r: r.status_code == 200 and any(x.events == 20 for x in r.parsed.metrics),
        what="the usage summary counts the events",
    )
    assert isinstance(summary.parsed, m.UsageSummary)
    daily = call(
        "usage.get_tenants_id_usage_daily",
        tenant_id,
        client=ada,
        metric=[METRIC],
        from_=(now - timedelta(days=1)).date().isoformat(),
        to=now.date().isoformat(),
        window=m.GetTenantsIdUsageDailyWindow.DAY,
    )
    assert daily.status_code == 200, daily.content
    assert sum(row.events for row in daily.parsed.rows) == 20
    bad_zone = call("usage.get_tenants_id_usage_daily", tenant_id, client=ada, tz="Nowhere/City")
    assert bad_zone.status_code == 422 and isinstance(bad_zone.parsed, m.Problem)
    invoice = call("billing.get_tenants_id_usage_invoice_preview", tenant_id, client=ada)
    assert invoice.status_code == 200, invoice.content
    assert isinstance(invoice.parsed, m.InvoicePreview) and invoice.parsed.currency

    # a user of the tenant is refused an admin route with the same code as everywhere
    user = as_(target.token(Role.USER, tenant_id=tenant.id, subject="reader"))
    forbidden = call("billing.get_tenants_id_usage_invoice_preview", tenant_id, client=user)
    assert forbidden.status_code == 403 and forbidden.parsed.type_.endswith("role-required")
    assert conformance.checked >= 20  # every answer above matched the document
