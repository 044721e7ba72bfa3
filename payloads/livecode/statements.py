"""Running a save's new statements again, each as an action the engine can undo.

- A module-level statement runs in the module's namespace (each module the
  file was loaded as); undo puts back every name it changed.
- A class-level statement runs in a copy of the class's namespace, as it
  ran in the class body; the names it bound are set on the class.
- A class whose body a decorator or metaclass turns into something else
  (a dataclass's generated `__init__`, an Enum's members) is rebuilt: its
  whole new class statement runs into a scratch namespace, and what the
  new class has that the running one should take is merged into the
  running class, which keeps its identity (instances, `isinstance`,
  subclasses and references stay right).  Taken: the names the changed
  statements bound, the names no statement binds (generated), the
  annotations, and an Enum's new members (which become members of the
  running class).  Never taken: the value of a statement that did not
  change (a registry the program filled), or a function defined in the
  file (its body is updated in place).
"""

from __future__ import annotations

import enum
import types
from typing import Any, Callable, Dict, Set

from ..engine.updates import Action
from ..errors import LuError
from .model import bound_names as names_bound

__all__ = ["class_action", "module_action", "names_bound", "rebuild_action"]

Namespace = Dict[str, Any]
_MISSING = object()
# what a class statement makes that is not the class's content
_NEVER_MERGED = frozenset(
    ("__dict__", "__weakref__", "__module__", "__qualname__", "__firstlineno__", "__static_attributes__")
)
_ANNOTATIONS = frozenset(("__annotations__", "__annotate__", "__annotate_func__", "__annotations_cache__"))
_ENUM_INTERNALS = frozenset(
    (
        "_member_map_",
        "_member_names_",
        "_value2member_map_",
        "_unhashable_values_",
        "_member_type_",
        "_value_repr_",
        "_new_member_",
        "_use_args_",
        "_hashable_values_",
        "_singles_mask_",
        "_all_bits_",
        "_flag_mask_",
        "_inverted_",
        "_boundary_",
        "_generate_next_value_",
        "__new__",
    )
)


def module_action(code: types.CodeType, namespace: Namespace, what: str) -> Action:
    """do() -> undo: run statement(s) in a module namespace; undo restores the names they changed."""

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
        changed = {k: before.get(k, _MISSING) for k, v in namespace.items() if before.get(k, _MISSING) is not v}

        def undo() -> None:
            for k, old in changed.items():
                if old is _MISSING:
                    namespace.pop(k, None)
                else:
                    namespace[k] = old

        return undo

    return do


def _set_all(cls: type, values: Dict[str, Any]) -> Callable[[], None]:
    """Set (or, for _MISSING, delete) attributes on a class past any metaclass rule; returns the undo."""
    old = {k: cls.__dict__.get(k, _MISSING) for k in values}
    try:
        _put(cls, values)
    except BaseException:
        _put(cls, old)
        raise
    return lambda: _put(cls, old)


def _put(cls: type, items: Dict[str, Any]) -> None:
    for k, v in items.items():
        if v is _MISSING:
            if k in cls.__dict__:
                type.__delattr__(cls, k)
        else:
            type.__setattr__(cls, k, v)


def class_action(code: types.CodeType, cls: type, module_ns: Namespace, what: str) -> Action:
    """do() -> undo: run class-level statement(s) as the class body would, and set what they bound."""

    def do() -> Callable[[], None]:
        ns = dict(cls.__dict__)
        before = dict(ns)
        try:
            exec(code, module_ns, ns)
        except BaseException as e:
            raise LuError("%s raised %s: %s; nothing applied" % (what, type(e).__name__, e))
        changed = {k: v for k, v in ns.items() if before.get(k, _MISSING) is not v}
        changed.update({k: _MISSING for k in before if k not in ns})
        try:
            return _set_all(cls, changed)
        except Exception as e:
            raise LuError("%s: %s cannot take %s: %s; nothing applied" % (what, cls.__qualname__, type(e).__name__, e))

    return do


def rebuild_action(
    code: types.CodeType,
    cls: type,
    module_ns: Namespace,
    bound_in_body: Set[str],
    changed_names: Set[str],
    from_file: Callable[[Any], bool],
    what: str,
) -> Action:
    """do() -> undo: run the whole new class statement aside and merge the result into `cls`.

    `bound_in_body`: every name a statement of the new class body binds;
    `changed_names`: those bound by the statements this save changed;
    `from_file(value)`: whether a value is a def of the file (updated in place, never merged).
    """

    def do() -> Callable[[], None]:
        scratch: Namespace = {}
        try:
            exec(code, module_ns, scratch)
        except BaseException as e:
            raise LuError("%s raised %s: %s; nothing applied" % (what, type(e).__name__, e))
        new = scratch.get(cls.__name__)
        if not isinstance(new, type):
            raise LuError("%s made no class %s; nothing applied" % (what, cls.__name__))
        if type(new) is not type(cls) or new.__bases__ != cls.__bases__:
            raise LuError(
                "%s: the rebuilt %s has another metaclass or other bases, which a running class cannot take; "
                "nothing applied" % (what, cls.__qualname__)
            )
        is_enum = isinstance(cls, enum.EnumMeta)
        members: Dict[str, Any] = dict(getattr(new, "_member_map_", {})) if is_enum else {}
        values: Dict[str, Any] = {}
        for k, v in new.__dict__.items():
            if k in _NEVER_MERGED or k in members:
                continue
            if k in _ANNOTATIONS:
                values[k] = v
            elif is_enum and k in _ENUM_INTERNALS:
                continue
            elif k in bound_in_body and k not in changed_names:
                continue  # a statement that did not change: the running value stays
            elif from_file(v):
                continue
            elif cls.__dict__.get(k, _MISSING) is not v:
                values[k] = v
        for k in _ANNOTATIONS:
            if k in cls.__dict__ and k not in new.__dict__:
                values[k] = _MISSING
        undo_members = _merge_members(cls, new, members) if is_enum else (lambda: None)
        try:
            undo_values = _set_all(cls, values)
        except BaseException as e:
            undo_members()
            raise LuError("%s: %s cannot take %s: %s; nothing applied" % (what, cls.__qualname__, type(e).__name__, e))

        def undo() -> None:
            undo_values()
            undo_members()

        return undo

    return do


def _merge_members(cls: Any, new: Any, members: Dict[str, Any]) -> Callable[[], None]:
    """Give a running Enum the new class's members: new ones become its own, changed values change.

    The running members keep their identity (`Color.RED is red` still holds
    for references taken earlier); a new member is re-classed to the running
    Enum.  Undo takes the new members out and puts the old values back.
    """
    member_map, names, by_value = cls._member_map_, cls._member_names_, cls._value2member_map_
    saved_map, saved_names, saved_by_value = dict(member_map), list(names), dict(by_value)
    saved_values = {name: member._value_ for name, member in member_map.items()}
    saved_dict = {name: cls.__dict__.get(name, _MISSING) for name in members}
    for name, member in members.items():
        running = member_map.get(name)
        if running is not None:
            if running._value_ != member._value_:
                by_value.pop(running._value_, None)
                running._value_ = member._value_
                by_value[running._value_] = running
            continue
        member.__class__ = cls
        member_map[name] = member
        names.append(name)
        try:
            by_value[member._value_] = member
        except TypeError:  # an unhashable value: found by a scan, as Enum does
            pass
        if name in new.__dict__:
            type.__setattr__(cls, name, member if new.__dict__[name] is member else new.__dict__[name])

    def undo() -> None:
        for name, value in saved_values.items():
            member_map[name]._value_ = value
        member_map.clear()
        member_map.update(saved_map)
        names[:] = saved_names
        by_value.clear()
        by_value.update(saved_by_value)
        _put(cls, saved_dict)

    return undo
