"""Build instrumented code: ast rewriting of one function body, then compile.

Hooks and helper objects reach the generated code as constants: the ast holds a
unique placeholder string which, after compilation, is replaced in `co_consts`
(of the function's code and of any code nested in it) by the real object.  A
call through a placeholder is written `(PH if True else None)(...)` so that the
compiler's "'str' object is not callable" warning is not triggered; the
compiler folds the conditional away (3.10+) or leaves one jump (3.8, 3.9).
Nothing is looked up in the module's globals or builtins, so the application's
names can neither collide with nor shadow lu's.

Generated shape (only the parts some hook asked for are emitted)::

    def f(a, b):
        ["docstring"]
        __lu_rv__ = None; __lu_x__ = None          # when a func_after hook exists
        try: H1(INFO, {'a': a, 'b': b})            # func_before, in layer order
        except EXC: REC1.failed()
        try:
            ...body; `return X` becomes `__lu_rv__ = X; return __lu_rv__`...
            __lu_rv__ = None
        except BASEEXC as __lu_e__:
            __lu_x__ = __lu_e__; __lu_rv__ = None; raise
        finally:
            try: H2(INFO, __lu_rv__, __lu_x__)     # func_after, reverse layer order
            except EXC: REC2.failed()
            __lu_x__ = None

Line hooks are statements inserted before/after the statement that starts on
the line; `yield`/`await` become `R(yield S(v))` with small pass-through
helpers when resume/suspend hooks exist.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import os
from types import CodeType
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from . import timer as timer_layout
from .points import KEYED, Want
from .records import FuncInfo, UpdateRecord
from .source import (
    CO_ASYNC_GENERATOR,
    CO_ITERABLE_COROUTINE,
    KIND_FLAGS,
    SCOPE_NODES,
    SCOPE_STMTS,
    Body,
    FuncNode,
    compile_in_scope,
    stmt_list_fields,
)
from .timer import CallTimer, SuspendableHooks

_counter = itertools.count()
_EXC = Exception
_BASEEXC = BaseException
_locals = builtins.locals
RV, EXC_NAME, E_NAME, V_NAME = "__lu_rv__", "__lu_x__", "__lu_e__", "__lu_v__"

Hook = Callable[..., Any]
ValueHook = Tuple[Hook, Want, UpdateRecord]  # (hook, the values it wants, the record its failures count in)
PlainHook = Tuple[Hook, UpdateRecord]  # (hook, rec)
Picker = Callable[[Dict[str, Any]], Dict[str, Any]]
Passthrough = Callable[[Any], Any]
_Located = TypeVar("_Located", bound=ast.AST)
# The kinds of node lu builds (or takes from a template) and gives a position.
_POSITIONED = (ast.stmt, ast.expr, ast.excepthandler)


def snapshot(d: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a locals() dict without lu's own variables."""
    return {k: v for k, v in d.items() if not (k.startswith("__lu_") and k.endswith("__"))}


def make_picker(names: Sequence[str], globals_dict: Dict[str, Any]) -> Picker:
    """Fallback capture of named variables when some are unbound: skip those."""
    paths = [(n, n.split(".")) for n in names]
    missing = object()

    def pick(local_dict: Dict[str, Any]) -> Dict[str, Any]:
        out = {}
        for name, path in paths:
            value = local_dict.get(path[0], missing)
            if value is missing:
                value = globals_dict.get(path[0], missing)
            if value is missing:
                value = getattr(builtins, path[0], missing)
            try:
                for attr in path[1:]:
                    if value is missing:
                        break
                    value = getattr(value, attr, missing)
            except Exception:
                value = missing
            if value is not missing:
                out[name] = value
        return out

    return pick


def make_passthrough(entries: Iterable[PlainHook], info: FuncInfo) -> Passthrough:
    """Suspend/resume helper: call each (hook, rec) with info, return the value."""
    entries = tuple(entries)
    if len(entries) == 1:
        ((hook, rec),) = entries

        def passthrough(value: Any) -> Any:
            try:
                hook(info)
            except Exception:
                rec.failed()
            return value

        return passthrough

    def passthrough_many(value: Any) -> Any:
        for hook, rec in entries:
            try:
                hook(info)
            except Exception:
                rec.failed()
        return value

    return passthrough_many


class Plan:
    """Hooks to weave into one body, gathered from every instrument layer in order."""

    def __init__(self) -> None:
        self.before: List[ValueHook] = []  # (hook, want, rec)
        self.after: List[PlainHook] = []  # (hook, rec), already in call order
        self.line_before: Dict[int, List[ValueHook]] = {}  # line -> [(hook, want, rec)]
        self.line_after: Dict[int, List[ValueHook]] = {}
        self.suspend: List[PlainHook] = []  # (hook, rec)
        self.resume: List[PlainHook] = []
        self.timers: List[Tuple[CallTimer, UpdateRecord]] = []  # (timer, rec): inline call-tree timers, outermost

    def empty(self) -> bool:
        return not (
            self.before
            or self.after
            or self.line_before
            or self.line_after
            or self.suspend
            or self.resume
            or self.timers
        )


class _Builder:
    def __init__(self, fnode: FuncNode, flags: int, plan: Plan, info: FuncInfo, globals_dict: Dict[str, Any]) -> None:
        self.flags = flags  # the body's code flags: a generator, coroutine or async generator (no walk of the tree)
        self.plan = plan
        self.info = info
        self.globals = globals_dict
        self.consts: Dict[str, object] = {}  # placeholder -> the object it stands for
        self.by_id: Dict[int, str] = {}  # id(object) -> its placeholder
        self.nonce = "\x00lu%d:%d\x00" % (os.getpid(), next(_counter))
        self.fnode = fnode
        self.is_async_gen = False
        self.suspendable = False  # a generator or coroutine
        self.suspendable_hooks: List[SuspendableHooks] = []  # one per plan.timers entry, when suspendable
        self.line_keys: Dict[int, Tuple[FuncInfo, int]] = {}  # line -> its (info, line) key (Points.keyed_lines)

    # -- constants -------------------------------------------------------------
    def const(self, obj: object) -> ast.Constant:
        key = id(obj)
        ph = self.by_id.get(key)
        if ph is None:
            ph = "%s%d" % (self.nonce, len(self.consts))
            self.consts[ph] = obj
            self.by_id[key] = ph
        return ast.Constant(value=ph)

    def callee(self, obj: object) -> ast.IfExp:
        return ast.IfExp(test=ast.Constant(value=True), body=self.const(obj), orelse=ast.Constant(value=None))

    def call(self, obj: object, args: List[ast.expr]) -> ast.Call:
        return ast.Call(func=self.callee(obj), args=args, keywords=[])

    # -- statements ------------------------------------------------------------
    def guarded(self, stmts: List[ast.stmt], rec: UpdateRecord) -> ast.Try:
        return ast.Try(
            body=stmts,
            handlers=[
                ast.ExceptHandler(
                    type=self.const(_EXC),
                    name=None,
                    body=[
                        ast.Expr(
                            value=ast.Call(
                                func=ast.Attribute(value=self.const(rec), attr="failed", ctx=ast.Load()),
                                args=[],
                                keywords=[],
                            )
                        )
                    ],
                )
            ],
            orelse=[],
            finalbody=[],
        )

    def capture(
        self, want: Union[str, Tuple[str, ...]], default_names: Optional[List[str]]
    ) -> Tuple[List[ast.stmt], ast.expr]:
        """(setup statements, expression) giving the dict a hook asked for."""
        if want == "all":
            if default_names is None:
                return [], self.call(snapshot, [self.call(_locals, [])])
            return [], ast.Dict(
                keys=[ast.Constant(value=n) for n in default_names],
                values=[ast.Name(id=n, ctx=ast.Load()) for n in default_names],
            )
        exprs: List[ast.expr] = []
        for n in want:
            parts = n.split(".")
            e: ast.expr = ast.Name(id=parts[0], ctx=ast.Load())
            for p in parts[1:]:
                e = ast.Attribute(value=e, attr=p, ctx=ast.Load())
            exprs.append(e)
        direct = ast.Dict(keys=[ast.Constant(value=n) for n in want], values=exprs)
        picker = make_picker(want, self.globals)
        setup: List[ast.stmt] = [
            ast.Try(
                body=[ast.Assign(targets=[ast.Name(id=V_NAME, ctx=ast.Store())], value=direct)],
                handlers=[
                    ast.ExceptHandler(
                        type=self.const(_EXC),
                        name=None,
                        body=[
                            ast.Assign(
                                targets=[ast.Name(id=V_NAME, ctx=ast.Store())],
                                value=self.call(picker, [self.call(_locals, [])]),
                            )
                        ],
                    )
                ],
                orelse=[],
                finalbody=[],
            )
        ]
        return setup, ast.Name(id=V_NAME, ctx=ast.Load())

    def hook_call(
        self, hook: Hook, want: Want, rec: UpdateRecord, lead_args: List[ast.expr], default_names: Optional[List[str]]
    ) -> ast.Try:
        info = self.const(self.info)
        if want is None:
            return self.guarded([ast.Expr(value=self.call(hook, [info] + lead_args))], rec)
        setup, expr = self.capture(want, default_names)
        stmts = setup + [ast.Expr(value=self.call(hook, [info] + lead_args + [expr]))]
        if setup:
            stmts.append(ast.Assign(targets=[ast.Name(id=V_NAME, ctx=ast.Store())], value=ast.Constant(value=None)))
        return self.guarded(stmts, rec)

    def line_hooks(self, table: Dict[int, List[ValueHook]], line: int, at: ast.stmt) -> List[ast.stmt]:
        out: List[ast.stmt] = []
        for hook, want, rec in table.get(line, ()):
            if want == KEYED:  # one constant argument: (info, line), the same object before and after the line
                key = self.line_keys.setdefault(line, (self.info, line))
                out.append(self.guarded([ast.Expr(value=self.call(hook, [self.const(key)]))], rec))
                continue
            out.append(self.hook_call(hook, want, rec, [ast.Constant(value=line)], None))
        for s in out:
            _locate(s, at)
        return out

    # -- rewriting -------------------------------------------------------------
    def rewrite_return(self, ret: ast.Return, want_rv: bool) -> List[ast.stmt]:
        after = self.line_hooks(self.plan.line_after, ret.lineno, ret) if ret.lineno in self.plan.line_after else []
        if not want_rv and not after:
            return [ret]
        value = ret.value if ret.value is not None else ast.Constant(value=None)
        assign = _locate(ast.Assign(targets=[ast.Name(id=RV, ctx=ast.Store())], value=value), ret)
        new_ret = _locate(ast.Return(value=None if self.is_async_gen else ast.Name(id=RV, ctx=ast.Load())), ret)
        return [assign] + after + [new_ret]

    def rewrite_list(self, stmts: List[ast.stmt], want_rv: bool, outer_line: Optional[int] = None) -> List[ast.stmt]:
        out: List[ast.stmt] = []
        plan = self.plan
        for s in stmts:
            if isinstance(s, SCOPE_STMTS):
                first = s.decorator_list[0].lineno if s.decorator_list else s.lineno
                if first in plan.line_before and first != outer_line:
                    out.extend(self.line_hooks(plan.line_before, first, s))
                out.append(s)
                if first in plan.line_after and first != outer_line:
                    out.extend(self.line_hooks(plan.line_after, first, s))
                continue
            same = s.lineno == outer_line
            if not same and s.lineno in plan.line_before:
                out.extend(self.line_hooks(plan.line_before, s.lineno, s))
            if isinstance(s, ast.Return):
                if same:
                    saved, plan.line_after = plan.line_after, {}
                    out.extend(self.rewrite_return(s, want_rv))
                    plan.line_after = saved
                else:
                    out.extend(self.rewrite_return(s, want_rv))
                continue
            for field in stmt_list_fields(s):
                field[:] = self.rewrite_list(field, want_rv, s.lineno)
            out.append(s)
            if not same and s.lineno in plan.line_after:
                out.extend(self.line_hooks(plan.line_after, s.lineno, s))
        return out

    def wrap_in_timers(self, body: List[ast.stmt], first: ast.stmt) -> List[ast.stmt]:
        """Inline the call-tree timers around the whole body.

        A profiled call of a plain function then costs no Python-level hook
        call: the entry finds the thread's tree node with a few attribute and
        dict operations, the exit adds the elapsed time in a `finally`. A
        generator or coroutine calls the timer's start/finish hooks instead,
        keeping its Activation in a local that the yields and awaits pass on
        (see `_YieldRewriter`). Anything unexpected in the entry disables the
        exit for that call instead of reaching the program.
        """
        for index, (timer, rec) in reversed(list(enumerate(self.plan.timers))):
            names = {"TREE": "__lu_tt%d__" % index, "NODE": "__lu_tn%d__" % index, "ACT": self.activation(index)}
            consts: Dict[str, object] = {
                "LOCAL": timer.local,
                "INFO": self.info,
                "ATTRERR": AttributeError,
                "EXC": _EXC,
                "REC": rec,
            }
            if self.suspendable:
                hooks = self.suspendable_hooks[index]
                calls: Dict[str, object] = {"START": hooks.start, "FINISH": hooks.finish}
                enter_text, leave_text = _SUSPENDABLE_ENTER, _SUSPENDABLE_LEAVE
            elif timer.compiled is not None:
                calls = {"ENTER": timer.compiled.enter, "LEAVE": timer.compiled.leave}
                enter_text, leave_text = _COMPILED_ENTER, _COMPILED_LEAVE
            else:
                calls = {"NEWTREE": timer.new_tree_hook, "NEWCHILD": timer.new_child_hook, "CLOCK": timer.clock}
                enter_text, leave_text = _TIMER_ENTER, _TIMER_LEAVE
            enter = _template(enter_text, names, consts, calls, self, first)
            leave = _template(leave_text, names, consts, calls, self, first)
            wrapper = ast.Try(body=body, handlers=[], orelse=[], finalbody=leave)
            _place(wrapper, first)  # the rest has its place: the templates', and the function's own
            body = enter + [wrapper]
        return body

    @staticmethod
    def activation(index: int) -> str:
        """The local that holds the Activation of the timer at `index` (generators and coroutines)."""
        return "__lu_ta%d__" % index

    def build(self) -> FuncNode:
        f = self.fnode
        plan = self.plan
        self.suspendable = bool(self.flags & KIND_FLAGS)
        if self.suspendable:
            self.suspendable_hooks = [timer.suspendable_hooks(rec.failed) for timer, rec in plan.timers]
        self.is_async_gen = bool(self.flags & CO_ASYNC_GENERATOR)
        if plan.suspend or plan.resume or self.suspendable_hooks:
            _YieldRewriter(self).visit_body(f)
        want_rv = bool(plan.after)
        body = list(f.body)
        doc: List[ast.stmt] = []
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            doc = [body.pop(0)]
        first = body[0] if body else (doc[0] if doc else f)
        body = self.rewrite_list(body, want_rv)
        if not body:
            body = [_locate(ast.Pass(), first)]
        params = _param_names(f.args)
        before = [self.hook_call(h, w, r, [], params) for h, w, r in plan.before]
        for s in before:
            _locate(s, first)
        if want_rv:
            last = body[-1]
            fall = _locate(ast.Assign(targets=[ast.Name(id=RV, ctx=ast.Store())], value=ast.Constant(value=None)), last)
            handler = ast.ExceptHandler(
                type=self.const(_BASEEXC),
                name=E_NAME,
                body=[
                    ast.Assign(
                        targets=[ast.Name(id=EXC_NAME, ctx=ast.Store())], value=ast.Name(id=E_NAME, ctx=ast.Load())
                    ),
                    ast.Assign(targets=[ast.Name(id=RV, ctx=ast.Store())], value=ast.Constant(value=None)),
                    ast.Raise(exc=None, cause=None),
                ],
            )
            finals: List[ast.stmt] = [
                self.guarded(
                    [
                        ast.Expr(
                            value=self.call(
                                h,
                                [
                                    self.const(self.info),
                                    ast.Name(id=RV, ctx=ast.Load()),
                                    ast.Name(id=EXC_NAME, ctx=ast.Load()),
                                ],
                            )
                        )
                    ],
                    r,
                )
                for h, r in plan.after
            ]
            finals.append(ast.Assign(targets=[ast.Name(id=EXC_NAME, ctx=ast.Store())], value=ast.Constant(value=None)))
            wrapper = _locate(
                ast.Try(
                    body=[], handlers=[_locate(handler, last)], orelse=[], finalbody=[_locate(s, last) for s in finals]
                ),
                first,
            )
            wrapper.body = body + [fall]
            init: List[ast.stmt] = [
                _locate(ast.Assign(targets=[ast.Name(id=n, ctx=ast.Store())], value=ast.Constant(value=None)), first)
                for n in (RV, EXC_NAME)
            ]
            body = init + before + [wrapper]
        else:
            body = before + body
        if plan.timers:
            body = self.wrap_in_timers(body, first)
        f.body = doc + body
        if plan.suspend or plan.resume or self.suspendable_hooks:
            ast.fix_missing_locations(f)
        return f


# The timing woven into a plain function; the node layout is timer.py's.
_TIMER_ENTER = (
    """
try:
    try:
        TREE = LOCAL.tree
    except ATTRERR:
        TREE = NEWTREE()
    NODE = TREE.node[%(CHILDREN)d].get(INFO)
    if NODE is None:
        NODE = NEWCHILD(TREE, INFO)
    TREE.node = NODE
    NODE[%(STARTED)d] = CLOCK()
except EXC:
    NODE = None
    REC.failed()
"""
    % timer_layout.__dict__
)

_TIMER_LEAVE = (
    """
if NODE is not None:
    NODE[%(HITS)d] += 1
    NODE[%(TOTAL)d] += CLOCK() - NODE[%(STARTED)d]
    TREE.node = NODE[%(PARENT)d]
    NODE = None
"""
    % timer_layout.__dict__
)


# The same with the compiled timer (engine/accel.py): one C call each way. NODE is the
# FuncInfo when the call is timed, None when not (a failure, or a call the timer skips).
_COMPILED_ENTER = """
try:
    NODE = ENTER(INFO)
except EXC:
    NODE = None
    REC.failed()
"""

_COMPILED_LEAVE = """
if NODE is not None:
    NODE = LEAVE(INFO)
"""


# The same for a generator or coroutine: its Activation lives in ACT, which
# every yield and await hands to the timer's pause/unpause.
_SUSPENDABLE_ENTER = """
ACT = START(INFO)
"""

_SUSPENDABLE_LEAVE = """
FINISH(ACT)
ACT = None
"""


class _Fill(ast.NodeTransformer):
    def __init__(
        self, names: Dict[str, str], consts: Dict[str, object], calls: Dict[str, object], builder: _Builder
    ) -> None:
        self.names, self.consts, self.calls, self.b = names, consts, calls, builder

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.names:
            return ast.copy_location(ast.Name(id=self.names[node.id], ctx=node.ctx), node)
        if node.id in self.consts:
            return ast.copy_location(self.b.const(self.consts[node.id]), node)
        if node.id in self.calls:
            return ast.copy_location(self.b.callee(self.calls[node.id]), node)
        return node


def _template(
    text: str,
    names: Dict[str, str],
    consts: Dict[str, object],
    calls: Dict[str, object],
    builder: _Builder,
    like: ast.stmt,
) -> List[ast.stmt]:
    tree = ast.parse(text)
    tree = _Fill(names, consts, calls, builder).visit(tree)
    body: List[ast.stmt] = tree.body
    for s in body:  # positions come from the function, all of them
        _locate(s, like, force=True)
    return body


def _param_names(args: ast.arguments) -> List[str]:
    names = [a.arg for a in getattr(args, "posonlyargs", [])] + [a.arg for a in args.args]
    if args.vararg:
        names.append(args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append(args.kwarg.arg)
    return names


def _place(node: ast.stmt, like: ast.stmt) -> None:
    """Give `node` alone (not its children) the position of `like`."""
    node.lineno = like.lineno
    node.col_offset = getattr(like, "col_offset", 0)
    node.end_lineno = getattr(like, "end_lineno", None) or like.lineno
    node.end_col_offset = getattr(like, "end_col_offset", None) or node.col_offset


def _locate(node: _Located, like: ast.stmt, force: bool = False) -> _Located:
    """Give `node` (and children without one; with `force`, all of them) the position of `like`."""
    for n in ast.walk(node):
        if "lineno" in n._attributes and (force or getattr(n, "lineno", None) is None):
            # Only nodes lu built lack a position (the parser gives every node one), and
            # lu builds, and forces on templates, statements, expressions and handlers only.
            assert isinstance(n, _POSITIONED), n
            n.lineno = like.lineno
            n.col_offset = getattr(like, "col_offset", 0)
            n.end_lineno = getattr(like, "end_lineno", None) or like.lineno
            n.end_col_offset = getattr(like, "end_col_offset", None) or n.col_offset
    return node


class _YieldRewriter(ast.NodeTransformer):
    """`yield v` -> `R(UNPAUSE(A, (yield PAUSE(A, S(v)))))`, same for `yield from` and `await`.

    S and R are the suspend/resume hooks of other tools; PAUSE and UNPAUSE
    are each timer's, with its Activation A (timers sit closest to the yield).
    """

    def __init__(self, builder: _Builder) -> None:
        self.b = builder
        info = builder.info
        self.s = make_passthrough([(h, r) for h, r in builder.plan.suspend], info) if builder.plan.suspend else None
        self.r = make_passthrough([(h, r) for h, r in builder.plan.resume], info) if builder.plan.resume else None
        self.timers = [(builder.activation(i), hooks) for i, hooks in enumerate(builder.suspendable_hooks)]

    def visit_body(self, fnode: FuncNode) -> None:
        body: List[ast.stmt] = []
        for s in fnode.body:
            done = self.visit(s)
            body.extend(done if isinstance(done, list) else [done])
        if self.timers:
            body = _guard_resumptions(self.b, body)
        fnode.body = body

    def _scope(self, node: ast.AST) -> ast.AST:
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scope
    visit_GeneratorExp = _scope

    def _wrap(
        self,
        node: Union[ast.Yield, ast.YieldFrom, ast.Await],
        kind: Union[Type[ast.Yield], Type[ast.YieldFrom], Type[ast.Await]],
    ) -> ast.expr:
        self.generic_visit(node)
        value = node.value if node.value is not None else ast.Constant(value=None)
        if self.s is not None:
            value = self.b.call(self.s, [value])
        for name, hooks in self.timers:
            value = self.b.call(hooks.pause, [ast.Name(id=name, ctx=ast.Load()), value])
        result: ast.expr = ast.copy_location(kind(value=value), node)
        for name, hooks in reversed(self.timers):
            result = ast.copy_location(self.b.call(hooks.unpause, [ast.Name(id=name, ctx=ast.Load()), result]), node)
        if self.r is not None:
            return ast.copy_location(self.b.call(self.r, [result]), node)
        return result

    def visit_Yield(self, node: ast.Yield) -> ast.expr:
        return self._wrap(node, ast.Yield)

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.expr:
        return self._wrap(node, ast.YieldFrom)

    def visit_Await(self, node: ast.Await) -> ast.expr:
        return self._wrap(node, ast.Await)

    # The awaits that `async with` and `async for` make have no ast node: the
    # timers see them through a proxy of the manager or iterator (its
    # __aenter__/__aexit__/__anext__ pause the call), and a resume marker
    # where the code goes on after them.
    def visit_AsyncWith(self, node: ast.AsyncWith) -> Any:
        self.generic_visit(node)
        if not self.timers:
            return node
        for item in node.items:
            for name, hooks in self.timers:
                item.context_expr = self.b.call(
                    hooks.timed_with, [ast.Name(id=name, ctx=ast.Load()), item.context_expr]
                )
        node.body[:0] = self.resumed(node)
        return [node] + self.resumed(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> Any:
        self.generic_visit(node)
        if not self.timers:
            return node
        for name, hooks in self.timers:
            node.iter = self.b.call(hooks.timed_for, [ast.Name(id=name, ctx=ast.Load()), node.iter])
        node.body[:0] = self.resumed(node)
        if node.orelse:
            node.orelse[:0] = self.resumed(node)
        return [node] + self.resumed(node)

    def visit_comprehension(self, node: ast.comprehension) -> ast.comprehension:
        self.generic_visit(node)
        if node.is_async:  # no statement to resume in: the next pause or the finish notices
            for name, hooks in self.timers:
                node.iter = self.b.call(hooks.timed_for, [ast.Name(id=name, ctx=ast.Load()), node.iter])
        return node

    def resumed(self, at: ast.stmt) -> List[ast.stmt]:
        """Statements telling each timer that the call runs again (no-ops when it never stopped)."""
        calls = [
            self.b.call(hooks.unpause, [ast.Name(id=name, ctx=ast.Load()), ast.Constant(None)])
            for name, hooks in self.timers
        ]
        return [_locate(ast.Expr(value=call), at) for call in calls]


def _guard_resumptions(builder: _Builder, body: List[ast.stmt]) -> List[ast.stmt]:
    """Wrap each statement that can suspend in `try: ... except BaseException: RESUMED; raise`.

    An exception thrown into a suspended call (a cancelled task, a timeout,
    `generator.close()`) comes out of the yield or await without the resume
    hook running. The handler tells the timers the call runs again from that
    moment, and re-raises the same exception with its traceback untouched.
    """
    out: List[ast.stmt] = []
    for s in body:
        if isinstance(s, SCOPE_STMTS):
            out.append(s)
            continue
        for field in stmt_list_fields(s):
            field[:] = _guard_resumptions(builder, field)
        if not _may_suspend(s):
            out.append(s)
            continue
        handler = ast.ExceptHandler(
            type=builder.const(_BASEEXC),
            name=None,
            body=[
                ast.Expr(value=builder.call(hooks.resumed, [ast.Name(id=builder.activation(i), ctx=ast.Load())]))
                for i, hooks in enumerate(builder.suspendable_hooks)
            ]
            + [ast.Raise(exc=None, cause=None)],
        )
        guard = ast.Try(body=[s], handlers=[handler], orelse=[], finalbody=[])
        out.append(_locate(guard, s))
    return out


def _may_suspend(s: ast.stmt) -> bool:
    """Whether the statement's own parts (not its nested statements) can yield or await."""
    if isinstance(s, (ast.AsyncWith, ast.AsyncFor)):
        return True
    nested = {id(n) for field in stmt_list_fields(s) for n in field}
    stack: List[ast.AST] = [c for c in ast.iter_child_nodes(s) if id(c) not in nested]
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)):
            return True
        if isinstance(n, SCOPE_NODES + (ast.stmt, ast.excepthandler)):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def replace_consts(code: CodeType, mapping: Dict[str, object]) -> CodeType:
    code_type = type(code)
    changed = False
    consts: List[object] = []
    for c in code.co_consts:
        if type(c) is str and c in mapping:
            c = mapping[c]
            changed = True
        elif isinstance(c, code_type):
            new = replace_consts(c, mapping)
            if new is not c:
                changed = True
            c = new
        consts.append(c)
    return code.replace(co_consts=tuple(consts)) if changed else code


def build_code(
    body: Body,
    fnode: FuncNode,
    qualname: str,
    freevars: Tuple[str, ...],
    plan: Plan,
    info: FuncInfo,
    globals_dict: Dict[str, Any],
) -> CodeType:
    """Instrumented code object for `body` (a source.Body) following `plan`; `fnode` is its def, changed in place."""
    builder = _Builder(fnode, body.code.co_flags, plan, info, globals_dict)
    builder.build()
    code = compile_in_scope(fnode, qualname, freevars, body.filename, body.flags)
    code = replace_consts(code, builder.consts)
    if body.code.co_flags & CO_ITERABLE_COROUTINE and not code.co_flags & CO_ITERABLE_COROUTINE:
        code = code.replace(co_flags=code.co_flags | CO_ITERABLE_COROUTINE)  # @types.coroutine
    for timer, _rec in plan.timers:
        if builder.suspendable:
            timer.codes.add(code)  # an await of this code is a profiled call, not a suspension
        timer.timing(info, (body.code, info.func.__code__))  # what calls running now go on in
    return code
