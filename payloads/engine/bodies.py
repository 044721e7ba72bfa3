"""New bodies for running functions: one fitting routine for Redefine (patch files) and Recode (lu watch).

A function keeps its identity when its body changes: only `__code__` is
swapped. So the new code must run in the original's place: compiled in the
original's scopes (super(), name mangling, qualified names), with exactly the
original's free variables in its cells (a body that uses fewer gets the
missing ones as never-run references; one that needs more cannot run there),
and of the same kind (plain function, generator, coroutine).
"""

from __future__ import annotations

import ast
import sys
import types
from typing import Any, Dict, Optional, Set, Tuple

from ..errors import LuError
from . import resolve
from .annotations import Annotations
from .records import FunctionState
from .source import CO_ITERABLE_COROUTINE, KIND_FLAGS, Body, FuncNode, clone, compile_in_scope, find_def


def compile_body(
    node: FuncNode, qualname: str, freevars: Tuple[str, ...], filename: str, flags: int, what: str
) -> types.CodeType:
    try:
        return compile_in_scope(node, qualname, freevars, filename, flags)
    except SyntaxError as e:
        raise LuError("%s:%s: %s: %s" % (e.filename or filename, e.lineno, what, e.msg))


def pad_freevars(node: FuncNode, missing: Set[str]) -> None:
    """Make names free in node by a never-run reference: `if False: (a, b)`."""
    ref = ast.If(
        test=ast.Constant(value=False),
        body=[
            ast.Expr(
                value=ast.Tuple(
                    elts=[ast.Name(id=n, ctx=ast.Load()) for n in sorted(missing)] + [ast.Constant(value=None)],
                    ctx=ast.Load(),
                )
            )
        ],
        orelse=[],
    )
    last = node.body[-1]
    for n in ast.walk(ref):
        if isinstance(n, (ast.stmt, ast.expr)):  # every node of ref with a position (all but the contexts)
            n.lineno = n.end_lineno = last.lineno
            n.col_offset = n.end_col_offset = 0
    node.body.append(ref)


def source_node(func: types.FunctionType) -> Optional[FuncNode]:
    """The def node of `func` (from a patch or a file; a new one), or None (a lambda, no source)."""
    code = func.__code__
    if code.co_name == "<lambda>":
        return None
    try:
        return find_def(code.co_filename, code.co_name, code.co_firstlineno)
    except LuError:
        return None


def kind_of(flags: int) -> str:
    if flags & 0x200:
        return "an async generator"
    if flags & 0x80:
        return "a coroutine (async def)"
    if flags & 0x20:
        return "a generator"
    return "a plain function"


def fit_code(
    st: FunctionState,
    what: str,
    filename: str,
    flags: int,
    node: Optional[FuncNode] = None,
    code: Optional[types.CodeType] = None,
) -> types.CodeType:
    """The code that runs `node` (or `code`, without source) in place of st's function.

    `what` names it in errors ("the new body of shop.price"). `node` is a def
    the caller may change (a copy); `code`, when given with a node, is that
    node already compiled in st's scopes.
    """
    if node is not None:
        if code is None:
            code = compile_body(node, st.qualname, st.freevars, filename, flags, what)
        if code.co_freevars != st.freevars:
            extra = set(code.co_freevars) - set(st.freevars)
            if extra:
                raise LuError(
                    "%s needs free variables %s that the running function does not have (it has %s); "
                    "a closure's variables cannot change in place"
                    % (what, ", ".join(sorted(extra)), ", ".join(st.freevars) or "none")
                )
            pad_freevars(node, set(st.freevars) - set(code.co_freevars))
            code = compile_body(node, st.qualname, st.freevars, filename, code.co_flags, what)
    elif code is not None:
        code = code.replace(co_name=st.orig.code.co_name)
        if sys.version_info >= (3, 11):
            code = code.replace(co_qualname=st.qualname)
    else:  # pragma: no cover - a caller's mistake
        raise LuError("internal: %s has neither source nor code" % what)
    if code.co_freevars != st.freevars:
        raise LuError(
            "%s has free variables (%s) other than the running function's (%s)"
            % (what, ", ".join(code.co_freevars) or "none", ", ".join(st.freevars) or "none")
        )
    if st.orig.code.co_flags & CO_ITERABLE_COROUTINE and not code.co_flags & CO_ITERABLE_COROUTINE:
        code = code.replace(co_flags=code.co_flags | CO_ITERABLE_COROUTINE)  # @types.coroutine
    if (code.co_flags & KIND_FLAGS) != (st.orig.code.co_flags & KIND_FLAGS):
        raise LuError(
            "%s is %s but the running function is %s" % (what, kind_of(code.co_flags), kind_of(st.orig.code.co_flags))
        )
    return code


def redefined_body(st: FunctionState, new: types.FunctionType, name: str, uid: int) -> Body:
    """A patch file's function `new` as the body of st's function (Redefine)."""
    ncode = new.__code__
    node = source_node(new)
    if node is not None:
        node.name = st.orig.code.co_name
        node.decorator_list = []
    code = fit_code(
        st,
        "the new body of %s" % name,
        ncode.co_filename,
        ncode.co_flags,
        node=node,
        code=None if node is not None else ncode,
    )
    return Body.of_function(new, code, "redefine #%d" % uid, node=node, compiled_as=ncode)


def file_body(
    st: FunctionState,
    name: str,
    node: FuncNode,
    code: types.CodeType,
    filename: str,
    previous: Body,
    uid: int,
    defaults: Optional[Tuple[Any, ...]],
    kwdefaults: Optional[Dict[str, Any]],
    doc: Optional[str],
) -> Body:
    """A def of the module's own file, already compiled, as the body of st's function (Recode)."""
    private = clone(node) if code.co_freevars != st.freevars else node
    if private is not node:
        private.decorator_list = list(private.decorator_list)
    fitted = fit_code(st, "the new body of %s" % name, filename, code.co_flags, node=private, code=code)
    return Body(
        node=private,
        filename=filename,
        flags=fitted.co_flags,
        code=fitted,
        defaults=defaults,
        kwdefaults=kwdefaults,
        annotations=previous.annotations,
        doc=doc,
        label="watch #%d" % uid,
        from_file=filename,
    )


def new_function(
    code: types.CodeType,
    globals_dict: Dict[str, Any],
    attr: str,
    template: types.FunctionType,
    qualname: str,
    module: str,
    closure: Optional[Tuple[types.CellType, ...]] = None,
) -> types.FunctionType:
    """A fresh function object running `code`, with `template`'s defaults, annotations, doc and dict."""
    func = types.FunctionType(code, globals_dict, attr, template.__defaults__, closure)
    func.__kwdefaults__ = template.__kwdefaults__
    Annotations.of(template).install(func)
    func.__doc__ = template.__doc__
    func.__qualname__ = qualname
    func.__module__ = module
    func.__dict__.update(template.__dict__)
    return func


def unwrap_new(new: Any, full: str) -> types.FunctionType:
    func = resolve.unwrap(new)
    if func is None:
        raise LuError("the new definition for %s is not a Python function (%r)" % (full, new))
    return func
