"""What the engine keeps about applied updates and the functions they changed.

- `FuncInfo`: what a hook is told about the function it runs in.
- `UpdateRecord`: one applied update (what `ls` shows, and what revert needs).
- `InstrumentLayer` / `RedefineLayer`: one update's contribution to one function.
- `FunctionState`: per changed function, the pristine original and its layers
  in order; the running code is rebuilt from these on every change.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

from ..errors import LuError
from .points import Points
from .source import Body, clone, code_qualname, original_node, statement_lines

if TYPE_CHECKING:
    import types

Listener = Callable[[Dict[str, Any]], None]


class FuncInfo:
    """What a hook is told about the function it runs in (one per function).

    name: the dotted name lu knows it by ('pkg.mod.Cart.total');
    qualname, module: of the function; filename, firstlineno: of its original
    code; func: the function object; code: its original code object (a stable
    key for aggregating).
    """

    __slots__ = ("__weakref__", "code", "filename", "firstlineno", "func", "module", "name", "qualname")

    def __init__(self, name: str, func: types.FunctionType, code: types.CodeType) -> None:
        self.name = name
        self.func = func
        self.code = code
        self.qualname = code_qualname(func)
        self.module: Optional[str] = getattr(func, "__module__", None)
        self.filename = code.co_filename
        self.firstlineno = code.co_firstlineno

    def __repr__(self) -> str:
        return "<lu FuncInfo %s>" % self.name


class UpdateRecord:
    """One applied update: what ls shows, plus what revert needs."""

    def __init__(self, uid: int, kind: str, description: str, listeners: Callable[[], List[Listener]]) -> None:
        self.uid = uid
        self.kind = kind
        self.description = description
        self.targets: List[str] = []
        self.applied_at: Optional[str] = None
        self.hook_errors = 0
        self.last_hook_error: Optional[str] = None
        self.layers: List[Tuple[FunctionState, Layer]] = []
        self.undo: List[Callable[[], None]] = []  # run on revert, last first
        self.inherited_from: Optional[int] = None  # the pid that applied it, when this process was forked after
        self._listeners = listeners
        self._last_notify = 0.0

    def failed(self) -> None:
        """Called from generated code in an except clause: count, remember, notify (never raises)."""
        try:
            et, ev, tb = sys.exc_info()
            self.hook_errors += 1
            where = ""
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                where = " (%s:%d)" % (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            try:
                text = "%s: %s%s" % (et.__name__ if et else "?", ev, where)
            except Exception:
                text = "%s%s" % (et.__name__ if et else "?", where)
            self.last_hook_error = text
            listeners = self._listeners()
            if listeners:
                now = time.monotonic()
                if self.hook_errors == 1 or now - self._last_notify >= 1.0:
                    self._last_notify = now
                    event = {"event": "hook_error", "id": self.uid, "hook_errors": self.hook_errors, "error": text}
                    for callback in list(listeners):
                        try:
                            callback(event)
                        except Exception:
                            pass
        except BaseException:
            pass

    def as_dict(self) -> Dict[str, Any]:
        return {
            "id": self.uid,
            "kind": self.kind,
            "targets": list(self.targets),
            "description": self.description,
            "applied_at": self.applied_at,
            "hook_errors": self.hook_errors,
            "last_hook_error": self.last_hook_error,
            "inherited_from": self.inherited_from,
        }


class InstrumentLayer:
    __slots__ = ("body", "points", "record")

    def __init__(self, record: UpdateRecord, points: Points, body: Body) -> None:
        self.record = record
        self.points = points
        self.body = body  # the body its line numbers refer to


class RedefineLayer:
    __slots__ = ("body", "record")

    def __init__(self, record: UpdateRecord, body: Body) -> None:
        self.record = record
        self.body = body


Layer = Union[InstrumentLayer, RedefineLayer]


class FunctionState:
    """Per changed function: the pristine original and the applied layers, in order."""

    def __init__(self, func: types.FunctionType, name: str) -> None:
        code = func.__code__
        self.func = func
        self.name = name
        self.qualname = code_qualname(func)
        self.freevars = code.co_freevars
        self.orig = Body.of_function(func, code, "original", from_file=code.co_filename)
        self.body = self.orig
        self.layers: List[Layer] = []
        self.current = code
        self.info = FuncInfo(name, func, code)

    def node_of(self, body: Body) -> Any:
        """The def node of `body`: a new one, the caller's to change.

        A body of the module's file (the original, or one lu compiled from a
        watched save) is read from the file as it is now and checked against
        its code; its node is not kept (see source.SourceFile). A body that
        came with its node (a patch's, a save's) keeps it and gives a copy.
        """
        if body.node is not None:
            return clone(body.node)
        if body is self.orig or body.from_file:
            return original_node(body.code, self.qualname, self.name)
        raise LuError("%s runs a redefined body without source; it cannot be instrumented" % self.name)

    def lines_of(self, body: Body) -> Tuple[Any, Any]:
        if body.lines is None:
            body.lines = statement_lines(self.node_of(body))
        return body.lines


def body_of(layers: List[Layer], orig: Body) -> Body:
    """The body the last Redefine (or watch save) of `layers` installed, else the original."""
    body = orig
    for layer in layers:
        if isinstance(layer, RedefineLayer):
            body = layer.body
    return body
