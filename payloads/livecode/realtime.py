"""`@realtime`: a function that picks up edits of its source file on its next call.

(realtimefunc's model.)  On each call, at most one `os.stat` per source file
per `interval` seconds tells whether the file changed; if it did, the file is
compiled and the function's current source becomes its body before the call
runs, in place and through the engine (one update; `lu ls` lists it, `lu
revert` undoes it).  Plain functions, methods (also under classmethod /
staticmethod), `async def` functions and generator-based (tornado-style)
coroutines work; the decorator may sit inside or outside other decorators
that use functools.wraps.  A syntax error (or any refusal) is logged once per
version of the file on logger "lu_payloads.realtime" and the last good body
keeps running.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union, cast, overload

from .. import osthreads
from ..engine.resolve import unwrap
from ..errors import LuError
from . import core
from .logs import REALTIME, logger

# what @realtime decorates: a function (or a functools.wraps wrapper of one), a staticmethod or a classmethod
_Decorated = TypeVar("_Decorated", bound=Union[Callable[..., Any], staticmethod, classmethod])
Stamp = Tuple[int, int]  # (st_mtime_ns, st_size) of a file


@dataclass
class _FileCheck:
    """When a source file was last looked at, shared by every @realtime function of that file."""

    checked_at: float  # time.monotonic() of the last os.stat
    stamp: Optional[Stamp]  # what it found (None: the file could not be stat'ed the first time)


_files: Dict[str, _FileCheck] = {}  # filename -> its last check
_lock = osthreads.Lock()


def _stamp(filename: str) -> Optional[Stamp]:
    try:
        st = os.stat(filename)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@overload
def realtime(func: None = None, interval: float = 0.5) -> Callable[[_Decorated], _Decorated]: ...
@overload
def realtime(func: _Decorated, interval: float = 0.5) -> _Decorated: ...


def realtime(
    func: Optional[_Decorated] = None, interval: float = 0.5
) -> Union[_Decorated, Callable[[_Decorated], _Decorated]]:
    """Decorator; `@realtime` or `@realtime(interval=0.1)`."""
    if func is None:
        return lambda f: realtime(f, interval=interval)
    wrapper_type = None
    target: Any = func
    if isinstance(func, (staticmethod, classmethod)):
        wrapper_type, target = type(func), func.__func__
    inner: Optional[types.FunctionType] = unwrap(target)
    if inner is None:
        raise TypeError("@realtime needs a Python function, not %r" % (target,))
    filename = inner.__code__.co_filename
    with _lock:
        entry = _files.get(filename)
        if entry is None:
            entry = _files[filename] = _FileCheck(checked_at=time.monotonic(), stamp=_stamp(filename))
    file_check = entry
    applied = file_check.stamp  # the version of the file this function was last given
    name = "%s.%s" % (inner.__module__, inner.__qualname__)

    def refresh() -> None:
        nonlocal applied
        now = time.monotonic()
        if now - file_check.checked_at >= interval:
            file_check.checked_at = now
            stamp = _stamp(filename)
            if stamp is not None:
                file_check.stamp = stamp
        if applied != file_check.stamp:
            applied = file_check.stamp
            _apply(filename, inner, name)

    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(target):

        @functools.wraps(target)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            refresh()
            return await target(*args, **kwargs)

        wrapper = async_wrapper
    else:

        @functools.wraps(target)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            refresh()
            return target(*args, **kwargs)

        wrapper = sync_wrapper
    setattr(wrapper, "__lu_realtime__", True)  # noqa: B010  (mypy: a function has no such attribute)
    return cast(_Decorated, wrapper_type(wrapper) if wrapper_type else wrapper)


def _apply(filename: str, inner: types.FunctionType, name: str) -> None:
    try:
        with open(filename, "rb") as fh:
            data = fh.read()
        if not data.strip():
            return
        out = core.plan_and_apply(filename, data, only=[(name, inner)], label="realtime")
    except LuError as e:
        logger(REALTIME).error("%s: %s (the last good body keeps running)", name, e)
        return
    except Exception as e:  # never break the caller
        logger(REALTIME).error("%s: cannot reload: %s: %s", name, type(e).__name__, e)
        return
    for line in out.lines:
        logger(REALTIME).info("realtime: %s", line)
