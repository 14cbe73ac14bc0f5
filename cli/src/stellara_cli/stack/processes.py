"""Processes of the project itself: the SMTP sink and the services."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from stellara_devstack.common import (
    ComponentStatus,
    Progress,
    StackConfig,
    StackError,
    alive,
    consumer_lag,
    env_int,
    port_open,
    read_pid,
    stop_pid,
    write_atomically,
)


@dataclass(frozen=True)
class ServiceSpec:
    """A service of the system as the local stack runs it."""

    name: str
    package: str
    port: int
    env_prefix: str
    database: bool

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def service_specs() -> list[ServiceSpec]:
    return [
        ServiceSpec(
            "tenant-svc",
            "tenant_svc",
            env_int("STELLARA_TENANT_SVC_PORT", 8101),
            "TENANT_SVC_",
            True,
        ),
        ServiceSpec(
            "usage-svc", "usage_svc", env_int("STELLARA_USAGE_SVC_PORT", 8102), "USAGE_SVC_", True
        ),
        ServiceSpec(
            "onboarding-svc",
            "onboarding_svc",
            env_int("STELLARA_ONBOARDING_SVC_PORT", 8103),
            "ONBOARDING_SVC_",
            True,
        ),
        ServiceSpec(
            "gateway", "gateway", env_int("STELLARA_GATEWAY_PORT", 8000), "GATEWAY_", False
        ),
    ]


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class MailSink:
    name = "smtp-sink"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = env_int("STELLARA_SMTP_PORT", 1025)
        self.folder = config.home / "mail"
        self.pid_file = config.run / "smtp-sink.pid"
        self.log = config.logs / "smtp-sink.log"

    def status(self) -> ComponentStatus:
        pid = read_pid(self.pid_file)
        running = alive(pid, "stellara_cli.mailsink")
        return ComponentStatus(
            name=self.name,
            running=running,
            healthy=running and port_open(self.port),
            address=f"127.0.0.1:{self.port}",
            pid=pid if running else None,
            detail=f"keeps mail in {self.folder} (stellara mail)",
            log=str(self.log),
        )

    def start(self, progress: Progress) -> bool:
        if alive(read_pid(self.pid_file), "stellara_cli.mailsink"):
            return False
        if port_open(self.port):
            raise StackError(
                f"port {self.port} is in use by another program; stop it or set "
                "STELLARA_SMTP_PORT to a free port"
            )
        progress(f"starting the SMTP sink on 127.0.0.1:{self.port}")
        proc = _spawn(
            [
                sys.executable,
                "-m",
                "stellara_cli.mailsink",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
            ],
            self.log,
            dict(os.environ),
        )
        write_atomically(self.pid_file, str(proc.pid))
        _wait(
            lambda: port_open(self.port), proc, 20, f"the SMTP sink did not start; see {self.log}"
        )
        return True

    def stop(self) -> bool:
        return _stop_by_pid_file(self.pid_file, "stellara_cli.mailsink")


class ServiceProcess:
    def __init__(self, config: StackConfig, spec: ServiceSpec, mail_port: int) -> None:
        self.config = config
        self.spec = spec
        self.mail_port = mail_port
        self.pid_file = config.run / f"{spec.name}.pid"
        self.log = config.logs / f"{spec.name}.log"
        self.marker = f"{spec.package}.main:create_app"
        self.name = spec.name

    def environment(self) -> dict[str, str]:
        p = self.spec.env_prefix
        env = dict(os.environ)
        env.update(
            {
                f"{p}KAFKA_BOOTSTRAP_SERVERS": self.config.kafka_bootstrap,
                f"{p}HTTP_PORT": str(self.spec.port),
                f"{p}ENVIRONMENT": env.get(f"{p}ENVIRONMENT", "dev"),
            }
        )
        if self.spec.database:
            env[f"{p}DATABASE_URL"] = self.config.service_database_url(self.spec.name)
            env[f"{p}MIGRATION_DATABASE_URL"] = self.config.service_database_url(
                self.spec.name, owner=True
            )
        if self.spec.name == "onboarding-svc":
            env.setdefault(f"{p}SMTP_HOST", "127.0.0.1")
            env.setdefault(f"{p}SMTP_PORT", str(self.mail_port))
        if self.spec.name == "gateway":
            for other in service_specs():
                if other.name != "gateway":
                    env.setdefault(f"GATEWAY_{other.env_prefix}URL", other.url)
        return env

    def status(self) -> ComponentStatus:
        pid = read_pid(self.pid_file)
        running = alive(pid, self.marker)
        extra: dict[str, object] = {}
        if running:
            # usage-svc's ingester reads usage.recorded in a group of its own
            lags = [
                consumer_lag(self.config.kafka_bootstrap, group)
                for group in (self.spec.name, f"{self.spec.name}-ingest")
            ]
            known = [lag for lag in lags if lag is not None]
            extra["consumer_lag"] = sum(known) if known else None
        return ComponentStatus(
            name=self.spec.name,
            running=running,
            healthy=running and _http_ok(f"{self.spec.url}/readyz"),
            address=self.spec.url,
            pid=pid if running else None,
            detail=f"docs {self.spec.url}/docs",
            log=str(self.log),
            extra=extra,
        )

    def start(self, progress: Progress) -> bool:
        if alive(read_pid(self.pid_file), self.marker):
            return False
        if port_open(self.spec.port):
            raise StackError(
                f"port {self.spec.port} is in use by another program; stop it or set "
                f"STELLARA_{self.spec.env_prefix}PORT to a free port"
            )
        env = self.environment()
        if self.spec.database:
            progress(f"migrating the {self.spec.name} database")
            with open(self.log, "ab") as log_file:
                result = subprocess.run(
                    [sys.executable, "-m", f"{self.spec.package}.migrate"],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            if result.returncode != 0:
                raise StackError(f"migrating {self.spec.name} failed; see {self.log}")
        progress(f"starting {self.spec.name} on {self.spec.url}")
        proc = _spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.marker,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.spec.port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "10",
            ],
            self.log,
            env,
        )
        write_atomically(self.pid_file, str(proc.pid))
        return True

    def wait_ready(self, timeout: float = 90) -> None:
        pid = read_pid(self.pid_file)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # the process this stack just spawned: whether it still runs, not what its command
            # line reads (a busy machine can show an empty one for a moment while it starts)
            if not _running(pid):
                raise StackError(
                    f"{self.spec.name} exited at start; see {self.log}:\n{_tail(self.log)}"
                )
            if _http_ok(f"{self.spec.url}/readyz"):
                return
            time.sleep(0.3)
        raise StackError(
            f"{self.spec.name} did not become ready in {timeout:.0f} s; see {self.log}"
        )

    def stop(self) -> bool:
        return _stop_by_pid_file(self.pid_file, self.marker)


def _running(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_file:
        return subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def _wait(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, message: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(message)
        if ready():
            return
        time.sleep(0.2)
    raise StackError(message)


def _stop_by_pid_file(pid_file: Path, marker: str) -> bool:
    pid = read_pid(pid_file)
    running = alive(pid, marker)
    if running:
        assert pid is not None
        stop_pid(pid, timeout=20)
    pid_file.unlink(missing_ok=True)
    return running
