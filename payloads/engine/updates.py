"""The three kinds of update a user (or a tool, or lu watch) hands to the UpdateManager.

They only describe the change; the manager checks, compiles and applies it as
one transaction (transaction.py).
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..errors import LuError
from . import resolve
from .points import Points, describe_targets
from .source import FuncNode

Target = Union[str, Callable[..., Any]]


def target_name(target: Target) -> str:
    if isinstance(target, str):
        return target
    func = resolve.unwrap(target)
    if func is None:
        raise LuError("%r is neither a dotted name nor a Python function" % (target,))
    return "%s.%s" % (func.__module__, func.__qualname__)


class Instrument:
    """Hooks woven into existing functions: Instrument(targets, points, description=None).

    `targets`: a name or pattern, a function, or a list of them: one update
    instruments every function they match. `points`: a Points, or the
    PyLiveUpdate dict (see points.py).
    """

    kind = "instrument"

    def __init__(
        self, targets: Union[Target, Iterable[Target]], points: Any, description: Optional[str] = None
    ) -> None:
        if isinstance(targets, (str, types.FunctionType)) or not hasattr(targets, "__iter__"):
            targets = [targets]
        self.targets: List[Target] = list(targets)
        if not self.targets:
            raise LuError("Instrument needs at least one target")
        self.points = Points.coerce(points)
        self.description = description

    def resolve(self) -> List[Tuple[str, types.FunctionType]]:
        """(name, function) for every function the targets match, each once."""
        out: List[Tuple[str, types.FunctionType]] = []
        seen: Set[int] = set()
        for target in self.targets:
            if isinstance(target, str):
                found = resolve.resolve_pattern(target)
            else:
                func = resolve.unwrap(target)
                if func is None:
                    raise LuError("%r is not a Python function" % (target,))
                found = [(target_name(target), func)]
            for name, func in found:
                if id(func) not in seen:
                    seen.add(id(func))
                    out.append((name, func))
        return out

    def describe(self, names: Sequence[str]) -> str:
        if self.description:
            return self.description
        return describe_targets((target_name(t) for t in self.targets), len(names), self.points)


class Redefine:
    """New bodies for existing functions, in place (identity kept).

    Redefine(module, predefine, {'mod.func': new_func, ...}); see the engine's
    package docstring.
    """

    kind = "redefine"

    def __init__(
        self,
        module: Union[str, types.ModuleType],
        predefine: Optional[Callable[..., Any]],
        mapping: Dict[str, Any],
        description: Optional[str] = None,
    ) -> None:
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


@dataclass(frozen=True)
class NewBody:
    """A function of the module runs code compiled from the new file (`node` is its def there)."""

    name: str
    func: types.FunctionType
    node: FuncNode
    code: types.CodeType
    defaults: Optional[Tuple[Any, ...]]
    kwdefaults: Optional[Dict[str, Any]]
    doc: Optional[str]


@dataclass(frozen=True)
class Moved:
    """A function's body did not change, but it now starts on `firstlineno` (line points follow it)."""

    name: str
    func: types.FunctionType
    node: FuncNode
    firstlineno: int


Change = Union[NewBody, Moved]
Action = Callable[[], Callable[[], None]]  # do() -> undo


class Recode:
    """Bodies from a new version of a module's own source file (lu watch, @realtime).

    Built by lu_payloads.livecode, which matched the new file against what
    runs; this only installs the result as one update. `actions` are
    callables do() -> undo run after everything was compiled and before the
    code swap (imports, new functions and classes: what the new bodies may
    need); `late_actions` run just after the swap (statements run again,
    decorators applied again: what must see the new bodies). A failing one
    undoes the others and the swap: nothing stays applied.
    """

    kind = "recode"

    def __init__(
        self,
        filename: str,
        changes: Iterable[Change],
        actions: Iterable[Action] = (),
        targets: Iterable[str] = (),
        description: Optional[str] = None,
        kind: str = "recode",
        late_actions: Iterable[Action] = (),
    ) -> None:
        self.kind = kind  # what ls shows: "watch", "realtime"
        self.filename = filename
        self.changes: List[Change] = list(changes)
        self.actions: List[Action] = list(actions)
        self.late_actions: List[Action] = list(late_actions)
        self.targets: List[str] = list(targets)
        self.description = description


Update = Union[Instrument, Redefine, Recode]
