"""One transaction: every update of a call (or of a patch file) applies completely or not at all.

1. prepare: resolve, check and compile everything; nothing in the process
   changes. Each function gets its new list of layers, and from it the code
   it will run (composition: the body of the last Redefine, instrumented by
   every Instrument layer in order).
2. side effects that are not code swaps (names added or changed), each
   undone if a later one fails;
3. swap every code object (a `__code__` assignment, atomic under the GIL);
4. the late side effects (statements that must see the new bodies); if one
   fails, the swap and the early side effects are undone too.
"""

from __future__ import annotations

import difflib
import sys
import types
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..errors import LuError, ModuleNotLoaded, prefixed
from . import bodies, effects, resolve
from .progress import Watch
from .records import FunctionState, InstrumentLayer, Layer, RedefineLayer, UpdateRecord, body_of
from .source import Body
from .transform import Plan, build_code
from .updates import Instrument, Moved, NewBody, Recode, Redefine, Update

if TYPE_CHECKING:
    from .manager import UpdateManager

PendingUpdate = Tuple[int, Update, str]  # (id, update, the patch file's "file:line: " or "")
FunctionPlan = Tuple[FunctionState, List[Layer], types.CodeType, Body]  # a function, its layers, its code, its body


class Transaction:
    def __init__(self, manager: UpdateManager) -> None:
        self.manager = manager
        self.work: Dict[int, FunctionState] = {}  # id(func) -> its state
        self.layers: Dict[int, List[Layer]] = {}  # id(func) -> its new list of layers
        self.effects: List[effects.SideEffect] = []
        self.records: List[UpdateRecord] = []
        self.planned: List[FunctionPlan] = []  # what every changed function will run (plans())
        self.generation = -1  # the manager's generation when prepared
        self.wheres: Dict[int, str] = {}  # id(record) -> where its update came from ("patch.py:3: ", or "")

    # -- preparing ------------------------------------------------------------------
    def state(self, name: str, func: types.FunctionType) -> FunctionState:
        key = id(func)
        st = self.work.get(key)
        if st is None:
            st = self.manager.states.get(key)
            if st is None or st.func is not func:
                st = FunctionState(func, name)
            self.work[key] = st
            self.layers[key] = list(st.layers)
        return st

    def current_body(self, st: FunctionState) -> Body:
        return body_of(self.layers[id(st.func)], st.orig)

    def add_layer(self, rec: UpdateRecord, st: FunctionState, layer: Layer) -> None:
        self.layers[id(st.func)].append(layer)
        rec.layers.append((st, layer))

    def add_effect(self, effect: Optional[effects.SideEffect]) -> None:
        if effect is not None:
            self.effects.append(effect)

    def prepare(self, uid: int, update: Update, where: str) -> UpdateRecord:
        try:
            if isinstance(update, Instrument):
                record = self._instrument(uid, update)
            elif isinstance(update, Recode):
                record = self._recode(uid, update)
            else:
                record = self._redefine(uid, update, where)
        except LuError as e:
            raise prefixed(e, where)
        self.wheres[id(record)] = where
        return record

    def _instrument(self, uid: int, update: Instrument) -> UpdateRecord:
        found = update.resolve()
        points = update.points
        for timer in points.timers:
            timer.resolved([func for _, func in found])
        description = update.describe([n for n, _ in found])
        description += "".join(", " + timer.kind for timer in points.timers if timer.kind)
        rec = self.manager.new_record(uid, "instrument", description)
        line_points = points.line_numbers()
        for name, func in found:
            st = self.state(name, func)
            body = self.current_body(st)
            if line_points:  # function-level points: the source is checked when the code is built (plans)
                check_lines(st, body, name, line_points)
            self.add_layer(rec, st, InstrumentLayer(rec, points, body))
            rec.targets.append(name)
        return rec

    def _recode(self, uid: int, update: Recode) -> UpdateRecord:
        rec = self.manager.new_record(uid, update.kind, update.description or "")
        for change in update.changes:
            st = self.state(change.name, change.func)
            previous = self.current_body(st)
            if isinstance(change, Moved):
                self._move(rec, st, previous, change, uid)
                continue
            assert isinstance(change, NewBody)
            body = bodies.file_body(
                st,
                change.name,
                change.node,
                change.code,
                update.filename,
                previous,
                uid,
                change.defaults,
                change.kwdefaults,
                change.doc,
            )
            self.add_layer(rec, st, RedefineLayer(rec, body))
        for action in update.actions:
            self.effects.append(effects.SideEffect(rec, "", action))
        for action in update.late_actions:
            self.effects.append(effects.SideEffect(rec, "", action, late=True))
        rec.targets = list(update.targets) or [st.name for st, _ in rec.layers]
        if not rec.description:
            rec.description = "recode %s" % update.filename
        return rec

    def _move(self, rec: UpdateRecord, st: FunctionState, previous: Body, change: Moved, uid: int) -> None:
        delta = change.firstlineno - previous.code.co_firstlineno
        if not delta:
            return
        layers = self.layers[id(st.func)]
        top = layers[-1] if layers else None
        if isinstance(top, RedefineLayer) and top.body is previous and previous.moved_from is not None:
            # moved again: fold into the previous move instead of stacking layers
            # (a long watch session that keeps shifting lines stays one layer deep)
            base, old_delta = previous.moved_from
            folded = base.moved(old_delta + delta, previous.label)
            folded.from_file = previous.from_file
            layers[-1] = RedefineLayer(top.record, folded)
            return
        # the def is read back from the file when something instruments it (node None)
        self.add_layer(rec, st, RedefineLayer(rec, previous.moved(delta, "moved #%d" % uid)))

    def _redefine(self, uid: int, update: Redefine, where: str) -> UpdateRecord:
        modname = update.module
        module = sys.modules.get(modname)
        if module is None:
            raise ModuleNotLoaded("Redefine: no module named %r is loaded in the process" % modname, modname)
        rec = self.manager.new_record(uid, "redefine", update.description or "")
        if update.predefine is not None:
            self.add_effect(effects.predefine(rec, module, update.predefine, where))
        for given, new in update.mapping.items():
            adding = isinstance(given, str) and given.startswith("+")
            key = given[1:] if adding else given
            full = (
                key
                if (
                    key == modname
                    or key.startswith(modname + ".")
                    or (modname == "__main__" and key.startswith("__main__."))
                )
                else modname + "." + key
            )
            parent, attr, obj = resolve.resolve_object(full)
            if adding and obj is not resolve._MISSING:
                raise LuError("%s exists already: name it without the '+' to redefine it" % full)
            if obj is resolve._MISSING:
                assert attr is not None  # resolve_object names the attribute it did not find
                if not adding:
                    raise LuError(
                        "%s does not exist%s; to add it as a new name, write its key as '+%s'"
                        % (full, _did_you_mean(parent, attr, full), key)
                    )
                added, copied = effects.new_name(rec, module, parent, attr, full, new, where)
                self.add_effect(added)
                self.add_effect(copied)
                continue
            for tname, tfunc, nfunc in pair_targets(full, obj, new):
                st = self.state(tname, tfunc)
                body = bodies.redefined_body(st, nfunc, tname, uid)
                self.add_layer(rec, st, RedefineLayer(rec, body))
                rec.targets.append(tname)
                self.add_effect(effects.copy_globals(rec, tfunc.__globals__, body.code, nfunc, where))
        if not rec.description:
            rec.description = "redefine %s" % ", ".join(rec.targets)
        return rec

    # -- committing -----------------------------------------------------------------
    def plans(self, watch: Watch) -> List[FunctionPlan]:
        """What every changed function will run (all of it compiled before anything changes)."""
        plans: List[FunctionPlan] = []
        watch.expect(len(self.work))
        for key, st in self.work.items():
            watch.step()
            layers = self.layers[key]
            if st.func.__code__ is not st.current:
                raise LuError(
                    "%s was changed by something other than lu since lu last changed it; "
                    "refusing to overwrite" % st.name
                )
            try:
                code, body = effective(st, layers)
            except LuError as e:  # named after the newest update of this transaction that changes it
                mine = [self.wheres[id(layer.record)] for layer in layers if id(layer.record) in self.wheres]
                raise prefixed(e, mine[-1] if mine else "")
            plans.append((st, layers, code, body))
        return plans

    def run_effects(self, late: bool = False) -> List[Tuple[UpdateRecord, effects.Undo]]:
        """Run the side effects of one side of the swap; if one fails, undo those that ran and raise."""
        done: List[Tuple[UpdateRecord, effects.Undo]] = []
        try:
            for effect in self.effects:
                if effect.late != late:
                    continue
                try:
                    done.append((effect.owner, effect.run()))
                except LuError as e:
                    raise LuError(effect.where + str(e))
                except Exception as e:
                    raise LuError("%s%s: %s" % (effect.where, type(e).__name__, e))
        except BaseException:
            effects.undo_all(done)
            raise
        return done


def _did_you_mean(parent: Any, attr: str, full: str) -> str:
    """' (did you mean shop.price?)' for a name one typo away from one that exists, else ''."""
    try:
        names = [n for n in vars(parent) if not n.startswith("__")]
    except TypeError:
        return ""
    close = difflib.get_close_matches(attr, names, n=1)
    return " (did you mean %s?)" % (full[: -len(attr)] + close[0]) if close else ""


def check_lines(st: FunctionState, body: Body, name: str, line_points: List[Tuple[str, int]]) -> None:
    """Every line point names a statement directly in the function (one clear error otherwise)."""
    own, nested = st.lines_of(body)
    node = st.node_of(body)
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    last = node.end_lineno or node.lineno
    for _kind, number in line_points:
        if number < first or number > last:
            raise LuError("line %d is not inside %s (%s lines %d-%d)" % (number, name, body.filename, first, last))
        if number in nested and number not in own:
            raise LuError(
                "line %d of %s is inside the nested %s, not directly in %s"
                % (number, body.filename, nested[number], name)
            )
        if number not in own:
            near = sorted(own, key=lambda x: abs(x - number))[:3]
            raise LuError(
                "line %d of %s holds no statement of %s (statements start on lines %s)"
                % (number, body.filename, name, ", ".join(str(x) for x in sorted(near)))
            )


def pair_targets(full: str, obj: Any, new: Any) -> List[Tuple[str, types.FunctionType, types.FunctionType]]:
    """(target name, running function, new function) for one key of a Redefine."""
    if isinstance(obj, property):
        if isinstance(new, property):
            pairs: List[Tuple[str, types.FunctionType, types.FunctionType]] = []
            for accessor in resolve.ACCESSORS:
                target, replacement = getattr(obj, accessor), getattr(new, accessor)
                if replacement is None:
                    continue
                if target is None:
                    raise LuError("%s has no %s to redefine" % (full, accessor))
                named = full + "." + accessor
                pairs.append((named, _accessor_function(target, named), bodies.unwrap_new(replacement, named)))
            return pairs
        if obj.fget is None:
            raise LuError("%s has no fget to redefine" % full)
        targets = [(full + ".fget", _accessor_function(obj.fget, full + ".fget"))]
    else:
        targets = resolve.functions_of(obj, full)
    nfunc = bodies.unwrap_new(new, full)
    return [(name, func, nfunc) for name, func in targets]


def _accessor_function(accessor: Any, name: str) -> types.FunctionType:
    """The Python function a property's accessor runs (LuError for a builtin one)."""
    func = resolve.unwrap(accessor)
    if func is None:
        raise LuError("%s is not a Python function (it is a %s object)" % (name, type(accessor).__name__))
    return func


def effective(st: FunctionState, layers: List[Layer]) -> Tuple[types.CodeType, Body]:
    """The code a function runs with these layers: the last Redefine's body, instrumented by every layer."""
    body = body_of(layers, st.orig)
    instruments = [layer for layer in layers if isinstance(layer, InstrumentLayer)]
    if not instruments:
        return body.code, body
    plan = Plan()
    # a body that is an earlier one moved (lu watch) keeps that one's line points, shifted
    shifts: Dict[int, int] = {}
    walked: Optional[Body] = body
    delta = 0
    while walked is not None and id(walked) not in shifts:
        shifts[id(walked)] = delta
        if walked.moved_from is None:
            break
        walked, moved_by = walked.moved_from
        delta += moved_by
    for layer in instruments:
        points, rec = layer.points, layer.record
        plan.timers.extend((timer, rec) for timer in points.timers)
        plan.before.extend((capture.hook, capture.want, rec) for capture in points.func_before)
        plan.suspend.extend((hook, rec) for hook in points.on_suspend)
        plan.resume.extend((hook, rec) for hook in points.on_resume)
        shift = shifts.get(id(layer.body))
        if shift is not None:
            for kind in ("line_before", "line_after"):
                for number, captures in getattr(points, kind).items():
                    getattr(plan, kind).setdefault(number + shift, []).extend(
                        (capture.hook, capture.want, rec) for capture in captures
                    )
    for layer in reversed(instruments):
        plan.after.extend((hook, layer.record) for hook in layer.points.func_after)
    if plan.empty():
        return body.code, body
    fnode = st.node_of(body)
    try:
        code = build_code(body, fnode, st.qualname, st.freevars, plan, st.info, st.func.__globals__)
    except SyntaxError as e:
        raise LuError("%s:%s: cannot instrument %s: %s" % (body.filename, e.lineno, st.name, e.msg))
    if code.co_freevars != st.freevars:  # pragma: no cover - defensive
        raise LuError(
            "internal: instrumented %s has free variables %s, expected %s" % (st.name, code.co_freevars, st.freevars)
        )
    return code, body
