"""One save turned into one engine update: what changes, in what order, and what is only reported.

The inputs are the new source (`FileModel`), the base it is compared with
(`Shape`), the pairing of their defs and the running functions of each base
def (`Inventory`).  The result is a `Recode`:

- changes: each running function of a changed def gets the new body in
  place (every decorator layer, every closure, every copy: all are found
  by the code they run), or is moved (line numbers only);
- early actions, before the swap, in file order: new imports, new
  functions and classes (what new bodies may call);
- late actions, after the swap, in file order: changed module- and
  class-level statements, decorators applied again, classes rebuilt and
  merged (they must see the new bodies);
- notes: what is not done, each by name and with its reason.

The engine applies it all or nothing.
"""

from __future__ import annotations

import abc
import ast
import enum
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from ..engine import Moved, NewBody
from ..engine.effects import global_names
from ..engine.resolve import FileCache, same_file
from ..engine.source import same_code, shift_code
from ..engine.updates import Action, Change
from ..errors import LuError
from . import building, inventory, statements
from .model import MODULE, Def, DefKey, FileModel, FuncNode, Shape, Statement, defaults_key
from .outcome import Outcome
from .pairing import Pairing

Holder = building.Holder
KIND_FLAGS = 0x2A0  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR


class LoadedModule(NamedTuple):
    """A loaded module whose source is the file in question."""

    name: str  # its name in sys.modules
    module: types.ModuleType
    filename: str  # its source file, as the module names it


class Step(NamedTuple):
    """One action and where it is in the new file (steps run in file order)."""

    line: int  # where it is in the new file: steps run in file order
    action: Action


@dataclass
class Plan:
    """One save being planned, for one loaded module of the file."""

    new: FileModel
    base: Shape
    loaded: LoadedModule
    inv: inventory.Inventory
    pairing: Pairing
    prune: bool
    outcome: Outcome
    changes: List[Change] = field(default_factory=list)
    early: List[Step] = field(default_factory=list)
    late: List[Step] = field(default_factory=list)
    targets: List[str] = field(default_factory=list)
    touched: Dict[type, List[str]] = field(default_factory=dict)  # class -> names changed (on_class_update)
    reapplied: Set[DefKey] = field(default_factory=set)  # defs whose decorators run again

    @property
    def mod(self) -> types.ModuleType:
        return self.loaded.module

    @property
    def short(self) -> str:
        return os.path.basename(self.new.filename)

    def name(self, d: Def) -> str:
        return d.display(self.loaded.name)

    def where(self, node: ast.AST) -> str:
        return "%s:%d: %s" % (self.short, getattr(node, "lineno", 0), self.new.text_of(node))

    def say(self, kind: str, name: str, line: str) -> None:
        self.outcome.lines.append(line)
        self.outcome.names[kind].append(name)
        if kind != "ran":
            self.targets.append(name)

    def note(self, kind: str, name: str, line: str) -> None:
        self.outcome.notes.append(line)
        self.outcome.names[kind].append(name)

    def touch(self, parent: Optional[str], attr: str) -> None:
        cls = self.inv.classes.get(parent) if parent else None
        if cls is not None:
            self.touched.setdefault(cls, []).append(attr)

    def holder_of(self, d: Def) -> Optional[Holder]:
        if d.parent == MODULE:
            return self.mod
        return self.inv.classes.get(d.parent) if d.parent else None


# --------------------------------------------------------------------------- bodies
def changed_defs(plan: Plan) -> List[Tuple[DefKey, Def]]:
    """The pairs whose def says something else now (body, signature or defaults)."""
    out = []
    for old_key, d in plan.pairing.pairs:
        old = plan.base.defs[old_key]
        if not d.is_class and (old.digest != d.digest or old.defaults != defaults_key(d.node)):  # type: ignore[arg-type]
            out.append((old_key, d))
    return out


def needs_sweep(plan: Plan) -> bool:
    """A changed def nested in a function (its closures), or one the walk found no function for."""
    return any(d.parent is None or not plan.inv.live.get(old_key) for old_key, d in changed_defs(plan))


def bodies(plan: Plan) -> None:
    """Changed and moved defs: new bodies in place, or line numbers shifted."""
    for old_key, d in plan.pairing.pairs:
        if d.is_class:
            continue
        new_code = plan.new.code_of(d)
        lives = plan.inv.live.get(old_key, [])
        if new_code is None or not lives:
            continue
        old = plan.base.defs[old_key]
        defaults_changed = old.defaults != defaults_key(d.node)  # type: ignore[arg-type]
        updated = moved = 0
        stuck: List[inventory.Live] = []
        why = ""
        for live in lives:
            try:
                result = _match(plan, d, live, new_code, defaults_changed)
            except _NotInPlace as e:
                stuck.append(live)
                why = e.why
                continue
            updated += result == "updated"
            moved += result == "moved"
        name = plan.name(d)
        if stuck and not _rewrap(plan, d, stuck, why):
            raise LuError(
                "cannot apply %s in place: %s, and it is not a plain module or class attribute "
                "that lu could rebind; nothing applied" % (name, why)
            )
        if updated:
            extra = " (%d functions run it)" % updated if updated > 1 else ""
            plan.say("updated", name, "updated %s%s" % (name, extra))
            plan.touch(d.parent, d.name)
        if moved:
            plan.outcome.moved += 1
            plan.outcome.names["moved"].append(name)


def _match(plan: Plan, d: Def, live: inventory.Live, new: types.CodeType, defaults_changed: bool) -> str:
    """Give one running function of a def the new body; what was done: updated, moved, rebound or ""."""
    func, ref, node = live.func, live.file_code, d.node
    assert not isinstance(node, ast.ClassDef)
    name = plan.name(d)
    if not defaults_changed:
        if same_code(ref, new):
            return ""
        delta = new.co_firstlineno - ref.co_firstlineno
        if delta and same_code(shift_code(ref, delta), new):
            if live.runs_file_code:
                plan.changes.append(Moved(name, func, node, new.co_firstlineno))
                return "moved"
            return ""
    if defaults_changed and d.parent is not None:
        defaults = building.eval_defaults(node, plan.mod, plan.inv.classes.get(d.parent) if d.parent else None, name)
    else:  # a nested function's defaults are computed each time its def runs: the next closure has them
        defaults = building.Defaults(positional=func.__defaults__, keyword=func.__kwdefaults__)
    freevars = func.__code__.co_freevars
    same_kind = (new.co_flags & KIND_FLAGS) == (func.__code__.co_flags & KIND_FLAGS)
    if set(new.co_freevars) <= set(freevars) and same_kind:
        plan.changes.append(
            NewBody(name, func, node, new, defaults.positional, defaults.keyword, building.docstring_of(node))
        )
        return "updated"
    why = (
        "its free variables changed (%s -> %s)" % (", ".join(freevars) or "none", ", ".join(new.co_freevars))
        if same_kind
        else "it changed between a plain function, a generator and a coroutine"
    )
    binding = plan.inv.bindings.get(_key_of(plan, d))
    holder = plan.holder_of(d)
    extra = set(new.co_freevars) - {"__class__"}
    if holder is None or extra or binding is None or not _holds_directly(binding, func):
        raise _NotInPlace(why)
    plan.early.append(Step(d.first, building.new_function_action(new, plan.mod, holder, d, name)))
    plan.say(
        "rebound",
        name,
        "rebound %s (%s: a new function object; references taken earlier keep the old body)" % (name, why),
    )
    plan.touch(d.parent, d.name)
    return "rebound"


class _NotInPlace(Exception):
    """A running function cannot take a def's new code in place (and is not an attribute to rebind)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _rewrap(plan: Plan, d: Def, stuck: List[inventory.Live], why: str) -> bool:
    """Wrappers a decorator of the file made that cannot take its new code in place: apply again the
    decorators of every def they wrap (the decorator's new code makes new wrappers). False if one of
    them is held where lu cannot put a new one."""
    wrapped: List[DefKey] = []
    for live in stuck:
        holders = [k for k, b in plan.inv.bindings.items() if k[0] != d.qualname and _reaches(b.value, live.func)]
        if not holders:
            return False
        wrapped += [k for k in holders if k not in wrapped]
    new_of = dict(plan.pairing.pairs)
    for key in wrapped:
        outer = new_of.get(key)
        if outer is None or _cannot_reapply(plan, outer, plan.inv.bindings.get(key), plan.inv.live.get(key, [])):
            return False
    because = "the wrapper %s makes cannot take its new code in place: %s" % (plan.name(d), why)
    for key in wrapped:
        _reapply(plan, key, new_of[key], because)
    return True


def _key_of(plan: Plan, d: Def) -> DefKey:
    """The base key paired with a new def."""
    for old_key, new_def in plan.pairing.pairs:
        if new_def is d:
            return old_key
    return d.key


def _holds_directly(binding: inventory.Binding, func: types.FunctionType) -> bool:
    value = binding.value
    return value is func or (isinstance(value, (staticmethod, classmethod)) and value.__func__ is func)


# --------------------------------------------------------------------------- decorators
def decorators(plan: Plan) -> None:
    """Defs whose decorators changed: applied again where the result can take the old one's place."""
    for old_key, d in plan.pairing.pairs:
        old = plan.base.defs[old_key]
        if d.is_class or old.head == d.head:
            continue
        name = plan.name(d)
        if old_key in plan.reapplied:
            continue
        why = _cannot_reapply(plan, d, plan.inv.bindings.get(old_key), plan.inv.live.get(old_key, []))
        if why:
            what = "%s:%d: the decorators of %s changed" % (plan.short, d.first, name)
            plan.note("not_run", what, "not run: %s (not applied again: %s)" % (what, why))
            continue
        _reapply(plan, old_key, d, "")


def _reapply(plan: Plan, key: DefKey, d: Def, because: str) -> None:
    """Apply a def's decorators (as the new source has them) again to its function, after the swap,
    and bind the result where the old result was."""
    binding = plan.inv.bindings[key]
    func = next(live.func for live in plan.inv.live.get(key, []) if _reaches(binding.value, live.func))
    name = plan.name(d)
    plan.reapplied.add(key)
    plan.late.append(Step(d.first, _reapply_action(plan, d, binding, func, name)))
    plan.say(
        "reapplied",
        name,
        "re-applied the decorators of %s (%sreferences taken earlier keep the old ones)"
        % (name, because + "; " if because else ""),
    )
    plan.touch(d.parent, d.name)


def _reaches(value: Any, func: types.FunctionType) -> bool:
    found: List[types.FunctionType] = []
    inventory.reachable(value, found, set())
    return any(f is func for f in found)


def _cannot_reapply(plan: Plan, d: Def, binding: Optional[inventory.Binding], lives: List[inventory.Live]) -> str:
    if d.parent is None:
        return "it is defined inside a function"
    if binding is None or not any(_reaches(binding.value, live.func) for live in lives):
        return "lu found no module or class attribute holding it"
    if isinstance(binding.value, property) or sum(1 for k, _ in plan.pairing.pairs if k[0] == d.qualname) > 1:
        return "several defs make that one attribute"
    return ""


def _reapply_action(plan: Plan, d: Def, binding: inventory.Binding, func: types.FunctionType, name: str) -> Action:
    holder, attr, code_file = binding.holder, binding.attr, plan.new.filename
    mod = plan.mod

    def do() -> Callable[[], None]:
        cls = holder if isinstance(holder, type) else None
        value = building.decorate(func, d.node.decorator_list, mod, cls, code_file, name)
        return building.set_action(holder, attr, value)()

    return do


# --------------------------------------------------------------------------- new defs
def added(plan: Plan) -> None:
    """New functions, methods and classes: made and bound before the swap, in file order."""
    for d in plan.pairing.added:
        if d.parent is None:
            continue  # nested in a function: comes with its function
        if any(d.qualname.startswith(other.qualname + ".") for other in plan.pairing.added if other.is_class):
            continue  # part of a new class
        holder = plan.holder_of(d)
        name = plan.name(d)
        if holder is None:
            what = "%s:%d: the new %s %s" % (plan.short, d.node.lineno, "class" if d.is_class else "def", name)
            plan.note("not_run", what, "not run: %s (its class is not in the process)" % what)
            continue
        if d.is_class:
            code = plan.new.compile_alone(d.node)
            if isinstance(holder, type):
                plan.early.append(Step(d.first, _nested_class_action(code, holder, plan.mod, d, name)))
            else:
                plan.early.append(
                    Step(d.first, statements.module_action(code, plan.mod.__dict__, "the new class %s" % name))
                )
        else:
            made = plan.new.code_of(d)
            if made is None:
                continue
            plan.early.append(Step(d.first, building.new_function_action(made, plan.mod, holder, d, name)))
        plan.say("added", name, "added %s" % name)
        plan.touch(d.parent, d.name)


def _nested_class_action(code: types.CodeType, outer: type, mod: types.ModuleType, d: Def, name: str) -> Action:
    run = statements.class_action(code, outer, mod.__dict__, "the new class %s" % name)

    def do() -> Callable[[], None]:
        undo = run()
        made = outer.__dict__.get(d.name)
        if isinstance(made, type):
            made.__qualname__ = d.qualname
        return undo

    return do


# --------------------------------------------------------------------------- removed defs
def removed(plan: Plan) -> None:
    """Base defs the new source no longer has: deleted with --prune (a method falls back to its base
    class's), else reported; refused if what is left still calls a deleted module-level name."""
    gone_classes = {k[0] for k in plan.pairing.removed if plan.base.defs[k].is_class}
    kept = {k[0] for k, _ in plan.pairing.pairs}
    for key in plan.pairing.removed:
        old = plan.base.defs[key]
        qualname = key[0]
        if old.parent is None or qualname in kept or any(qualname.startswith(c + ".") for c in gone_classes):
            continue  # inside a function, another def of the name stays, or its whole class is gone
        holder: Optional[Holder] = plan.mod if old.parent == MODULE else plan.inv.classes.get(old.parent)
        if holder is None:
            continue
        attr = qualname.rsplit(".", 1)[-1]
        if old.is_class:
            ours = plan.inv.classes.get(qualname) is not None and plan.inv.classes.get(qualname) is holder.__dict__.get(
                attr
            )
        else:
            binding = plan.inv.bindings.get(key)
            ours = binding is not None and binding.holder is holder and binding.attr == attr
        if not ours:
            continue  # nothing of it is bound in the process
        name = "%s.%s" % (plan.loaded.name, qualname)
        if old.parent == MODULE:  # the saved file is broken: say so now, not at the next restart
            user = _user_of(plan, attr)
            if user is not None:
                raise LuError("%s was removed from the file but %s still uses it; nothing applied" % (name, user))
        if not plan.prune:
            plan.note("removed", name, "removed %s (still in the process; --prune deletes it)" % name)
            continue
        lives = plan.inv.live.get(key, [])
        tid = _running_thread({live.func.__code__ for live in lives})
        if tid is not None:
            raise LuError(
                "%s was removed from the file but is running right now (thread %s); nothing applied" % (name, tid)
            )
        fallback = ""
        if isinstance(holder, type):
            for base in holder.__mro__[1:]:
                if attr in base.__dict__:
                    fallback = " (%s.%s takes its place)" % (base.__qualname__, attr)
                    break
        plan.early.append(Step(old.line, building.set_action(holder, attr, None, delete=True)))
        plan.say("pruned", name, "pruned %s%s" % (name, fallback))
        plan.touch(old.parent, attr)


def _user_of(plan: Plan, attr: str) -> Optional[str]:
    """Where the new source reads `attr` as a global name, or None."""
    if attr in global_names(plan.new.module_code) - _defined_names(plan.new):
        for d in plan.new.defs:
            code = plan.new.code_of(d)
            if code is not None and attr in global_names(code):
                return "%s.%s" % (plan.loaded.name, d.qualname)
        return "%s (module level)" % plan.loaded.name
    return None


def _defined_names(new: FileModel) -> Set[str]:
    return statements.names_bound(new.tree.body)


def _running_thread(codes: Set[types.CodeType]) -> Optional[int]:
    for tid, frame in sys._current_frames().items():
        f: Optional[types.FrameType] = frame
        while f is not None:
            if f.f_code in codes:
                return tid
            f = f.f_back
    return None


# --------------------------------------------------------------------------- statements
def run_statements(plan: Plan) -> None:
    """New module- and class-level statements: run after the swap, in file order (or reported)."""
    by_scope: Dict[str, List[Statement]] = {}
    for s in plan.pairing.new_statements:
        by_scope.setdefault(s.scope, []).append(s)
    new_class_quals = {d.qualname for d in plan.pairing.added if d.is_class}
    for scope, stmts in by_scope.items():
        if scope != MODULE and (scope in new_class_quals or any(scope.startswith(q + ".") for q in new_class_quals)):
            continue  # the statements of a new class run with it
        cls = plan.inv.classes.get(scope) if scope != MODULE else None
        if scope != MODULE and cls is None:
            for s in stmts:
                what = plan.where(s.node)
                plan.note(
                    "not_run",
                    what,
                    "not run: %s (its class %s.%s is not in the process)" % (what, plan.loaded.name, scope),
                )
            continue
        if cls is not None and _rebuilt(cls):
            _rebuild(plan, scope, cls, stmts)
            continue
        made_by = _made_by(plan, scope, cls) if cls is not None else ""
        for s in stmts:
            what = plan.where(s.node)
            why = s.held or _not_rerun(s.node) or made_by
            if why:
                plan.note("not_run", what, "not run: %s (%s)" % (what, why))
                continue
            code = plan.new.compile_alone(s.node)
            early = isinstance(s.node, (ast.Import, ast.ImportFrom))
            if cls is None:
                action = statements.module_action(code, plan.mod.__dict__, what)
            else:
                action = statements.class_action(code, cls, plan.mod.__dict__, what)
            (plan.early if early else plan.late).append(Step(s.node.lineno, action))
            scope_text = "" if cls is None else " in %s.%s" % (plan.loaded.name, scope)
            plan.say("ran", what, "ran %s%s" % (what, scope_text))
            if cls is not None:
                for name in statements.names_bound([s.node]):
                    plan.touch(scope, name)


def gone_statements(plan: Plan) -> None:
    """Statements the save dropped whose names nothing in the save binds again: what they did stays
    in the process (as with both peers), and the output says so rather than nothing."""
    rebound: Dict[str, Set[str]] = {}
    for s in plan.pairing.new_statements:
        rebound.setdefault(s.scope, set()).update(statements.names_bound([s.node]))
    for d in plan.new.defs:
        rebound.setdefault(d.parent or "", set()).add(d.name)
    gone_classes = {k[0] for k in plan.pairing.removed if plan.base.defs[k].is_class}
    for scope, dump in plan.pairing.gone_statements:
        was = plan.base.gone.get((scope, dump))
        if was is None or was.held or (scope != MODULE and (scope in gone_classes or scope not in plan.inv.classes)):
            continue
        if was.binds and set(was.binds) <= rebound.get(scope, set()):
            continue  # changed, not dropped: the new statement says it
        where = "%s.%s" % (plan.loaded.name, scope) if scope != MODULE else plan.loaded.name
        what = "%s (line %d before): %s" % (plan.short, was.line, was.text)
        stays = ", ".join(was.binds) if was.binds else "what it did"
        plan.note("removed", what, "removed %s from %s (%s stays in the process)" % (what, where, stays))


def stale_defaults(plan: Plan) -> None:
    """Defs whose default values read a name that a statement of this save binds again: their
    defaults are evaluated again after the statements ran, as a fresh import would."""
    bound: Dict[str, Set[str]] = {}
    for s in plan.pairing.new_statements:
        if not s.held and not _not_rerun(s.node):
            bound.setdefault(s.scope, set()).update(statements.names_bound([s.node]))
    if not bound:
        return
    for old_key, d in plan.pairing.pairs:
        node = d.node
        if isinstance(node, ast.ClassDef) or d.parent is None:
            continue
        read = {
            n.id
            for default in list(node.args.defaults) + [k for k in node.args.kw_defaults if k is not None]
            for n in ast.walk(default)
            if isinstance(n, ast.Name)
        }
        names = sorted(read & (bound.get(MODULE, set()) | bound.get(d.parent, set())))
        lives = plan.inv.live.get(old_key, [])
        if not names or not lives:
            continue
        cls = plan.inv.classes.get(d.parent) if d.parent else None
        name = plan.name(d)
        for live in lives:
            plan.late.append(Step(d.first, _defaults_action(live.func, node, plan.mod, cls, name)))
        plan.say(
            "updated",
            name,
            "updated the default values of %s (they read %s, which this save changed)" % (name, ", ".join(names)),
        )


def _defaults_action(
    func: types.FunctionType, node: FuncNode, mod: types.ModuleType, cls: Optional[type], name: str
) -> Action:
    def do() -> Callable[[], None]:
        old = (func.__defaults__, func.__kwdefaults__)
        fresh = building.eval_defaults(node, mod, cls, name)
        func.__defaults__, func.__kwdefaults__ = fresh.positional, fresh.keyword

        def undo() -> None:
            if func.__defaults__ is fresh.positional and func.__kwdefaults__ is fresh.keyword:
                func.__defaults__, func.__kwdefaults__ = old

        return undo

    return do


def _not_rerun(node: ast.stmt) -> str:
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return "a loop is not run again: it could run for as long as the program does"
    if isinstance(node, (ast.Return, ast.Yield, ast.Raise)) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Await)
    ):
        return "it is not a statement that can run on its own"
    return ""


def _made_by(plan: Plan, scope: str, cls: type) -> str:
    """Why a class's body statements must not be set on it one by one: something builds the class
    from its body (a metaclass other than type's, a class decorator: Django models, attrs, pydantic)
    and would not see a name set past it. "" when nothing does."""
    if not isinstance(cls, type) or type(cls) not in (type, abc.ABCMeta):
        return "the metaclass %s builds %s from its body; lu would set the name past it" % (
            type(cls).__name__,
            cls.__qualname__,
        )
    d = next((x for x in plan.new.defs if x.qualname == scope and x.is_class), None)
    if d is not None and d.head:
        return "the decorators of %s build it from its body; lu would set the name past them" % cls.__qualname__
    return ""


def _rebuilt(cls: type) -> bool:
    """Does a decorator or metaclass make this class's content from its body (so it is rebuilt)?"""
    return isinstance(cls, enum.EnumMeta) or "__dataclass_fields__" in cls.__dict__


def classes(plan: Plan) -> None:
    """Classes whose decorators, bases or keywords changed: rebuilt where that is how they are made."""
    rebuilt_already = {s.scope for s in plan.pairing.new_statements}
    for old_key, d in plan.pairing.pairs:
        old = plan.base.defs[old_key]
        if not d.is_class or (old.head == d.head and old.bases == d.bases):
            continue
        cls = plan.inv.classes.get(d.qualname)
        if cls is None:
            continue
        name = plan.name(d)
        what = "%s:%d: the %s of %s changed" % (
            plan.short,
            d.first,
            "decorators" if old.bases == d.bases else "bases or keywords",
            name,
        )
        if old.bases != d.bases:
            plan.note("not_run", what, "not run: %s (a running class cannot take other bases)" % what)
        elif not _rebuilt(cls):
            plan.note("not_run", what, "not run: %s (only a dataclass or an Enum is made again in place)" % what)
        elif d.qualname not in rebuilt_already:
            _rebuild(plan, d.qualname, cls, [])


def _rebuild(plan: Plan, scope: str, cls: type, stmts: List[Statement]) -> None:
    d = next((x for x in plan.new.defs if x.qualname == scope and x.is_class), None)
    if d is None or d.parent != MODULE:
        for s in stmts:
            what = plan.where(s.node)
            plan.note("not_run", what, "not run: %s (only a module-level class is rebuilt)" % what)
        return
    node = d.node
    assert isinstance(node, ast.ClassDef)
    code = plan.new.compile_alone(node)
    bound = statements.names_bound(node.body)
    changed = statements.names_bound([s.node for s in stmts])
    cache: FileCache = {}

    def from_file(value: Any) -> bool:
        found: List[types.FunctionType] = []
        inventory.reachable(value, found, set())
        return any(same_file(f.__code__.co_filename, plan.new.filename, cache) for f in found)

    what = "%s:%d: class %s" % (plan.short, node.lineno, node.name)
    plan.late.append(
        Step(node.lineno, statements.rebuild_action(code, cls, plan.mod.__dict__, bound, changed, from_file, what))
    )
    plan.say(
        "ran",
        what,
        "ran %s again and merged it into the running class (%s)"
        % (what, ", ".join(plan.where(s.node).split(": ", 1)[1] for s in stmts) or "its decorators changed"),
    )
    for name in changed:
        plan.touch(scope, name)
