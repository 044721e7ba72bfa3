"""Updates (Instrument, Redefine), their composition, transactions and revert."""
from __future__ import annotations

import ast
import builtins

import dis
import linecache
import sys
import time
import types

from ..errors import LuError
from .. import osthreads
from . import resolve as _resolve
from .source import (CO_ITERABLE_COROUTINE, KIND_FLAGS, PY311, Body, clone, code_qualname, compile_in_scope, find_def,
                     original_node, same_code, shift_code, statement_lines)
from .transform import Plan, build_code

_POINTS = ("func_before", "func_after", "line_before", "line_after", "suspend", "resume", "func_timer")


class FuncInfo(object):
    """What a hook is told about the function it runs in (one per function).

    name: the dotted name lu knows it by ('pkg.mod.Cart.total');
    qualname, module: of the function; filename, firstlineno: of its original
    code; func: the function object; code: its original code object (a stable
    key for aggregating).
    """

    __slots__ = ("name", "qualname", "module", "filename", "firstlineno", "func", "code", "__weakref__")

    def __init__(self, name, func, code):
        self.name = name
        self.func = func
        self.code = code
        self.qualname = code_qualname(func)
        self.module = getattr(func, "__module__", None)
        self.filename = code.co_filename
        self.firstlineno = code.co_firstlineno

    def __repr__(self):
        return "<lu FuncInfo %s>" % self.name


class _Record(object):
    """One applied update: what ls shows, plus what revert needs."""

    def __init__(self, uid, kind, description):
        self.uid = uid
        self.kind = kind
        self.description = description
        self.targets = []
        self.applied_at = None
        self.hook_errors = 0
        self.last_hook_error = None
        self.layers = []     # (state, layer)
        self.undo = []       # callables run on revert (reverse order)
        self._last_notify = 0.0

    def failed(self):
        """Called from generated code in an except clause: count, remember, notify."""
        try:
            et, ev, tb = sys.exc_info()
            self.hook_errors += 1
            where = ""
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                where = " (%s:%d)" % (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            try:
                text = "%s: %s%s" % (et.__name__, ev, where)
            except Exception:
                text = "%s%s" % (et.__name__, where)
            self.last_hook_error = text
            listeners = UpdateManager._listeners
            if listeners:
                now = time.monotonic()
                if self.hook_errors == 1 or now - self._last_notify >= 1.0:
                    self._last_notify = now
                    event = {"event": "hook_error", "id": self.uid, "hook_errors": self.hook_errors,
                             "error": text}
                    for cb in list(listeners):
                        try:
                            cb(event)
                        except Exception:
                            pass
        except BaseException:
            pass

    def as_dict(self):
        return {"id": self.uid, "kind": self.kind, "targets": list(self.targets),
                "description": self.description, "applied_at": self.applied_at,
                "hook_errors": self.hook_errors, "last_hook_error": self.last_hook_error}


class _InstrumentLayer(object):
    __slots__ = ("record", "points", "body")

    def __init__(self, record, points, body):
        self.record = record
        self.points = points
        self.body = body   # the body its line numbers refer to


class _RedefineLayer(object):
    __slots__ = ("record", "body")

    def __init__(self, record, body):
        self.record = record
        self.body = body


class _State(object):
    """Per changed function: the pristine original and the applied layers, in order."""

    def __init__(self, func, name):
        code = func.__code__
        self.func = func
        self.name = name
        self.qualname = code_qualname(func)
        self.freevars = code.co_freevars
        ann = func.__annotations__
        self.orig = Body(None, code.co_filename, code.co_flags, code, func.__defaults__,
                         func.__kwdefaults__, dict(ann) if ann else {}, func.__doc__, "original")
        self.orig.from_file = code.co_filename
        self.body = self.orig
        self.layers = []
        self.current = code
        self.info = FuncInfo(name, func, code)

    def node_of(self, body):
        if body.node is None:
            if body is self.orig or body.from_file:
                # the original, or a body lu compiled from the module's file (lu watch):
                # its def is read from the file as it is now, and checked against the code
                body.node = original_node(body.code, self.qualname, self.name)
            else:
                raise LuError("%s runs a redefined body without source; it cannot be instrumented" % self.name)
        return body.node

    def lines_of(self, body):
        if body.lines is None:
            body.lines = statement_lines(self.node_of(body))
        return body.lines


# --------------------------------------------------------------------------- points
def _norm_hook(hook, point):
    if not callable(hook):
        raise LuError("the hook for %s is not callable (%r)" % (point, hook))
    try:
        hash(hook)
    except TypeError:
        inner = hook

        def hook(*args):
            return inner(*args)
    return hook


def _norm_want(want, point):
    if want is None or want == "all":
        return want
    if isinstance(want, str):
        want = [want]
    try:
        names = list(want)
    except TypeError:
        raise LuError("%s: the variables to capture must be a list of names, not %r" % (point, want))
    for n in names:
        if not isinstance(n, str) or not all(p.isidentifier() for p in n.split(".")):
            raise LuError("%s: %r is not a variable name (or dotted attribute path)" % (point, n))
    return tuple(names)


def _normalize_points(points):
    if isinstance(points, dict):
        pairs = list(points.items())
    else:
        try:
            pairs = [tuple(p) for p in points]
        except TypeError:
            pairs = None
        if pairs is None or any(len(p) != 2 for p in pairs):
            raise LuError("Instrument needs a dict of points, e.g. {'func_before': hook}")
    if not pairs:
        raise LuError("Instrument needs at least one point, e.g. {'func_before': hook}")
    out = {"func_before": [], "func_after": [], "line_before": {}, "line_after": {}, "suspend": [], "resume": [],
           "func_timer": []}
    for key, value in pairs:
        lines = None
        if isinstance(key, tuple) and len(key) == 2 and key[0] in ("line_before", "line_after"):
            point, lines = key
            if isinstance(lines, int):
                lines = [lines]
            try:
                lines = [int(x) for x in lines]
            except (TypeError, ValueError):
                raise LuError("%s: lines must be a list of line numbers, not %r" % (point, lines))
            if not lines:
                raise LuError("%s: give at least one line number" % point)
        elif key in _POINTS and key not in ("line_before", "line_after"):
            point = key
        else:
            raise LuError("unknown instrumentation point %r; use 'func_before', 'func_after', "
                          "('line_before', [lines]), ('line_after', [lines]), 'suspend' or 'resume'" % (key,))
        if point == "func_timer":
            missing = [a for a in ("local", "new_tree", "new_child", "clock", "before", "after", "suspend", "resume")
                       if not hasattr(value, a)]
            if missing:
                raise LuError("func_timer takes a call-tree timer (like lu's FuncProfiler); %r lacks %s"
                              % (value, ", ".join(missing)))
            out[point].append(value)
            continue
        if isinstance(value, tuple) and len(value) == 2 and callable(value[0]):
            hook, want = value
        else:
            hook, want = value, "all"
        hook = _norm_hook(hook, point)
        if point in ("func_after", "suspend", "resume"):
            if want != "all":
                raise LuError("%s hooks take no variable list" % point)
            out[point].append(hook)
        elif point == "func_before":
            out[point].append((hook, _norm_want(want, point)))
        else:
            want = _norm_want(want, point)
            for ln in lines:
                out[point].setdefault(ln, []).append((hook, want))
    return out


def _target_name(target):
    if isinstance(target, str):
        return target
    func = _resolve.unwrap(target)
    if func is None:
        raise LuError("%r is neither a dotted name nor a Python function" % (target,))
    return "%s.%s" % (func.__module__, func.__qualname__)


class Instrument(object):
    """Hooks woven into existing functions; see the package docstring for points."""

    kind = "instrument"

    def __init__(self, targets, points, description=None):
        if isinstance(targets, (str, types.FunctionType)) or not hasattr(targets, "__iter__"):
            targets = [targets]
        self.targets = list(targets)
        if not self.targets:
            raise LuError("Instrument needs at least one target")
        self.points = _normalize_points(points)
        self.description = description

    def resolve(self):
        out = []
        seen = set()
        for t in self.targets:
            if isinstance(t, str):
                found = _resolve.resolve_pattern(t)
            else:
                func = _resolve.unwrap(t)
                if func is None:
                    raise LuError("%r is not a Python function" % (t,))
                found = [(_target_name(t), func)]
            for name, func in found:
                if id(func) not in seen:
                    seen.add(id(func))
                    out.append((name, func))
        return out

    def describe(self, names):
        if self.description:
            return self.description
        pts = []
        p = self.points
        for k in ("func_timer", "func_before", "func_after", "suspend", "resume"):
            if p[k]:
                pts.append(k)
        for k in ("line_before", "line_after"):
            if p[k]:
                pts.append("%s %s" % (k, ",".join(str(x) for x in sorted(p[k]))))
        shown = ", ".join(str(t) if isinstance(t, str) else _target_name(t) for t in self.targets)
        return "%s (%d function%s): %s" % (shown, len(names), "" if len(names) == 1 else "s", "; ".join(pts))


class Redefine(object):
    """New bodies for existing functions, in place (identity kept).

    Redefine(module, predefine, {'mod.func': new_func, ...}); see the package
    docstring.
    """

    kind = "redefine"

    def __init__(self, module, predefine, mapping, description=None):
        if isinstance(module, types.ModuleType):
            module = module.__name__
        if not isinstance(module, str) or not module:
            raise LuError("Redefine: the module must be a module name or module object")
        if predefine is not None and not isinstance(predefine, types.FunctionType):
            raise LuError("Redefine: predefine must be a function or None")
        if not isinstance(mapping, dict) or not mapping:
            raise LuError("Redefine needs a dict {'module.name': new_function}")
        self.module = module
        self.predefine = predefine
        self.mapping = dict(mapping)
        self.description = description


class Recode(object):
    """Bodies from a new version of a module's own source file (lu watch).

    Built by lu_payloads.livecode, which matched the new file against what
    runs; this only installs the result as one update:

    changes: ('update', name, func, node, code, defaults, kwdefaults, doc):
             the function runs `code` (compiled from the file; `node` is its
             def in the new file, so later Instrument calls use the file's
             lines).  ('move', name, func, node, new_firstlineno): the body
             the function runs is unchanged but now starts on another line;
             line points applied to it follow it.
    actions: callables do() -> undo, run after everything was compiled and
             before the code swap (adding, rebinding or pruning attributes);
             a failing one undoes the others.
    """

    kind = "recode"

    def __init__(self, filename, changes, actions=(), targets=(), description=None, kind="recode"):
        self.kind = kind    # what lu ls shows: "watch", "realtime"
        self.filename = filename
        self.changes = list(changes)
        self.actions = list(actions)
        self.targets = list(targets)
        self.description = description


# --------------------------------------------------------------------------- helpers
def _compile_body(node, qualname, freevars, filename, flags, what):
    try:
        return compile_in_scope(node, qualname, freevars, filename, flags)
    except SyntaxError as e:
        raise LuError("%s:%s: %s: %s" % (e.filename or filename, e.lineno, what, e.msg))


def _global_names(code, out=None):
    out = set() if out is None else out
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            out.add(ins.argval if isinstance(ins.argval, str) else ins.argrepr.split()[-1])
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _global_names(c, out)
    return out


def _pad_freevars(node, missing):
    """Make names free in node by a never-run reference: `if False: (a, b)`."""
    ref = ast.If(test=ast.Constant(value=False), body=[ast.Expr(value=ast.Tuple(
        elts=[ast.Name(id=n, ctx=ast.Load()) for n in sorted(missing)] + [ast.Constant(value=None)],
        ctx=ast.Load()))], orelse=[])
    last = node.body[-1]
    for n in ast.walk(ref):
        if "lineno" in n._attributes:
            n.lineno = n.end_lineno = last.lineno
            n.col_offset = n.end_col_offset = 0
    node.body.append(ref)


def _source_node(func, what):
    """Copy of the def node of `func` (from the patch or a file), or None."""
    code = func.__code__
    if code.co_name == "<lambda>":
        return None
    try:
        node = find_def(code.co_filename, code.co_name, code.co_firstlineno)
    except LuError:
        return None
    return clone(node) if node is not None else None


def _set_props(func, body):
    func.__defaults__ = body.defaults
    func.__kwdefaults__ = body.kwdefaults
    func.__annotations__ = dict(body.annotations) if body.annotations is not None else {}
    func.__doc__ = body.doc


def _now():
    lt = time.localtime()
    off = lt.tm_gmtoff or 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + "%s%02d:%02d" % ("+" if off >= 0 else "-", abs(off) // 3600,
                                                                   abs(off) % 3600 // 60)


def _patch_line(filename):
    f = sys._getframe(2)
    while f is not None:
        if f.f_code.co_filename == filename:
            return f.f_lineno
        f = f.f_back
    return None


# --------------------------------------------------------------------------- manager
class _Txn(object):
    def __init__(self, manager):
        self.m = manager
        self.work = {}      # id(func) -> state (provisional layers in state_layers)
        self.layers = {}    # id(func) -> new layer list
        self.actions = []   # (where, do) ; do() -> undo callable ; run before swapping
        self.records = []

    def state(self, name, func):
        key = id(func)
        st = self.work.get(key)
        if st is None:
            st = self.m._states.get(key)
            if st is None or st.func is not func:
                st = _State(func, name)
            self.work[key] = st
            self.layers[key] = list(st.layers)
        return st

    def current_body(self, st):
        body = st.orig
        for layer in self.layers[id(st.func)]:
            if isinstance(layer, _RedefineLayer):
                body = layer.body
        return body


class UpdateManager(object):
    """Applies, lists and reverts updates; all methods are class methods.

    One re-entrant lock serialises every change; a swap is a `__code__`
    assignment, atomic under the GIL.
    """

    _lock = osthreads.RLock()
    _states = {}
    _records = {}
    _next_id = 1
    _pending = None
    _listeners = []

    # ---------------------------------------------------------------- public
    @classmethod
    def apply_update(cls, update):
        """Apply one Instrument or Redefine; return its id (LuError: nothing applied)."""
        if not isinstance(update, (Instrument, Redefine, Recode)):
            raise LuError("apply_update takes an Instrument or a Redefine, not %r" % (update,))
        with cls._lock:
            if cls._pending is not None:
                filename, items = cls._pending
                uid = cls._next_id
                cls._next_id += 1
                line = _patch_line(filename)
                where = "%s:%s: " % (filename, line) if line else "%s: " % filename
                items.append((uid, update, where))
                return uid
            uid = cls._next_id
            cls._next_id += 1
            try:
                cls._commit([(uid, update, "")])
            except BaseException:
                cls._next_id = uid
                raise
            return uid

    @classmethod
    def ls(cls):
        with cls._lock:
            return [r.as_dict() for r in cls._records.values()]

    @classmethod
    def revert(cls, uid):
        with cls._lock:
            try:
                rec = cls._records.get(int(uid))
            except (TypeError, ValueError):
                rec = None
            if rec is None:
                raise LuError("no update with id %r (lu ls lists the applied ones)" % (uid,))
            cls._revert_records([rec])

    @classmethod
    def revert_all(cls):
        with cls._lock:
            records = list(cls._records.values())
            if records:
                cls._revert_records(records)
            return [r.uid for r in records]

    @classmethod
    def add_listener(cls, callback):
        """callback(dict) on hook errors (first one, then at most once a second per update),
        and {'event': 'reverted', 'id'} after an update is reverted."""
        with cls._lock:
            if callback not in cls._listeners:
                cls._listeners = cls._listeners + [callback]

    @classmethod
    def remove_listener(cls, callback):
        with cls._lock:
            cls._listeners = [c for c in cls._listeners if c is not callback]

    @classmethod
    def apply_patch(cls, source, filename):
        """Run a patch file's text; everything it applies is one transaction. Returns ids."""
        if isinstance(source, bytes):
            source = source.decode("utf-8")
        with cls._lock:
            if cls._pending is not None:
                raise LuError("%s: a patch cannot apply another patch" % filename)
            lines = source.splitlines(True)
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            old_cache = linecache.cache.get(filename)
            linecache.cache[filename] = (len(source), None, lines, filename)
            try:
                code = compile(source, filename, "exec", dont_inherit=True)
            except SyntaxError as e:
                cls._restore_linecache(filename, old_cache)
                raise LuError("%s:%s: SyntaxError: %s" % (filename, e.lineno, e.msg))
            cls._ensure_package_names()
            namespace = {"__name__": "__lu_patch__", "__file__": filename, "__builtins__": builtins}
            start = cls._next_id
            cls._pending = (filename, [])
            try:
                try:
                    exec(code, namespace)
                except LuError as e:
                    raise LuError("%s%s" % (cls._where(filename, sys.exc_info()[2]), e))
                except BaseException as e:
                    raise LuError("%s%s: %s" % (cls._where(filename, sys.exc_info()[2]), type(e).__name__, e))
                items = cls._pending[1]
            except BaseException:
                cls._next_id = start
                cls._restore_linecache(filename, old_cache)
                raise
            finally:
                cls._pending = None
            if not items:
                return []
            try:
                cls._commit(items)
            except BaseException:
                cls._next_id = start
                raise
            return [uid for uid, _, _ in items]

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _restore_linecache(filename, old):
        if old is None:
            linecache.cache.pop(filename, None)
        else:
            linecache.cache[filename] = old

    @staticmethod
    def _where(filename, tb):
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        return "%s:%s: " % (filename, line) if line else "%s: " % filename

    @staticmethod
    def _ensure_package_names():
        pkg = sys.modules.get(__name__.rsplit(".", 2)[0])
        if pkg is not None:
            for name, obj in (("Instrument", Instrument), ("Redefine", Redefine), ("UpdateManager", UpdateManager)):
                if name not in pkg.__dict__:
                    try:
                        getattr(pkg, name)
                    except Exception:
                        setattr(pkg, name, obj)

    @classmethod
    def _commit(cls, items):
        txn = _Txn(cls)
        # 1. prepare: resolve, check and compile everything; nothing is changed yet
        for uid, update, where in items:
            try:
                if isinstance(update, Instrument):
                    rec = cls._prepare_instrument(txn, uid, update)
                elif isinstance(update, Recode):
                    rec = cls._prepare_recode(txn, uid, update)
                else:
                    rec = cls._prepare_redefine(txn, uid, update, where)
            except LuError as e:
                raise LuError(where + str(e))
            txn.records.append(rec)
        plans = []
        for key, st in txn.work.items():
            layers = txn.layers[key]
            if st.func.__code__ is not st.current:
                raise LuError("%s was changed by something other than lu since lu last changed it; "
                              "refusing to overwrite" % st.name)
            code, body = cls._effective(st, layers)
            plans.append((st, layers, code, body))
        # 2. side effects that are not code swaps (predefine, new names, globals), undoable
        done = []
        try:
            for where, do in txn.actions:
                try:
                    done.append((do.owner, do()))
                except LuError as e:
                    raise LuError(where + str(e))
                except Exception as e:
                    raise LuError("%s%s: %s" % (where, type(e).__name__, e))
        except BaseException:
            for _, undo in reversed(done):
                try:
                    undo()
                except Exception:
                    pass
            raise
        # 3. swap
        for st, layers, code, body in plans:
            cls._install(st, layers, code, body)
        stamp = _now()
        for rec in txn.records:
            rec.applied_at = stamp
            cls._records[rec.uid] = rec
        # undo actions belong to the record that created them
        for owner, undo in done:
            owner.undo.append(undo)

    @classmethod
    def _install(cls, st, layers, code, body):
        func = st.func
        if body is not st.body:
            _set_props(func, body)
        func.__code__ = code
        st.current = code
        st.layers = layers
        st.body = body
        key = id(func)
        if layers:
            cls._states[key] = st
        else:
            cls._states.pop(key, None)

    @classmethod
    def _effective(cls, st, layers):
        body = st.orig
        for layer in layers:
            if isinstance(layer, _RedefineLayer):
                body = layer.body
        instr = [l for l in layers if isinstance(l, _InstrumentLayer)]
        if not instr:
            return body.code, body
        plan = Plan()
        # a body that is an earlier one moved (lu watch) keeps that one's line points, shifted
        shifts = {}
        b, delta = body, 0
        while b is not None and id(b) not in shifts:
            shifts[id(b)] = delta
            moved = b.moved_from
            if moved is None:
                break
            b, d = moved
            delta += d
        for layer in instr:
            p = layer.points
            rec = layer.record
            plan.timers.extend((t, rec) for t in p["func_timer"])
            plan.before.extend((h, w, rec) for h, w in p["func_before"])
            plan.suspend.extend((h, rec) for h in p["suspend"])
            plan.resume.extend((h, rec) for h in p["resume"])
            shift = shifts.get(id(layer.body))
            if shift is not None:
                for kind in ("line_before", "line_after"):
                    for ln, hooks in p[kind].items():
                        getattr(plan, kind).setdefault(ln + shift, []).extend((h, w, rec) for h, w in hooks)
        for layer in reversed(instr):
            plan.after.extend((h, layer.record) for h in layer.points["func_after"])
        if plan.empty():
            return body.code, body
        st.node_of(body)
        try:
            code = build_code(body, st.qualname, st.freevars, plan, st.info, st.func.__globals__)
        except SyntaxError as e:
            raise LuError("%s:%s: cannot instrument %s: %s" % (body.filename, e.lineno, st.name, e.msg))
        if code.co_freevars != st.freevars:  # pragma: no cover - defensive
            raise LuError("internal: instrumented %s has free variables %s, expected %s"
                          % (st.name, code.co_freevars, st.freevars))
        return code, body

    @classmethod
    def _prepare_instrument(cls, txn, uid, update):
        found = update.resolve()
        rec = _Record(uid, "instrument", update.describe([n for n, _ in found]))
        p = update.points
        line_points = [(k, ln) for k in ("line_before", "line_after") for ln in p[k]]
        for name, func in found:
            st = txn.state(name, func)
            body = txn.current_body(st)
            st.node_of(body)  # verifies the source even for function-level points
            if line_points:
                own, nested = st.lines_of(body)
                node = body.node
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                last = node.end_lineno or node.lineno
                for kind, ln in line_points:
                    if ln < first or ln > last:
                        raise LuError("line %d is not inside %s (%s lines %d-%d)"
                                      % (ln, name, body.filename, first, last))
                    if ln in nested and ln not in own:
                        raise LuError("line %d of %s is inside the nested %s, not directly in %s"
                                      % (ln, body.filename, nested[ln], name))
                    if ln not in own:
                        near = sorted(own, key=lambda x: abs(x - ln))[:3]
                        raise LuError("line %d of %s holds no statement of %s (statements start on lines %s)"
                                      % (ln, body.filename, name, ", ".join(str(x) for x in sorted(near))))
            layer = _InstrumentLayer(rec, p, body)
            txn.layers[id(func)].append(layer)
            rec.layers.append((st, layer))
            rec.targets.append(name)
        return rec

    @classmethod
    def file_body(cls, func, filename):
        """(code, runs_it): the code of the newest body of `func` compiled from
        `filename` (the module's own file: its original or a watched save), and
        whether that body is the one the function runs (no patch on top)."""
        with cls._lock:
            st = cls._states.get(id(func))
            if st is None or st.func is not func:
                return func.__code__, True
            found = st.orig if st.orig.from_file == filename else None
            effective = st.orig
            for layer in st.layers:
                if isinstance(layer, _RedefineLayer):
                    effective = layer.body
                    if layer.body.from_file == filename:
                        found = layer.body
            if found is None:
                return None, False
            return found.code, found is effective

    @classmethod
    def _prepare_recode(cls, txn, uid, update):
        rec = _Record(uid, update.kind, update.description or "")
        for change in update.changes:
            kind, name, func = change[0], change[1], change[2]
            st = txn.state(name, func)
            prev = txn.current_body(st)
            if kind == "move":
                firstlineno = change[4]
                delta = firstlineno - prev.code.co_firstlineno
                if not delta:
                    continue
                layers = txn.layers[id(func)]
                top = layers[-1] if layers else None
                if isinstance(top, _RedefineLayer) and top.body is prev and prev.moved_from is not None:
                    # moved again: fold into the previous move instead of stacking layers
                    # (a long watch session that keeps shifting lines stays one layer deep)
                    base, old_delta = prev.moved_from
                    body = Body(None, prev.filename, prev.flags, shift_code(base.code, old_delta + delta),
                                prev.defaults, prev.kwdefaults, prev.annotations, prev.doc, prev.label)
                    body.moved_from = (base, old_delta + delta)
                    body.from_file = prev.from_file
                    layers[-1] = _RedefineLayer(top.record, body)
                    continue
                # the def is read back from the file when something instruments it (node None)
                body = Body(None, prev.filename, prev.flags, shift_code(prev.code, delta), prev.defaults,
                            prev.kwdefaults, prev.annotations, prev.doc, "moved #%d" % uid)
                body.moved_from = (prev, delta)
                body.from_file = prev.from_file
            else:
                node, code, defaults, kwdefaults, doc = change[3:8]
                body = cls._recode_body(st, name, node, code, update.filename)
                body.defaults = defaults
                body.kwdefaults = kwdefaults
                body.doc = doc
                body.annotations = prev.annotations
                body.label = "watch #%d" % uid
            layer = _RedefineLayer(rec, body)
            txn.layers[id(func)].append(layer)
            rec.layers.append((st, layer))
        for do in update.actions:
            do.owner = rec
            txn.actions.append(("", do))
        rec.targets = list(update.targets) or [st.name for st, _ in rec.layers]
        if not rec.description:
            rec.description = "recode %s" % update.filename
        return rec

    @staticmethod
    def _recode_body(st, name, node, code, filename):
        if code.co_freevars != st.freevars:
            extra = set(code.co_freevars) - set(st.freevars)
            if extra:
                raise LuError("the new body of %s needs free variables %s that the running function does "
                              "not have (it has %s); a closure's variables cannot change in place"
                              % (name, ", ".join(sorted(extra)), ", ".join(st.freevars) or "none"))
            node = clone(node)
            node.decorator_list = list(node.decorator_list)
            _pad_freevars(node, set(st.freevars) - set(code.co_freevars))
            code = _compile_body(node, st.qualname, st.freevars, filename, code.co_flags, "new body of %s" % name)
            if code.co_freevars != st.freevars:
                raise LuError("the new body of %s has free variables (%s) other than the running function's (%s)"
                              % (name, ", ".join(code.co_freevars) or "none", ", ".join(st.freevars) or "none"))
        if st.orig.code.co_flags & CO_ITERABLE_COROUTINE and not code.co_flags & CO_ITERABLE_COROUTINE:
            code = code.replace(co_flags=code.co_flags | CO_ITERABLE_COROUTINE)
        if (code.co_flags & KIND_FLAGS) != (st.orig.code.co_flags & KIND_FLAGS):
            raise LuError("the new body of %s is %s but the running function is %s"
                          % (name, _kind(code.co_flags), _kind(st.orig.code.co_flags)))
        body = Body(node, filename, code.co_flags, code, None, None, None, None, "watch")
        body.from_file = filename
        return body

    @classmethod
    def _prepare_redefine(cls, txn, uid, update, where):
        modname = update.module
        mod = sys.modules.get(modname)
        if mod is None:
            raise LuError("Redefine: no module named %r is loaded in the process" % modname)
        rec = _Record(uid, "redefine", update.description or "")
        if update.predefine is not None:
            cls._prepare_predefine(txn, rec, mod, update.predefine, where)
        for key, new in update.mapping.items():
            full = key if (key == modname or key.startswith(modname + ".") or modname == "__main__"
                           and key.startswith("__main__.")) else modname + "." + key
            parent, attr, obj = _resolve.resolve_object(full)
            if obj is _resolve._MISSING:
                cls._prepare_new_name(txn, rec, mod, parent, attr, full, new, where)
                continue
            pairs = cls._pair_targets(full, obj, new)
            for tname, tfunc, nfunc in pairs:
                st = txn.state(tname, tfunc)
                body = cls._redefine_body(st, nfunc, tname, uid)
                layer = _RedefineLayer(rec, body)
                txn.layers[id(tfunc)].append(layer)
                rec.layers.append((st, layer))
                rec.targets.append(tname)
                cls._prepare_globals(txn, rec, tfunc.__globals__, body.code, nfunc, where, tname)
        if not rec.description:
            rec.description = "redefine %s" % ", ".join(rec.targets)
        return rec

    @staticmethod
    def _pair_targets(full, obj, new):
        if isinstance(obj, property):
            if isinstance(new, property):
                pairs = []
                for a in _resolve.ACCESSORS:
                    t, n = getattr(obj, a), getattr(new, a)
                    if n is None:
                        continue
                    if t is None:
                        raise LuError("%s has no %s to redefine" % (full, a))
                    pairs.append((full + "." + a, _resolve.unwrap(t), _resolve.unwrap(n)))
                return pairs
            targets = [(full + ".fget", _resolve.unwrap(obj.fget))]
        else:
            targets = _resolve.functions_of(obj, full)
        nfunc = _resolve.unwrap(new)
        if nfunc is None:
            raise LuError("the new definition for %s is not a Python function (%r)" % (full, new))
        return [(n, f, nfunc) for n, f in targets]

    @classmethod
    def _redefine_body(cls, st, nfunc, tname, uid):
        ncode = nfunc.__code__
        target_name = st.orig.code.co_name
        node = _source_node(nfunc, tname)
        if node is not None:
            node.name = target_name
            node.decorator_list = []
            code = _compile_body(node, st.qualname, st.freevars, ncode.co_filename, ncode.co_flags,
                                 "new body of %s" % tname)
            if code.co_freevars != st.freevars:
                extra = set(code.co_freevars) - set(st.freevars)
                if extra:
                    raise LuError("the new body of %s needs free variables %s that the original does not "
                                  "have (it has %s); a closure's variables cannot change"
                                  % (tname, ", ".join(sorted(extra)), ", ".join(st.freevars) or "none"))
                _pad_freevars(node, set(st.freevars) - set(code.co_freevars))
                code = _compile_body(node, st.qualname, st.freevars, ncode.co_filename, ncode.co_flags,
                                     "new body of %s" % tname)
        else:
            if ncode.co_freevars != st.freevars:
                raise LuError("the new body of %s has free variables (%s) other than the original's (%s)"
                              % (tname, ", ".join(ncode.co_freevars) or "none", ", ".join(st.freevars) or "none"))
            code = ncode.replace(co_name=target_name)
            if PY311:
                code = code.replace(co_qualname=st.qualname)
        if code.co_freevars != st.freevars:
            raise LuError("the new body of %s has free variables (%s) other than the original's (%s)"
                          % (tname, ", ".join(code.co_freevars) or "none", ", ".join(st.freevars) or "none"))
        if st.orig.code.co_flags & CO_ITERABLE_COROUTINE and not code.co_flags & CO_ITERABLE_COROUTINE:
            code = code.replace(co_flags=code.co_flags | CO_ITERABLE_COROUTINE)   # @types.coroutine
        if (code.co_flags & KIND_FLAGS) != (st.orig.code.co_flags & KIND_FLAGS):
            raise LuError("the new body of %s is %s but the original is %s"
                          % (tname, _kind(code.co_flags), _kind(st.orig.code.co_flags)))
        ann = nfunc.__annotations__
        return Body(node, ncode.co_filename, ncode.co_flags, code, nfunc.__defaults__, nfunc.__kwdefaults__,
                    dict(ann) if ann else {}, nfunc.__doc__, "redefine #%d" % uid)

    @classmethod
    def _prepare_globals(cls, txn, rec, target_globals, code, nfunc, where, tname):
        """Copy names the new body uses that the module lacks from the patch namespace."""
        src = nfunc.__globals__
        if src is target_globals:
            return
        needed = {}
        for n in _global_names(code):
            if n not in target_globals and not hasattr(builtins, n) and n in src:
                needed[n] = src[n]
        if not needed:
            return

        def do():
            added = {}
            for n, v in needed.items():
                if n not in target_globals:
                    target_globals[n] = v
                    added[n] = v

            def undo():
                # Kept on purpose: frames, suspended generators and coroutines
                # still running the reverted body look these names up, and a
                # name the module did not have cannot change what it runs.
                added.clear()
            return undo
        do.owner = rec
        txn.actions.append((where, do))

    @classmethod
    def _prepare_predefine(cls, txn, rec, mod, pre, where):
        node = _source_node(pre, "predefine")
        if node is None:
            raise LuError("the predefine function %s has no source lu can find" % pre.__name__)
        pcode = pre.__code__
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        try:
            code = compile(ast.Module(body=body or [ast.Pass(lineno=node.lineno, col_offset=0)], type_ignores=[]),
                           pcode.co_filename, "exec", flags=pcode.co_flags & _future_mask(), dont_inherit=True)
        except SyntaxError as e:
            raise LuError("%s:%s: predefine: %s" % (pcode.co_filename, e.lineno, e.msg))
        namespace = mod.__dict__

        def do():
            before = dict(namespace)
            try:
                exec(code, namespace)
            except BaseException as e:
                _restore_namespace(namespace, before)
                line = UpdateManager._where(pcode.co_filename, sys.exc_info()[2])
                raise LuError("%spredefine raised %s: %s" % (line, type(e).__name__, e))

            changed = {k: v for k, v in namespace.items() if k not in before or before[k] is not v}

            def undo():
                # Names the predefine changed get their old values back; names
                # it added stay, since code still running the reverted bodies
                # (other threads, suspended generators) may look them up.
                for k, v in changed.items():
                    if k in before and namespace.get(k, _resolve._MISSING) is v:
                        namespace[k] = before[k]
            return undo
        do.owner = rec
        txn.actions.append((where, do))

    @classmethod
    def _prepare_new_name(cls, txn, rec, mod, parent, attr, full, new, where):
        if not isinstance(parent, (types.ModuleType, type)):
            raise LuError("cannot add %s: %r is not a module or class" % (full, parent))
        wrapper = None
        if isinstance(new, (staticmethod, classmethod)):
            wrapper = type(new)
        nfunc = _resolve.unwrap(new)
        if nfunc is None:
            raise LuError("the new definition for %s is not a Python function (%r)" % (full, new))
        globals_dict = parent.__dict__ if isinstance(parent, types.ModuleType) else \
            sys.modules[parent.__module__].__dict__ if parent.__module__ in sys.modules else mod.__dict__
        modname = globals_dict.get("__name__", mod.__name__)
        qualname = attr if isinstance(parent, types.ModuleType) else parent.__qualname__ + "." + attr
        ncode = nfunc.__code__
        node = _source_node(nfunc, full)
        closure = None
        if node is not None:
            node.name = attr
            node.decorator_list = []
            code = _compile_body(node, qualname, (), ncode.co_filename, ncode.co_flags, "new function %s" % full)
            if code.co_freevars == ("__class__",) and isinstance(parent, type):
                closure = (types.CellType(parent),)
            elif code.co_freevars:
                raise LuError("the new function %s uses free variables %s" % (full, ", ".join(code.co_freevars)))
        else:
            if ncode.co_freevars:
                raise LuError("the new function %s is a closure; define it at the top level of the patch" % full)
            code = ncode.replace(co_name=attr) if attr.isidentifier() else ncode
        func = types.FunctionType(code, globals_dict, attr, nfunc.__defaults__, closure)
        func.__kwdefaults__ = nfunc.__kwdefaults__
        func.__annotations__ = dict(nfunc.__annotations__ or {})
        func.__doc__ = nfunc.__doc__
        func.__qualname__ = qualname
        func.__module__ = modname
        func.__dict__.update(nfunc.__dict__)
        value = wrapper(func) if wrapper else func
        rec.targets.append(full)

        def do():
            if attr in parent.__dict__:
                raise LuError("%s appeared while the patch was being applied" % full)
            setattr(parent, attr, value)

            def undo():
                if parent.__dict__.get(attr) is value:
                    delattr(parent, attr)
            return undo
        do.owner = rec
        txn.actions.append((where, do))
        cls._prepare_globals(txn, rec, globals_dict, code, nfunc, where, full)

    @classmethod
    def _revert_records(cls, records):
        doomed = set(id(r) for r in records)
        plans = []
        touched = {}
        for rec in records:
            for st, _ in rec.layers:
                touched[id(st.func)] = st
        for st in touched.values():
            if st.func.__code__ is not st.current:
                raise LuError("%s was changed by something other than lu since lu last changed it; "
                              "refusing to overwrite it (update ids %s stay applied)"
                              % (st.name, ", ".join(str(r.uid) for r in records)))
            layers = [l for l in st.layers if id(l.record) not in doomed]
            if layers:
                code, body = cls._effective(st, layers)
            else:
                code, body = st.orig.code, st.orig
            plans.append((st, layers, code, body))
        for st, layers, code, body in plans:
            cls._install(st, layers, code, body)
        for rec in reversed(records):
            for undo in reversed(rec.undo):
                try:
                    undo()
                except Exception:
                    pass
            cls._records.pop(rec.uid, None)
        for rec in records:
            for callback in list(cls._listeners):
                try:
                    callback({"event": "reverted", "id": rec.uid})
                except Exception:
                    pass


def _restore_namespace(namespace, before):
    for k in list(namespace):
        if k not in before:
            del namespace[k]
    for k, v in before.items():
        if namespace.get(k, _resolve._MISSING) is not v:
            namespace[k] = v


def _future_mask():
    from .source import FUTURE_MASK
    return FUTURE_MASK


def _kind(flags):
    if flags & 0x200:
        return "an async generator"
    if flags & 0x80:
        return "a coroutine (async def)"
    if flags & 0x20:
        return "a generator"
    return "a plain function"
