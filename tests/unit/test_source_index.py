"""The engine reads a def from its own lines, and a file's imports a few statements at a time, as a whole parse would.

engine/source.py never parses a whole file into a syntax tree: a def ends
before the first line of code indented no deeper than it, and a file's
module-level imports come from symbol tables of chunks that end where a
line at column 0 may start a statement. Such a line inside a string, a
bracket or an if/else must not cut anything in two. Checked against a parse
of the whole file: the node find_def parses from a def's lines alone is
identical to the whole tree's, positions included, for every def.
"""

from __future__ import annotations

import ast
import glob
import os
import sys
from typing import Iterator, List, Set

import pytest

from lu_payloads.engine import source

STDLIB = os.path.dirname(os.__file__)
BIG_FILES = sorted(
    path
    for path in glob.glob(os.path.join(STDLIB, "*.py")) + glob.glob(os.path.join(STDLIB, "email", "*.py"))
    if os.path.getsize(path) > 60_000
)

TRICKY = '''\
"""A module docstring whose lines look like statements:
def not_a_function():
@not_a_decorator
class NotAClass:
"""
import os
from typing import (
    List,
def_not_here,
)

TEXT = """
def inside_a_string(x):
    return x
"""


@decorator(
    1,
)
def decorated(a,
b=2):
    """Docstring with
def fake():
    """
    return a


if os.sep == "/":
    def chosen():
        return 1
else:
    def chosen():
        return 2


try:
    import json
except ImportError:
    json = None
finally:
    pass


class Outer:
    class Inner:
        def nested_string(self):
            s = """
x
"""
            return s
    def method(self):
        data = """
class Fake:
"""
        def inner():
            return data
        return inner

    @property
    def prop(self):
        return 1

    @prop.setter
    def prop(self, value):
        pass


async def coro():
    await other()
x = [
1,
]
def last(): return x
'''


def defs_of_whole(text: str) -> Iterator[ast.AST]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def first_line(node: ast.AST) -> int:
    """Where its code starts (co_firstlineno): its first decorator, else the def."""
    decorators = getattr(node, "decorator_list", None)
    return decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined,no-any-return]


def module_level_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes outside any def, class body or lambda (a class's bases and decorators are outside)."""
    stack: List[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d])
        elif isinstance(node, ast.ClassDef):
            stack.extend(node.decorator_list + node.bases + [k.value for k in node.keywords])
        elif not isinstance(node, ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def module_level_imports(tree: ast.Module) -> Set[str]:
    """Names bound by import statements outside any def, class or lambda."""
    return {
        alias.asname or alias.name.split(".")[0]
        for node in module_level_nodes(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
        if alias.name != "*"
    }


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few lines, so that the small tricky file is cut at every candidate line."""
    monkeypatch.setattr(source, "CHUNK_LINES", 3)
    source._tree_cache.clear()


def write(tmp_path, text: str) -> str:
    path = tmp_path / "tricky_module.py"
    path.write_text(text)
    return str(path)


def test_chunks_cut_nothing_in_two(tmp_path, small_chunks) -> None:
    path = write(tmp_path, TRICKY)
    assert set(source.read_source(path).imports) == {"os", "List", "def_not_here", "json"}


def test_a_def_parsed_alone_is_the_whole_trees_def(tmp_path, small_chunks) -> None:
    path = write(tmp_path, TRICKY)
    for whole in defs_of_whole(TRICKY):
        alone = source.find_def(path, whole.name, first_line(whole))
        assert alone is not None, whole.name
        assert ast.dump(alone, include_attributes=True) == ast.dump(whole, include_attributes=True)
        assert alone is not source.find_def(path, whole.name, first_line(whole))  # a new node each time: the caller's


def test_a_file_that_does_not_parse_says_where(tmp_path, small_chunks) -> None:
    path = write(tmp_path, TRICKY + "\ndef broken(:\n    pass\n")
    with pytest.raises(source.LuError) as caught:
        source.read_source(path)
    assert "tricky_module.py:%d: the source file does not parse" % (TRICKY.count("\n") + 2) in str(caught.value)


@pytest.mark.parametrize("path", BIG_FILES, ids=os.path.basename)
def test_the_standard_librarys_large_files(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    source._tree_cache.pop(path, None)
    tree = ast.parse(text)
    mentions_super = any(isinstance(node, ast.Name) and node.id == "super" for node in module_level_nodes(tree))
    assert set(source.read_source(path).imports) == module_level_imports(tree) | (
        {"super"} if mentions_super else set()
    )
    for whole in defs_of_whole(text):
        alone = source.find_def(path, whole.name, first_line(whole))  # type: ignore[attr-defined]
        assert alone is not None, (whole.name, whole.lineno)  # type: ignore[attr-defined]
        assert ast.dump(alone, include_attributes=True) == ast.dump(whole, include_attributes=True)


def test_stdlib_has_large_files_to_check() -> None:
    assert len(BIG_FILES) >= 10, (sys.version, BIG_FILES)
