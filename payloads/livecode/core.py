"""Match a new version of a module's source against what the process runs, and apply it.

`plan_and_apply(path, source)` is what `lu watch`, `lu_payloads.watch()` and
`@realtime` all end in.  Nothing is matched by line number:

1. the file's modules are found through `sys.modules[*].__file__` (realpaths);
2. the new source is parsed (a SyntaxError applies nothing) and compiled once,
   as a whole module, exactly as an import would compile it; every def in it
   gets its qualified name from where it sits in the tree (`Cart.total`,
   `make.<locals>.inner`), and its code object is taken from the compiled
   module's constants (so scopes, `__class__`, mangling are the compiler's);
3. the running functions are found by walking the module's dict and its
   classes' dicts (no gc scan): `engine.resolve.module_functions`;
4. pairs with the same qualified name are compared with the code that came
   from the file last (`UpdateManager.file_body`): same code -> nothing; same
   code moved by N lines -> the running body is shifted (line numbers only);
   otherwise -> the function gets the new body in place (`__code__`: identity
   kept).  New defs are added (module functions, methods of existing classes,
   new top-level classes); running functions missing from the file are
   reported (deleted with prune);
5. everything goes to the engine as ONE update (engine.Recode): all or nothing.

A function whose free variables changed cannot take the new code in place:
a method that starts (or stops) using zero-argument super() is *rebound*
(a new function object is put in the class: references taken earlier keep
the old body, and the output says so); any other closure is refused.
"""

from __future__ import annotations

import ast
import collections
import copy
import hashlib
import importlib
import importlib.util
import io
import logging
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, TypedDict, TypeVar, Union

from .. import osthreads
from ..engine import Moved, NewBody, Recode, UpdateManager
from ..engine.resolve import module_file, module_functions
from ..engine.source import FUNC_NODES, code_qualname, same_code, shift_code, stmt_list_fields
from ..engine.updates import Action, Change
from ..errors import LuError

FuncNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
Holder = Union[types.ModuleType, type]  # what a function is an attribute of
ClassCallback = Callable[[type, List[str]], object]  # callback(cls, names of the attributes a save changed)
_CallbackT = TypeVar("_CallbackT", bound=ClassCallback)
# a def's default value, as _args_dump keys it: None (no default), (type, value) of a constant, or an AST dump
_DefaultKey = Union[None, Tuple[type, object], str]

_real_cache: Dict[str, str] = {}
_bases: Dict[str, _Base] = {}  # module file -> _Base of the source the process was last given
_class_callbacks: List[ClassCallback] = []
_lock = osthreads.RLock()


# --------------------------------------------------------------------------- files -> modules
class LoadedModule(NamedTuple):
    """A loaded module whose source is the file in question."""

    name: str  # its name in sys.modules
    module: types.ModuleType
    filename: str  # its source file, as the module names it


def _realpath(path: str) -> str:
    hit = _real_cache.get(path)
    if hit is None:
        try:
            hit = os.path.realpath(path)
        except Exception:
            hit = path
        if len(_real_cache) > 10000:
            _real_cache.clear()
        _real_cache[path] = hit
    return hit


def target_path(path: str) -> str:
    """A host path as this process sees it (strip /proc/<our pid>/root)."""
    prefix = "/proc/%d/root" % os.getpid()
    if path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return path


def modules_for(path: str) -> List[LoadedModule]:
    """The loaded modules whose source is `path` (__main__ last)."""
    real = _realpath(target_path(path))
    out: List[LoadedModule] = []
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        f = module_file(mod)
        if f and f.endswith(".py") and _realpath(f) == real:
            out.append(LoadedModule(name, mod, f))
    out.sort(key=lambda item: (item.name == "__main__", item.name))
    return out


def module_files_under(directory: str) -> Dict[str, List[str]]:
    """{filename: [module names]} of loaded modules whose source is inside directory."""
    real = _realpath(target_path(directory)).rstrip("/") + "/"
    out: Dict[str, List[str]] = {}
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        f = module_file(mod)
        if f and f.endswith(".py") and _realpath(f).startswith(real):
            out.setdefault(_realpath(f), []).append(name)
    return out


# --------------------------------------------------------------------------- the base
class _Statement(NamedTuple):
    """A module-level or class-level statement other than a def."""

    dump: str  # ast.dump of it: what a later version is compared with
    node: ast.stmt


class _Base:
    """What lu knows of the source the process was last given for a file:
    its module-level (and class-level) statements and each def's arguments."""

    def __init__(
        self,
        tree: ast.Module,
        defs: Optional[List[_Def]] = None,
        statements: Optional[List[_Statement]] = None,
        classes: Optional[List[_Class]] = None,
    ) -> None:
        if statements is None:
            statements = _statements(tree)
        if defs is None:
            defs = _defs(tree)
        self.statements: collections.Counter[str] = collections.Counter(s.dump for s in statements)
        self.args: Dict[str, Tuple[_DefaultKey, ...]] = {}
        self.heads: Dict[str, Tuple[str, ...]] = {}
        for entry in defs:
            self.args[entry.qualname] = _args_dump(entry.node)
            self.heads[entry.qualname] = _head(entry.node)
        for klass in classes if classes is not None else _class_defs(tree):
            self.heads[klass.qualname] = _head(klass.node)


def remember_file(filename: str, source: Union[str, bytes, None] = None) -> bool:
    """Record the file as it is now as what the process runs (the base)."""
    if source is None:
        try:
            with open(filename, "rb") as fh:
                source = fh.read()
        except OSError:
            return False
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return False
    with _lock:
        _bases[filename] = _Base(tree)
    return True


def _statements(tree: ast.Module) -> List[_Statement]:
    """Module-level and class-level statements other than defs."""
    out: List[_Statement] = []

    def walk(stmts: List[ast.stmt], in_class: bool) -> None:
        for node in stmts:
            if isinstance(node, FUNC_NODES):
                continue
            if isinstance(node, ast.ClassDef):
                walk(node.body, True)
                continue
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                continue  # docstrings
            if any(isinstance(n, FUNC_NODES + (ast.ClassDef,)) for n in ast.walk(node)):
                # a compound statement holding defs: its defs are matched; the rest is
                # compared without them
                for stmts_inside in stmt_list_fields(node):
                    walk(stmts_inside, in_class)
                continue
            out.append(_Statement(ast.dump(node), node))

    walk(tree.body, False)
    return out


def _head(node: Union[FuncNode, ast.ClassDef]) -> Tuple[str, ...]:
    """A key for what a def or class statement applies around its body: decorators,
    bases, keywords (changes there are reported, not re-applied)."""
    if not node.decorator_list and not isinstance(node, ast.ClassDef):
        return ()
    parts = [ast.dump(d) for d in node.decorator_list]
    if isinstance(node, ast.ClassDef):
        parts += [ast.dump(b) for b in node.bases] + [ast.dump(k) for k in node.keywords]
    return tuple(parts)


def _class_defs(tree: ast.Module) -> List[_Class]:
    classes: List[_Class] = []
    _defs(tree, classes)
    return classes


def _args_dump(node: FuncNode) -> Tuple[_DefaultKey, ...]:
    """A key for a def's default values (constants are cheap, other expressions dumped)."""
    a = node.args
    key: List[_DefaultKey] = []
    for d in list(a.defaults) + list(a.kw_defaults):
        if d is None:
            key.append(None)
        elif type(d) is ast.Constant:
            key.append((type(d.value), d.value))
        else:
            key.append(ast.dump(d))
    return tuple(key)


# --------------------------------------------------------------------------- defs in the new source
class _Def(NamedTuple):
    """A def statement of a source text."""

    qualname: str
    node: FuncNode
    first: int  # its first line (of its first decorator, if any)
    parent: Optional[str]  # qualname of the enclosing class, "" for the module, None in a function


class _Class(NamedTuple):
    """A class statement of a source text."""

    qualname: str
    node: ast.ClassDef
    first: int  # its first line (of its first decorator, if any)
    parent: Optional[str]  # qualname of the enclosing class, "" for the module, None in a function


def _first_line(node: Union[FuncNode, ast.ClassDef]) -> int:
    return node.decorator_list[0].lineno if node.decorator_list else node.lineno


def _defs(tree: ast.Module, classes: Optional[List[_Class]] = None) -> List[_Def]:
    """The defs of a source text, in order; its class statements are added to `classes`."""
    out: List[_Def] = []

    def walk(stmts: List[ast.stmt], prefix: str, parent: Optional[str]) -> None:
        for node in stmts:
            if isinstance(node, FUNC_NODES):
                qual = prefix + node.name
                out.append(_Def(qual, node, _first_line(node), parent))
                walk(node.body, qual + ".<locals>.", None)
            elif isinstance(node, ast.ClassDef):
                qual = prefix + node.name
                if classes is not None:
                    classes.append(_Class(qual, node, _first_line(node), parent))
                walk(node.body, qual + ".", qual if parent is not None else None)
            else:
                for stmts_inside in stmt_list_fields(node):
                    walk(stmts_inside, prefix, parent)

    walk(tree.body, "", "")
    return out


CodeMap = Dict[Tuple[str, int], List[types.CodeType]]  # (co_name, co_firstlineno) -> code objects


def _code_map(code: types.CodeType, out: Optional[CodeMap] = None) -> CodeMap:
    """(co_name, co_firstlineno) -> [code] for every code object inside `code`."""
    if out is None:
        out = {}
    code_type = type(code)
    for const in code.co_consts:
        if isinstance(const, code_type):
            out.setdefault((const.co_name, const.co_firstlineno), []).append(const)
            _code_map(const, out)
    return out


def _names_used(code: types.CodeType, qualname: str, out: Dict[str, str]) -> None:
    """name -> qualname of the first code object naming it (globals and attributes)."""
    code_type = type(code)
    for n in code.co_names:
        out.setdefault(n, qualname)
    for const in code.co_consts:
        if isinstance(const, code_type) and not const.co_name.startswith("<"):
            _names_used(const, (qualname + "." if qualname else "") + const.co_name, out)
        elif isinstance(const, code_type):
            _names_used(const, qualname, out)


class _Compiled(NamedTuple):
    """A source text parsed and compiled once, as an import would compile it."""

    tree: ast.Module
    module_code: types.CodeType
    defs: List[_Def]
    classes: List[_Class]
    codes: CodeMap  # every code object inside module_code

    def code_of(self, entry: _Def) -> Optional[types.CodeType]:
        """The code object the compiler made for this def (None if it made none)."""
        found = self.codes.get((entry.node.name, entry.first))
        return found[-1] if found else None


# --------------------------------------------------------------------------- the plan
class CheckReport(TypedDict):
    ran: int  # how many tests ran
    failures: List[str]  # "test id: last line of its traceback", one per failure or error


class CheckResult(NamedTuple):
    ok: bool
    report: CheckReport


# What a save did, by kind, as names (lines and notes say the same in words): the host shows these to
# scripts (`lu watch --json`). "ran" and "not_run" name statements as "file:line: text".
OUTCOME_KINDS = ("updated", "rebound", "added", "moved", "pruned", "ran", "removed", "not_run")


class OutcomeDict(TypedDict):
    file: str
    lines: List[str]
    notes: List[str]
    names: Dict[str, List[str]]
    moved: int
    id: Optional[int]
    check: Optional[CheckReport]
    reverted: bool


class Outcome:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: List[str] = []  # one per change applied
        self.notes: List[str] = []  # reported, not applied
        self.names: Dict[str, List[str]] = {kind: [] for kind in OUTCOME_KINDS}
        self.moved = 0
        self.id: Optional[int] = None
        self.check: Optional[CheckReport] = None
        self.reverted = False

    def as_dict(self) -> OutcomeDict:
        return {
            "file": self.filename,
            "lines": self.lines,
            "notes": self.notes,
            "names": self.names,
            "moved": self.moved,
            "id": self.id,
            "check": self.check,
            "reverted": self.reverted,
        }


@dataclass
class _Plan:
    """One save being matched: what it is compared with, and what it changes so far
    (all applied as one Recode at the end)."""

    outcome: Outcome
    base: Optional[_Base]  # the source the process was last given (None: unknown)
    module_code: types.CodeType  # the new source compiled
    class_quals: Set[str]  # qualnames of the classes in the new source
    prune: bool  # delete what the new source no longer has
    changes: List[Change] = field(default_factory=list)  # new or moved bodies, for the engine
    actions: List[Action] = field(default_factory=list)  # do() -> undo: attributes added, rebound, deleted
    targets: List[str] = field(default_factory=list)  # names the update lists
    touched: Dict[type, List[str]] = field(default_factory=dict)  # class -> names changed (on_class_update)
    _used: Optional[Dict[str, str]] = None

    def names_used(self) -> Dict[str, str]:
        """name -> qualname of the first function of the new source naming it (computed once)."""
        if self._used is None:
            self._used = {}
            _names_used(self.module_code, "", self._used)
        return self._used

    def touch(self, cls: type, attr: str) -> None:
        self.touched.setdefault(cls, []).append(attr)


@dataclass(frozen=True)
class _Running:
    """A function the process runs, and the code of it that came from its file last."""

    name: str  # the dotted name it was found by
    func: types.FunctionType
    file_code: Optional[types.CodeType]  # None: its newest body came from elsewhere (a patch)
    runs_file_code: bool  # it runs file_code (no patch on top)

    @property
    def first_line(self) -> int:
        return self.file_code.co_firstlineno if self.file_code is not None else 0


class _Defaults(NamedTuple):
    positional: Optional[Tuple[Any, ...]]  # __defaults__
    keyword: Optional[Dict[str, Any]]  # __kwdefaults__


def _lookup_class(mod: types.ModuleType, qualname: str) -> Optional[type]:
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, "__dict__", {}).get(part)
        if not isinstance(obj, type):
            return None
    return obj


def _eval_defaults(node: FuncNode, mod: types.ModuleType, cls: Optional[type], name: str) -> _Defaults:
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
    return _Defaults(positional=fn.__defaults__, keyword=fn.__kwdefaults__)


def _strip_annotations(args: ast.arguments) -> ast.arguments:
    args = copy.deepcopy(args)
    for a in list(args.posonlyargs) + list(args.args) + list(args.kwonlyargs) + [args.vararg, args.kwarg]:
        if a is not None:
            a.annotation = None
    return args


def _docstring(node: FuncNode) -> Optional[str]:
    try:
        return ast.get_docstring(node, clean=False)
    except Exception:
        return None


def _build_function(
    code: types.CodeType, mod: types.ModuleType, cls: Optional[type], entry: _Def, display: str
) -> object:
    """A new function object for a def of the new source, decorators applied."""
    node = entry.node
    closure = None
    if code.co_freevars:
        if code.co_freevars == ("__class__",) and cls is not None:
            closure = (types.CellType(cls),)
        else:
            raise LuError(
                "the new function %s uses free variables (%s) lu cannot provide; nothing applied"
                % (display, ", ".join(code.co_freevars))
            )
    defaults = _eval_defaults(node, mod, cls, display)
    fn = types.FunctionType(code, mod.__dict__, node.name, defaults.positional, closure)
    fn.__kwdefaults__ = defaults.keyword
    fn.__qualname__ = entry.qualname
    fn.__module__ = mod.__name__
    fn.__doc__ = _docstring(node)
    value: object = fn
    ns = dict(cls.__dict__) if cls is not None else None
    for dec in reversed(node.decorator_list):
        try:
            expr = ast.Expression(body=dec)
            ast.fix_missing_locations(expr)
            decorator = eval(compile(expr, code.co_filename, "eval", dont_inherit=True), mod.__dict__, ns)
            value = decorator(value)
        except Exception as e:
            raise LuError(
                "%s:%d: the decorator of %s raised %s: %s; nothing applied"
                % (code.co_filename, dec.lineno, display, type(e).__name__, e)
            )
    return value


def _set_action(parent: Holder, attr: str, value: object, delete: bool = False) -> Action:
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


def _exec_action(code: types.CodeType, namespace: Dict[str, Any], what: str) -> Action:
    """do() -> undo: run statement(s) in the module namespace; undo restores changed names."""
    missing = object()

    def do() -> Callable[[], None]:
        before = dict(namespace)
        try:
            exec(code, namespace)
        except BaseException as e:
            for k in list(namespace):
                if k not in before:
                    del namespace[k]
            namespace.update(before)
            raise LuError("%s raised %s: %s; nothing applied" % (what, type(e).__name__, e))
        changed = {k: before.get(k, missing) for k, v in namespace.items() if before.get(k, missing) is not v}

        def undo() -> None:
            for k, old in changed.items():
                if old is missing:
                    namespace.pop(k, None)
                else:
                    namespace[k] = old

        return undo

    return do


def _attr_holder(parent_obj: object, attr: str, func: types.FunctionType) -> bool:
    """Is func (or a wrapper of exactly it) the value of parent_obj.attr?"""
    value = getattr(parent_obj, "__dict__", {}).get(attr)
    if value is func:
        return True
    return bool(isinstance(value, (staticmethod, classmethod)) and value.__func__ is func)


def _running_frames(codes: Set[types.CodeType]) -> Optional[int]:
    """The id of a thread running one of these code objects, or None."""
    frames = sys._current_frames()
    for tid, frame in frames.items():
        f: Optional[types.FrameType] = frame
        while f is not None:
            if f.f_code in codes:
                return tid
            f = f.f_back
    return None


_prepared: collections.OrderedDict[Tuple[str, str], _Compiled] = collections.OrderedDict()  # (filename, sha1)


def _compiled(filename: str, source: str) -> _Compiled:
    """A source text parsed and compiled; cached by content."""
    key = (filename, hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest())
    hit = _prepared.get(key)
    if hit is not None:
        return hit
    short = os.path.basename(filename)
    try:
        tree = ast.parse(source, filename)
        module_code = compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise LuError("%s:%s: SyntaxError: %s; nothing applied" % (short, e.lineno, e.msg))
    except ValueError as e:
        raise LuError("%s: %s; nothing applied" % (short, e))
    classes: List[_Class] = []
    defs = _defs(tree, classes)
    result = _Compiled(tree=tree, module_code=module_code, defs=defs, classes=classes, codes=_code_map(module_code))
    with _lock:
        _prepared[key] = result
        while len(_prepared) > 2:
            _prepared.popitem(last=False)
    return result


def prepare(path: str, source: str) -> bool:
    """Parse and compile a source text ahead of its apply (while the host debounces a save).

    Pure: nothing in the process changes; plan_and_apply then finds the work done.
    """
    modules = modules_for(path)
    if not modules:
        raise LuError("no module of this process was loaded from %s" % path)
    try:
        _compiled(modules[0].filename, source)
    except LuError:
        return False
    return True


def plan_and_apply(
    path: str,
    source: Union[str, bytes],
    prune: bool = False,
    check: Optional[str] = None,
    only: Optional[Sequence[Tuple[str, types.FunctionType]]] = None,
    label: str = "watch",
) -> Outcome:
    """Apply a new version of `path`'s source (see the module docstring). Returns Outcome.

    `only`: [(name, function)]: consider just these functions, not the module's
    whole dict, and add or remove nothing (@realtime).
    """
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LuError("%s is not UTF-8 (%s); nothing applied" % (path, e))
    modules = modules_for(path)
    if not modules:
        raise LuError("no module of this process was loaded from %s" % path)
    filename = modules[0].filename
    short = os.path.basename(filename)
    compiled = _compiled(filename, source)
    tree, defs, classes = compiled.tree, compiled.defs, compiled.classes
    manager = UpdateManager.default()

    with _lock, manager.lock:
        out = Outcome(filename)
        plan = _Plan(
            outcome=out,
            base=_bases.get(filename),
            module_code=compiled.module_code,
            class_quals={c.qualname for c in classes},
            prune=prune,
        )
        base = plan.base
        new_by_qual: Dict[str, List[_Def]] = collections.OrderedDict()
        for entry in defs:
            new_by_qual.setdefault(entry.qualname, []).append(entry)
        for loaded in modules:
            modname, mod, modfile = loaded
            running: List[Tuple[str, types.FunctionType]]
            if only is not None:
                running = [(n, f) for n, f in only if f.__module__ == modname or len(modules) == 1]
            else:
                running = []
                module_functions(mod, modname, running, set(), {})
            run_by_qual: Dict[str, List[Tuple[str, types.FunctionType]]] = collections.OrderedDict()
            for name, func in running:
                run_by_qual.setdefault(code_qualname(func), []).append((name, func))
            for qual, items in run_by_qual.items():
                news = new_by_qual.get(qual, [])
                refs: List[_Running] = []
                for name, func in items:
                    file_code, runs_file_code = manager.file_body(func, modfile)
                    refs.append(_Running(name=name, func=func, file_code=file_code, runs_file_code=runs_file_code))
                refs.sort(key=lambda r: r.first_line)
                for i, run in enumerate(refs):
                    if i >= len(news):
                        if "<locals>" not in qual and only is None:
                            _removed(plan, loaded, qual, run)
                        continue
                    entry = news[i]
                    new = compiled.code_of(entry)
                    if new is None:
                        continue
                    _match(plan, mod, entry, run, new)
            if only is not None:
                continue
            # added defs and classes
            for qual, entries in new_by_qual.items():
                have = len(run_by_qual.get(qual, ()))
                for entry in entries[have:]:
                    if entry.parent is None:
                        continue  # nested in a function: comes with its function
                    parent_obj: Optional[Holder]
                    if entry.parent == "":
                        parent_obj = mod
                    else:
                        parent_obj = _lookup_class(mod, entry.parent)
                        if parent_obj is None:
                            continue  # part of a new class
                    attr = entry.node.name
                    existing = parent_obj.__dict__.get(attr)
                    if existing is not None and any(
                        existing is f or _attr_holder(parent_obj, attr, f) for _, f in running
                    ):
                        continue  # e.g. a second def of the same name; the first is matched
                    code = compiled.code_of(entry)
                    if code is None:
                        continue
                    display = "%s.%s" % (modname, qual)
                    value = _build_function(
                        code, mod, parent_obj if isinstance(parent_obj, type) else None, entry, display
                    )
                    plan.actions.append(_set_action(parent_obj, attr, value))
                    out.lines.append("added %s" % display)
                    out.names["added"].append(display)
                    plan.targets.append(display)
                    if isinstance(parent_obj, type):
                        plan.touch(parent_obj, attr)
            for klass in classes:
                if klass.parent != "" or klass.node.name in mod.__dict__:
                    continue
                stmt = ast.Module(body=[klass.node], type_ignores=[])
                code = compile(stmt, modfile, "exec", dont_inherit=True)
                display = "%s.%s" % (modname, klass.qualname)
                plan.actions.append(_exec_action(code, mod.__dict__, "the new class %s" % display))
                out.lines.append("added %s" % display)
                out.names["added"].append(display)
                plan.targets.append(display)
            for klass in classes:
                if (
                    klass.parent not in ("", None)
                    and _lookup_class(mod, klass.parent) is not None
                    and _lookup_class(mod, klass.qualname) is None
                ):
                    what = "%s:%d: the new nested class %s.%s" % (short, klass.node.lineno, modname, klass.qualname)
                    out.notes.append("not run: " + what)
                    out.names["not_run"].append(what)
        # module-level statements (@realtime, which passes `only`, looks at its functions alone)
        statements = _statements(tree) if only is None else []
        if only is None and base is not None:
            seen: collections.Counter[str] = collections.Counter()
            for dump, node in statements:
                seen[dump] += 1
                if seen[dump] <= base.statements.get(dump, 0):
                    continue
                text = (ast.get_source_segment(source, node) or "").splitlines()
                first = text[0].strip() if text else type(node).__name__
                if len(first) > 60:
                    first = first[:57] + "..."
                if isinstance(node, (ast.Import, ast.ImportFrom)) and node.col_offset == 0 and node in tree.body:
                    code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec", dont_inherit=True)
                    for loaded in modules:
                        plan.actions.append(
                            _exec_action(code, loaded.module.__dict__, "%s:%d: %s" % (short, node.lineno, first))
                        )
                    out.lines.append("ran %s:%d: %s" % (short, node.lineno, first))
                    out.names["ran"].append("%s:%d: %s" % (short, node.lineno, first))
                else:
                    out.notes.append(
                        "not run: %s:%d: %s (module-level statements are not re-run)" % (short, node.lineno, first)
                    )
                    out.names["not_run"].append("%s:%d: %s" % (short, node.lineno, first))
        if only is None and base is not None:
            for entry_or_class in list(defs) + list(classes):
                if entry_or_class.parent is None:
                    continue
                old = base.heads.get(entry_or_class.qualname)
                if old is not None and old != _head(entry_or_class.node):
                    head = "decorators" if isinstance(entry_or_class, _Def) else "bases, keywords or decorators"
                    what = "%s:%d: the %s of %s.%s changed" % (
                        short,
                        entry_or_class.first,
                        head,
                        modules[0].name,
                        entry_or_class.qualname,
                    )
                    out.notes.append("not run: %s (they are not re-applied)" % what)
                    out.names["not_run"].append(what)
        if plan.changes or plan.actions:
            description = "%s %s: %s" % (
                label,
                short,
                "; ".join(out.lines)
                if out.lines
                else "moved %d function%s" % (out.moved, "" if out.moved == 1 else "s"),
            )
            if len(description) > 300:
                description = description[:297] + "..."
            out.id = manager.apply_update(
                Recode(
                    filename,
                    plan.changes,
                    actions=plan.actions,
                    targets=plan.targets,
                    description=description,
                    kind=label,
                )
            )
        if check and out.id is not None:
            result = run_check(check)
            out.check = result.report
            if not result.ok:
                manager.revert(out.id)
                out.reverted = True
                return out
        if only is None:
            _bases[filename] = _Base(tree, defs, statements, classes)
    _notify(plan.touched)
    return out


def _match(plan: _Plan, mod: types.ModuleType, entry: _Def, run: _Running, new: types.CodeType) -> None:
    """Give the running function `run` the body `new` that the new source has for it (`entry`)."""
    out, base = plan.outcome, plan.base
    name, func, ref = run.name, run.func, run.file_code
    node = entry.node
    defaults_changed = base is not None and base.args.get(entry.qualname) not in (None, _args_dump(node))
    cls = _lookup_class(mod, entry.parent) if entry.parent else None
    if ref is not None and not defaults_changed:
        if same_code(ref, new):
            return
        delta = new.co_firstlineno - ref.co_firstlineno
        if delta and same_code(shift_code(ref, delta), new):
            if run.runs_file_code:
                plan.changes.append(Moved(name, func, node, new.co_firstlineno))
                out.moved += 1
                out.names["moved"].append(name)
            return
    if defaults_changed:
        defaults = _eval_defaults(node, mod, cls, name)
    else:
        defaults = _Defaults(positional=func.__defaults__, keyword=func.__kwdefaults__)
    freevars = func.__code__.co_freevars
    same_kind = (new.co_flags & 0x2A0) == (func.__code__.co_flags & 0x2A0)
    if set(new.co_freevars) <= set(freevars) and same_kind:
        plan.changes.append(NewBody(name, func, node, new, defaults.positional, defaults.keyword, _docstring(node)))
        out.lines.append("updated %s" % name)
        out.names["updated"].append(name)
        plan.targets.append(name)
        if cls is not None:
            plan.touch(cls, node.name)
        return
    # cannot take the new code in place: rebind when it is a module or class attribute
    why = (
        "its free variables changed (%s -> %s)" % (", ".join(freevars) or "none", ", ".join(new.co_freevars))
        if same_kind
        else "it changed between a plain function, a generator and a coroutine"
    )
    parent_obj: Optional[Holder] = cls if entry.parent else (mod if entry.parent == "" else None)
    extra = set(new.co_freevars) - {"__class__"}
    if parent_obj is None or extra or not _attr_holder(parent_obj, node.name, func):
        raise LuError(
            "cannot apply %s in place: %s, and it is not a plain module or class attribute "
            "that lu could rebind; nothing applied" % (name, why)
        )
    value = _build_function(new, mod, cls, entry, name)
    plan.actions.append(_set_action(parent_obj, node.name, value))
    out.lines.append("rebound %s (%s: a new function object; references taken earlier keep the old body)" % (name, why))
    out.names["rebound"].append(name)
    plan.targets.append(name)
    if cls is not None:
        plan.touch(cls, node.name)


def _removed(plan: _Plan, loaded: LoadedModule, qual: str, run: _Running) -> None:
    """The running function `run` (qualified name `qual`) is not in the new source."""
    out = plan.outcome
    mod, modname = loaded.module, loaded.name
    name, func = run.name, run.func
    parts = qual.split(".")
    parent_qual = ".".join(parts[:-1])
    if parent_qual and parent_qual not in plan.class_quals:
        # its whole class is gone
        top = parts[0]
        key = "removed %s.%s" % (modname, top)
        if parent_qual.split(".")[0] not in plan.class_quals and not any(key in n for n in out.notes + out.lines):
            cls = mod.__dict__.get(top)
            if plan.prune and isinstance(cls, type) and cls.__module__ == modname:
                user = plan.names_used().get(top)
                if user is not None:
                    raise LuError(
                        "%s.%s was removed from the file but %s still uses it; nothing applied"
                        % (modname, top, _where_used(modname, user))
                    )
                plan.actions.append(_set_action(mod, top, None, delete=True))
                out.lines.append("pruned %s.%s" % (modname, top))
                out.names["pruned"].append("%s.%s" % (modname, top))
                plan.targets.append("%s.%s" % (modname, top))
            else:
                out.notes.append("%s (still in the process; --prune deletes it)" % key)
                out.names["removed"].append("%s.%s" % (modname, top))
        return
    attr = parts[-1]
    user = plan.names_used().get(attr)
    if user is not None and user != qual:
        raise LuError(
            "%s was removed from the file but %s still uses it; nothing applied" % (name, _where_used(modname, user))
        )
    if not plan.prune:
        out.notes.append("removed %s (still in the process; --prune deletes it)" % name)
        out.names["removed"].append(name)
        return
    parent_obj: Optional[Holder] = mod if not parent_qual else _lookup_class(mod, parent_qual)
    if parent_obj is None or (
        not _attr_holder(parent_obj, attr, func) and getattr(parent_obj, "__dict__", {}).get(attr) is None
    ):
        out.notes.append("removed %s (lu cannot delete it: not a module or class attribute)" % name)
        out.names["removed"].append(name)
        return
    tid = _running_frames({func.__code__})
    if tid is not None:
        raise LuError(
            "%s was removed from the file but is running right now (thread %s); nothing applied" % (name, tid)
        )
    plan.actions.append(_set_action(parent_obj, attr, None, delete=True))
    out.lines.append("pruned %s" % name)
    out.names["pruned"].append(name)
    plan.targets.append(name)
    if isinstance(parent_obj, type):
        plan.touch(parent_obj, attr)


def _where_used(modname: str, user: str) -> str:
    return "%s.%s" % (modname, user) if user else "%s (module level)" % modname


# --------------------------------------------------------------------------- gatekeeping
def run_check(name: str) -> CheckResult:
    """Run a unittest module inside the process: whether it passed, and its report."""
    import unittest  # lazy: only --check runs tests, and unittest is large

    try:
        module: types.ModuleType
        if name.endswith(".py") or os.sep in name:
            path = target_path(name)
            modname = "lu_check_" + os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None or spec.loader is None:
                raise ImportError("no test module at %s" % path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        elif name in sys.modules:
            module = importlib.reload(sys.modules[name])
        else:
            module = importlib.import_module(name)
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    except Exception as e:
        return CheckResult(
            ok=False, report={"ran": 0, "failures": ["cannot load the check %s: %s: %s" % (name, type(e).__name__, e)]}
        )
    stream = io.StringIO()
    result = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
    failures = []
    for test, text in list(result.failures) + list(result.errors):
        last = [entry for entry in text.strip().splitlines() if entry.strip()]
        failures.append("%s: %s" % (test.id(), last[-1].strip() if last else "failed"))
    return CheckResult(ok=result.wasSuccessful(), report={"ran": result.testsRun, "failures": failures})


def check_loadable(name: str) -> None:
    if name.endswith(".py") or os.sep in name:
        if not os.path.exists(target_path(name)):
            raise LuError("the check module %s does not exist in the target" % name)
        return
    try:
        found = name in sys.modules or importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LuError("the target cannot import the check module %s" % name)


# --------------------------------------------------------------------------- class callbacks
def on_class_update(callback: _CallbackT) -> _CallbackT:
    """Call callback(cls, names) after a save changed, added or removed methods of cls.

    Returns the callback (so it can be used as a decorator).  Exceptions it
    raises are logged and ignored.
    """
    if not callable(callback):
        raise TypeError("on_class_update needs a callable")
    with _lock:
        if callback not in _class_callbacks:
            _class_callbacks.append(callback)
    return callback


def remove_class_update(callback: ClassCallback) -> None:
    with _lock:
        if callback in _class_callbacks:
            _class_callbacks.remove(callback)


def _notify(touched: Dict[type, List[str]]) -> None:
    if not touched:
        return
    callbacks = list(_class_callbacks)
    for cls, names in touched.items():
        for cb in callbacks:
            try:
                cb(cls, list(names))
            except Exception:
                logging.getLogger("lu_payloads.watch").exception("class update callback %r failed", cb)
