"""A function's annotations, carried from one body to another without evaluating them.

On 3.14 annotations are lazy (PEP 649): a function holds `__annotate__`, a
function that builds the annotations on first read of `__annotations__`. That
read runs the program's code: an annotation naming something not defined yet
raises NameError, and one with a side effect has it, inside the target. So
the engine never reads `__annotations__` of a function that has an
`__annotate__`: it carries the `__annotate__` itself, and setting it on a
function drops any annotations made before, as the program would see them.
Before 3.14, and for functions whose annotations were set by hand, the dict
is carried as it is.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True)
class Annotations:
    """How a function's annotations are held: a function that makes them (3.14+), or a plain dict."""

    annotate: Optional[Callable[[int], Dict[str, Any]]] = None
    values: Optional[Dict[str, Any]] = None

    @classmethod
    def of(cls, func: types.FunctionType) -> Annotations:
        annotate = getattr(func, "__annotate__", None)
        if annotate is not None:
            return cls(annotate=annotate)
        values = func.__annotations__  # no __annotate__: a plain dict, nothing runs
        return cls(values=dict(values) if values else {})

    def install(self, func: types.FunctionType) -> None:
        if self.annotate is not None:
            func.__annotate__ = self.annotate  # type: ignore[attr-defined]  # 3.14+: lazy again, as defined
        else:
            func.__annotations__ = dict(self.values or {})
