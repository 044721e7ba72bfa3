"""The target side's modules import only downward, never in a cycle, and load lazily only on purpose.

The layers, from the bottom (DESIGN: a newcomer follows one request through
them): the base modules; the engine; the recorder; the tools and live coding;
the domain operations and the console; the controller's vocabulary; the
request table; the agent (a transport: it imports only the base); the
service that wires them; the package's public face.
"""
from __future__ import annotations

import ast
import os
from typing import Dict, List, Set, Tuple

import pytest

PAYLOADS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "payloads")
PACKAGE = "lu_payloads"

LAYERS = [
    ("errors", "protocol", "paths", "saferepr", "osthreads", "procinfo", "threadfix", "version"),
    ("engine",),
    ("recorder",),
    ("tools", "livecode"),
    ("operations", "console"),
    ("vocabulary",),
    ("requests",),
    ("agent",),
    ("service",),
    ("__init__",),
]


def modules() -> Dict[str, str]:
    """Dotted module name (relative to the package) -> file."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(PAYLOADS):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), PAYLOADS)[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, name)
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for index, group in enumerate(LAYERS):
        if top in group:
            return index
    raise AssertionError("%s is in no layer: add it to LAYERS (and to the module map in docs)" % module)


def _type_checking_blocks(tree: ast.AST) -> Set[int]:
    """ids of import nodes under `if TYPE_CHECKING:` (not imports at run time)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in ast.walk(node):
                ids.add(id(inner))
    return ids


def imports(module: str, path: str) -> List[Tuple[str, int, bool, str]]:
    """(imported module, line, at function level, the line's text) for imports of the package's own modules."""
    with open(path) as handle:
        source = handle.read()
    tree = ast.parse(source)
    lines = source.splitlines()
    skip = _type_checking_blocks(tree)
    package_parts = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    out = []
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(inner) for f in functions for inner in ast.walk(f)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
                targets = [prefix + "." + alias.name if not node.module else prefix for alias in node.names]
                if node.module is None:
                    targets = [".".join(base + [alias.name]) for alias in node.names]
            elif node.module and node.module.startswith(PACKAGE + "."):
                targets = [node.module[len(PACKAGE) + 1:]]
        elif isinstance(node, ast.Import):
            targets = [a.name[len(PACKAGE) + 1:] for a in node.names if a.name.startswith(PACKAGE + ".")]
        for target in targets:
            target = target.strip(".")
            if target in ("", "__init__"):
                target = "__init__"
            out.append((target, node.lineno, id(node) in inside, lines[node.lineno - 1]))
    return out


def known(target: str, names: Dict[str, str]) -> str:
    """The module an import names (`from .engine import Points` imports the engine package)."""
    while target and target not in names:
        target = target.rsplit(".", 1)[0] if "." in target else ""
    return target or "__init__"


def graph() -> Dict[str, Set[str]]:
    names = modules()
    edges: Dict[str, Set[str]] = {name: set() for name in names}
    for name, path in names.items():
        for target, _line, _lazy, _text in imports(name, path):
            target = known(target, names)
            if target != name:
                edges[name].add(target)
    return edges


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_go_down_the_layers():
    names = modules()
    wrong = []
    for name, path in names.items():
        for target, line, _lazy, _text in imports(name, path):
            target = known(target, names)
            if target == name or (target == "__init__" and name.split(".")[0] != "__init__"):
                if target == "__init__" and name != "__init__":
                    wrong.append("%s:%d imports the package's public face" % (name, line))
                continue
            if layer_of(target) > layer_of(name):
                wrong.append("%s:%d imports %s, a layer above it" % (name, line, target))
            elif (layer_of(target) == layer_of(name) and target.split(".")[0] != name.split(".")[0]
                  and layer_of(name) != 0):  # the base modules may use each other
                wrong.append("%s:%d imports %s, beside it in the same layer" % (name, line, target))
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    edges = graph()
    state: Dict[str, int] = {}
    stack_path: List[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack_path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack_path[stack_path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack_path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_function_level_imports_say_why():
    """An import inside a function is a lazy load on purpose, with `# lazy: reason` on its line."""
    missing = []
    for _name, path in modules().items():
        with open(path) as handle:
            source = handle.read()
        tree = ast.parse(source)
        lines = source.splitlines()
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "# lazy:" not in lines[node.lineno - 1]:
                    missing.append("%s:%d: %s" % (path, node.lineno, lines[node.lineno - 1].strip()))
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_imports_alone(name):
    """Each module imports in a fresh interpreter on its own (no hidden order dependency)."""
    import subprocess
    import sys
    module = PACKAGE if name == "__init__" else PACKAGE + "." + name
    root = os.path.dirname(PAYLOADS)
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location(%r, %r, submodule_search_locations=[%r])\n"
            "pkg = importlib.util.module_from_spec(spec); sys.modules[%r] = pkg; spec.loader.exec_module(pkg)\n"
            "import importlib; importlib.import_module(%r)\n"
            % (PACKAGE, os.path.join(PAYLOADS, "__init__.py"), PAYLOADS, PACKAGE, module))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
