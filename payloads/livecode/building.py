"""Making what a save adds: functions with their defaults and decorators, and attribute changes.

Each is made when its action runs (not when the save is planned), so a
decorator or a default value may use an import or a name the same save
added just before it in the file.
"""

from __future__ import annotations

import ast
import copy
import os
import types
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

from ..engine.updates import Action
from ..errors import LuError
from .model import Def, FuncNode

Holder = Union[types.ModuleType, type]  # what a function is an attribute of


class Defaults(NamedTuple):
    """A function's default values, as a def statement evaluates them."""

    positional: Optional[Tuple[Any, ...]]  # __defaults__
    keyword: Optional[Dict[str, Any]]  # __kwdefaults__


def decorate(
    func: Any, decorator_list: List[ast.expr], mod: types.ModuleType, cls: Optional[type], filename: str, name: str
) -> Any:
    """`func` under the decorators of a def, applied innermost first as the def statement would."""
    value = func
    ns = dict(cls.__dict__) if cls is not None else None
    for dec in reversed(decorator_list):
        try:
            expr = ast.Expression(body=dec)
            ast.fix_missing_locations(expr)
            decorator = eval(compile(expr, filename, "eval", dont_inherit=True), mod.__dict__, ns)
            value = decorator(value)
        except Exception as e:
            raise LuError(
                "%s:%d: the decorator of %s raised %s: %s; nothing applied"
                % (os.path.basename(filename), dec.lineno, name, type(e).__name__, e)
            )
    return value


def new_function_action(code: types.CodeType, mod: types.ModuleType, holder: Holder, d: Def, name: str) -> Action:
    """do() -> undo: make a def's function (defaults and decorators evaluated now, after the
    imports of the save that precede it ran) and bind it."""

    def do() -> Callable[[], None]:
        cls = holder if isinstance(holder, type) else None
        return set_action(holder, d.name, build_function(code, mod, cls, d, name))()

    return do


def build_function(code: types.CodeType, mod: types.ModuleType, cls: Optional[type], d: Def, display: str) -> Any:
    """A new function object for a def of the new source, decorators applied."""
    node = d.node
    assert not isinstance(node, ast.ClassDef)
    closure = None
    if code.co_freevars:
        if code.co_freevars == ("__class__",) and cls is not None:
            closure = (types.CellType(cls),)
        else:
            raise LuError(
                "the new function %s uses free variables (%s) lu cannot provide; nothing applied"
                % (display, ", ".join(code.co_freevars))
            )
    defaults = eval_defaults(node, mod, cls, display)
    fn = types.FunctionType(code, mod.__dict__, node.name, defaults.positional, closure)
    fn.__kwdefaults__ = defaults.keyword
    fn.__qualname__ = d.qualname
    fn.__module__ = mod.__name__
    fn.__doc__ = docstring_of(node)
    return decorate(fn, node.decorator_list, mod, cls, code.co_filename, display)


def eval_defaults(node: FuncNode, mod: types.ModuleType, cls: Optional[type], name: str) -> Defaults:
    """The default values of `node` evaluated as the def statement would."""
    args = _strip_annotations(node.args)
    type_params: Dict[str, Any] = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    stub = ast.FunctionDef(
        name="__lu_defaults__",
        args=args,
        body=[ast.Pass()],
        decorator_list=[],
        returns=None,
        type_comment=None,
        **type_params,
    )
    module = ast.Module(body=[stub], type_ignores=[])
    ast.fix_missing_locations(ast.increment_lineno(module, 0))
    ns: Dict[str, Any] = dict(cls.__dict__) if cls is not None else {}
    try:
        exec(compile(module, "<lu defaults of %s>" % name, "exec", dont_inherit=True), mod.__dict__, ns)
    except Exception as e:
        raise LuError(
            "cannot evaluate the default arguments of %s: %s: %s; nothing applied" % (name, type(e).__name__, e)
        )
    fn: types.FunctionType = ns["__lu_defaults__"]
    return Defaults(positional=fn.__defaults__, keyword=fn.__kwdefaults__)


def _strip_annotations(args: ast.arguments) -> ast.arguments:
    args = copy.deepcopy(args)
    for a in list(args.posonlyargs) + list(args.args) + list(args.kwonlyargs) + [args.vararg, args.kwarg]:
        if a is not None:
            a.annotation = None
    return args


def docstring_of(node: FuncNode) -> Optional[str]:
    try:
        return ast.get_docstring(node, clean=False)
    except Exception:
        return None


def set_action(parent: Holder, attr: str, value: object, delete: bool = False) -> Action:
    """do() -> undo: set (or delete) parent.attr, restoring what was there on undo."""
    missing = object()

    def do() -> Callable[[], None]:
        old = parent.__dict__.get(attr, missing)
        if delete:
            if old is not missing:
                delattr(parent, attr)
        else:
            setattr(parent, attr, value)

        def undo() -> None:
            current = parent.__dict__.get(attr, missing)
            if delete or current is value:
                if old is missing:
                    if current is not missing:
                        delattr(parent, attr)
                else:
                    setattr(parent, attr, old)

        return undo

    return do
