"""The floors of the workspace, checked: which package may import which.

    python -m scripts.check_imports [ROOT]

From the ground up: ``contracts/`` (the event contracts), the libraries under
``libs/`` (kit, devstack), the services under ``services/``, then the ``cli/``
application over them. An import may only go down:

- a library never imports a service, nor the CLI;
- a service never imports another service (they speak over HTTP and Kafka);
- the contracts' sources import no other package of the workspace (their tests may use
  kit's fixtures);
- a library's modules import one another without a circle (one of them would only work
  imported lazily, inside a function).

Every ``import``/``from … import`` of a package's sources and tests is read with
``ast`` (nothing is imported), including the ones inside functions and
``importlib.import_module("…")`` with a literal name. Exit status 1, with one
line per forbidden import (file, line, the import, the rule), when any is found.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("contracts", "library", "service", "cli")


@dataclass(frozen=True)
class Package:
    """A workspace member's importable package."""

    name: str  # the import name: ``stellara_kit``
    layer: str  # one of LAYERS
    home: Path  # the member's folder: ``libs/kit``


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}: {self.rule}"


def _packages_of(member: Path, layer: str) -> Iterator[Package]:
    src = member / "src"
    if src.is_dir():
        for package in sorted(src.iterdir()):
            if (package / "__init__.py").is_file():
                yield Package(package.name, layer, member)


def workspace_packages(root: Path) -> list[Package]:
    """Every member's package, with its layer, found from the folder layout."""
    found: list[Package] = []
    found.extend(_packages_of(root / "contracts", "contracts"))
    for folder, layer in (("libs", "library"), ("services", "service")):
        base = root / folder
        if base.is_dir():
            for member in sorted(p for p in base.iterdir() if p.is_dir()):
                found.extend(_packages_of(member, layer))
    found.extend(_packages_of(root / "cli", "cli"))
    return found


def imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted module name) of every absolute import in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (
                name == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not node.args[0].value.startswith(".")
            ):
                yield node.lineno, node.args[0].value


def forbidden(importer: Package, imported: Package, *, source: bool = True) -> str | None:
    """Why ``importer`` (its sources, or its tests) may not import ``imported`` (None when it
    may)."""
    if importer.name == imported.name:
        return None
    if importer.layer == "contracts" and source:
        return "the contracts import no other package of the workspace"
    if importer.layer == "library" and imported.layer == "cli":
        return "a library never imports the CLI (an application over it)"
    if importer.layer == "library" and imported.layer == "service":
        return "a library never imports a service"
    if importer.layer == "service" and imported.layer == "service":
        return "a service never imports another service (they speak over HTTP and Kafka)"
    if importer.layer == "service" and imported.layer == "cli":
        return "a service never imports the CLI"
    return None


def _modules(package: Package) -> dict[str, Path]:
    """``{dotted module name: file}`` of a package's sources."""
    src = package.home / "src"
    modules: dict[str, Path] = {}
    for path in sorted((src / package.name).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def circles(root: Path, package: Package) -> list[Violation]:
    """One violation per import circle among the package's modules (lazy imports count)."""
    modules = _modules(package)
    edges: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        for line, imported in imported_names(ast.parse(path.read_text(encoding="utf-8"))):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported not in edges[name]:
                edges[name][imported] = line
    found: list[Violation] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(edges):
        # breadth first from each module back to it: the shortest circles first
        chains: list[list[str]] = [[start]]
        while chains:
            chain = chains.pop(0)
            for nxt in sorted(edges[chain[-1]]):
                if nxt == start:
                    members = frozenset(chain)
                    if members not in seen:
                        seen.add(members)
                        rule = "an import circle among a library's modules: " + " → ".join(
                            [*chain, start]
                        )
                        line = edges[start][chain[1]]
                        found.append(
                            Violation(modules[start].relative_to(root), line, chain[1], rule)
                        )
                elif nxt not in chain and nxt > start:
                    chains.append([*chain, nxt])
    return found


def check(root: Path) -> list[Violation]:
    packages = workspace_packages(root)
    by_name = {package.name: package for package in packages}
    homes = {package.home for package in packages}
    violations: list[Violation] = []
    for home in sorted(homes):
        owners = [p for p in packages if p.home == home]
        for path in sorted(home.rglob("*.py")):
            if any(part.startswith(".") or part == "__pycache__" for part in path.parts):
                continue
            source = path.is_relative_to(home / "src")
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in imported_names(tree):
                imported = by_name.get(name.partition(".")[0])
                if imported is None:
                    continue
                for owner in owners:
                    rule = forbidden(owner, imported, source=source)
                    if rule:
                        violations.append(Violation(path.relative_to(root), line, name, rule))
                        break
    for package in packages:
        if package.layer == "library":
            violations.extend(circles(root, package))
    return violations


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else Path(__file__).resolve().parent.parent).resolve()
    violations = check(root)
    for violation in violations:
        print(violation, file=sys.stderr)
    if violations:
        print(f"{len(violations)} forbidden import(s); see the rules in scripts/check_imports.py")
        return 1
    print(f"imports follow the workspace's floors ({len(workspace_packages(root))} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
