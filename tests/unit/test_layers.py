"""Each package's modules import only downward, never in a cycle, and load lazily only on purpose.

Three packages, each in layers (docs/module-map.md draws them):

- lu_payloads, from the bottom: the base modules; the engine; the recorder;
  the tools and live coding; the domain operations and the console; the
  controller's vocabulary; the request table; the agent (a transport: it
  imports only the base); the service that wires them; the public face.
- lu_attach: errors; file and thread primitives; process facts; what the
  injection and the client are built from; staging; injection; sessions;
  what commands use (profiling, watch, completion, reports); the public face.
- lu_cli: output helpers; shared option handling and the controller; what a
  tool command does after its request; the commands; main.

Between packages: lu_payloads runs in the target and imports neither of the
others; lu_attach never imports lu_cli, and takes from lu_payloads only its
pure definitions (the wire format, paths, the tool registry, the version).
"""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Package:
    name: str  # as imported
    folder: str  # in the repository
    layers: Tuple[Tuple[str, ...], ...]  # top-level module names, bottom layer first
    # what it may import of the other lu packages: a module and what is below it ("pkg" alone: only the package)
    may_import: Tuple[str, ...] = ()

    def may(self, qualified: str) -> bool:
        return any(
            qualified == allowed or ("." in allowed and qualified.startswith(allowed + "."))
            for allowed in self.may_import
        )

    @property
    def path(self) -> str:
        return os.path.join(REPO, self.folder)


PACKAGES = {
    "lu_payloads": Package(
        "lu_payloads",
        "payloads",
        (
            ("unpatched",),
            (
                "errors",
                "protocol",
                "paths",
                "saferepr",
                "osthreads",
                "procinfo",
                "threadfix",
                "version",
                "forks",
                "startup",
                "collector",
                "copying",
            ),
            ("engine",),
            ("recorder",),
            ("tools", "livecode"),
            ("operations", "console", "group", "leases", "watched"),
            ("vocabulary",),
            ("requests",),
            ("agent", "door"),
            ("service",),
            ("__init__",),
            ("launch",),
        ),
    ),
    "lu_attach": Package(
        "lu_attach",
        "lu_attach",
        (
            ("errors", "pythons", "signals", "arch"),
            ("safefs", "ptrace", "sigframe"),
            ("symbols", "runtime"),
            ("native_helper",),
            ("discover", "accel_build", "thread_call", "threads", "client"),
            ("staging", "tree"),
            ("methods",),
            ("inject",),
            ("session",),
            ("group",),
            ("profiling", "watch", "completion", "report"),
            ("events", "applying"),
            ("__init__",),
        ),
        may_import=(
            "lu_payloads",
            "lu_payloads.protocol",
            "lu_payloads.paths",
            "lu_payloads.tools",
            "lu_payloads.version",
        ),
    ),
    "lu_cli": Package(
        "lu_cli",
        "lu_cli",
        (
            ("output", "options", "tree_output"),
            ("report_options", "controller"),
            ("tool_session",),
            ("commands",),
            ("main",),
            ("__init__",),
        ),
        may_import=(
            "lu_attach.errors",
            "lu_attach.client",
            "lu_attach.session",
            "lu_attach.inject",
            "lu_attach.profiling",
            "lu_attach.report",
            "lu_attach.watch",
            "lu_attach.completion",
            "lu_attach.runtime",
            "lu_attach.group",
            "lu_attach.tree",
            "lu_attach.events",
            "lu_attach.applying",
            "lu_attach.signals",
            "lu_payloads.tools",
        ),
    ),
}
BASE = 0  # the bottom layer's modules may use each other


def modules(package: Package) -> Dict[str, str]:
    """Dotted module name (relative to the package) -> file."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(package.path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), package.path)[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, name)
    return found


def layer_of(package: Package, module: str) -> int:
    top = module.split(".")[0]
    for index, group in enumerate(package.layers):
        if top in group:
            return index
    raise AssertionError(
        "%s.%s is in no layer: add it to PACKAGES here (and to docs/module-map.md)" % (package.name, module)
    )


def _type_checking_blocks(tree: ast.AST) -> Set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (not imports at run time)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in ast.walk(node):
                ids.add(id(inner))
    return ids


@dataclass(frozen=True)
class Import:
    package: str  # the lu package imported from
    module: str  # relative to that package ("__init__" for the package itself)
    line: int


def imports(package: Package, module: str, path: str) -> List[Import]:
    """The imports of lu's own modules (any of the three packages) that run when `module` is imported."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    skip = _type_checking_blocks(tree)
    package_parts = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        found: List[Tuple[str, str]] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                if node.module:
                    found = [(package.name, ".".join(base + [node.module]))]
                else:
                    found = [(package.name, ".".join(base + [alias.name])) for alias in node.names]
            elif node.module:
                top, _, rest = node.module.partition(".")
                if top in PACKAGES:
                    found = [(top, rest + "." + alias.name if rest else alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top in PACKAGES:
                    found.append((top, rest))
        for owner, target in found:
            out.append(Import(owner, target.strip(".") or "__init__", node.lineno))
    return out


def known(names: Dict[str, str], target: str) -> str:
    """The module an import names (`from .engine import Points` imports the engine package)."""
    while target and target not in names:
        target = target.rsplit(".", 1)[0] if "." in target else ""
    return target or "__init__"


def own_imports(package: Package) -> Dict[str, List[Tuple[str, int]]]:
    """module -> [(module of the same package it imports, line)]."""
    names = modules(package)
    return {
        name: [(known(names, i.module), i.line) for i in imports(package, name, path) if i.package == package.name]
        for name, path in names.items()
    }


@pytest.mark.parametrize("package", PACKAGES.values(), ids=list(PACKAGES))
def test_every_module_has_a_layer(package):
    for name in modules(package):
        layer_of(package, name)


@pytest.mark.parametrize("package", PACKAGES.values(), ids=list(PACKAGES))
def test_imports_go_down_the_layers(package):
    wrong = []
    for name, targets in own_imports(package).items():
        for target, line in targets:
            if target == name:
                continue
            if target == "__init__":
                if name != "__init__":
                    wrong.append("%s:%d imports the package's public face" % (name, line))
                continue
            mine, theirs = layer_of(package, name), layer_of(package, target)
            if theirs > mine:
                wrong.append("%s:%d imports %s, a layer above it" % (name, line, target))
            elif theirs == mine and target.split(".")[0] != name.split(".")[0] and mine != BASE:
                wrong.append("%s:%d imports %s, beside it in the same layer" % (name, line, target))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", PACKAGES.values(), ids=list(PACKAGES))
def test_packages_import_only_what_they_may_of_each_other(package):
    wrong = []
    for name, path in modules(package).items():
        for i in imports(package, name, path):
            if i.package == package.name:
                continue
            qualified = i.package if i.module == "__init__" else "%s.%s" % (i.package, i.module)
            if not package.may(qualified):
                wrong.append("%s.%s:%d imports %s" % (package.name, name, i.line, qualified))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", PACKAGES.values(), ids=list(PACKAGES))
def test_no_import_cycle(package):
    edges = {name: {t for t, _ in targets if t != name} for name, targets in own_imports(package).items()}
    state: Dict[str, int] = {}
    stack_path: List[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack_path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack_path[stack_path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack_path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PACKAGES.values(), ids=list(PACKAGES))
def test_function_level_imports_say_why(package):
    """An import inside a function is a lazy load on purpose, with `# lazy: reason` on its line."""
    missing = []
    for _name, path in modules(package).items():
        with open(path) as handle:
            source = handle.read()
        lines = source.splitlines()
        for function in [
            n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]:
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "# lazy:" not in lines[node.lineno - 1]:
                    missing.append("%s:%d: %s" % (path, node.lineno, lines[node.lineno - 1].strip()))
    assert not missing, "\n".join(missing)


def _all_modules() -> List[Tuple[str, str]]:
    """The modules of the libraries (lu_cli's are the leaves: `lu` itself imports each of them first thing)."""
    return [
        (package.name, name)
        for package in PACKAGES.values()
        if package.name != "lu_cli"
        for name in sorted(modules(package))
    ]


@pytest.mark.parametrize("package_name, name", _all_modules(), ids=["%s.%s" % pair for pair in _all_modules()])
def test_module_imports_alone(package_name, name):
    """Each module imports in a fresh interpreter on its own (no hidden order dependency)."""
    package = PACKAGES[package_name]
    module = package.name if name == "__init__" else package.name + "." + name
    # lu_payloads is loaded from its folder by path, the way a target gets it; the host packages as installed.
    code = (
        "import importlib, importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('lu_payloads', %r, submodule_search_locations=[%r])\n"
        "pkg = importlib.util.module_from_spec(spec); sys.modules['lu_payloads'] = pkg\n"
        "spec.loader.exec_module(pkg)\n"
        "importlib.import_module(%r)\n"
        % (os.path.join(REPO, "payloads", "__init__.py"), os.path.join(REPO, "payloads"), module)
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_installed_lu_command_is_the_one_that_turns_every_failure_into_one_line():
    """The console script must be main(), not the click group: main() makes usage errors and signals one line."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    scripts = [line.strip() for line in config["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
    assert scripts == ["lu = lu_cli.main:main"]
