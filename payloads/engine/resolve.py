"""Turning names and patterns into function objects.

Only modules already loaded (`sys.modules`) are searched: resolving never
imports anything into the target.  A decorated function is changed at the
function the user wrote: `__wrapped__` is followed (functools.wraps,
lru_cache), so wrappers keep calling the changed function.
"""

from __future__ import annotations

import linecache
import os
import sys
import types
import weakref
from typing import Any, Dict, List, Optional, Set, Tuple

from ..errors import LuError, ModuleNotLoaded

FunctionType = types.FunctionType
ACCESSORS = ("fget", "fset", "fdel")

Found = List[Tuple[str, types.FunctionType]]  # (dotted name, function)
FileCache = Dict[Tuple[str, str], bool]  # (file, file) -> the same file?


UNWRAP_LIMIT = 100  # __wrapped__ links followed at most (a real chain of decorators is a handful)


def wrapped_of(obj: Any) -> Any:
    """obj.__wrapped__ when obj really has one (its own dict, or its class declares it), else None.

    Never through a dynamic __getattr__: objects such as unittest.mock.call
    answer every attribute with a new object, and following those would build
    an endless chain in the program's memory.
    """
    try:
        own = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        own = None
    except Exception:
        return None
    if isinstance(own, dict) and "__wrapped__" in own:
        return own["__wrapped__"]
    try:
        declared = any("__wrapped__" in vars(klass) for klass in type(obj).__mro__)
        return getattr(obj, "__wrapped__", None) if declared else None
    except Exception:
        return None


def unwrap(obj: Any) -> Optional[types.FunctionType]:
    """The innermost plain function behind `obj` (following __wrapped__), or None."""
    seen: Set[int] = set()
    if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
        obj = obj.__func__
    func = obj if isinstance(obj, FunctionType) else None
    while id(obj) not in seen and len(seen) < UNWRAP_LIMIT:
        seen.add(id(obj))
        inner = wrapped_of(obj)
        if isinstance(inner, (staticmethod, classmethod, types.MethodType)):
            inner = inner.__func__
        if inner is None:
            break
        obj = inner
        if isinstance(obj, FunctionType):
            func = obj
    return func


def find_module(dotted: str) -> Tuple[Optional[types.ModuleType], Optional[str], List[str]]:
    """(module, module_name, rest_parts) for the longest loaded module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        mod = sys.modules.get(name)
        if isinstance(mod, types.ModuleType):
            return mod, name, parts[i:]
    return None, None, parts


_MISSING = object()


def lookup(obj: Any, attr: str) -> Any:
    """Static attribute lookup (class dicts along the MRO; module dicts)."""
    if isinstance(obj, type):
        for klass in obj.__mro__:
            if attr in klass.__dict__:
                return klass.__dict__[attr]
        return _MISSING
    if isinstance(obj, property):
        if attr in ACCESSORS:
            value = getattr(obj, attr)
            return _MISSING if value is None else value
        return _MISSING
    if isinstance(obj, types.ModuleType):
        d = obj.__dict__
        if attr in d:
            return d[attr]
    try:
        return getattr(obj, attr)
    except Exception:
        return _MISSING


def resolve_object(name: str) -> Tuple[Any, Optional[str], Any]:
    """(parent, attr, obj) for a dotted name; obj is _MISSING when only the parent exists."""
    if not name or any(not p for p in name.split(".")):
        raise LuError("%r is not a valid dotted name" % (name,))
    mod, modname, rest = find_module(name)
    if mod is None:
        raise ModuleNotLoaded(
            "cannot find %s: no module named %r is loaded in the process" % (name, name.split(".")[0]), name
        )
    if not rest:
        return None, None, mod
    assert modname is not None  # found with its module
    obj: Any = mod
    path = modname
    for i, attr in enumerate(rest):
        value = lookup(obj, attr)
        if value is _MISSING:
            if i == len(rest) - 1:
                return obj, attr, _MISSING
            message = "cannot find %s: %s has no attribute %r" % (name, path, attr)
            if isinstance(obj, types.ModuleType):  # perhaps a submodule not imported yet
                raise ModuleNotLoaded(message, name)
            raise LuError(message)
        obj_parent, obj = obj, value
        path += "." + attr
    return obj_parent, rest[-1], obj


def functions_of(obj: Any, name: str, strict: bool = True) -> Found:
    """[(name, function)] that changing `name` means; LuError if strict and not a function."""
    if isinstance(obj, property):
        accessors = [(name + "." + a, unwrap(getattr(obj, a))) for a in ACCESSORS if getattr(obj, a) is not None]
        out = [(n, f) for n, f in accessors if f is not None]
        if out or not strict:
            return out
        raise LuError("%s is a property without Python accessor functions" % name)
    func = unwrap(obj)
    if func is None:
        if not strict:
            return []
        raise LuError("%s is not a Python function (it is %s)" % (name, _describe(obj)))
    return [(name, func)]


def _describe(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "a module"
    if isinstance(obj, type):
        return "a class; name a method, or use %s.*" % getattr(obj, "__qualname__", "")
    return "a %s object" % type(obj).__name__


def resolve_name(name: str) -> Found:
    """Functions named by an exact dotted name (a property gives its accessors)."""
    parent, attr, obj = resolve_object(name)
    if obj is _MISSING:
        where = getattr(parent, "__name__", None) or type(parent).__name__
        raise LuError("cannot find %s: %s has no attribute %r" % (name, where, attr))
    return functions_of(obj, name)


def module_file(mod: Any) -> Optional[str]:
    """The source file a module was loaded from (not its .pyc), or None."""
    f = getattr(mod, "__file__", None)
    if not isinstance(f, str) or not f:
        return None
    if f.endswith((".pyc", ".pyo")):
        origin = getattr(getattr(mod, "__spec__", None), "origin", None)
        return origin if isinstance(origin, str) and origin else f[:-1]
    return f


def same_file(a: str, b: str, cache: FileCache) -> bool:
    """Do two paths name one file (realpaths compared once per pair, remembered in `cache`)?"""
    if a == b:
        return True
    key = (a, b)
    hit = cache.get(key)
    if hit is None:
        try:
            hit = os.path.realpath(a) == os.path.realpath(b)
        except Exception:
            hit = False
        cache[key] = hit
    return hit


# The code each function lu changed had before it: a function redefined by a patch runs code
# compiled from the patch file, yet it is still defined in its module (`pkg.**` must find it).
ORIGINAL_CODE: weakref.WeakKeyDictionary[types.FunctionType, types.CodeType] = weakref.WeakKeyDictionary()


def _defined_here(func: types.FunctionType, filename: Optional[str], cache: FileCache) -> bool:
    """Whether func was defined in the module whose file is `filename` (None: a module with no file,
    such as a notebook's __main__, whose functions come from cells: its own by __module__)."""
    code = ORIGINAL_CODE.get(func, func.__code__)
    if code.co_name == "<lambda>":
        return False
    if filename is None:
        return True  # the caller checked func.__module__
    return same_file(code.co_filename, filename, cache)


def _generated(attr: str, func: types.FunctionType) -> bool:
    """A function the compiler made, with no def in the source: 3.14's annotation functions.

    A class keeps its generated one as `__annotate_func__` (a def the user
    wrote named __annotate__ stays `__annotate__`); a module's is
    `__annotate__`, starting on a line that is not its def.
    """
    if attr == "__annotate_func__":
        return True
    code = func.__code__
    if attr != "__annotate__" or code.co_name != "__annotate__":
        return False
    return "def __annotate__" not in linecache.getline(code.co_filename, code.co_firstlineno)


def _class_functions(
    cls: type, prefix: str, filename: Optional[str], out: Found, seen: Set[int], cache: FileCache, depth: int = 0
) -> None:
    if depth > 20 or id(cls) in seen:
        return
    seen.add(id(cls))
    try:
        items = list(cls.__dict__.items())
    except Exception:
        return
    for attr, value in items:
        qname = prefix + "." + attr
        if isinstance(value, type):
            if (
                getattr(value, "__qualname__", "").startswith(cls.__qualname__ + ".")
                and value.__module__ == cls.__module__
            ):
                _class_functions(value, qname, filename, out, seen, cache, depth + 1)
            continue
        if not isinstance(value, (FunctionType, staticmethod, classmethod, property)) and wrapped_of(value) is None:
            continue
        for n, f in functions_of(value, qname, strict=False):
            if id(f) not in seen and not _generated(attr, f) and _defined_here(f, filename, cache):
                seen.add(id(f))
                out.append((n, f))


def module_functions(mod: types.ModuleType, modname: str, out: Found, seen: Set[int], cache: FileCache) -> None:
    """Functions and methods defined in `mod` (its own source file; for a module with no file, such
    as a notebook kernel's __main__, the functions and classes whose __module__ is it)."""
    filename = module_file(mod)
    try:
        items = list(mod.__dict__.items())
    except Exception:
        return
    for attr, value in items:
        qname = modname + "." + attr
        if isinstance(value, type):
            if getattr(value, "__module__", None) == mod.__name__:
                _class_functions(value, qname, filename, out, seen, cache)
            continue
        if isinstance(value, types.ModuleType):
            continue
        if not isinstance(value, (FunctionType, staticmethod, classmethod)) and not (
            callable(value) and wrapped_of(value) is not None
        ):
            continue
        for n, f in functions_of(value, qname, strict=False):
            if filename is None and getattr(f, "__module__", None) != mod.__name__:
                continue
            if id(f) not in seen and not _generated(attr, f) and _defined_here(f, filename, cache):
                seen.add(id(f))
                out.append((n, f))


def resolve_pattern(pattern: str) -> Found:
    """[(qualified_name, function)] for a name or pattern; LuError if none match.

    `pkg.mod.func`, `pkg.mod.Class.meth` (a property gives `.fget`/`.fset`/
    `.fdel`), `pkg.mod.*` (functions and methods defined in the module,
    including module attributes that are functions defined there, e.g. kept
    closures), `pkg.mod.Class.*`, `pkg.mod.**` (also every loaded submodule),
    `__main__.**`.
    """
    if not isinstance(pattern, str):
        raise LuError("a target must be a dotted name string, not %s" % type(pattern).__name__)
    pattern = pattern.strip()
    out: Found = []
    seen: Set[int] = set()
    cache: FileCache = {}
    if pattern.endswith((".**", ".*")):
        deep = pattern.endswith(".**")
        base = pattern[:-3] if deep else pattern[:-2]
        _parent, _attr, obj = resolve_object(base)
        if obj is _MISSING:
            raise LuError("pattern %s matches nothing: %s does not exist" % (pattern, base))
        if isinstance(obj, types.ModuleType):
            modname = base
            module_functions(obj, modname, out, seen, cache)
            if deep:
                prefix = modname + "."
                for name, mod in sorted(sys.modules.items(), key=lambda kv: kv[0]):
                    if name.startswith(prefix) and isinstance(mod, types.ModuleType):
                        module_functions(mod, name, out, seen, cache)
        elif isinstance(obj, type):
            home = sys.modules.get(obj.__module__)
            filename = module_file(home) if home is not None else None
            _class_functions(obj, base, filename, out, seen, cache)
        else:
            raise LuError("pattern %s: %s is neither a module nor a class" % (pattern, base))
        if not out:
            raise LuError("pattern %s matches no function defined in %s" % (pattern, base))
        return out
    return resolve_name(pattern)
