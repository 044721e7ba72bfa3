"""The functions a process runs for each def of a file, found by the code they run.

A def's function may be reachable under its name (`mod.f`, `Class.meth`),
only inside the wrapper a decorator returned (no functools.wraps, a lambda,
a class-based decorator), in a singledispatch registry, or nowhere named at
all (closures a factory made, copies made with types.FunctionType).  So:

- `walk` starts at the module's and its classes' dicts and follows every
  way a wrapper holds what it wraps: `__wrapped__`, closure cells,
  `__func__`, property accessors, `functools.partial.func`, the wrapper's
  own `__dict__` (singledispatch's registry), a class-based decorator's
  attributes.  It costs a few microseconds per object and never scans the
  heap, so it is always done.
- `sweep` asks the garbage collector for every object that refers to the
  module's globals dict: every function defined in the module has it as its
  `__globals__`, wherever the function is held.  One pass over the heap
  (about 35 ms with 3 million objects), so it is done only when the walk
  cannot be enough: a changed def nested in a function (its closures), or a
  changed def the walk found no function for.

  On 3.13 free-threaded, once a second thread has started, functions are
  made immortal, and a collection stops tracking immortal objects, so
  `gc.get_referrers` no longer sees them.  There the sweep looks the other
  way: what every tracked object refers to (a function is held by a dict,
  a list, a cell, an instance, all still tracked).  It is about 14 times
  slower (116 ms against 9 ms with 640,000 objects), and only done there:
  3.14 gave functions deferred reference counts instead.

Each function found is mapped to its def by the code that came from the
file (the engine knows it when a patch or an instrument is on top): its
code object's name and first line, against the base (`Shape.by_code`).
"""

from __future__ import annotations

import functools
import gc
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Set

from ..engine import UpdateManager
from ..engine.resolve import FileCache, same_file, wrapped_of
from .model import DefKey, Shape

MAX_DEPTH = 12  # wrapper links followed from one attribute
FunctionType = types.FunctionType
IMMORTAL = 1 << 28  # a reference count at least this high is an immortal object's (3.12+)
CHUNK = 4096  # objects whose referents are asked for in one call


@dataclass(frozen=True)
class Live:
    """A function the process runs for a def, and the code of it that came from the file last."""

    func: types.FunctionType
    file_code: types.CodeType
    runs_file_code: bool  # it runs file_code (no patch on top)


@dataclass(frozen=True)
class Binding:
    """Where a def's result is bound: `holder.attr` (the module or its class), and what is there."""

    holder: Any
    attr: str
    value: Any  # the outermost object: the decorators' result


@dataclass
class Inventory:
    live: Dict[DefKey, List[Live]] = field(default_factory=dict)
    bindings: Dict[DefKey, Binding] = field(default_factory=dict)
    classes: Dict[str, type] = field(default_factory=dict)  # class qualname -> the running class
    swept: bool = False
    _seen: Set[int] = field(default_factory=set)  # ids of the functions recorded

    def add(self, key: DefKey, live: Live) -> None:
        if id(live.func) not in self._seen:
            self._seen.add(id(live.func))
            self.live.setdefault(key, []).append(live)


class _Mapper:
    """Function -> its def of this file (or None)."""

    def __init__(self, shape: Shape, filename: str, manager: UpdateManager) -> None:
        self.shape = shape
        self.filename = filename
        self.manager = manager
        self.same: FileCache = {}

    def of(self, func: types.FunctionType) -> Optional[Live]:
        code, runs = self.manager.file_body(func, self.filename)
        if code is None or not same_file(code.co_filename, self.filename, self.same):
            return None
        return Live(func, code, runs)


def reachable(value: Any, out: List[types.FunctionType], seen: Set[int], depth: int = 0) -> None:
    """Every function `value` is or holds as a wrapper holds what it wraps."""
    if depth > MAX_DEPTH or id(value) in seen:
        return
    seen.add(id(value))
    try:
        if isinstance(value, FunctionType):
            out.append(value)
            for cell in value.__closure__ or ():
                try:
                    inner = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if _may_wrap(inner):
                    reachable(inner, out, seen, depth + 1)
            for inner in list(value.__dict__.values()):
                if isinstance(inner, (dict, types.MappingProxyType)):  # singledispatch's registry
                    for item in list(inner.values()):
                        if isinstance(item, FunctionType):
                            reachable(item, out, seen, depth + 1)
                elif _may_wrap(inner):
                    reachable(inner, out, seen, depth + 1)
            return
        if isinstance(value, (staticmethod, classmethod, types.MethodType)):
            reachable(value.__func__, out, seen, depth + 1)
            return
        if isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                if accessor is not None:
                    reachable(accessor, out, seen, depth + 1)
            return
        if isinstance(value, functools.partial):
            reachable(value.func, out, seen, depth + 1)
            return
        if isinstance(value, (type, types.ModuleType)):
            return
        inner = wrapped_of(value)
        if inner is not None:
            reachable(inner, out, seen, depth + 1)
        own = _own_dict(value)
        if own:  # a class-based decorator, functools.cached_property, singledispatchmethod
            for item in list(own.values()):
                if isinstance(item, (FunctionType, staticmethod, classmethod)):
                    reachable(item, out, seen, depth + 1)
    except Exception:  # a hostile object: what it hides stays unfound (the sweep may still find it)
        return


def _may_wrap(value: Any) -> bool:
    if isinstance(value, (FunctionType, staticmethod, classmethod, property, functools.partial)):
        return True
    if isinstance(value, (type, types.ModuleType, str, bytes, int, float, list, tuple, dict, set)):
        return False
    return callable(value)


def _own_dict(value: Any) -> Optional[Dict[str, Any]]:
    try:
        own = object.__getattribute__(value, "__dict__")
    except Exception:
        return None
    return own if isinstance(own, dict) and len(own) <= 64 else None


def _def_of(shape: Shape, live: Live) -> Optional[DefKey]:
    """The def a function runs: by its file code, else (3.8-3.10, an older text than the base) by its
    qualified name when that names its code (a functools.wraps wrapper carries another's name)."""
    key = shape.def_of(live.file_code)
    if key is not None:
        return key
    qualname = getattr(live.func, "__qualname__", None)
    if isinstance(qualname, str) and qualname.rsplit(".", 1)[-1] == live.file_code.co_name:
        return shape.unique(qualname)
    return None


def walk(modules: List[types.ModuleType], shape: Shape, filename: str, manager: UpdateManager) -> Inventory:
    """The functions reachable from the modules' and their classes' dicts, by def."""
    inv = Inventory()
    mapper = _Mapper(shape, filename, manager)
    classes_seen: Set[int] = set()

    def visit(holder: Any, parent: str, items: List[Any]) -> None:
        for attr, value in items:
            if not isinstance(attr, str):
                continue
            try:
                one(holder, parent, attr, value)
            except Exception:  # a hostile attribute (a __class__ that raises): what it holds stays unfound
                continue

    def one(holder: Any, parent: str, attr: str, value: Any) -> None:
        if isinstance(value, type):
            qual = (parent + "." if parent else "") + attr
            if (
                id(value) not in classes_seen
                and getattr(value, "__module__", None) in names
                and getattr(value, "__qualname__", None) == qual
            ):
                classes_seen.add(id(value))
                inv.classes.setdefault(qual, value)
                visit(value, qual, list(value.__dict__.items()))
            return
        if isinstance(value, types.ModuleType) or not _may_wrap(value):
            return
        found: List[types.FunctionType] = []
        reachable(value, found, set())
        own_qual = (parent + "." if parent else "") + attr
        for func in found:
            live = mapper.of(func)
            if live is None:
                continue
            key = _def_of(shape, live)
            if key is None:
                continue
            inv.add(key, live)
            if key[0] == own_qual and key not in inv.bindings:
                inv.bindings[key] = Binding(holder, attr, value)

    names = {m.__name__ for m in modules}
    for mod in modules:
        try:
            items = list(mod.__dict__.items())
        except Exception:
            continue
        visit(mod, "", items)
    return inv


def sweep(inv: Inventory, modules: List[types.ModuleType], shape: Shape, filename: str, manager: UpdateManager) -> None:
    """Add every function whose globals are one of the modules' dicts, wherever it is held."""
    if inv.swept:
        return
    inv.swept = True
    mapper = _Mapper(shape, filename, manager)
    for obj in functions_of([m.__dict__ for m in modules]):
        live = mapper.of(obj)
        if live is None:
            continue
        key = _def_of(shape, live)
        if key is not None:
            inv.add(key, live)


def functions_of(globals_dicts: List[Dict[str, Any]]) -> Iterator[types.FunctionType]:
    """Every function whose `__globals__` is one of these dicts, wherever it is held."""
    if not functions_are_immortal():
        for obj in gc.get_referrers(*globals_dicts):
            if type(obj) is FunctionType:
                yield obj
        return
    wanted = {id(d) for d in globals_dicts}
    seen: Set[int] = set()
    objects = gc.get_objects()
    try:
        for start in range(0, len(objects), CHUNK):
            for obj in gc.get_referents(*objects[start : start + CHUNK]):
                if type(obj) is FunctionType and id(obj.__globals__) in wanted and id(obj) not in seen:
                    seen.add(id(obj))
                    yield obj
    finally:
        del objects


def functions_are_immortal() -> bool:
    """Whether a function made now at the top level is immortal, so that a collection may untrack
    it: 3.13 free-threaded once a second thread started (deferred reference counts were not done
    yet; nested functions are left mortal).  Once so, it stays so, and the answer is kept: the probe
    made then is immortal and stays too."""
    global _immortal
    if not _immortal:
        _immortal = sys.getrefcount(FunctionType(_probe.__code__, {})) >= IMMORTAL
    return _immortal


_immortal = False


def _probe() -> None:
    """A top-level function's code, for functions_are_immortal."""


def given(funcs: List[types.FunctionType], shape: Shape, filename: str, manager: UpdateManager) -> Inventory:
    """An inventory of just these functions (@realtime: one function follows its file)."""
    inv = Inventory()
    mapper = _Mapper(shape, filename, manager)
    for func in funcs:
        live = mapper.of(func)
        key = _def_of(shape, live) if live is not None else None
        if live is not None and key is not None:
            inv.add(key, live)
    return inv
