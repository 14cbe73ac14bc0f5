"""`python -m scripts.check_imports`: the workspace's import floors (run by `make lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.check_imports", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def package(root: Path, member: str, name: str, files: dict[str, str] | None = None) -> None:
    """A workspace member ``member`` whose package ``name`` holds ``files``."""
    src = root / member / "src" / name
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    for file, text in (files or {}).items():
        path = root / member / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def tree(root: Path, **files: dict[str, str]) -> Path:
    """contracts, kit, two services and the CLI; ``files`` by member (``kit=…``)."""
    package(root, "contracts", "stellara_contracts", files.get("contracts"))
    package(root, "libs/kit", "stellara_kit", files.get("kit"))
    package(root, "services/tenant-svc", "tenant_svc", files.get("tenant"))
    package(root, "services/usage-svc", "usage_svc", files.get("usage"))
    package(root, "cli", "stellara_cli", files.get("cli"))
    return root


class TestForbiddenImports:
    def test_kit_importing_the_cli_is_reported_with_file_and_import(self, tmp_path: Path) -> None:
        root = tree(
            tmp_path,
            kit={
                "src/stellara_kit/testing.py": "def up():\n    from stellara_cli.stack import LocalStack\n"
            },
        )
        result = check_imports(root)
        assert result.returncode == 1
        assert "libs/kit/src/stellara_kit/testing.py:2: imports stellara_cli.stack" in result.stderr
        assert "never imports the CLI" in result.stderr

    def test_a_library_importing_a_service_is_reported(self, tmp_path: Path) -> None:
        root = tree(tmp_path, kit={"src/stellara_kit/auth.py": "import usage_svc.settings\n"})
        result = check_imports(root)
        assert result.returncode == 1
        assert "libs/kit/src/stellara_kit/auth.py:1: imports usage_svc.settings" in result.stderr
        assert "a library never imports a service" in result.stderr

    def test_a_service_importing_another_is_reported_even_from_its_tests(
        self, tmp_path: Path
    ) -> None:
        root = tree(
            tmp_path,
            usage={
                "src/usage_svc/plans.py": "from tenant_svc.settings import Settings\n",
                "tests/test_plans.py": "import importlib\nimportlib.import_module('tenant_svc.main')\n",
            },
        )
        result = check_imports(root)
        assert result.returncode == 1
        assert "services/usage-svc/src/usage_svc/plans.py:1: imports tenant_svc.settings" in (
            result.stderr
        )
        assert "services/usage-svc/tests/test_plans.py:2: imports tenant_svc.main" in result.stderr
        assert "2 forbidden import(s)" in result.stdout

    def test_an_import_circle_among_a_librarys_modules_is_reported(self, tmp_path: Path) -> None:
        root = tree(
            tmp_path,
            kit={
                "src/stellara_kit/observability.py": "from stellara_kit.problems import PROBLEM\n",
                "src/stellara_kit/problems.py": (
                    "PROBLEM = 1\n\ndef log():\n    from stellara_kit.observability import x\n"
                ),
            },
        )
        result = check_imports(root)
        assert result.returncode == 1
        assert (
            "libs/kit/src/stellara_kit/observability.py:1: imports stellara_kit.problems: "
            "an import circle among a library's modules: stellara_kit.observability → "
            "stellara_kit.problems → stellara_kit.observability"
        ) in result.stderr


class TestAllowedImports:
    def test_imports_going_down_pass(self, tmp_path: Path) -> None:
        root = tree(
            tmp_path,
            kit={"src/stellara_kit/auth.py": "from stellara_contracts import events\n"},
            tenant={"src/tenant_svc/main.py": "import stellara_kit.auth\nfrom . import main\n"},
            cli={"src/stellara_cli/docs.py": "from tenant_svc.main import create_app\n"},
            contracts={"tests/test_binding.py": "from stellara_kit.testing import consume\n"},
        )
        result = check_imports(root)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""

    def test_this_repository_passes(self) -> None:
        result = check_imports(ROOT)
        assert result.returncode == 0, result.stderr
