"""The engine's index of a source file, built a few top-level statements at a time, is the whole file's.

A large file is parsed in chunks that end where a line at column 0 may
start a statement (engine/source.py); such a line inside a string, a
bracket or an if/else must not cut a statement in two. Checked against a
parse of the whole file: every def found at the same lines, and the node
find_def parses from a def's lines alone identical to the whole tree's,
positions included.
"""

from __future__ import annotations

import ast
import glob
import os
import sys
from typing import Dict, Iterator, List, Tuple

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


def spans_of_whole(text: str) -> Dict[Tuple[str, int], source.DefSpan]:
    found: Dict[Tuple[str, int], source.DefSpan] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            span = source.DefSpan(first, node.end_lineno or node.lineno, node.col_offset)
            found[(node.name, node.lineno)] = span
            found[(node.name, first)] = span
    return found


def defs_of_whole(text: str) -> Iterator[ast.AST]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


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
    indexed = source.read_source(path)
    assert indexed.defs == spans_of_whole(TRICKY)
    assert set(indexed.imports) == {"os", "List", "def_not_here", "json"}


def test_a_def_parsed_alone_is_the_whole_trees_def(tmp_path, small_chunks) -> None:
    path = write(tmp_path, TRICKY)
    for whole in defs_of_whole(TRICKY):
        alone = source.find_def(path, whole.name, whole.lineno)
        assert alone is not None, whole.name
        assert ast.dump(alone, include_attributes=True) == ast.dump(whole, include_attributes=True)
        assert alone is not source.find_def(path, whole.name, whole.lineno)  # a new node each time: the caller's


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
    indexed = source.read_source(path)
    assert indexed.defs == spans_of_whole(text)
    whole_defs: List[ast.AST] = list(defs_of_whole(text))
    for whole in whole_defs[:: max(1, len(whole_defs) // 20)]:
        alone = source.find_def(path, whole.name, whole.lineno)  # type: ignore[attr-defined]
        assert alone is not None
        assert ast.dump(alone, include_attributes=True) == ast.dump(whole, include_attributes=True)


def test_stdlib_has_large_files_to_check() -> None:
    assert len(BIG_FILES) >= 10, (sys.version, BIG_FILES)
