"""What an update changes besides code: names in a module or class.

A patch's predefine runs in the module, the helpers a new body uses are
copied into the module, a Redefine of a name that does not exist yet adds
it, lu watch adds, rebinds and prunes attributes. Each is prepared as a
`SideEffect` (nothing changes yet), run after every body of the transaction
compiled, and undone if anything after it fails; each returns its undo, which
the update's record keeps for revert.
"""

from __future__ import annotations

import ast
import builtins
import dis
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ..errors import LuError
from . import resolve
from .bodies import compile_body, new_function, source_node, unwrap_new
from .records import UpdateRecord
from .source import FUTURE_MASK

Undo = Callable[[], None]


@dataclass
class SideEffect:
    """One prepared change of names: `run()` makes it and returns its undo."""

    owner: UpdateRecord
    where: str  # the patch file's "file:line: " prefix for errors, or ""
    run: Callable[[], Undo]
    late: bool = False  # run just after the code swap instead of just before it


def undo_all(done: List[Tuple[UpdateRecord, Undo]]) -> None:
    """Undo side effects that ran, newest first; an undo that fails does not stop the others."""
    for _, undo in reversed(done):
        try:
            undo()
        except Exception:
            pass


def global_names(code: types.CodeType, out: Optional[Set[str]] = None) -> Set[str]:
    """Every global name `code` (and code nested in it) reads."""
    out = set() if out is None else out
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            out.add(ins.argval if isinstance(ins.argval, str) else ins.argrepr.split()[-1])
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            global_names(const, out)
    return out


def raised_where(filename: str, tb: Optional[types.TracebackType]) -> str:
    """'file:line: ' of the deepest frame of `filename` in a traceback (a patch file's line)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return "%s:%s: " % (filename, line) if line else "%s: " % filename


def copy_globals(
    rec: UpdateRecord, target_globals: Dict[str, Any], code: types.CodeType, new: types.FunctionType, where: str
) -> Optional[SideEffect]:
    """Copy into the module the names a new body uses that it lacks and the patch defines."""
    source = new.__globals__
    if source is target_globals:
        return None
    needed = {
        name: source[name]
        for name in global_names(code)
        if name not in target_globals and not hasattr(builtins, name) and name in source
    }
    if not needed:
        return None

    def run() -> Undo:
        added: Dict[str, Any] = {}
        for name, value in needed.items():
            if name not in target_globals:
                target_globals[name] = value
                added[name] = value

        def undo() -> None:
            # Kept on purpose: frames, suspended generators and coroutines
            # still running the reverted body look these names up, and a
            # name the module did not have cannot change what it runs.
            added.clear()

        return undo

    return SideEffect(rec, where, run)


def predefine(rec: UpdateRecord, module: types.ModuleType, function: types.FunctionType, where: str) -> SideEffect:
    """A patch's predefine: its body runs in the module's namespace before the swap."""
    node = source_node(function)
    if node is None:
        raise LuError("the predefine function %s has no source lu can find" % function.__name__)
    pcode = function.__code__
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    try:
        code = compile(
            ast.Module(body=body or [ast.Pass(lineno=node.lineno, col_offset=0)], type_ignores=[]),
            pcode.co_filename,
            "exec",
            flags=pcode.co_flags & FUTURE_MASK,
            dont_inherit=True,
        )
    except SyntaxError as e:
        raise LuError("%s:%s: predefine: %s" % (pcode.co_filename, e.lineno, e.msg))
    namespace = module.__dict__

    def run() -> Undo:
        before = dict(namespace)
        try:
            exec(code, namespace)
        except BaseException as e:
            _restore_namespace(namespace, before)
            line = raised_where(pcode.co_filename, sys.exc_info()[2])
            raise LuError("%spredefine raised %s: %s" % (line, type(e).__name__, e))
        changed = {k: v for k, v in namespace.items() if k not in before or before[k] is not v}

        def undo() -> None:
            # Names the predefine changed get their old values back; names
            # it added stay, since code still running the reverted bodies
            # (other threads, suspended generators) may look them up.
            for key, value in changed.items():
                if key in before and namespace.get(key, resolve._MISSING) is value:
                    namespace[key] = before[key]

        return undo

    return SideEffect(rec, where, run)


def new_name(
    rec: UpdateRecord, module: types.ModuleType, parent: Any, attr: str, full: str, new: Any, where: str
) -> Tuple[SideEffect, Optional[SideEffect]]:
    """A Redefine of a name its module or class does not have yet: add it (and remove it on revert)."""
    if not isinstance(parent, (types.ModuleType, type)):
        raise LuError("cannot add %s: %r is not a module or class" % (full, parent))
    wrapper = type(new) if isinstance(new, (staticmethod, classmethod)) else None
    nfunc = unwrap_new(new, full)
    if isinstance(parent, types.ModuleType):
        globals_dict = parent.__dict__
    else:
        owner_module = sys.modules.get(parent.__module__)
        globals_dict = owner_module.__dict__ if owner_module is not None else module.__dict__
    modname = globals_dict.get("__name__", module.__name__)
    qualname = attr if isinstance(parent, types.ModuleType) else parent.__qualname__ + "." + attr
    ncode = nfunc.__code__
    node = source_node(nfunc)
    closure: Optional[Tuple[types.CellType, ...]] = None
    if node is not None:
        node.name = attr
        node.decorator_list = []
        code = compile_body(node, qualname, (), ncode.co_filename, ncode.co_flags, "new function %s" % full)
        if code.co_freevars == ("__class__",) and isinstance(parent, type):
            closure = (types.CellType(parent),)
        elif code.co_freevars:
            raise LuError("the new function %s uses free variables %s" % (full, ", ".join(code.co_freevars)))
    else:
        if ncode.co_freevars:
            raise LuError("the new function %s is a closure; define it at the top level of the patch" % full)
        code = ncode.replace(co_name=attr) if attr.isidentifier() else ncode
    func = new_function(code, globals_dict, attr, nfunc, qualname, modname, closure)
    value = wrapper(func) if wrapper else func
    rec.targets.append(full)

    def run() -> Undo:
        if attr in parent.__dict__:
            raise LuError("%s appeared while the patch was being applied" % full)
        setattr(parent, attr, value)

        def undo() -> None:
            if parent.__dict__.get(attr) is value:
                delattr(parent, attr)

        return undo

    return SideEffect(rec, where, run), copy_globals(rec, globals_dict, code, nfunc, where)


def _restore_namespace(namespace: Dict[str, Any], before: Dict[str, Any]) -> None:
    for key in list(namespace):
        if key not in before:
            del namespace[key]
    for key, value in before.items():
        if namespace.get(key, resolve._MISSING) is not value:
            namespace[key] = value
