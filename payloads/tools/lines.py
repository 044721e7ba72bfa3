"""What the debugging tools need to know about a function's lines, from its source.

For LineDebugger: the variables each statement line reads and writes. For
VarDebugger: every statement that assigns a given variable. Line numbers are
those of the file the running code comes from.
"""
import ast
import inspect
import textwrap

from ..errors import LuError


def function_tree(func, name):
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
    statements = {}
    for child in ast.walk(node):
        if isinstance(child, ast.stmt) and child is not node:
            statements.setdefault(child.lineno, child)
    return node, statements


def _own_parts(statement):
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


def names_in_line(statement):
    """(names read, names written) by the statement's own line, in order of appearance."""
    reads, writes = [], []
    for part in _own_parts(statement):
        for node in ast.walk(part):
            if isinstance(node, ast.Name):
                bucket = reads if isinstance(node.ctx, ast.Load) else writes
                if node.id not in bucket:
                    bucket.append(node.id)
            elif isinstance(node, ast.arg) and node.arg not in writes:
                writes.append(node.arg)
    augmented = isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name)
    if augmented and statement.target.id not in reads:
        reads.append(statement.target.id)
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        for alias in statement.names:
            name = (alias.asname or alias.name).split(".")[0]
            if name not in writes:
                writes.append(name)
    return reads, writes


def function_variables(func_node):
    params = [a.arg for a in func_node.args.posonlyargs + func_node.args.args + func_node.args.kwonlyargs] \
        if hasattr(func_node.args, "posonlyargs") else \
        [a.arg for a in func_node.args.args + func_node.args.kwonlyargs]
    for extra in (func_node.args.vararg, func_node.args.kwarg):
        if extra is not None:
            params.append(extra.arg)
    assigned = []
    for node in ast.walk(func_node):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and node.id not in assigned:
            assigned.append(node.id)
    return params, assigned


def assignment_points(func_node, statements, variable):
    """Where `variable` has just taken a new value: ('line_after', L) or ('line_before', L) pairs.

    A plain statement that assigns it (=, +=, :=, import) is watched after it
    runs. A `for` or `with` statement assigns at every iteration or entry,
    before its block: there the first statement of the block is watched
    before it runs (a hook after the whole loop would see only the last value).
    """
    points = []
    for lineno, statement in sorted(statements.items()):
        _, writes = names_in_line(statement)
        if variable not in writes:
            continue
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)) and statement.body:
            points.append(("line_before", statement.body[0].lineno))
        else:
            points.append(("line_after", lineno))
    return points
