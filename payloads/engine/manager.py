"""UpdateManager: applies, lists and reverts updates.

PyLiveUpdate's users call it on the class (`UpdateManager.apply_update(u)`,
`UpdateManager.ls()`); that reaches the process's one default manager. A
test, or a program that wants its own bookkeeping, makes an instance
(`UpdateManager()`) and calls the same methods on it. Every change goes
through `manager.lock` (re-entrant); a swap is a `__code__` assignment,
atomic under the GIL.
"""

from __future__ import annotations

import functools
import time
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import forks, osthreads
from ..errors import LuError
from . import effects, patches, progress, resolve, source, waiting
from .annotations import Annotations
from .records import FunctionState, Layer, Listener, RedefineLayer, UpdateRecord
from .source import Body
from .transaction import PendingUpdate, Transaction, effective
from .updates import Instrument, Recode, Redefine, Update
from .waiting import WaitingPatch


class _OnDefault:
    """A method that, looked up on the class, is the default manager's (PyLiveUpdate's class-level calls)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __get__(self, instance: Optional[UpdateManager], owner: type) -> Callable[..., Any]:
        target = instance if instance is not None else owner.default()  # type: ignore[attr-defined]
        return types.MethodType(self.function, target)


class _ManagerClass(type):
    def __getattr__(cls, name: str) -> Any:
        # `UpdateManager.lock` and other attributes of the default instance, looked up on the class
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls.default(), name)


class UpdateManager(metaclass=_ManagerClass):
    """Applies, lists and reverts updates (see the module docstring and the engine's)."""

    _default: Optional[UpdateManager] = None
    _default_lock = osthreads.Lock()

    def __init__(self) -> None:
        self.lock = osthreads.RLock()
        # Held only while code objects are swapped: a fork waits for it, so a child never
        # starts with half an update (forks.py); preparing does not hold it.
        self.swap_lock = osthreads.Lock()
        self.generation = 0  # counts commits and reverts: a prepared transaction checks nothing moved
        self.states: Dict[int, FunctionState] = {}  # id(func) -> its state, while any layer applies
        self.records: Dict[int, UpdateRecord] = {}
        self.waiting: Dict[int, WaitingPatch] = {}  # first id -> a patch waiting for its module
        self.next_id = 1
        self.pending: Optional[Tuple[str, List[PendingUpdate]]] = None  # a patch file being run
        self.listeners: List[Listener] = []

    @classmethod
    def default(cls) -> UpdateManager:
        """The process's manager: the one the class-level calls use."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    manager = cls()
                    forks.guard(forks.Stage.ENGINE, manager.swap_lock)
                    cls._default = manager
        return cls._default

    def after_fork_in_child(self, parent_pid: int) -> None:
        """This process was forked: fresh locks (their holders stayed in the parent); what applied is inherited."""
        self.lock = osthreads.RLock()
        self.pending = None
        for item in list(self.records.values()) + list(self.waiting.values()):
            if item.inherited_from is None:
                item.inherited_from = parent_pid

    # ---------------------------------------------------------------- public
    @_OnDefault
    def apply_update(self, update: Update) -> int:
        """Apply one Instrument, Redefine or Recode; return its id (LuError: nothing applied)."""
        if not isinstance(update, (Instrument, Redefine, Recode)):
            raise LuError("apply_update takes an Instrument or a Redefine, not %r" % (update,))
        with self.lock:
            uid = self.next_id
            self.next_id += 1
            if self.pending is not None:  # inside a patch file: collected, committed at its end
                filename, items = self.pending
                line = patches.calling_line(filename)
                items.append((uid, update, "%s:%s: " % (filename, line) if line else "%s: " % filename))
                return uid
            try:
                self.commit([(uid, update, "")])
            except BaseException:
                self.next_id = uid
                raise
            return uid

    @_OnDefault
    def ls(self) -> List[Dict[str, Any]]:
        with self.lock:
            listed = [record.as_dict() for record in self.records.values()]
            listed.extend(entry.as_dict() for entry in self.waiting.values())
            return sorted(listed, key=lambda item: item["id"])

    @_OnDefault
    def known_ids(self) -> List[int]:
        """Every id `revert` accepts: applied updates, and each id a waiting patch holds."""
        with self.lock:
            return sorted(list(self.records) + [i for entry in self.waiting.values() for i in entry.ids])

    @_OnDefault
    def revert(self, uid: Any) -> None:
        with self.lock:
            try:
                number = int(uid)
            except (TypeError, ValueError):
                number = None
            record = self.records.get(number) if number is not None else None
            if record is None:
                entry = waiting.entry_holding(self.waiting, number)
                if entry is not None:
                    self.waiting.pop(entry.ids[0], None)
                    waiting.watch(self)
                    return
                raise LuError("no update with id %r (lu ls lists the applied ones)" % (uid,))
            self._revert([record])

    @_OnDefault
    def revert_all(self) -> List[int]:
        with self.lock:
            records = list(self.records.values())
            dropped = sorted(i for entry in self.waiting.values() for i in entry.ids)
            self.waiting.clear()
            waiting.watch(self)
            if records:
                self._revert(records)
            return sorted([record.uid for record in records] + dropped)

    @_OnDefault
    def add_waiting(self, entry: WaitingPatch) -> None:
        """Keep a patch until its module is imported (in this process or a child it forks)."""
        with self.lock:
            self.next_id = max(self.next_id, max(entry.ids) + 1)
            self.waiting[entry.ids[0]] = entry
            waiting.watch(self)

    @_OnDefault
    def add_listener(self, callback: Listener) -> None:
        """callback(dict) on hook errors (first one, then at most once a second per update),
        and {'event': 'reverted', 'id'} after an update is reverted."""
        with self.lock:
            if callback not in self.listeners:
                self.listeners = self.listeners + [callback]

    @_OnDefault
    def remove_listener(self, callback: Listener) -> None:
        with self.lock:
            self.listeners = [c for c in self.listeners if c is not callback]

    @_OnDefault
    def apply_patch(self, source: Any, filename: str, reserved: Optional[List[int]] = None) -> List[int]:
        """Run a patch file's text; everything it applies is one transaction. Returns ids.

        `reserved`: the ids its updates take (a waiting patch's, given by its tree)."""
        return patches.apply_patch(self, source, filename, reserved=reserved)

    @_OnDefault
    def file_body(self, func: types.FunctionType, filename: str) -> Tuple[Optional[types.CodeType], bool]:
        """(code, runs_it): the code of the newest body of `func` compiled from
        `filename` (the module's own file: its original or a watched save), and
        whether that body is the one the function runs (no patch on top)."""
        with self.lock:
            st = self.states.get(id(func))
            if st is None or st.func is not func:
                return func.__code__, True
            found: Optional[Body] = st.orig if st.orig.from_file == filename else None
            effective_body = st.orig
            for layer in st.layers:
                if isinstance(layer, RedefineLayer):
                    effective_body = layer.body
                    if layer.body.from_file == filename:
                        found = layer.body
            if found is None:
                return None, False
            return found.code, found is effective_body

    # ---------------------------------------------------------------- the work
    def new_record(self, uid: int, kind: str, description: str) -> UpdateRecord:
        return UpdateRecord(uid, kind, description, lambda: self.listeners)

    def commit(self, items: List[PendingUpdate]) -> None:
        """Apply these updates as one transaction (the lock is held)."""
        txn = self.prepare(items)
        progress.current().check()  # the last moment a cancel can stop it: nothing has changed yet
        self.finish(txn)

    def prepare(self, items: List[PendingUpdate]) -> Transaction:
        """Resolve, check and compile these updates; nothing in the process changes (the lock is held).

        The work runs on the caller's thread, which the program's threads
        share the GIL with: it makes no system call per function (see
        source.one_look_per_file), so the interpreter hands the GIL over
        every switch interval, and the caller's watch (progress.py) sees each
        function prepared.
        """
        with source.one_look_per_file():
            txn = Transaction(self)
            for uid, update, where in items:
                txn.records.append(txn.prepare(uid, update, where))
            txn.planned = txn.plans(progress.current())
            txn.generation = self.generation
            return txn

    def finish(self, txn: Transaction) -> None:
        """Swap in what `prepare` compiled, if nothing changed since (the lock is held)."""
        if txn.generation != self.generation or any(st.func.__code__ is not st.current for st, *_ in txn.planned):
            raise LuError("the functions changed between preparing and applying the update; nothing was applied")
        with self.swap_lock:
            done = txn.run_effects()
            before = [(st, st.layers, st.current, st.body) for st, *_ in txn.planned]
            for st, layers, code, body in txn.planned:
                self._install(st, layers, code, body)
            try:
                done += txn.run_effects(late=True)
            except BaseException:
                for st, layers, code, body in reversed(before):
                    self._install(st, layers, code, body)
                effects.undo_all(done)
                raise
            stamp = _now()
            for record in txn.records:
                record.applied_at = stamp
                self.records[record.uid] = record
            for owner, undo in done:  # undoing belongs to the record whose effect it was
                owner.undo.append(undo)
            self.generation += 1

    def _install(self, st: FunctionState, layers: List[Layer], code: types.CodeType, body: Body) -> None:
        func = st.func
        if body is not st.body:
            func.__defaults__ = body.defaults
            func.__kwdefaults__ = body.kwdefaults
            (body.annotations or Annotations()).install(func)
            func.__doc__ = body.doc
        func.__code__ = code
        st.current = code
        st.layers = layers
        st.body = body
        if layers:
            self.states[id(func)] = st
        else:
            self.states.pop(id(func), None)
        if layers and code.co_filename != st.orig.code.co_filename:  # a patch's body: `pkg.**` still finds it
            resolve.ORIGINAL_CODE[func] = st.orig.code
        else:
            resolve.ORIGINAL_CODE.pop(func, None)

    def _revert(self, records: List[UpdateRecord]) -> None:
        with source.one_look_per_file():
            self._revert_now(records)

    def _revert_now(self, records: List[UpdateRecord]) -> None:
        doomed = {id(r) for r in records}
        touched: Dict[int, FunctionState] = {}
        for record in records:
            for st, _ in record.layers:
                touched[id(st.func)] = st
        plans = []
        for st in touched.values():
            if st.func.__code__ is not st.current:
                raise LuError(
                    "%s was changed by something other than lu since lu last changed it; "
                    "refusing to overwrite it (update ids %s stay applied)"
                    % (st.name, ", ".join(str(r.uid) for r in records))
                )
            layers = [layer for layer in st.layers if id(layer.record) not in doomed]
            code, body = effective(st, layers) if layers else (st.orig.code, st.orig)
            plans.append((st, layers, code, body))
        with self.swap_lock:
            for st, layers, code, body in plans:
                self._install(st, layers, code, body)
            for record in reversed(records):
                for undo in reversed(record.undo):
                    try:
                        undo()
                    except Exception:
                        pass
                self.records.pop(record.uid, None)
            self.generation += 1
        for record in records:
            for callback in list(self.listeners):
                try:
                    callback({"event": "reverted", "id": record.uid})
                except Exception:
                    pass


def _after_fork_in_child(parent_pid: int) -> None:
    UpdateManager._default_lock = osthreads.Lock()
    if UpdateManager._default is not None:
        UpdateManager._default.after_fork_in_child(parent_pid)


forks.in_child(forks.Stage.ENGINE, _after_fork_in_child)


def _now() -> str:
    local = time.localtime()
    offset = local.tm_gmtoff or 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + "%s%02d:%02d" % (
        "+" if offset >= 0 else "-",
        abs(offset) // 3600,
        abs(offset) % 3600 // 60,
    )
