"""The gateway's published contract, fuzzed: schemathesis against the running system.

Run by ``make fuzz`` (and CI after ``make test``), not by ``make test``: the file
name keeps it out of the default collection. The whole system runs as real
processes on real Kafka and PostgreSQL (the ``system`` fixture); schemathesis
reads ``/openapi.json`` and throws generated requests at every operation with
every check enabled, once as a platform admin and once as a tenant admin of a
tenant of its own. The pass mark is zero failures.

``FUZZ_MAX_EXAMPLES`` bounds the examples per operation and ``FUZZ_SEED`` fixes
the random seed (printed, so a failing run can be replayed exactly).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from stellara_contracts.events import Role

from ..conftest import System

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))
SEED = int(os.environ.get("FUZZ_SEED", str(random.SystemRandom().randrange(1, 2**31))))


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert found, "schemathesis is not installed: run `make sync`"
    return found


def _tenant_of_its_own(system: System, admin_token: str) -> uuid.UUID:
    slug = f"fuzz-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{system.gateway_url}/tenants",
        json={"name": "Fuzzed tenant", "slug": slug, "plan": "pro"},
        headers={"authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


#: operations whose refusals of schema-valid requests depend on what the deployment configured
#: (plans, API-key scopes, workflow steps, configuration keys and their value schemas) or on
#: rules across parameters (``to`` after ``from``, the longest window, a time zone): a 422
#: problem there is an answer, not drift; 5xx and every other check still count
CATALOGUE_DEPENDENT = (
    "^/tenants$",
    "^/tenants/\\{id\\}$",
    "^/tenants/\\{id\\}/api-keys$",
    "^/tenants/\\{id\\}/config",
    "^/tenants/\\{id\\}/onboard",
    "^/tenants/\\{id\\}/usage",
)
ACCEPTED = '["2xx", "3xx", "401", "403", "404", "409", "412", "429"]'


def _config(path: Path, token: str, tenant_id: uuid.UUID | None) -> Path:
    """A schemathesis.toml: the caller's token and, for a tenant admin, its own tenant in `{id}`."""
    lines = [
        'hooks = "schemathesis_hooks"',
        # each run is its seed alone: nothing replayed from an earlier run's cache
        "cache.enabled = false",
        f'headers = {{ Authorization = "Bearer {token}" }}',
        # every service refuses NUL in any string (422 naming it): nothing can store it
        "generation.allow-x00 = false",
        # a schema-valid request may still fail a precondition of state: If-Match naming
        # another version (412)
        f"checks.positive_data_acceptance.expected-statuses = {ACCEPTED}",
        # too many items is 413, as too large a body is
        "checks.negative_data_rejection.expected-statuses = "
        '["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]',
        # PUT on /config/history is PUT on the key `history`, refused 422 as not `category.key`
        # rather than 405: a method the literal path lacks is routed to the templated one
        "checks.unsupported_method.enabled = false",
    ]
    if tenant_id is not None:
        # every `{id}` is the tenant's own, so requests reach its data; schema-violating
        # requests are the platform admin's run (an `{id}` forced valid would make them valid)
        lines.append(f'parameters = {{ "path.id" = "{tenant_id}" }}')
        lines.append("checks.negative_data_rejection.enabled = false")
    for pattern in CATALOGUE_DEPENDENT:
        lines += [
            "[[operations]]",
            f"include-path-regex = '{pattern}'",
            "checks.positive_data_acceptance.expected-statuses = "
            f'{ACCEPTED.removesuffix("]")}, "422"]',
        ]
    # a batch is accepted in part by design: invalid events are named by index in the 202
    lines += [
        "[[operations]]",
        'include-path = "/usage/events"',
        "checks.negative_data_rejection.enabled = false",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(
    system: System, who: str, token: str, tenant_id: uuid.UUID | None, reports: Path
) -> tuple[int, str]:
    reports.mkdir(parents=True, exist_ok=True)
    config = _config(reports / f"{who}.toml", token, tenant_id)
    command = [
        _schemathesis(),
        "--config-file",
        str(config),
        "run",
        f"{system.gateway_url}/openapi.json",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-dir",
        str(reports / who),
        "--no-color",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent)),
    )
    return done.returncode, done.stdout + done.stderr


def _findings(reports: Path) -> list[str]:
    """Every failure and every error in the run's JUnit report."""
    cases = [
        case
        for report in reports.glob("junit-*.xml")
        for case in ElementTree.parse(report).getroot().iter("testcase")
    ]
    assert cases, f"schemathesis wrote no report under {reports}"
    found = []
    for case in cases:
        for outcome in case:
            if outcome.tag not in ("failure", "error"):
                continue
            found.append(f"{outcome.tag}: {case.get('name')}")
    return found


@pytest.mark.timeout(1800)
def test_the_gateway_answers_as_its_contract_says(system: System, tmp_path: Path) -> None:
    print(f"schemathesis seed {SEED}, {MAX_EXAMPLES} examples per operation (FUZZ_SEED to replay)")
    target = system.target()
    admin = target.token(Role.PLATFORM_ADMIN, subject="fuzz-platform-admin")
    failed: list[str] = []
    # the tenant admin's tenant is made after the platform admin's run, which may delete any tenant
    for who in ("platform_admin", "tenant_admin"):
        if who == "platform_admin":
            token, own = admin, None
        else:
            own = _tenant_of_its_own(system, admin)
            token = target.token(
                Role.TENANT_ADMIN,
                tenant_id=own,
                subject="fuzz-tenant-admin",
                email="fuzz@example.com",
            )
        code, output = _run(system, who, token, own, tmp_path)
        print(f"===== as {who}: exit {code}\n{output}")
        findings = _findings(tmp_path / who)
        assert code in (0, 1) or findings, f"schemathesis could not run as {who} (exit {code})"
        if findings:
            failed.append(f"{who} ({len(findings)}: {'; '.join(findings)})")
    assert not failed, f"schemathesis found failures as {', '.join(failed)} (seed {SEED})"
