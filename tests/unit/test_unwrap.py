"""Following `__wrapped__` to the function a decorator wraps never builds anything in the program's memory.

unittest.mock.call (and any object whose __getattr__ answers every name)
has a `__wrapped__` that is a new object each time, whose own `__wrapped__`
is another: a pattern over such a module once grew the target by gigabytes.
"""

from __future__ import annotations

import functools
import sys
import types
import unittest.mock

from lu_payloads.engine import resolve


class AnswersEverything:
    """Like unittest.mock._Call: every attribute is a new child that holds its parent."""

    def __init__(self, parent: object = None) -> None:
        self.parent = parent

    def __getattr__(self, name: str) -> AnswersEverything:
        return AnswersEverything(self)

    def __call__(self) -> None:
        pass


def decorated_twice() -> types.FunctionType:
    def inner(x: int) -> int:
        return x

    @functools.wraps(inner)
    def middle(x: int) -> int:
        return inner(x)

    @functools.wraps(middle)
    def outer(x: int) -> int:
        return middle(x)

    return outer


class Declares:
    """A wrapper that declares its __wrapped__ in its class (a slot): it is followed."""

    __slots__ = ("__wrapped__",)

    def __init__(self, func: types.FunctionType) -> None:
        self.__wrapped__ = func

    def __call__(self) -> None:
        pass


def test_objects_that_answer_every_attribute_are_not_followed() -> None:
    assert resolve.wrapped_of(AnswersEverything()) is None
    assert resolve.unwrap(AnswersEverything()) is None
    assert resolve.unwrap(unittest.mock.call) is None


def test_real_wrappers_are_followed_to_the_innermost_function() -> None:
    outer = decorated_twice()
    found = resolve.unwrap(outer)
    assert found is not None and found.__name__ == "inner"
    assert resolve.unwrap(Declares(outer)).__name__ == "inner"  # type: ignore[union-attr]


def test_a_module_holding_such_an_object_resolves_without_growing(tmp_path, monkeypatch) -> None:
    module = types.ModuleType("lu_unwrap_probe")
    module.__file__ = str(tmp_path / "lu_unwrap_probe.py")
    (tmp_path / "lu_unwrap_probe.py").write_text("def f():\n    pass\n")
    exec(compile("def f():\n    pass\n", module.__file__, "exec"), module.__dict__)
    module.call = unittest.mock.call  # type: ignore[attr-defined]
    module.anything = AnswersEverything()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lu_unwrap_probe", module)
    assert [name for name, _ in resolve.resolve_pattern("lu_unwrap_probe.*")] == ["lu_unwrap_probe.f"]


def test_a_chain_that_never_ends_is_cut() -> None:
    head = types.SimpleNamespace()
    node = head
    for _ in range(10 * resolve.UNWRAP_LIMIT):
        node.__wrapped__ = types.SimpleNamespace()
        node = node.__wrapped__
    assert resolve.unwrap(head) is None
