"""`stellara up / status / down` on a stack of its own (own folder and ports)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

STELLARA = str(Path(sys.executable).parent / "stellara")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env.update(
        STELLARA_HOME=str(tmp_path / "stack"),
        STELLARA_PG_PORT=str(free_port()),
        STELLARA_KAFKA_PORT=str(free_port()),
        STELLARA_KAFKA_CONTROLLER_PORT=str(free_port()),
        STELLARA_PARTITIONS="1",
        STELLARA_KAFKA_HEAP="384m",
    )
    yield env
    subprocess.run([STELLARA, "down", "--purge"], env=env, capture_output=True, timeout=120)


def stellara(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STELLARA, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class TestStackLifecycle:
    def test_up_status_down(self, stack_env: dict[str, str]) -> None:
        first = stellara(stack_env, "up", "--infra-only")
        assert first.returncode == 0, first.stderr
        assert "postgres: started" in first.stderr
        assert "kafka: started" in first.stderr

        again = stellara(stack_env, "up", "--infra-only")
        assert again.returncode == 0, again.stderr
        assert "postgres: already running" in again.stderr
        assert "kafka: already running" in again.stderr

        status = stellara(stack_env, "status", "--json")
        assert status.returncode == 0, status.stderr
        components = {c["name"]: c for c in json.loads(status.stdout)}
        assert components["postgres"]["healthy"] is True
        assert components["kafka"]["healthy"] is True
        assert components["postgres"]["address"] == f"127.0.0.1:{stack_env['STELLARA_PG_PORT']}"
        assert Path(components["kafka"]["log"]).exists()

        # kill -9 of the postmaster: its backends and its not yet reaped pid outlive it a while
        postmaster = psutil.Process(components["postgres"]["pid"])
        postmaster.kill()
        again = stellara(stack_env, "up", "--infra-only")
        assert again.returncode == 0, again.stderr
        assert "postgres: started" in again.stderr
        assert "kafka: already running" in again.stderr
        status = stellara(stack_env, "status", "--json")
        components = {c["name"]: c for c in json.loads(status.stdout)}
        assert components["postgres"]["healthy"] is True
        assert components["postgres"]["pid"] != postmaster.pid

        # the same for the broker
        broker = psutil.Process(components["kafka"]["pid"])
        broker.kill()
        again = stellara(stack_env, "up", "--infra-only")
        assert again.returncode == 0, again.stderr
        assert "kafka: started" in again.stderr
        assert "postgres: already running" in again.stderr

        down = stellara(stack_env, "down")
        assert down.returncode == 0, down.stderr
        assert "kafka: stopped" in down.stderr
        assert "postgres: stopped" in down.stderr
        after = {c["name"]: c for c in json.loads(stellara(stack_env, "status", "--json").stdout)}
        assert not after["postgres"]["running"] and not after["kafka"]["running"]


class TestClearErrors:
    def test_missing_java_names_the_fix(self, stack_env: dict[str, str], tmp_path: Path) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for tool in ("mvn",):
            if shutil.which(tool):
                (bin_dir / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
        env = dict(stack_env, PATH=f"{Path(sys.executable).parent}:{bin_dir}")
        env.pop("JAVA_HOME", None)
        result = stellara(env, "up", "--infra-only")
        assert result.returncode == 1
        assert "Java is not installed" in result.stderr
        assert "JDK 17" in result.stderr

    def test_taken_port_names_the_setting(self, stack_env: dict[str, str]) -> None:
        port = int(stack_env["STELLARA_PG_PORT"])
        with socket.socket() as blocker:
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("127.0.0.1", port))
            blocker.listen()
            result = stellara(stack_env, "up", "--infra-only")
        assert result.returncode == 1
        assert f"port {port} is in use" in result.stderr
        assert "STELLARA_PG_PORT" in result.stderr
