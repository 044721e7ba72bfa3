"""What the debugging tools need to know about a function's lines, from its source.

For LineDebugger: the variables each statement line reads and writes. For
VarDebugger: every statement that assigns a given variable. Line numbers are
those of the file the running code comes from.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from typing import Dict, List, NamedTuple, Tuple, Union

from ..errors import LuError

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
Statements = Dict[int, ast.stmt]  # line -> the first statement starting on it


class LinePoint(NamedTuple):
    """A line point: `kind` is 'line_before' or 'line_after', `line` its line number."""

    kind: str
    line: int


def function_tree(func: types.FunctionType, name: str) -> Tuple[FunctionNode, Statements]:
    """(ast of the function, {line: statement node}) with the file's line numbers."""
    code = getattr(func, "__code__", None)
    try:
        lines, start = inspect.getsourcelines(code if code is not None else func)
    except (OSError, TypeError):
        raise LuError("%s has no source lu can read" % name)
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise LuError("the source of %s does not parse" % name)
    ast.increment_lineno(tree, start - 1)
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise LuError("%s is not a function lu can read the source of" % name)
    statements: Statements = {}
    for child in ast.walk(node):
        if isinstance(child, ast.stmt) and child is not node:
            statements.setdefault(child.lineno, child)
    return node, statements


def _own_parts(statement: ast.stmt) -> List[ast.AST]:
    """The expressions that belong to the statement's own line (not its nested block)."""
    if isinstance(statement, (ast.If, ast.While)):
        return [statement.test]
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        return [statement.target, statement.iter]
    if isinstance(statement, (ast.With, ast.AsyncWith)):
        return list(statement.items)
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return list(statement.decorator_list)
    if isinstance(statement, ast.Try):
        return []
    return [statement]


def names_in_line(statement: ast.stmt) -> Tuple[List[str], List[str]]:
    """(names read, names written) by the statement's own line, in order of appearance."""
    reads: List[str] = []
    writes: List[str] = []
    for part in _own_parts(statement):
        for node in ast.walk(part):
            if isinstance(node, ast.Name):
                bucket = reads if isinstance(node.ctx, ast.Load) else writes
                if node.id not in bucket:
                    bucket.append(node.id)
            elif isinstance(node, ast.arg) and node.arg not in writes:
                writes.append(node.arg)
    if (
        isinstance(statement, ast.AugAssign)
        and isinstance(statement.target, ast.Name)
        and statement.target.id not in reads
    ):
        reads.append(statement.target.id)
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        for alias in statement.names:
            name = (alias.asname or alias.name).split(".")[0]
            if name not in writes:
                writes.append(name)
    return reads, writes


def function_variables(func_node: FunctionNode) -> Tuple[List[str], List[str]]:
    params = (
        [a.arg for a in func_node.args.posonlyargs + func_node.args.args + func_node.args.kwonlyargs]
        if hasattr(func_node.args, "posonlyargs")
        else [a.arg for a in func_node.args.args + func_node.args.kwonlyargs]
    )
    for extra in (func_node.args.vararg, func_node.args.kwarg):
        if extra is not None:
            params.append(extra.arg)
    assigned: List[str] = []
    for node in ast.walk(func_node):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and node.id not in assigned:
            assigned.append(node.id)
    return params, assigned


def assignment_points(func_node: FunctionNode, statements: Statements, variable: str) -> List[LinePoint]:
    """Where `variable` has just taken a new value: LinePoints ('line_after', L) or ('line_before', L).

    A plain statement that assigns it (=, +=, :=, import) is watched after it
    runs. A `for` or `with` statement assigns at every iteration or entry,
    before its block: there the first statement of the block is watched
    before it runs (a hook after the whole loop would see only the last value).
    """
    points: List[LinePoint] = []
    for lineno, statement in sorted(statements.items()):
        _, writes = names_in_line(statement)
        if variable not in writes:
            continue
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)) and statement.body:
            points.append(LinePoint("line_before", statement.body[0].lineno))
        else:
            points.append(LinePoint("line_after", lineno))
    return points
