"""The container and Kubernetes shapes name what the code expects.

No container engine runs here, so these files are checked by reading them:
the compose file against the Compose Specification's JSON Schema, and both
against the services, topics, databases and settings in the code.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from stellara_cli.stack import service_specs
from stellara_contracts import topics
from stellara_devstack.common import SERVICE_DATABASES
from stellara_kit.provision import DatabaseRoles, render_init_sql

ROOT = Path(__file__).resolve().parents[1]
SPECS = {spec.name: spec for spec in service_specs()}


def settings_env_names(service: str) -> set[str]:
    spec = SPECS[service]
    settings_cls = importlib.import_module(f"{spec.package}.settings").Settings
    prefix = settings_cls.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in settings_cls.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


class TestCompose:
    def test_is_valid_under_the_compose_specification(self, compose: dict[str, Any]) -> None:
        schema = json.loads((ROOT / "tests" / "deploy" / "compose-spec.schema.json").read_text())
        errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=str)
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)

    def test_runs_every_service_and_the_infrastructure(self, compose: dict[str, Any]) -> None:
        names = set(compose["services"])
        assert set(SPECS) <= names
        assert {"kafka", "kafka-topics", "postgres", "smtp-sink"} <= names

    def test_kafka_is_the_official_image_at_the_pinned_version(
        self, compose: dict[str, Any]
    ) -> None:
        pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
        version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)  # type: ignore[union-attr]
        assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"
        assert compose["services"]["postgres"]["image"].startswith("postgres:")

    def test_topic_step_creates_every_topic_and_its_dlq(self, compose: dict[str, Any]) -> None:
        script = "\n".join(compose["services"]["kafka-topics"]["command"])
        for topic in topics.ALL_TOPICS:
            assert topic in script
        assert "$$topic.dlq" in script and "tenant.state.dlq" in script
        assert "create tenant.state --config cleanup.policy=compact" in script

    def test_init_sql_is_generated_from_the_provisioning_code(self) -> None:
        checked_in = (ROOT / "deploy" / "postgres" / "init.sql").read_text()
        assert checked_in == render_init_sql(list(SERVICE_DATABASES))
        mounted = [
            v
            for v in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][
                "postgres"
            ]["volumes"]
            if "init.sql" in v
        ]
        assert mounted == [
            "./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/10-stellara.sql:ro"
        ]

    @pytest.mark.parametrize("service", sorted(SPECS))
    def test_service_environment_matches_its_settings(
        self, compose: dict[str, Any], service: str
    ) -> None:
        known = settings_env_names(service)
        for name in (service, f"{service}-migrate"):
            if name not in compose["services"]:
                continue
            environment = compose["services"][name].get("environment", {})
            unknown = set(environment) - known
            assert not unknown, f"{name} sets variables its Settings do not read: {unknown}"

    @pytest.mark.parametrize("service", sorted(SERVICE_DATABASES))
    def test_each_service_reaches_only_its_own_database(
        self, compose: dict[str, Any], service: str
    ) -> None:
        roles = DatabaseRoles.for_service(service)
        prefix = SPECS[service].env_prefix
        runtime_url = compose["services"][service]["environment"][f"{prefix}DATABASE_URL"]
        owner_url = compose["services"][f"{service}-migrate"]["environment"][
            f"{prefix}MIGRATION_DATABASE_URL"
        ]
        assert runtime_url.startswith(f"postgresql+asyncpg://{roles.runtime}:")
        assert runtime_url.endswith(f"@postgres:5432/{roles.database}")
        assert owner_url.startswith(f"postgresql+asyncpg://{roles.owner}:")

    def test_services_wait_for_their_dependencies(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        for name in SERVICE_DATABASES:
            depends = services[name]["depends_on"]
            assert depends[f"{name}-migrate"]["condition"] == "service_completed_successfully"
            assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
            assert "healthcheck" in services[name]
        for name in SERVICE_DATABASES:
            assert services["gateway"]["depends_on"][name]["condition"] == "service_healthy"


class TestDockerfile:
    def test_multi_stage_non_root_with_health_check(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        assert len(re.findall(r"^FROM ", text, re.MULTILINE)) == 2
        assert re.search(r"^USER 10001$", text, re.MULTILINE)
        assert "HEALTHCHECK" in text
        assert "uv sync --locked --no-dev" in text


class TestKubernetes:
    def kinds(self, manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in manifests if d["kind"] == kind}

    def test_every_service_has_its_objects(self, manifests: list[dict[str, Any]]) -> None:
        for kind in ("Deployment", "Service", "PodDisruptionBudget"):
            assert set(SPECS) <= set(self.kinds(manifests, kind)), kind
        assert {f"{s}-config" for s in SPECS} <= set(self.kinds(manifests, "ConfigMap"))
        assert {f"{s}-secrets" for s in SPECS} <= set(self.kinds(manifests, "Secret"))
        assert set(self.kinds(manifests, "HorizontalPodAutoscaler")) == {"gateway", "usage-svc"}
        assert set(self.kinds(manifests, "Job")) == {f"{s}-migrate" for s in SERVICE_DATABASES}

    @pytest.mark.parametrize("service", sorted(SPECS))
    def test_probes_image_and_port(self, manifests: list[dict[str, Any]], service: str) -> None:
        deployment = self.kinds(manifests, "Deployment")[service]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        spec = SPECS[service]
        assert container["image"].split(":")[0].endswith(f"/{service}")
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["ports"][0]["containerPort"] == spec.port
        assert f"{spec.package}.main:create_app" in container["command"]
        assert container["securityContext"]["runAsNonRoot"] is True

    @pytest.mark.parametrize("service", sorted(SPECS))
    def test_settings_names_match_the_settings_class(
        self, manifests: list[dict[str, Any]], service: str
    ) -> None:
        known = settings_env_names(service)
        config = self.kinds(manifests, "ConfigMap")[f"{service}-config"]["data"]
        secret = self.kinds(manifests, "Secret")[f"{service}-secrets"]["stringData"]
        unknown = (set(config) | set(secret)) - known
        assert not unknown, f"{service} manifests set variables its Settings do not read: {unknown}"

    def test_migration_jobs_run_each_service_migrations(
        self, manifests: list[dict[str, Any]]
    ) -> None:
        for service in SERVICE_DATABASES:
            job = self.kinds(manifests, "Job")[f"{service}-migrate"]
            (container,) = job["spec"]["template"]["spec"]["containers"]
            assert container["command"] == ["python", "-m", f"{SPECS[service].package}.migrate"]

    def test_kustomization_lists_every_manifest(self) -> None:
        folder = ROOT / "deploy" / "k8s"
        listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        assert sorted(listed) == sorted(
            p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"
        )
